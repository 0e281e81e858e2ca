"""Strict fakes of FLIR's PySpin and of pigpio, behaving like the real SDKs where they bite.

PySpin: SpinnakerException with Spinnaker's error codes (-1010 GetNextImage while not streaming or a
device gone, -1011 timeout, -1004 ReleaseInstance while cameras/lists are referenced), node access modes
(RO/RW/NA, trigger settings writable only with TriggerMode Off, ROI frozen while streaming), Width/Height/
Offset increments, chunks that are enabled but not writable, the stream's buffer handling, incomplete
images and TLStream counters. A pulled cable (``unplug_after`` frames, or ``unplug()``) is what Spinnaker
shows of a vanished USB3 camera: GetNextImage times out (-1011) again and again; other calls on it fail
with -1010 (``unplug_as="error"``: GetNextImage raises -1010 too, as after a firmware reset).
pigpio: ``pigpio.exceptions = True`` so failures raise ``pigpio.error``.
Pulses from the fake Pi reach the primary's trigger line; the secondary sees them only through the
primary's strobe (Line1 open drain: needs Line2's V3_3Enable or an external pull-up).
Input GPIOs are driven by a ``ScriptedKnob`` (``StrictRig(knob=...)``): pigpio samples them every 5 us
(changes within one sample share a tick, reported in GPIO order), applies ``set_glitch_filter`` (a
change is reported only once stable for ``steady`` us, stamped ``steady`` us after it began), reads an
unconnected input as its pull, and calls EITHER/RISING/FALLING callbacks with uint32 ticks that wrap.
"""
from __future__ import annotations

import gc
import threading
import time
import types
import weakref

import numpy as np

# Spinnaker's spinError codes; node access and range errors are GenICam's (AccessException, OutOfRangeException)
ERR = {"resource_in_use": -1004, "io": -1010, "timeout": -1011, "access": -2006, "out_of_range": -2002}


class SpinnakerException(Exception):
    def __init__(self, message: str, errorcode: int):
        super().__init__(f"Spinnaker: {message} [{errorcode}]")
        self.message, self.errorcode = message, errorcode


RO, RW, NA = "RO", "RW", "NA"


class Node:
    def __init__(self, cam, name, kind, value, *, entries=(), lo=None, hi=None, inc=1, access=None):
        self.cam, self.name, self.kind, self.value = cam, name, kind, value
        self.entries, self.lo, self.hi, self.inc, self._access = tuple(entries), lo, hi, inc, access

    def access(self):
        return self._access(self) if callable(self._access) else (self._access or RW)

    def GetPrincipalInterfaceType(self):
        return self.kind


class _Entry:
    def __init__(self, symbolic, value):
        self.symbolic, self.value = symbolic, value

    def GetValue(self):
        return self.value

    def access(self):
        return RO

    def GetSymbolic(self):
        return self.symbolic


class _Ptr:
    def __init__(self, node):
        self.node = node

    def IsValid(self):
        return self.node is not None

    def _check(self, write):
        acc = self.node.access() if self.node is not None else NA
        if acc == NA or (write and acc != RW):
            raise SpinnakerException(f"GenICam::AccessException= Node {self.node and self.node.name} is not "
                                     f"{'writable' if write else 'readable'}", ERR["access"])

    def GetValue(self):
        self._check(False)
        return self.node.value

    def SetValue(self, value):
        self._check(True)
        n = self.node
        if n.lo is not None and not n.lo <= value <= n.hi():
            raise SpinnakerException(f"GenICam::OutOfRangeException= {n.name}={value}", ERR["out_of_range"])
        if n.kind == "int" and (value - n.lo) % n.inc:
            raise SpinnakerException(f"GenICam::OutOfRangeException= {n.name}={value} not a multiple of {n.inc}",
                                     ERR["out_of_range"])
        n.value = value
        n.cam.on_set(n.name)

    def GetMin(self):
        self._check(False)
        return self.node.lo

    def GetMax(self):
        self._check(False)
        return self.node.hi()

    def GetInc(self):
        self._check(False)
        return self.node.inc

    def ToString(self):
        self._check(False)
        return str(self.node.value)

    def GetEntryByName(self, name):
        return _Entry(name, self.node.entries.index(name)) if name in self.node.entries else None

    def SetIntValue(self, value):
        self._check(True)
        self.node.value = self.node.entries[value]
        self.node.cam.on_set(self.node.name)

    def GetCurrentEntry(self):
        self._check(False)
        return _Entry(self.node.value, self.node.entries.index(self.node.value))

    def Execute(self):
        self._check(True)
        self.node.cam.on_command(self.node.name)


