"""FLIR Blackfly S through PySpin (Spinnaker SDK): hardware trigger, strobe out, chunk data.

Node names follow FLIR's GenICam/SFNC nodemap (UserSetSelector/Load, TriggerSelector/Source/Activation/
Mode/Overlap, LineSelector/Mode/Source, V3_3Enable, ChunkModeActive/Selector/Enable,
StreamBufferHandlingMode/CountManual). As in FLIR's examples: one shared ``System`` for every camera,
camera lists cleared and every camera reference dropped before ``ReleaseInstance`` (it raises -1004
while references remain), acquisition begun before ``GetNextImage`` (-1010 otherwise), trigger mode off
on close. PySpin ships with the Spinnaker SDK (not on PyPI) and is imported only when a camera is opened.
"""
from __future__ import annotations

import logging
import threading

import numpy as np

from ratpose.acquisition.backends import (
    CameraBackend,
    CameraError,
    CameraSettings,
    Frame,
    FrameTimeout,
)

from ..errors import InputError

TRIGGER_LINES = ("Line0", "Line2", "Line3")  # Line0 opto-isolated in, Line2/3 GPIO
STROBE_LINES = ("Line1", "Line2")  # Line1 opto-isolated (open drain) out, Line2 GPIO
CHUNKS = ("FrameID", "Timestamp", "ExposureTime")
SPINNAKER_ERR_TIMEOUT = -1011
STREAM_STATS = {"lost": "StreamLostFrameCount", "dropped": "StreamDroppedFrameCount",
                "incomplete": "StreamIncompleteFrameCount"}
log = logging.getLogger(__name__)
INFO_NODES = {"serial": "DeviceSerialNumber", "model": "DeviceModelName", "firmware": "DeviceVersion",
              "usb_speed": "DeviceCurrentSpeed"}


def _import_pyspin():
    try:
        import PySpin
    except ImportError as err:
        raise CameraError("PySpin is not installed: it comes with FLIR's Spinnaker SDK (install the SDK, then "
                          "the matching spinnaker_python wheel from FLIR; the PyPI package 'pyspin' is "
                          "unrelated)") from err
    return PySpin


def _read_node(spin, nodemap, name: str):
    """A node's value as int/str, or None when the node is missing or not readable."""
    node = nodemap.GetNode(name)
    if node is None or not spin.IsAvailable(node) or not spin.IsReadable(node):
        return None
    if node.GetPrincipalInterfaceType() == spin.intfIInteger:
        return int(spin.CIntegerPtr(node).GetValue())
    return spin.CValuePtr(node).ToString()


def _identity(spin, cam) -> dict[str, str]:
    """Serial, model, firmware, USB speed (TL device nodemap, no Init needed) and the link throughput limit
    (camera nodemap: initialises the camera for the read if it is not already, and de-initialises it)."""
    tl = cam.GetTLDeviceNodeMap()
    out = {key: _read_node(spin, tl, node) for key, node in INFO_NODES.items()}
    opened = not cam.IsInitialized()
    try:
        if opened:
            cam.Init()
        nm = cam.GetNodeMap()
        out["usb_speed"] = out["usb_speed"] or _read_node(spin, nm, "DeviceLinkSpeed")
        out["link_limit_bytes_s"] = _read_node(spin, nm, "DeviceLinkThroughputLimit")
    except spin.SpinnakerException as err:  # e.g. opened by another program: identity only
        out["link_limit_bytes_s"] = f"unreadable ({err})"
        opened = False
    finally:
        if opened:
            cam.DeInit()
    return {k: v for k, v in out.items() if v is not None}


def list_cameras() -> list[dict[str, str]]:
    """Every camera the Spinnaker SDK sees, configured or not: identity and link limit (see _identity)."""
    spin = _import_pyspin()
    system = _SharedSystem.acquire(spin)
    try:
        cam_list = system.GetCameras()
        try:
            found = []
            for i in range(cam_list.GetSize()):
                cam = cam_list.GetByIndex(i)
                try:
                    found.append(_identity(spin, cam))
                finally:
                    del cam
        finally:
            cam_list.Clear()
            del cam_list
    finally:
        del system
        _SharedSystem.release(spin)
    return found


