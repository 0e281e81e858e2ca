"""Simulated trigger and cameras that behave like the rig (same metadata, drops, drift).

The pulse train and what every camera delivers come from ``ratpose.sim.clocks.simulate_clocks`` so the
acquisition simulator and the session simulator agree. A camera delivers frame k only when the trigger
reaches the pulse that exposed it; images come from a content callable, generated when read.
"""
from __future__ import annotations

import threading
import time
import zlib
from typing import Callable, Sequence

import numpy as np

from ratpose.acquisition.backends import (
    CameraBackend,
    CameraError,
    CameraSettings,
    Frame,
    FrameTimeout,
    TriggerBackend,
)
from ratpose.sim.clocks import CameraClockSettings, ClockTruth, simulate_clocks

from ..errors import InputError

# content(pulse_index, time_s, camera_name) -> (height, width) uint8 image
Content = Callable[[int, float, str], np.ndarray]


class MovingBlob:
    """Default content: a textured background with sensor noise and a bright blob circling the centre.

    Backgrounds and noise fields are precomputed so a frame costs two array operations.
    """

    def __init__(self, width: int, height: int, seed: int = 0, n_noise: int = 8):
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:height, 0:width]
        self.background = (60 + 40 * np.sin(xx / 37.0) * np.cos(yy / 23.0)).astype(np.uint8)
        self.noise = rng.integers(0, 6, size=(n_noise, height, width), dtype=np.uint8)
        self.radius = max(3, min(width, height) // 12)
        self.width, self.height = width, height

    def __call__(self, pulse_index: int, time_s: float, camera: str) -> np.ndarray:
        image = np.add(self.background, self.noise[pulse_index % len(self.noise)])
        angle = 2 * np.pi * 0.5 * time_s
        cx = int(self.width / 2 + self.width / 4 * np.cos(angle))
        cy = int(self.height / 2 + self.height / 4 * np.sin(angle))
        r = self.radius
        image[max(cy - r, 0):cy + r, max(cx - r, 0):cx + r] = 230
        return image


class SimulatedCamera(CameraBackend):
    """A triggered camera fed by the simulated trigger; frames wait in a bounded stream buffer.

    ``block_when_full`` makes the trigger wait for buffer space (as-fast-as-possible runs lose
    nothing beyond the configured rates); otherwise a full buffer drops the new frame (OldestFirst)
    or the oldest one (NewestFirst), which shows up as a FrameID jump like a transfer loss.
    ``unplug_after_frames`` pulls the cable after that many frames: as with Spinnaker, get_frame then only
    times out, and the camera takes no more triggers.
    """

    def __init__(self, clock: CameraClockSettings, content: Content | None = None, *,
                 block_when_full: bool = True, unplug_after_frames: int | None = None):
        self.name = clock.name
        self.clock = clock
        self.content = content
        self.block_when_full = block_when_full
        self.unplug_after_frames = unplug_after_frames
        self.settings: CameraSettings | None = None
        self._truth = None
        self._pulse_time_s: np.ndarray | None = None
        self._next = 0
        self._buffer: list[int] = []
        self._cond = threading.Condition()
        self._armed = False
        self._closed = False
        self._read = 0
        self.host_dropped = 0

    def configure(self, settings: CameraSettings, rate_hz: float) -> None:
        if settings.pixel_format != "Mono8":
            raise InputError(f"camera {self.name!r}: simulated cameras deliver Mono8 only, "
                             f"got pixel_format={settings.pixel_format!r}")
        if settings.exposure_us >= 1e6 / rate_hz:
            raise InputError(f"camera {self.name!r}: exposure {settings.exposure_us} us does not fit "
                             f"in the trigger period at {rate_hz} Hz")
        self.settings = settings
        if self.content is None:
            self.content = MovingBlob(settings.width, settings.height, seed=zlib.crc32(self.name.encode()))

    def attach(self, truth: ClockTruth) -> None:
        """Take this camera's delivered frames from the simulated clocks (called by the trigger)."""
        self._truth = truth.cameras[self.name]
        self._pulse_time_s = truth.pulse_time_s

    def start(self) -> None:
        if self.settings is None:
            raise CameraError(f"camera {self.name!r}: configure() before start()")
        self._armed = True

    def on_pulse(self, pulse_index: int) -> None:
        """The trigger reached ``pulse_index``: queue the frame it exposed, if this camera delivered one."""
        truth = self._truth
        if not self._armed or truth is None or self._next >= len(truth.pulse_index) or self._unplugged():
            return
        if truth.pulse_index[self._next] != pulse_index:
            return
        k = self._next
        self._next += 1
        with self._cond:
            capacity = self.settings.buffer_count
            while self.block_when_full and len(self._buffer) >= capacity and self._armed:
                self._cond.wait(0.1)
            if len(self._buffer) >= capacity:
                self.host_dropped += 1
                if self.settings.buffer_handling == "OldestFirst":
                    return
                self._buffer.pop(0)
            self._buffer.append(k)
            self._cond.notify_all()

    def get_frame(self, timeout_s: float) -> Frame:
        with self._cond:
            if self._closed:
                raise CameraError(f"camera {self.name!r} is closed")
            if self._unplugged():
                self._cond.wait(timeout_s)
                raise FrameTimeout(self.name)
            if not self._buffer and not self._cond.wait_for(lambda: self._buffer or self._closed, timeout_s):
                raise FrameTimeout(self.name)
            if self._closed:
                raise CameraError(f"camera {self.name!r} is closed")
            k = self._buffer.pop(0)
            self._read += 1
            self._cond.notify_all()
        truth = self._truth
        pulse = int(truth.pulse_index[k])
        image = self.content(pulse, float(self._pulse_time_s[pulse]), self.name)
        if image.shape != (self.settings.height, self.settings.width) or image.dtype != np.uint8:
            raise CameraError(f"camera {self.name!r}: content gave {image.shape} {image.dtype}, expected "
                              f"({self.settings.height}, {self.settings.width}) uint8")
        return Frame(image=image, frame_id=int(truth.frame_id[k]), timestamp_ns=int(truth.camera_ts_ns[k]),
                     exposure_us=float(self.settings.exposure_us))

    def _unplugged(self) -> bool:
        return self.unplug_after_frames is not None and self._read >= self.unplug_after_frames

    def stop(self) -> None:
        with self._cond:
            self._armed = False
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._armed = False
            self._closed = True
            self._cond.notify_all()


class SimulatedTrigger(TriggerBackend):
    """The Pi's pulse train, simulated: logs uint32 ticks (which may wrap) and triggers the cameras.

    ``realtime=False`` sends pulses as fast as the cameras accept them; ``realtime=True`` paces them on
    the host clock at the nominal rate.
    """

    def __init__(self, rate_hz: float, n_pulses: int, cameras: Sequence[SimulatedCamera], *,
                 start_tick_us: int = 0, jitter_us: float = 20.0, realtime: bool = False, seed: int = 0):
        self.rate_hz = float(rate_hz)
        self.cameras = list(cameras)
        self.truth: ClockTruth = simulate_clocks(n_pulses, rate_hz, [c.clock for c in self.cameras],
                                                 start_tick_us=start_tick_us, jitter_us=jitter_us, seed=seed)
        for camera in self.cameras:
            camera.attach(self.truth)
        self.realtime = realtime
        self.sent = 0
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, on_pulse: Callable[[int], None]) -> None:
        self._thread = threading.Thread(target=self._run, args=(on_pulse,), name="sim-trigger", daemon=True)
        self._thread.start()

    def _run(self, on_pulse: Callable[[int], None]) -> None:
        ticks = self.truth.tick_us
        times = self.truth.pulse_time_s - self.truth.pulse_time_s[0]
        t0 = time.perf_counter()
        for i in range(len(ticks)):
            if self._stop.is_set():
                break
            if self.realtime:
                delay = t0 + times[i] - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            on_pulse(int(ticks[i]))
            for camera in self.cameras:
                camera.on_pulse(i)
            self.sent = i + 1
        self._done.set()

    def stop(self) -> None:
        self._stop.set()
        for camera in self.cameras:  # no more pulses: disarm, which also frees a send blocked on a full buffer
            camera.stop()
        if self._thread is not None:
            self._thread.join()

    @property
    def finished(self) -> bool:
        return self._done.is_set() and not self._stop.is_set()