def _access_of(node):
    if node is None:
        return NA
    return node.access()


def _module_pyspin(system_holder):
    spin = types.ModuleType("PySpin")
    spin.SpinnakerException = SpinnakerException
    spin.SPINNAKER_ERR_TIMEOUT = ERR["timeout"]
    spin.intfIInteger, spin.intfIString = "int", "str"
    for cls in ("CEnumerationPtr", "CIntegerPtr", "CFloatPtr", "CBooleanPtr", "CCommandPtr", "CValuePtr",
                "CStringPtr"):
        setattr(spin, cls, _Ptr)
    spin.IsAvailable = lambda p: _access_of(getattr(p, "node", p)) != NA
    spin.IsReadable = lambda p: _access_of(getattr(p, "node", p)) in (RO, RW)
    spin.IsWritable = lambda p: _access_of(getattr(p, "node", p)) == RW
    spin.System = types.SimpleNamespace(GetInstance=system_holder.get_instance)
    return spin


class Image:
    """An image in one of the stream's buffers: GetNDArray is a view of that buffer, which goes back to the
    driver on Release (and is overwritten by a later frame); until then it counts against the buffers."""

    def __init__(self, cam, pixels, frame_id, ts_ns, exposure_us, incomplete):
        self.cam, self.pixels, self.frame_id, self.ts_ns, self.exposure_us, self.incomplete = (
            cam, pixels, frame_id, ts_ns, exposure_us, incomplete)
        self.released = False

    def IsIncomplete(self):
        return self.incomplete

    def GetFrameID(self):
        return self.frame_id

    def GetNDArray(self):
        return self.pixels

    def GetChunkData(self):
        if self.incomplete:
            raise SpinnakerException("Unable to parse chunk data", -1018)
        return types.SimpleNamespace(GetFrameID=lambda: self.frame_id, GetTimestamp=lambda: self.ts_ns,
                                     GetExposureTime=lambda: self.exposure_us)

    def Release(self):
        if not self.released:
            self.released = True
            self.pixels[...] = 0xEE  # the driver requeues the buffer: a kept view would see other data
            with self.cam.cond:
                self.cam.held -= 1