class _SharedSystem:
    """The one Spinnaker System of this process, released when its last user lets go."""

    lock = threading.Lock()
    held: dict = {}  # PySpin module -> [System, number of cameras using it]

    @classmethod
    def acquire(cls, spin):
        with cls.lock:
            entry = cls.held.setdefault(spin, [None, 0])
            if entry[0] is None:
                entry[0] = spin.System.GetInstance()
            entry[1] += 1
            return entry[0]

    @classmethod
    def release(cls, spin) -> None:
        with cls.lock:
            entry = cls.held[spin]
            entry[1] -= 1
            if entry[1] == 0:
                system = entry[0]
                del cls.held[spin]
                system.ReleaseInstance()


class PySpinCamera(CameraBackend):
    """One Blackfly S, found by serial number."""

    def __init__(self, serial: str, name: str, save_user_set: bool = False):
        if not serial:
            raise InputError(f"camera {name!r}: a PySpin camera needs its serial number in the rig config")
        self.serial, self.name, self.save_user_set = str(serial), name, save_user_set
        self._spin = self._system = self._cam = None
        self._streaming = False
        self._stats: dict[str, int] = {}

    def _err(self, text: str) -> CameraError:
        return CameraError(f"camera {self.name!r} ({self.serial}): {text}")

    # -- node helpers -------------------------------------------------------------------------------
    def _node(self, nodemap, name: str, kind: str, writable: bool = True):
        spin = self._spin
        node = getattr(spin, kind)(nodemap.GetNode(name))
        ok = spin.IsWritable(node) if writable else spin.IsReadable(node)
        if not spin.IsAvailable(node) or not ok:
            raise self._err(f"node {name} is not available/{'writable' if writable else 'readable'}")
        return node

    def _set_enum(self, nodemap, name: str, entry: str) -> None:
        node = self._node(nodemap, name, "CEnumerationPtr")
        value = node.GetEntryByName(entry)
        if value is None or not self._spin.IsAvailable(value) or not self._spin.IsReadable(value):
            raise self._err(f"{name} has no entry {entry!r}")
        node.SetIntValue(value.GetValue())

    def _enum_is(self, nodemap, name: str, entry: str) -> bool:
        node = self._spin.CEnumerationPtr(nodemap.GetNode(name))
        return self._spin.IsReadable(node) and node.GetCurrentEntry().GetSymbolic() == entry

    def _set_number(self, nodemap, name: str, value: float, kind: str = "CFloatPtr") -> None:
        node = self._node(nodemap, name, kind)
        lo, hi = node.GetMin(), node.GetMax()
        if not lo <= value <= hi:
            raise InputError(f"camera {self.name!r} ({self.serial}): {name}={value} outside the camera's "
                             f"range [{lo}, {hi}]")
        if kind == "CIntegerPtr":
            inc = int(node.GetInc())
            if (int(value) - lo) % inc:
                below = lo + (int(value) - lo) // inc * inc
                allowed = [v for v in (below, below + inc) if lo <= v <= hi]
                raise InputError(f"camera {self.name!r} ({self.serial}): {name}={value} is not allowed: it moves "
                                 f"in steps of {inc} from {lo}; nearest allowed {allowed}")
        node.SetValue(int(value) if kind == "CIntegerPtr" else float(value))

    def _set_bool(self, nodemap, name: str, value: bool) -> None:
        self._node(nodemap, name, "CBooleanPtr").SetValue(bool(value))

    def _execute(self, nodemap, name: str) -> None:
        self._node(nodemap, name, "CCommandPtr").Execute()

    def _read(self, nodemap, name: str):
        return _read_node(self._spin, nodemap, name)

    # -- lifecycle ----------------------------------------------------------------------------------
    def _open(self) -> None:
        if self._cam is not None:
            return
        self._spin = spin = _import_pyspin()
        self._system = _SharedSystem.acquire(spin)
        cam_list = self._system.GetCameras()
        try:
            found = cam_list.GetSize()
            try:
                cam = cam_list.GetBySerial(self.serial)
            except spin.SpinnakerException:
                cam = None
            if cam is not None and not cam.IsValid():
                cam = None
        finally:
            cam_list.Clear()  # a list still holding cameras keeps ReleaseInstance from succeeding
            del cam_list
        if cam is None:
            self._system = None
            _SharedSystem.release(spin)
            raise CameraError(f"camera {self.name!r}: no camera with serial {self.serial} ({found} camera(s) found)")
        try:
            cam.Init()
        except spin.SpinnakerException as err:
            del cam
            self._system = None
            _SharedSystem.release(spin)
            raise self._err(f"Init failed: {err}") from err
        self._cam = cam

    def info(self) -> dict[str, str]:
        self._open()
        return _identity(self._spin, self._cam)

    def configure(self, settings: CameraSettings, rate_hz: float) -> None:
        if settings.trigger_line not in TRIGGER_LINES:
            raise InputError(f"camera {self.name!r}: trigger_line must be one of {TRIGGER_LINES}")
        if settings.strobe_line and settings.strobe_line not in STROBE_LINES:
            raise InputError(f"camera {self.name!r}: strobe_line must be one of {STROBE_LINES} or empty")
        if settings.buffer_handling != "OldestFirst":
            raise InputError(f"camera {self.name!r}: only OldestFirst keeps frames in order")
        self._open()
        nm = self._cam.GetNodeMap()
        # a known state first: the factory user set, then the rig config on top
        self._set_enum(nm, "UserSetSelector", "Default")
        self._execute(nm, "UserSetLoad")
        self._set_enum(nm, "AcquisitionMode", "Continuous")
        self._set_enum(nm, "PixelFormat", settings.pixel_format)
        for name, value in (("OffsetX", 0), ("OffsetY", 0), ("Width", settings.width), ("Height", settings.height),
                            ("OffsetX", settings.offset_x), ("OffsetY", settings.offset_y)):
            self._set_number(nm, name, value, "CIntegerPtr")
        self._set_enum(nm, "ExposureAuto", "Off")
        self._set_enum(nm, "ExposureMode", "Timed")
        self._set_number(nm, "ExposureTime", settings.exposure_us)
        self._set_enum(nm, "GainAuto", "Off")
        self._set_number(nm, "Gain", settings.gain_db)
        # the camera's own limit for this exposure and ROI, then let the trigger set the pace
        self._set_bool(nm, "AcquisitionFrameRateEnable", True)
        max_rate = self._node(nm, "AcquisitionFrameRate", "CFloatPtr", writable=False).GetMax()
        if rate_hz > max_rate:
            raise InputError(f"camera {self.name!r}: {rate_hz} Hz exceeds the camera's {max_rate:.1f} fps at "
                             f"exposure {settings.exposure_us} us and ROI {settings.width}x{settings.height}")
        self._set_bool(nm, "AcquisitionFrameRateEnable", False)
        self._set_enum(nm, "TriggerMode", "Off")  # source/activation are only writable with the trigger off
        self._set_enum(nm, "TriggerSelector", "FrameStart")
        self._set_enum(nm, "TriggerSource", settings.trigger_line)
        self._set_enum(nm, "TriggerActivation", "RisingEdge")
        self._set_enum(nm, "TriggerOverlap", "ReadOut")
        self._set_enum(nm, "TriggerMode", "On")
        if settings.strobe_line:
            self._configure_strobe(nm, settings)
        self._set_bool(nm, "ChunkModeActive", True)
        for chunk in CHUNKS:
            self._set_enum(nm, "ChunkSelector", chunk)
            enable = self._spin.CBooleanPtr(nm.GetNode("ChunkEnable"))
            if self._spin.IsWritable(enable):
                enable.SetValue(True)
            elif not (self._spin.IsReadable(enable) and enable.GetValue()):  # enabled, not writable: fine
                raise self._err(f"chunk {chunk} cannot be enabled")
        snm = self._cam.GetTLStreamNodeMap()
        self._set_enum(snm, "StreamBufferCountMode", "Manual")
        count = min(settings.buffer_count, int(self._node(snm, "StreamBufferCountManual", "CIntegerPtr").GetMax()))
        self._set_number(snm, "StreamBufferCountManual", count, "CIntegerPtr")
        self._set_enum(snm, "StreamBufferHandlingMode", "OldestFirst")
        if self.save_user_set:
            self._set_enum(nm, "UserSetSelector", "UserSet1")
            self._execute(nm, "UserSetSave")

    def _configure_strobe(self, nm, settings: CameraSettings) -> None:
        """ExposureActive on the strobe line; the opto output Line1 is open drain and needs a pull-up."""
        self._set_enum(nm, "LineSelector", settings.strobe_line)
        if self._spin.IsWritable(self._spin.CEnumerationPtr(nm.GetNode("LineMode"))):
            self._set_enum(nm, "LineMode", "Output")
        elif not self._enum_is(nm, "LineMode", "Output"):  # Line1 is a fixed output on the Blackfly S
            raise self._err(f"{settings.strobe_line} is not an output and its LineMode is read-only")
        self._set_enum(nm, "LineSource", "ExposureActive")
        if settings.strobe_line == "Line1" and settings.strobe_pullup == "line2_3v3":
            self._set_enum(nm, "LineSelector", "Line2")
            self._set_bool(nm, "V3_3Enable", True)

    def start(self) -> None:
        try:
            self._cam.BeginAcquisition()
        except self._spin.SpinnakerException as err:
            raise self._err(f"BeginAcquisition failed: {err}") from err
        self._streaming = True

    def get_frame(self, timeout_s: float) -> Frame:
        spin = self._spin
        try:
            image = self._cam.GetNextImage(max(1, int(timeout_s * 1000)))
        except spin.SpinnakerException as err:
            if getattr(err, "errorcode", None) == getattr(spin, "SPINNAKER_ERR_TIMEOUT", SPINNAKER_ERR_TIMEOUT):
                raise FrameTimeout(self.name) from None
            raise self._err(str(err)) from err
        try:
            if image.IsIncomplete():  # chunk data may be missing: the image's own FrameID keeps the gap count
                return Frame(image=np.zeros((0, 0), np.uint8), frame_id=int(image.GetFrameID()), timestamp_ns=0,
                             exposure_us=0.0, incomplete=True)
            chunk = image.GetChunkData()
            pixels = np.array(image.GetNDArray(), dtype=np.uint8, copy=True)  # buffer goes back on Release
            return Frame(image=pixels, frame_id=int(chunk.GetFrameID()), timestamp_ns=int(chunk.GetTimestamp()),
                         exposure_us=float(chunk.GetExposureTime()))
        finally:
            image.Release()

    def stream_stats(self) -> dict[str, int]:
        """The stream's lost/dropped/incomplete counters (the last ones read, once the camera is gone)."""
        if self._cam is not None:
            try:
                snm = self._cam.GetTLStreamNodeMap()
                for key, node in STREAM_STATS.items():
                    value = self._read(snm, node)
                    if value is not None:
                        self._stats[key] = int(value)
            except self._spin.SpinnakerException as err:
                log.warning("camera %r: stream counters unreadable (%s)", self.name, err)
        return dict(self._stats)

    def stop(self) -> None:
        """End acquisition; call only after the capture thread drained the stream (no GetNextImage running)."""
        if self._streaming:
            self._streaming = False
            self.stream_stats()
            try:
                self._cam.EndAcquisition()
            except self._spin.SpinnakerException as err:
                raise self._err(f"stopping failed: {err}") from err

    def close(self) -> None:
        if self._cam is None:
            return
        cam, self._cam = self._cam, None
        try:
            if self._streaming:
                self._streaming = False
                cam.EndAcquisition()
            self._set_enum(cam.GetNodeMap(), "TriggerMode", "Off")
            cam.DeInit()
        except Exception:  # an unplugged camera cannot be reset or de-initialised; release the rest anyway
            pass
        finally:
            del cam  # the last reference: ReleaseInstance raises -1004 while any camera is referenced
            self._system = None
            _SharedSystem.release(self._spin)
