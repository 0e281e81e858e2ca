"""FLIR Blackfly S through PySpin (Spinnaker SDK): hardware trigger, strobe out, chunk data.

Node names follow FLIR's GenICam/SFNC nodemap (TriggerSelector/Source/Activation/Mode/Overlap,
LineSelector/Mode/Source, ChunkModeActive/Selector/Enable, StreamBufferHandlingMode/CountManual).
PySpin ships with the Spinnaker SDK (not on PyPI) and is imported only when a camera is opened.
"""
from __future__ import annotations

import numpy as np

from ratpose.acquisition.backends import CameraBackend, CameraError, CameraSettings, Frame, FrameTimeout

TRIGGER_LINES = ("Line0", "Line2", "Line3")  # Line0 opto-isolated in, Line2/3 GPIO
STROBE_LINES = ("Line1", "Line2")  # Line1 opto-isolated out, Line2 GPIO
CHUNKS = ("FrameID", "Timestamp", "ExposureTime")
SPINNAKER_ERR_TIMEOUT = -1011


def _import_pyspin():
    try:
        import PySpin
    except ImportError as err:
        raise CameraError("PySpin is not installed: it comes with FLIR's Spinnaker SDK (install the SDK, then "
                          "the matching spinnaker_python wheel from FLIR; the PyPI package 'pyspin' is "
                          "unrelated)") from err
    return PySpin