class Camera:
    """One fake Blackfly S BFS-U3-16S2M (1440x1080 sensor)."""

    def __init__(self, rig, serial, *, incomplete_every=0, unplug_after=None, unplug_as="timeout",
                 max_fps=226.0 * 1.15):
        self.rig, self.serial = rig, serial
        self.incomplete_every, self.unplug_after, self.unplug_as = incomplete_every, unplug_after, unplug_as
        self.max_fps = max_fps
        self.initialized = self.streaming = self.unplugged = False
        self.cond = threading.Condition()
        self.buffer = []
        self.frame_id = -1
        self.delivered = 0
        self.lost = self.dropped = self.incomplete = 0
        self.waiting = 0
        self.held = 0  # images handed out by GetNextImage and not yet released
        self._factory_defaults()

    def _factory_defaults(self):
        live = lambda n: NA if not self.initialized else (RO if self.streaming else RW)  # noqa: E731
        trig = lambda n: NA if not self.initialized else (  # noqa: E731
            RW if self.nodes["TriggerMode"].value == "Off" and not self.streaming else RO)
        E = lambda name, value, entries, access=live: Node(self, name, "enum", value, entries=entries,  # noqa
                                                           access=access)
        nodes = [
            E("UserSetSelector", "Default", ("Default", "UserSet1", "UserSet0")),
            Node(self, "UserSetLoad", "cmd", None, access=live), Node(self, "UserSetSave", "cmd", None, access=live),
            E("AcquisitionMode", "Continuous", ("Continuous", "SingleFrame", "MultiFrame")),
            E("PixelFormat", "Mono8", ("Mono8", "Mono16")),
            Node(self, "Width", "int", 1440, lo=16, hi=lambda: 1440 - self.nodes["OffsetX"].value, inc=16, access=live),
            Node(self, "Height", "int", 1080, lo=4, hi=lambda: 1080 - self.nodes["OffsetY"].value, inc=4, access=live),
            Node(self, "OffsetX", "int", 0, lo=0, hi=lambda: 1440 - self.nodes["Width"].value, inc=4, access=live),
            Node(self, "OffsetY", "int", 0, lo=0, hi=lambda: 1080 - self.nodes["Height"].value, inc=2, access=live),
            E("ExposureAuto", "Continuous", ("Off", "Once", "Continuous")),
            E("ExposureMode", "Timed", ("Timed", "TriggerWidth")),
            Node(self, "ExposureTime", "float", 5000.0, lo=6.0, hi=lambda: 30e6,
                 access=lambda n: RW if self.initialized and self.nodes["ExposureAuto"].value == "Off" else RO),
            E("GainAuto", "Continuous", ("Off", "Once", "Continuous")),
            Node(self, "Gain", "float", 0.0, lo=0.0, hi=lambda: 47.99,
                 access=lambda n: RW if self.initialized and self.nodes["GainAuto"].value == "Off" else RO),
            Node(self, "AcquisitionFrameRateEnable", "bool", False, access=live),
            Node(self, "AcquisitionFrameRate", "float", 30.0, lo=1.0, hi=self._max_rate,
                 access=lambda n: RW if self.nodes["AcquisitionFrameRateEnable"].value else RO),
            E("TriggerMode", "Off", ("Off", "On")),
            E("TriggerSelector", "FrameStart", ("FrameStart", "AcquisitionStart"), trig),
            E("TriggerSource", "Software", ("Software", "Line0", "Line2", "Line3"), trig),
            E("TriggerActivation", "RisingEdge", ("RisingEdge", "FallingEdge"), trig),
            E("TriggerOverlap", "Off", ("Off", "ReadOut"), trig),
            E("LineSelector", "Line0", ("Line0", "Line1", "Line2", "Line3")),
            E("LineMode", "Input", ("Input", "Output"), lambda n: RO if self.nodes["LineSelector"].value in
              ("Line0", "Line1") else live(n)),
            E("LineSource", "Off", ("Off", "ExposureActive", "UserOutput0"),
              lambda n: live(n) if self._line_mode() == "Output" else RO),
            Node(self, "V3_3Enable", "bool", False,
                 access=lambda n: live(n) if self.nodes["LineSelector"].value == "Line2" else NA),
            Node(self, "ChunkModeActive", "bool", False, access=live),
            E("ChunkSelector", "FrameID", ("FrameID", "Timestamp", "ExposureTime", "Gain")),
            Node(self, "ChunkEnable", "bool", False, access=lambda n: NA if not self.nodes["ChunkModeActive"].value
                 else (RO if self.nodes["ChunkSelector"].value == "FrameID" else live(n))),
        ]
        self.nodes = {n.name: n for n in nodes}
        self.line = {"Line0": {"mode": "Input", "source": "Off"}, "Line1": {"mode": "Output", "source": "Off"},
                     "Line2": {"mode": "Input", "source": "Off", "v33": False},
                     "Line3": {"mode": "Input", "source": "Off"}}
        self.chunks = {"FrameID": True, "Timestamp": False, "ExposureTime": False, "Gain": False}
        stream = lambda n: RW if not self.streaming else RO  # noqa: E731
        self.stream_nodes = {n.name: n for n in [
            Node(self, "StreamBufferCountMode", "enum", "Auto", entries=("Auto", "Manual"), access=stream),
            Node(self, "StreamBufferCountManual", "int", 10, lo=1, hi=lambda: 500, access=stream),
            Node(self, "StreamBufferHandlingMode", "enum", "NewestOnly",
                 entries=("OldestFirst", "OldestFirstOverwrite", "NewestFirst", "NewestOnly"), access=stream),
            Node(self, "StreamLostFrameCount", "int", 0, access=RO),
            Node(self, "StreamDroppedFrameCount", "int", 0, access=RO),
            Node(self, "StreamIncompleteFrameCount", "int", 0, access=RO)]}
        self.tl_nodes = {n.name: n for n in [
            Node(self, "DeviceSerialNumber", "str", self.serial, access=RO),
            Node(self, "DeviceModelName", "str", "Blackfly S BFS-U3-16S2M", access=RO),
            Node(self, "DeviceVersion", "str", "1707.1.6.0", access=RO),
            Node(self, "DeviceCurrentSpeed", "enum", "SuperSpeed", entries=("SuperSpeed",), access=RO)]}
        self.nodes["DeviceLinkThroughputLimit"] = Node(self, "DeviceLinkThroughputLimit", "int", 380_000_000,
                                                       lo=0, hi=lambda: 500_000_000, access=live)

    def _line_mode(self):
        return self.line[self.nodes["LineSelector"].value]["mode"]

    def _max_rate(self):
        return min(self.max_fps, 1e6 / (self.nodes["ExposureTime"].value + 500))

    def on_set(self, name):
        sel = self.nodes["LineSelector"].value
        if name == "LineSelector":
            self.nodes["LineMode"].value = self.line[sel]["mode"]
            self.nodes["LineSource"].value = self.line[sel]["source"]
            self.nodes["V3_3Enable"].value = self.line[sel].get("v33", False)
        elif name == "LineMode":
            self.line[sel]["mode"] = self.nodes["LineMode"].value
        elif name == "LineSource":
            self.line[sel]["source"] = self.nodes["LineSource"].value
        elif name == "V3_3Enable":
            self.line["Line2"]["v33"] = self.nodes["V3_3Enable"].value
        elif name == "ChunkSelector":
            self.nodes["ChunkEnable"].value = self.chunks[self.nodes["ChunkSelector"].value]
        elif name == "ChunkEnable":
            self.chunks[self.nodes["ChunkSelector"].value] = self.nodes["ChunkEnable"].value

    def on_command(self, name):
        if name == "UserSetLoad" and self.nodes["UserSetSelector"].value == "Default":
            self.rig.user_set_loads += 1
            self._factory_defaults()
        elif name == "UserSetSave":
            self.rig.user_set_saved[self.serial] = self.nodes["UserSetSelector"].value

    # -- PySpin camera API ---------------------------------------------------------------------------
    def _alive(self):
        if self.unplugged:
            raise SpinnakerException("Device was removed / is not connected", ERR["io"])

    def IsValid(self):
        return True

    def Init(self):
        self._alive()
        self.initialized = True

    def DeInit(self):
        self._alive()
        if self.streaming:
            raise SpinnakerException("Camera is streaming: EndAcquisition first", ERR["resource_in_use"])
        self.initialized = False

    def IsInitialized(self):
        return self.initialized

    def GetNodeMap(self):
        self._alive()
        return _NodeMap(lambda: self.nodes)

    def GetTLStreamNodeMap(self):
        self._alive()
        return _NodeMap(lambda: self.stream_nodes)

    def GetTLDeviceNodeMap(self):
        return _NodeMap(lambda: self.tl_nodes)

    def BeginAcquisition(self):
        self._alive()
        if not self.initialized:
            raise SpinnakerException("Camera is not initialized", -1002)
        if self.streaming:
            raise SpinnakerException("Stream has been started already", ERR["resource_in_use"])
        self.streaming = True

    def EndAcquisition(self):
        self._alive()
        if not self.streaming:
            raise SpinnakerException("Camera is not started", -1002)
        with self.cond:
            if self.waiting:
                self.rig.end_while_waiting += 1
            self.streaming = False
            self.rig.discarded += len(self.buffer)
            self.buffer.clear()
            self.cond.notify_all()

    def GetNextImage(self, timeout_ms=-1):
        timeout = SpinnakerException("Failed waiting for EventData on NEW_BUFFER_DATA event.", ERR["timeout"])
        with self.cond:
            if self.unplugged and self.unplug_as == "timeout":
                self.cond.wait(timeout_ms / 1000)
                raise timeout
            self._alive()
            if not self.streaming:
                raise SpinnakerException("Camera is not streaming", ERR["io"])
            if self.unplug_after is not None and self.delivered >= self.unplug_after:
                self.unplugged = True
                self.cond.notify_all()
                return self.GetNextImage(timeout_ms)
            self.waiting += 1
            try:
                ok = self.cond.wait_for(lambda: self.buffer or not self.streaming or self.unplugged,
                                        timeout_ms / 1000)
            finally:
                self.waiting -= 1
            if self.unplugged:
                return self.GetNextImage(timeout_ms)
            if not self.streaming:
                raise SpinnakerException("Stream was stopped during GetNextImage (invalid buffer)", ERR["io"])
            if not ok:
                raise timeout
            self.delivered += 1
            self.held += 1
            return self.buffer.pop(0)

    # -- the wires ----------------------------------------------------------------------------------
    def trigger_in(self, line, t_ns):
        """A rising edge on ``line``; returns True when the camera exposed a frame (and strobed)."""
        n = self.nodes
        if self.unplugged or not self.streaming or n["TriggerMode"].value != "On" or n["TriggerSource"].value != line:
            return False
        if t_ns - getattr(self, "_last_ns", -10**18) < 1e9 / self.max_fps:
            return False  # still reading out: a missed trigger, no FrameID for it
        self._last_ns = t_ns
        self.frame_id += 1
        w, h = n["Width"].value, n["Height"].value
        incomplete = bool(self.incomplete_every) and self.frame_id % self.incomplete_every == self.incomplete_every - 1
        pixels = np.full((h, w), self.frame_id % 251, np.uint8)
        image = Image(self, pixels, self.frame_id, t_ns, n["ExposureTime"].value, incomplete)
        with self.cond:
            capacity = self.stream_nodes["StreamBufferCountManual"].value
            if incomplete:
                self.stream_nodes["StreamIncompleteFrameCount"].value += 1
            if len(self.buffer) + self.held >= capacity:  # unreleased images keep their buffers
                self.stream_nodes["StreamDroppedFrameCount"].value += 1
                if self.stream_nodes["StreamBufferHandlingMode"].value == "OldestFirst":
                    return True
                self.buffer.pop(0)
            self.buffer.append(image)
            if self.stream_nodes["StreamBufferHandlingMode"].value == "NewestFirst":
                self.buffer.sort(key=lambda im: -im.frame_id)
            self.cond.notify_all()
        return True

    def strobe_drives_high(self):
        """Line1 (open drain) toggles a level only with a pull-up: Line2's 3.3 V or the rig's external one."""
        return self.line["Line1"]["source"] == "ExposureActive" and (
            self.line["Line2"]["v33"] or self.rig.external_pullup)

    def unplug(self):
        with self.cond:
            self.unplugged = True
            self.cond.notify_all()