class SimulatedKnob:
    """Knob touches (neural-clock seconds) replayed as the recording reaches them, with an angle trace.

    The angle rests at 0 deg and ramps to ``turn_deg`` during each touch, sampled at ``angle_rate_hz`` from
    ``start_s`` (default: the first poll).
    """

    def __init__(self, touch_on_s, touch_off_s, *, start_s: float | None = None, angle_rate_hz: float = 100.0,
                 turn_deg: float = 60.0):
        on, off = np.asarray(touch_on_s, dtype=float), np.asarray(touch_off_s, dtype=float)
        if on.shape != off.shape or np.any(off < on) or np.any(on[1:] < off[:-1]):
            raise InputError("touch_on_s/touch_off_s must pair up as ordered, non-overlapping touches")
        self.events = sorted([(t, "touch_on") for t in on] + [(t, "touch_off") for t in off],
                             key=lambda e: (e[0], e[1] == "touch_on"))
        self.on, self.off = on, off
        self.angle_rate_hz, self.turn_deg = angle_rate_hz, turn_deg
        self._next_event = 0
        self._next_sample = start_s

    @classmethod
    def random(cls, start_s: float, duration_s: float, touches_per_min: float, touch_s: float = 1.0,
               seed: int = 0, **kwargs) -> "SimulatedKnob":
        """Touches at Poisson times (at least one touch apart) over [start_s, start_s + duration_s]."""
        rng = np.random.default_rng(seed)
        n = rng.poisson(touches_per_min * duration_s / 60.0)
        on = np.sort(rng.uniform(start_s, start_s + duration_s - touch_s, n))
        on = on[np.concatenate([[True], np.diff(on) > 2 * touch_s])] if n else on
        return cls(on, on + touch_s, start_s=start_s, **kwargs)

    def poll(self, now_s: float) -> list[tuple[float, str]]:
        out = []
        while self._next_event < len(self.events) and self.events[self._next_event][0] <= now_s:
            out.append(self.events[self._next_event])
            self._next_event += 1
        return out

    def poll_angle(self, now_s: float) -> np.ndarray:
        """Angle samples (time_s, angle_deg) up to ``now_s`` not returned before."""
        step = 1.0 / self.angle_rate_hz
        if self._next_sample is None:
            self._next_sample = now_s
        times = np.arange(self._next_sample, now_s + 1e-12, step)
        if times.size:
            self._next_sample = times[-1] + step
        inside = (times[:, None] >= self.on[None, :]) & (times[:, None] <= self.off[None, :])
        phase = np.where(inside, (times[:, None] - self.on[None, :]) / np.maximum(self.off - self.on, 1e-9), 0.0)
        angle = self.turn_deg * np.sin(np.pi * phase.max(axis=1, initial=0.0))
        return np.column_stack([times, angle])