class PySpinCamera(CameraBackend):
    """One Blackfly S, found by serial number."""

    def __init__(self, serial: str, name: str):
        if not serial:
            raise ValueError(f"camera {name!r}: a PySpin camera needs its serial number in the rig config")
        self.serial, self.name = str(serial), name
        self._spin = self._system = self._list = self._cam = None
        self._streaming = False
        self._incomplete = 0

    # -- node helpers -------------------------------------------------------------------------------
    def _node(self, nodemap, name: str, kind: str):
        spin = self._spin
        node = getattr(spin, kind)(nodemap.GetNode(name))
        if not spin.IsAvailable(node) or not spin.IsWritable(node):
            raise CameraError(f"camera {self.name!r} ({self.serial}): node {name} is not available/writable")
        return node

    def _set_enum(self, nodemap, name: str, entry: str) -> None:
        node = self._node(nodemap, name, "CEnumerationPtr")
        value = node.GetEntryByName(entry)
        if value is None or not self._spin.IsAvailable(value) or not self._spin.IsReadable(value):
            raise CameraError(f"camera {self.name!r} ({self.serial}): {name} has no entry {entry!r}")
        node.SetIntValue(value.GetValue())

    def _set_number(self, nodemap, name: str, value: float, kind: str = "CFloatPtr") -> None:
        node = self._node(nodemap, name, kind)
        lo, hi = node.GetMin(), node.GetMax()
        if not lo <= value <= hi:
            raise ValueError(f"camera {self.name!r} ({self.serial}): {name}={value} outside the camera's "
                             f"range [{lo}, {hi}]")
        node.SetValue(int(value) if kind == "CIntegerPtr" else float(value))

    def _set_bool(self, nodemap, name: str, value: bool) -> None:
        self._node(nodemap, name, "CBooleanPtr").SetValue(bool(value))

    # -- lifecycle ----------------------------------------------------------------------------------
    def _open(self) -> None:
        if self._cam is not None:
            return
        self._spin = spin = _import_pyspin()
        self._system = spin.System.GetInstance()
        self._list = self._system.GetCameras()
        cam = self._list.GetBySerial(self.serial)
        if cam is None or not cam.IsValid():
            found = self._list.GetSize()
            self.close()
            raise CameraError(f"camera {self.name!r}: no camera with serial {self.serial} ({found} camera(s) found)")
        cam.Init()
        self._cam = cam

    def configure(self, settings: CameraSettings, rate_hz: float) -> None:
        if settings.trigger_line not in TRIGGER_LINES:
            raise ValueError(f"camera {self.name!r}: trigger_line must be one of {TRIGGER_LINES}")
        if settings.strobe_line and settings.strobe_line not in STROBE_LINES:
            raise ValueError(f"camera {self.name!r}: strobe_line must be one of {STROBE_LINES} or empty")
        self._open()
        nm = self._cam.GetNodeMap()
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
        max_rate = self._node(nm, "AcquisitionFrameRate", "CFloatPtr").GetMax()
        if rate_hz > max_rate:
            raise ValueError(f"camera {self.name!r}: {rate_hz} Hz exceeds the camera's {max_rate:.1f} fps at "
                             f"exposure {settings.exposure_us} us and ROI {settings.width}x{settings.height}")
        self._set_bool(nm, "AcquisitionFrameRateEnable", False)
        self._set_enum(nm, "TriggerMode", "Off")  # source/activation are only writable with the trigger off
        self._set_enum(nm, "TriggerSelector", "FrameStart")
        self._set_enum(nm, "TriggerSource", settings.trigger_line)
        self._set_enum(nm, "TriggerActivation", "RisingEdge")
        self._set_enum(nm, "TriggerOverlap", "ReadOut")
        self._set_enum(nm, "TriggerMode", "On")
        if settings.strobe_line:
            self._set_enum(nm, "LineSelector", settings.strobe_line)
            self._set_enum(nm, "LineMode", "Output")
            self._set_enum(nm, "LineSource", "ExposureActive")
        self._set_bool(nm, "ChunkModeActive", True)
        for chunk in CHUNKS:
            self._set_enum(nm, "ChunkSelector", chunk)
            self._set_bool(nm, "ChunkEnable", True)
        snm = self._cam.GetTLStreamNodeMap()
        self._set_enum(snm, "StreamBufferCountMode", "Manual")
        count = min(settings.buffer_count, int(self._node(snm, "StreamBufferCountManual", "CIntegerPtr").GetMax()))
        self._set_number(snm, "StreamBufferCountManual", count, "CIntegerPtr")
        self._set_enum(snm, "StreamBufferHandlingMode", settings.buffer_handling)

    def start(self) -> None:
        self._cam.BeginAcquisition()
        self._streaming = True

    def get_frame(self, timeout_s: float) -> Frame:
        spin = self._spin
        while True:
            try:
                image = self._cam.GetNextImage(max(1, int(timeout_s * 1000)))
            except spin.SpinnakerException as err:
                if getattr(err, "errorcode", None) == getattr(spin, "SPINNAKER_ERR_TIMEOUT", SPINNAKER_ERR_TIMEOUT):
                    raise FrameTimeout(self.name) from None
                raise CameraError(f"camera {self.name!r} ({self.serial}): {err}") from err
            try:
                if image.IsIncomplete():
                    self._incomplete += 1
                    continue
                chunk = image.GetChunkData()
                pixels = np.array(image.GetNDArray(), dtype=np.uint8, copy=True)  # buffer goes back on Release
                return Frame(image=pixels, frame_id=int(chunk.GetFrameID()), timestamp_ns=int(chunk.GetTimestamp()),
                             exposure_us=float(chunk.GetExposureTime()))
            finally:
                image.Release()

    @property
    def incomplete_frames(self) -> int:
        return self._incomplete

    def stop(self) -> None:
        if self._streaming:
            self._streaming = False
            try:
                self._cam.EndAcquisition()
            except self._spin.SpinnakerException as err:
                raise CameraError(f"camera {self.name!r} ({self.serial}): stopping failed: {err}") from err

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.DeInit()
            except Exception:  # an unplugged camera cannot be de-initialised; release the rest anyway
                pass
            self._cam = None
        if self._list is not None:
            self._list.Clear()
            self._list = None
        if self._system is not None:
            self._system.ReleaseInstance()
            self._system = None