class _NodeMap:
    def __init__(self, nodes):
        self.nodes = nodes

    def GetNode(self, name):
        return self.nodes().get(name)  # a user set load replaces the nodes; the map stays valid


class CameraList:
    def __init__(self, system, cams):
        self.system, self.cams = system, list(cams)
        system.lists.add(self)

    def GetSize(self):
        return len(self.cams)

    def GetBySerial(self, serial):
        for cam in self.cams:
            if cam.serial == serial:
                return self.system.hand_out(cam)
        return _InvalidCam()

    def GetByIndex(self, i):
        return self.system.hand_out(self.cams[i])

    def Clear(self):
        self.cams.clear()
        self.system.lists.discard(self)


class _InvalidCam:
    def IsValid(self):
        return False


class _CamRef:
    """A CameraPtr: the System counts these; ReleaseInstance fails while any is alive."""

    def __init__(self, cam):
        self._cam = cam

    def __getattr__(self, name):
        return getattr(self._cam, name)


class System:
    def __init__(self, rig):
        self.rig, self.refs, self.lists = rig, 0, weakref.WeakSet()
        self.handed = weakref.WeakSet()

    def GetCameras(self):
        return CameraList(self, [c for c in self.rig.cameras if not c.unplugged])

    def hand_out(self, cam):
        ref = _CamRef(cam)
        self.handed.add(ref)
        return ref

    def ReleaseInstance(self):
        gc.collect()
        if len(self.lists) or len(self.handed):
            self.rig.release_errors += 1
            raise SpinnakerException("Can't clear a camera because something still holds a reference to the "
                                     "camera", ERR["resource_in_use"])
        self.refs -= 1
        if self.refs == 0:
            self.rig.system = None


class StrictRig:
    """Two fake cameras wired as on the bench, a fake Pi, and the fake SDK modules to install."""

    def __init__(self, serials=("21000001", "21000002"), *, external_pullup=False, knob=None, **camera_kw):
        self.external_pullup = external_pullup
        self.knob = knob
        self.cameras = [Camera(self, s, **camera_kw.get(s, {})) for s in serials]
        self.system = None
        self.instances = 0
        self.release_errors = self.end_while_waiting = self.discarded = self.user_set_loads = 0
        self.user_set_saved = {}
        self.pyspin = _module_pyspin(self)
        self.pigpio = make_pigpio(self)
        self.pulses_sent = 0

    def get_instance(self):
        if self.system is None:
            self.system = System(self)
            self.instances += 1
        self.system.refs += 1
        return self.system

    def install(self, monkeypatch):
        monkeypatch.setitem(__import__("sys").modules, "PySpin", self.pyspin)
        monkeypatch.setitem(__import__("sys").modules, "pigpio", self.pigpio)

    def pulse(self, t_ns, line_of_primary_gpio="Line3"):
        """One rising edge (at ``t_ns`` on the Pi's DMA clock) to the primary; its strobe to the others."""
        self.pulses_sent += 1
        primary, *others = self.cameras
        exposed = primary.trigger_in(line_of_primary_gpio, t_ns)
        if exposed and primary.strobe_drives_high():
            for cam in others:
                cam.trigger_in("Line3", t_ns)


SAMPLE_US = 5  # pigpiod's default sampling period


class ScriptedKnob:
    """A knob wired to the Pi as rig.toml's [knob] defaults say: a touch sensor pulling GPIO ``touch`` low
    (contact bounce at every contact and release), a quadrature encoder on ``a``/``b``.

    ``touches``: (on_s, off_s) and ``turns``: (start_s, end_s, degrees) in seconds from the trigger's first
    pulse; a turn is a smooth (raised-cosine) move by ``degrees`` (the angle stays after it). Or ``angle``:
    a function of those seconds giving the knob's angle (deg), sampled every 2 us over ``angle_span_s``.
    """

    def __init__(self, touches=(), turns=(), *, angle=None, angle_span_s=(0.0, 0.0), counts_per_rev=2400,
                 bounces=3, bounce_us=1500, touch=17, a=22, b=23, seed=0):
        self.touches, self.turns = [tuple(t) for t in touches], [tuple(t) for t in turns]
        self._angle, self._span = angle, angle_span_s
        self.counts_per_rev, self.gpios = counts_per_rev, {"touch": touch, "a": a, "b": b}
        self.initial = {touch: 1, a: 0, b: 0}  # released (the pull-up), encoder at 00
        rng = np.random.default_rng(seed)
        edges = []  # (elapsed_us, gpio, level)
        for on_s, off_s in self.touches:
            for t_s, level in ((on_s, 0), (off_s, 1)):
                t = t_s * 1e6
                # bounce: the contact opens and closes a few times within bounce_us before it settles
                flips = np.sort(rng.uniform(50, bounce_us, 2 * bounces))
                edges.append((t, touch, level))
                edges += [(t + f, touch, level if k % 2 else 1 - level) for k, f in enumerate(flips)]
        gray = [0b00, 0b01, 0b11, 0b10]
        count, state = 0, gray[0]
        for t_us, c in self._count_changes():
            for step in range(abs(c - count)):
                count += 1 if c > count else -1
                new = gray[count % 4]
                changed = state ^ new
                edges.append((t_us, a if changed & 0b10 else b, (new >> (1 if changed & 0b10 else 0)) & 1))
                state = new
        self.edges = sorted(edges)

    def _count_changes(self):
        """(elapsed_us, count) at every change of the encoder's count."""
        spans = [(start, end) for start, end, _ in self.turns] + ([self._span] if self._angle is not None else [])
        out = []
        for start_s, end_s in spans:
            t = np.arange(start_s * 1e6, end_s * 1e6, 2.0)  # 2 us resolution
            counts = np.floor(self.angle_deg(t / 1e6) / 360 * self.counts_per_rev + 0.5).astype(int)
            change = np.flatnonzero(np.diff(counts, prepend=out[-1][1] if out else 0))
            out += [(float(t[i]), int(counts[i])) for i in change]
        return out

    def touch_intervals_s(self) -> np.ndarray:
        return np.asarray(self.touches, dtype=float).reshape(-1, 2)

    def angle_deg(self, t_s) -> np.ndarray:
        """The knob's true angle (deg, 0 at the start) at times t_s from the first pulse."""
        t_s = np.asarray(t_s, dtype=float)
        if self._angle is not None:
            return np.asarray(self._angle(t_s), dtype=float)
        angle = np.zeros_like(t_s)
        for start_s, end_s, degrees in self.turns:
            phase = np.clip((t_s - start_s) / (end_s - start_s), 0, 1)
            angle += degrees * (1 - np.cos(np.pi * phase)) / 2
        return angle



def make_pigpio(rig, *, fail_wave=False, connected=True):
    """A pigpio module: ``exceptions`` True, so every failure raises ``pigpio.error``."""
    mod = types.ModuleType("pigpio")
    mod.exceptions = True
    mod.INPUT, mod.OUTPUT = 0, 1
    mod.PUD_OFF, mod.PUD_DOWN, mod.PUD_UP = 0, 1, 2
    mod.RISING_EDGE, mod.FALLING_EDGE, mod.EITHER_EDGE = 0, 1, 2

    class error(Exception):
        pass

    mod.error = error
    mod.pulse = lambda on, off, delay: (on, off, delay)
    state = types.SimpleNamespace(fail_wave=fail_wave, connected=connected, pis=[], lose_link_at_stop=False)
    mod.state = state

    class pi:
        def __init__(self, host="localhost", port=8888):
            self.connected = state.connected
            self.waves, self.pending, self.callbacks, self.thread = {}, [], [], None
            self.modes, self.pulls, self.glitch, self.levels = {}, {}, {}, {}
            self.inputs = None  # the knob's edges as pigpio reports them (sampled, filtered), built at the start
            self.running = threading.Event()
            self.stopped = False
            state.pis.append(self)

        def _live(self):
            if self.stopped or not self.connected:
                raise error("'pigpio not connected'")

        def set_mode(self, gpio, mode):
            self._live()
            if not 0 <= gpio <= 53 or mode not in (mod.INPUT, mod.OUTPUT):
                raise error("'GPIO not 0-53'" if not 0 <= gpio <= 53 else "'mode not 0-7'")
            self.modes[gpio] = mode

        def set_pull_up_down(self, gpio, pud):
            self._live()
            if pud not in (mod.PUD_OFF, mod.PUD_DOWN, mod.PUD_UP):
                raise error("'pud not 0-2'")  # PI_BAD_PUD
            self.pulls[gpio] = pud

        def set_glitch_filter(self, gpio, steady):
            self._live()
            if not 0 <= steady <= 300000:
                raise error("'bad filter parameter'")  # PI_BAD_FILTER
            self.glitch[gpio] = int(steady)

        def read(self, gpio):
            self._live()
            if gpio in self.levels:
                return self.levels[gpio]
            if rig.knob is not None and gpio in rig.knob.initial:  # driven by the knob's wiring
                return rig.knob.initial[gpio]
            return 1 if self.pulls.get(gpio) == mod.PUD_UP else 0  # unconnected: its pull

        def write(self, gpio, level):
            self._live()

        def wave_clear(self):
            self._live()
            self.waves.clear()

        def wave_add_generic(self, pulses):
            self._live()
            self.pending += list(pulses)
            return len(self.pending)

        def wave_create(self):
            self._live()
            if state.fail_wave or len(self.pending) > 12000:
                raise error("'No more CBs for waveform'")  # PI_NO_WAVEFORM_CBS
            wave_id = len(self.waves)
            self.waves[wave_id] = [p[2] for p in self.pending if p[0]], [p[2] for p in self.pending if p[1]]
            self.pending = []
            return wave_id

        def wave_delete(self, wave_id):
            self._live()
            if wave_id not in self.waves:
                raise error("'non existent wave id'")
            del self.waves[wave_id]

        def callback(self, gpio, edge, func):
            self._live()
            if edge not in (mod.RISING_EDGE, mod.FALLING_EDGE, mod.EITHER_EDGE):
                raise error("'edge not 0-2'")  # PI_BAD_EDGE
            if self.modes.get(gpio) == mod.INPUT and self.inputs is None:
                self.inputs = self._input_edges()  # the wiring is set up (pulls, glitch filters): edges from now
            cb = types.SimpleNamespace(func=func, active=True, gpio=gpio, edge=edge)
            cb.cancel = lambda: setattr(cb, "active", False)
            self.callbacks.append(cb)
            return cb

        def wave_chain(self, chain):
            self._live()
            forever = [i for i in range(len(chain) - 1) if chain[i] == 255 and chain[i + 1] == 3]
            if forever and forever != [len(chain) - 2]:
                raise error("'loop forever must be last command'")  # PI_BAD_FOREVER
            start, regular = chain[0], chain[3]
            if start not in self.waves or regular not in self.waves:
                raise error("'non existent wave id'")
            self.running.set()
            self.thread = threading.Thread(target=self._send, args=(start, regular), daemon=True)
            self.thread.start()
            return 0

        def _period_list(self, wave_id):
            on, off = self.waves[wave_id]
            return [a + b for a, b in zip(on, off)]

        def _send(self, start, regular):
            tick, t0 = 2**32 - 500_000, time.monotonic()  # the uint32 tick wraps half a second in
            elapsed_us = 0
            periods = self._period_list(start)
            while self.running.is_set():
                for period in periods:
                    if not self.running.is_set():
                        return
                    delay = t0 + elapsed_us / 1e6 - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    inputs = self.inputs or []
                    while inputs and inputs[0][0] <= elapsed_us:  # the knob's edges up to this pulse
                        at, gpio, level = inputs.pop(0)
                        self.levels[gpio] = level
                        self._emit(gpio, level, (tick + at) % 2**32)
                    rig.pulse(int((t0 + elapsed_us / 1e6) * 1e9))
                    for gpio, mode in self.modes.items():
                        if mode == mod.OUTPUT:
                            self._emit(gpio, 1, (tick + elapsed_us) % 2**32)
                    elapsed_us += period
                periods = self._period_list(regular)

        def _emit(self, gpio, level, tick):
            for cb in list(self.callbacks):
                wanted = cb.edge == mod.EITHER_EDGE or cb.edge == (mod.RISING_EDGE if level else mod.FALLING_EDGE)
                if cb.active and self.connected and cb.gpio == gpio and wanted:  # over pigpiod's socket
                    cb.func(gpio, level, tick)

        def _input_edges(self):
            """The knob's edges as pigpiod reports them: each change seen at the next 5 us sample, changes
            within one sample reported together in GPIO order; a glitch-filtered GPIO reports a level only
            once stable for ``steady`` us, stamped then."""
            knob = rig.knob
            if knob is None:
                return []
            sampled = {}
            for t_us, gpio, level in knob.edges:  # the level at each sample: the last change before it wins
                sample = int(-(-t_us // SAMPLE_US)) * SAMPLE_US
                sampled[(sample, gpio)] = level
            out, reported = [], {g: self.read(g) for g in knob.gpios.values()}
            pending = {}
            for (sample, gpio), level in sorted(sampled.items()):
                steady = self.glitch.get(gpio, 0)
                if not steady:
                    if level != reported[gpio]:
                        out.append((sample, gpio, level))
                        reported[gpio] = level
                    continue
                since = pending.get(gpio)
                if since is not None and sample - since[0] >= steady and since[1] != reported[gpio]:
                    out.append((since[0] + steady, gpio, since[1]))  # stable long enough: reported
                    reported[gpio] = since[1]
                pending[gpio] = (sample, level)
            for gpio, (sample, level) in pending.items():
                if level != reported[gpio]:
                    out.append((sample + self.glitch[gpio], gpio, level))
            return sorted(out)

        def wave_tx_stop(self):
            if state.lose_link_at_stop:  # pigpiod's socket is gone: the Pi's DMA keeps sending the chain
                self.connected = False
            self._live()
            self.running.clear()
            if self.thread is not None:
                self.thread.join()

        def stop(self):
            self.running.clear()
            self.stopped = True

    mod.pi = pi
    return mod
