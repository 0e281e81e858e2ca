"""Synchronised multi-camera recorder writing a session folder (docs/session-format.md).

Per camera: a capture thread pulls frames from the backend into a bounded queue; a processing thread
matches frames to trigger pulses (when the ring buffer is on), feeds the ring and writes kept frames to
the video and ``<cam>.frames.csv`` as they go. The trigger callback logs every pulse to trigger.csv.
Ctrl-C, a full disk or a writer that cannot keep up stop the recording cleanly: files are closed, metadata
flushed, the folder stays valid and the problem is returned (and logged). A camera that stops answering the
trigger (a pulled cable shows up only as timeouts) is declared stopped after ``camera_stall_s`` of triggers;
the other cameras record on, and the session ends ``camera_error`` naming it. Every pulse is accounted for
per camera in session.toml (recorded, dropped by the camera, lost by ratpose, after the camera stopped).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import logging
import math
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import tomli_w

from ratpose.acquisition.backends import (
    AcquisitionError,
    CameraBackend,
    CameraError,
    CameraSettings,
    FrameTimeout,
    TriggerBackend,
)
from ratpose.acquisition.config import (
    RigSettings,
    StorageSettings,
    load_rig_config,
)
from ratpose.acquisition.events import EventSource, ManualKeySource
from ratpose.acquisition.knob_gpio import GpioKnob
from ratpose.acquisition.knob_network import NetworkKnobSource
from ratpose.acquisition.pulse_matcher import OnlinePulseMatcher, PulseLog
from ratpose.acquisition.ring_buffer import (
    EventWindows,
    FrameRing,
    MotionEnergy,
    RingSegmenter,
)
from ratpose.rig import time_zone
from ratpose.video import VideoWriter, count_frames

from ..errors import InputError

log = logging.getLogger(__name__)

KNOB_KINDS = ("touch_on", "touch_off")
FLUSH_EVERY_S = 0.5
# writer_factory(path, width, height, fps, storage) -> object with write(image), close(), n_frames
WriterFactory = Callable[[Path, int, int, float, StorageSettings], object]


def default_writer(path: Path, width: int, height: int, fps: float, storage: StorageSettings) -> VideoWriter:
    return VideoWriter(path, width, height, fps, codec=storage.codec, crf=storage.crf, preset=storage.preset,
                       threads=storage.threads, sync_every_s=storage.sync_every_s)


@dataclass
class CameraReport:
    """What happened to one camera's frames.

    Attributes
    ----------
    name : str
        The camera's name.
    delivered : int
        Complete frames the backend delivered.
    written : int
        Frames written to the video (and frames.csv).
    ring_dropped : int
        Delivered frames the ring buffer did not keep (outside every event window).
    transfer_lost : int
        Frames exposed but lost in transfer (FrameID gaps).
    incomplete : int
        Frames that arrived incomplete and were skipped.
    queue_dropped : int
        Delivered frames dropped because the writer's queue was full.
    missed_triggers : int
        Pulses without an exposed frame.
    max_match_residual_us : float, us
        Largest residual of the online frame-to-pulse matching (ring buffer on).
    max_writer_lag : int
        Most frames ever waiting for the writer.
    stream : dict
        The driver's lost/dropped/incomplete counters at stop.
    stopped : dict
        Set when the camera stopped delivering mid-recording: reason, last_frame_id, pulses_logged, time_s.
    """

    name: str
    delivered: int = 0
    written: int = 0
    ring_dropped: int = 0
    transfer_lost: int = 0
    incomplete: int = 0
    queue_dropped: int = 0
    missed_triggers: int = 0  # pulses without an exposed frame (no FrameID gap: the camera never saw them)
    max_match_residual_us: float = 0.0
    max_writer_lag: int = 0  # most frames ever waiting for the writer
    stream: dict = field(default_factory=dict)  # the driver's lost/dropped/incomplete counters at stop
    stopped: dict = field(default_factory=dict)  # set when the camera stopped delivering mid-recording

    def exposed(self) -> int:
        """Frames the camera exposed: delivered, incomplete or lost in transfer (a FrameID gap)."""
        return self.delivered + self.incomplete + self.transfer_lost

    def pulses(self, n_pulses: int) -> dict[str, int]:
        """Where each of the session's ``n_pulses`` trigger pulses went for this camera.

        The counts sum to ``n_pulses`` unless the camera delivered more frames than pulses were logged.

        Parameters
        ----------
        n_pulses : int
            Trigger pulses the session logged.

        Returns
        -------
        dict of str to int
            Keys "recorded", "outside_ring_segments", "dropped_by_camera", "lost_by_ratpose" and
            "after_camera_stopped".
        """
        answered = max(self.stopped.get("pulses_logged", n_pulses), self.exposed())
        after_stop = max(n_pulses - answered, 0)
        missed = max(n_pulses - after_stop - self.exposed(), 0)
        return {"recorded": self.written, "outside_ring_segments": self.ring_dropped,
                "dropped_by_camera": self.incomplete + self.transfer_lost + missed,
                "lost_by_ratpose": self.delivered - self.written - self.ring_dropped,
                "after_camera_stopped": after_stop}


@dataclass
class RecordingResult:
    """Outcome of a recording: status is completed | interrupted | camera_error | disk_full | disk_too_slow |
    write_error | trigger_error | error; ``message`` explains anything but 'completed'.

    Attributes
    ----------
    session_dir : Path
        The session folder written.
    status : str
        One of the statuses above; ``ok`` is True for "completed" and "interrupted".
    message : str
        What went wrong ("" when completed).
    n_pulses : int
        Trigger pulses logged.
    cameras : dict of str to CameraReport
        Per camera, what happened to its frames.
    segments : numpy.ndarray, (n_segments, 2), s
        The ring buffer's kept windows (start, end) on the neural clock (empty without the ring buffer).
    events : list
        The events that opened windows: (time_s, source).
    wall_s : float, s
        Wall-clock duration of the whole run, setup included.
    """

    session_dir: Path
    status: str
    message: str
    n_pulses: int
    cameras: dict[str, CameraReport]
    segments: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    events: list = field(default_factory=list)
    wall_s: float = 0.0
    recording_s: float = 0.0  # from the trigger start until every file was closed

    @property
    def ok(self) -> bool:
        return self.status in ("completed", "interrupted")


def build_simulated_backends(cfg: RigSettings, *, content=None, block_when_full: bool | None = None,
                             duration_s: float | None = None):
    """Simulated cameras and trigger for a rig config: (cameras, trigger).

    Cameras wait for buffer space (lose nothing extra) unless the simulation runs in real time, where a
    full buffer drops frames like the hardware. ``content(pulse_index, time_s, camera)`` makes images.

    Parameters
    ----------
    cfg : RigSettings
        The rig config; its [simulation] table sets clocks, jitter, seed and duration.
    content : callable, optional
        ``content(pulse_index, time_s, camera) -> (height, width) uint8`` image; None: a moving blob on a
        noisy background.
    block_when_full : bool, optional
        Whether a camera waits for buffer space; None: unless the simulation runs in real time.
    duration_s : float, optional, s
        Length of the pulse train (at least one pulse); None: ``cfg.simulation.duration_s``.

    Returns
    -------
    cameras : list of SimulatedCamera
        One per configured camera, in the config's order.
    trigger : SimulatedTrigger
    """
    if block_when_full is None:
        block_when_full = not cfg.simulation.realtime
    from ratpose.acquisition.simulated import SimulatedCamera, SimulatedTrigger
    from ratpose.sim.clocks import CameraClockSettings

    sim = cfg.simulation
    cameras = []
    for cam in cfg.cameras:
        clock = dataclasses.replace(sim.cameras.get(cam.name) or CameraClockSettings(cam.name), role=cam.role)
        cameras.append(SimulatedCamera(clock, content,
                                       block_when_full=block_when_full))
    n_pulses = max(1, round((duration_s or sim.duration_s) * cfg.trigger.rate_hz))
    trigger = SimulatedTrigger(cfg.trigger.rate_hz, n_pulses, cameras, start_tick_us=sim.start_tick_us,
                               jitter_us=sim.jitter_us, realtime=sim.realtime, seed=sim.seed)
    return cameras, trigger


def build_hardware_backends(cfg: RigSettings, save_user_set: bool = False):
    """PySpin cameras (by serial) and the pigpio trigger for a rig config: (cameras, trigger).

    Parameters
    ----------
    cfg : RigSettings
        The rig config.
    save_user_set : bool
        Save each camera's configured state to its UserSet1.

    Returns
    -------
    cameras : list of PySpinCamera
        One per configured camera, in the config's order.
    trigger : PigpioTrigger

    Raises
    ------
    InputError
        If a camera has no serial number, or the pulse width does not fit in the trigger period.
    """
    from ratpose.acquisition.pigpio_trigger import PigpioTrigger
    from ratpose.acquisition.pyspin_camera import PySpinCamera

    return [PySpinCamera(c.serial, c.name, save_user_set) for c in cfg.cameras], PigpioTrigger(cfg.trigger)


def list_connected_cameras(cfg: RigSettings) -> list[dict[str, str]]:
    """Every camera the backend sees, configured or not (in simulation: the configured ones)."""
    if cfg.trigger.backend == "simulated":
        return [{"serial": c.serial, "model": f"{c.model} (simulated)", "firmware": "simulated",
                 "usb_speed": "simulated"} for c in cfg.cameras]
    from ratpose.acquisition.pyspin_camera import list_cameras

    return list_cameras()


class _CsvLog:
    """Append-only CSV written as rows arrive, flushed periodically."""

    def __init__(self, path: Path, header: str):
        self.path = path
        self._file = open(path, "w", newline="")
        self._file.write(header + "\n")
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def write(self, line: str) -> None:
        with self._lock:
            self._file.write(line + "\n")
            now = time.monotonic()
            if now - self._last_flush > FLUSH_EVERY_S:
                self._file.flush()
                self._last_flush = now

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()


class _CameraPipeline:
    """Capture thread + processing thread of one camera."""

    def __init__(self, rec: "Recorder", backend: CameraBackend, settings: CameraSettings, writer):
        self.rec, self.backend, self.settings, self.writer = rec, backend, settings, writer
        self.name = settings.name
        self.primary = settings.role == "primary"
        self.report = CameraReport(self.name)
        self.queue: queue.Queue = queue.Queue(maxsize=rec.cfg.storage.queue_frames)
        self.frames_csv = _CsvLog(rec.folder / f"{self.name}.frames.csv", "frame_id,camera_ts_ns,exposure_us")
        self.writer_broken = False
        ring = rec.cfg.ring
        self.segmenter = self.matcher = self.motion = None
        if ring.enabled:
            capacity = math.ceil((ring.pre_s + ring.latency_s + 0.5) * rec.cfg.trigger.rate_hz) + 2
            self.segmenter = RingSegmenter(FrameRing(capacity, settings.height, settings.width), rec.windows,
                                           self._emit, rec.failed.is_set)
            self.matcher = OnlinePulseMatcher(rec.pulses, rec.cfg.trigger.rate_hz, self.name)
            if self.primary and "motion" in ring.policy:
                self.motion = MotionEnergy(tuple(ring.motion_roi) or None, ring.motion_threshold,
                                           ring.motion_refractory_s)
        self.capture_thread = threading.Thread(target=self._capture, name=f"capture-{self.name}", daemon=True)
        self.process_thread = threading.Thread(target=self._process, name=f"process-{self.name}", daemon=True)
        self._last_frame_id: int | None = None
        self._pulses_at_last_frame = 0
        self._stall_pulses = max(math.ceil(rec.cfg.trigger.camera_stall_s * rec.cfg.trigger.rate_hz), 2)
        self._lag_warned_at = -math.inf

    # -- capture -----------------------------------------------------------------------------------
    def _capture(self) -> None:
        rec = self.rec
        try:
            while True:
                try:
                    frame = self.backend.get_frame(0.2)
                except FrameTimeout:
                    unanswered = len(rec.pulses) - self._pulses_at_last_frame
                    if unanswered >= self._stall_pulses:  # the trigger ran on, the camera delivered nothing
                        self._stopped(f"no frame for the last {unanswered} triggers")
                        break
                    if rec.draining.is_set():
                        break
                    continue
                self._pulses_at_last_frame = len(rec.pulses)
                if rec.draining.is_set() and self.report.exposed() > len(rec.pulses) + rec.cfg.trigger.rate_hz:
                    rec.warn(f"camera {self.name!r}: frames kept coming after the trigger was stopped "
                             "(is the Pi still pulsing?); the drain stopped there")
                    break
                if self._last_frame_id is not None:
                    self.report.transfer_lost += max(frame.frame_id - self._last_frame_id - 1, 0)
                self._last_frame_id = frame.frame_id
                if frame.incomplete:  # counted once, as incomplete: its FrameID closes the gap
                    self.report.incomplete += 1
                    continue
                self.report.delivered += 1
                self._enqueue(frame)
        except CameraError as err:
            if rec.stopping.is_set():
                rec.fail("camera_error", f"camera {self.name!r}: {err}")
            else:
                self._stopped(str(err))
        except Exception as err:  # a backend bug must still end the recording cleanly
            rec.fail("error", f"camera {self.name!r} capture failed: {err!r}")
        finally:
            self._enqueue(None, force=True)

    def _stopped(self, reason: str) -> None:
        """This camera stopped delivering while the trigger runs: say so loudly, let the others record on."""
        rec, r = self.rec, self.report
        pulses = self._pulses_at_last_frame
        r.stopped = {"reason": reason, "last_frame_id": -1 if self._last_frame_id is None else self._last_frame_id,
                     "pulses_logged": pulses, "time_s": round(rec.pulses.time_s(pulses - 1) - rec.pulses.time_s(0), 6)
                     if pulses else 0.0}
        rec.camera_stopped(self)

    def _enqueue(self, item, force: bool = False) -> None:
        """Queue a frame. A simulation waits for the writer; on hardware a writer falling behind is warned
        about and, before the queue is full, stops the recording (then the drain waits: nothing is lost)."""
        if not (force or self.rec.backpressure or self.rec.stop_requested.is_set()):
            try:
                self.queue.put_nowait(item)
            except queue.Full:
                self.report.queue_dropped += 1
            self._check_lag()
            return
        while self.process_thread.is_alive():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _check_lag(self) -> None:
        """Frames waiting for the writer: warn past ``writer_lag_warn`` of the queue, stop past ``writer_lag_stop``."""
        rec, storage = self.rec, self.rec.cfg.storage
        waiting, size = self.queue.qsize(), self.queue.maxsize
        self.report.max_writer_lag = max(self.report.max_writer_lag, waiting)
        if waiting >= storage.writer_lag_stop * size:
            rec.fail("disk_too_slow", f"camera {self.name!r}: the disk cannot keep up: {waiting} frames waiting "
                                      f"for the writer (queue {size}); stopped before any frame was lost")
        elif waiting >= storage.writer_lag_warn * size and time.monotonic() - self._lag_warned_at > 1.0:
            self._lag_warned_at = time.monotonic()
            left_s = (storage.writer_lag_stop * size - waiting) / rec.cfg.trigger.rate_hz
            rec.warn(f"camera {self.name!r}: disk cannot keep up: {waiting} frames behind, {left_s:.1f} s of "
                     "buffer left before the recording stops")

    # -- processing --------------------------------------------------------------------------------
    def _process(self) -> None:
        rec = self.rec
        pending = []
        try:
            while True:
                frame = self.queue.get()
                if frame is None:
                    break
                if self.segmenter is None:
                    self._emit(frame.image, frame.frame_id, frame.timestamp_ns, frame.exposure_us)
                elif self.matcher.anchored:
                    self._place(frame, self.matcher.match(frame.timestamp_ns))
                else:
                    pending.append(frame)
                    if len(pending) >= self.matcher.n_anchor:
                        for f, j in zip(pending, self.matcher.anchor([f.timestamp_ns for f in pending])):
                            self._place(f, j)
                        pending = []
            if pending:
                raise AcquisitionError(f"only {len(pending)} frame(s) arrived: too few to place them on the "
                                       "trigger clock; they are not written")
        except AcquisitionError as err:
            rec.fail("error", f"camera {self.name!r}: {err}")
        except Exception as err:
            rec.fail("error", f"camera {self.name!r} processing failed: {err!r}")
        finally:
            if self.primary:
                rec.poll_sources(rec.last_pulse_s())
                rec.windows.advance(math.inf)
            if self.segmenter is not None:
                self.segmenter.flush()
                self.report.ring_dropped = self.segmenter.dropped
            if self.matcher is not None:
                self.report.max_match_residual_us = self.matcher.max_residual_us
            while self.queue.qsize():  # unblock a capture thread waiting on a full queue
                self.queue.get_nowait()

    def _place(self, frame, pulse_index: int) -> None:
        time_s = self.rec.pulses.time_s(pulse_index)
        if self.primary:
            self.rec.poll_sources(time_s)
            if self.motion is not None and self.motion.update(frame.image, time_s):
                self.rec.windows.add(time_s, "motion")
            self.rec.windows.advance(time_s)
        self.segmenter.push(frame.image, frame.frame_id, frame.timestamp_ns, frame.exposure_us, time_s)

    def _emit(self, image: np.ndarray, frame_id: int, camera_ts_ns: int, exposure_us: float) -> None:
        if self.writer_broken:
            return
        try:
            self.writer.write(image)
        except OSError as err:
            self.writer_broken = True
            status = "disk_full" if err.errno == errno.ENOSPC else "write_error"
            self.rec.fail(status, f"camera {self.name!r}: writing the video failed: {err}")
            return
        self.frames_csv.write(f"{frame_id},{camera_ts_ns},{exposure_us:g}")
        self.report.written += 1

    def close(self) -> list[str]:
        """Finish the video and frames.csv; make them agree if the writer failed. Returns problems."""
        problems = []
        self.report.incomplete += self.backend.incomplete_frames
        try:
            self.writer.close()
        except Exception as err:  # e.g. ENOSPC while flushing the encoder
            problems.append(f"camera {self.name!r}: closing the video failed: {err}")
        self.frames_csv.close()
        video = self.rec.folder / self.rec.video_name(self.settings)
        if problems or self.writer_broken:
            n_video = count_frames(video) if video.exists() and video.stat().st_size else 0
            if n_video < self.report.written:
                lines = self.frames_csv.path.read_text().splitlines(keepends=True)
                self.frames_csv.path.write_text("".join(lines[:n_video + 1]))
                problems.append(f"camera {self.name!r}: {self.report.written - n_video} frame(s) lost in the "
                                f"unfinished video; frames.csv truncated to {n_video} rows to match")
                self.report.written = n_video
        return problems


class Recorder:
    """One recording session; use :func:`record` unless you need to drive it step by step.

    Parameters
    ----------
    cfg : RigSettings
        The rig config.
    folder : Path
        The session folder to write (created by ``run``).
    cameras : sequence of CameraBackend
        One backend per configured camera, in the config's order.
    trigger : TriggerBackend
    event_sources : sequence of EventSource
        Sources of knob and manual events, polled as the recording runs; the knob source that the config's
        [knob] table names is added to them.
    writer_factory : callable
        ``writer_factory(path, width, height, fps, storage)`` -> an object with ``write(image)``, ``close()``
        and ``n_frames`` (default: a :class:`ratpose.video.VideoWriter` with the storage settings).
    backpressure : bool
        Cameras wait for the writer instead of dropping frames when its queue is full (simulations).

    Raises
    ------
    InputError
        If the number of camera backends differs from the configured cameras.
    ConfigurationError
        If the session's time zone is not an IANA time zone.
    """

    def __init__(self, cfg: RigSettings, folder: Path, cameras: Sequence[CameraBackend], trigger: TriggerBackend, *,
                 event_sources: Sequence[EventSource] = (), writer_factory: WriterFactory = default_writer,
                 backpressure: bool = False):
        if len(cameras) != len(cfg.cameras):
            raise InputError(f"{len(cameras)} camera backends for {len(cfg.cameras)} configured cameras")
        self.cfg, self.folder, self.trigger = cfg, Path(folder), trigger
        self.backends = list(cameras)
        self.event_sources = list(event_sources)
        self.writer_factory = writer_factory
        self.backpressure = backpressure
        self.pulses = PulseLog()
        self.windows = EventWindows(cfg.ring.pre_s, cfg.ring.post_s, cfg.ring.latency_s)
        self.stop_requested = threading.Event()
        self.failed = threading.Event()
        self.draining = threading.Event()
        self.status, self.message = "completed", ""
        self.stopping = threading.Event()  # set once the recording ended normally: teardown noise is a warning
        self.warnings: list[str] = []
        self._status_lock = threading.Lock()
        self._sources_lock = threading.Lock()
        self.knob_events: list[tuple[float, str]] = []
        self.knob = knob_source(cfg, self.pulses)
        if self.knob is not None:
            self.event_sources.append(self.knob)
        self.pipelines: list[_CameraPipeline] = []
        zone = time_zone(self.cfg.session.timezone)  # local time of the rig, whatever the computer's zone
        self.started = _dt.datetime.now(zone).replace(tzinfo=None, microsecond=0)

    def video_name(self, settings: CameraSettings) -> str:
        """The file name of a camera's video in the session folder.

        Parameters
        ----------
        settings : CameraSettings

        Returns
        -------
        str
            ``<camera name>.<container>``, e.g. "cam0.mkv".
        """
        return f"{settings.name}.{self.cfg.storage.container}"

    def fail(self, status: str, message: str) -> None:
        """Record the first problem and stop the recording.

        A camera error after the recording ended normally is only a warning.

        Parameters
        ----------
        status : str
            The recording's status, e.g. "disk_full" (see :class:`RecordingResult`).
        message : str
            What went wrong.
        """
        with self._status_lock:
            if self.stopping.is_set() and status == "camera_error" and not self.failed.is_set():
                self.warnings.append(message)
                log.warning("after the stop: %s", message)
                return
            if not self.failed.is_set():
                self.status, self.message = status, message
                log.error("recording stops: %s", message)
            self.failed.set()
            self.stop_requested.set()

    def warn(self, message: str) -> None:
        """A problem the recording survives: logged now, listed in session.toml.

        Parameters
        ----------
        message : str
        """
        log.warning(message)
        with self._status_lock:
            self.warnings.append(message)

    def camera_stopped(self, pipeline: "_CameraPipeline") -> None:
        """One camera stopped delivering; the recording ends only when no camera is left.

        Parameters
        ----------
        pipeline : _CameraPipeline
            The camera's pipeline, its ``report.stopped`` set.
        """
        log.error("CAMERA %r STOPPED DELIVERING after frame %s (%s); the other cameras record on",
                  pipeline.name, pipeline.report.stopped["last_frame_id"], pipeline.report.stopped["reason"])
        if all(p.report.stopped for p in self.pipelines):
            self.fail("camera_error", "every camera stopped delivering")

    def _stopped_cameras(self) -> list[str]:
        """One sentence per camera that stopped mid-recording: when, and how many triggers it left unanswered."""
        n = len(self.pulses)
        out = []
        for p in self.pipelines:
            stop = p.report.stopped
            if stop:
                out.append(f"camera {p.name!r} stopped delivering after frame {stop['last_frame_id']} (pulse "
                           f"{stop['pulses_logged']}, {stop['time_s']:.2f} s into the recording: {stop['reason']}); "
                           f"{p.report.pulses(n)['after_camera_stopped']} of {n} triggers unanswered")
        return out

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop at the next opportunity (Ctrl-C lands here); the recording counts as interrupted.

        Parameters
        ----------
        reason : str
            The message of the interrupted recording (only the first request's counts).
        """
        with self._status_lock:
            if not self.stop_requested.is_set():
                self.status, self.message = "interrupted", reason
                log.warning("recording interrupted: %s", reason)
            self.stop_requested.set()

    def poll_sources(self, now_s: float) -> None:
        """Collect events up to ``now_s`` from every source (knob log, manual key) into the windows.

        Knob events go to knob_events.csv and knob angles to knob_angle.csv; events of the ring buffer's
        policies open windows.

        Parameters
        ----------
        now_s : float, s
            Neural time up to which to collect.
        """
        ring = self.cfg.ring
        wanted = {"knob": (ring.knob_event,), "manual": ("manual",)}
        kinds = {k for p in ring.policy for k in wanted.get(p, ())} if ring.enabled else set()
        with self._sources_lock:
            for source in self.event_sources:
                for t, kind in source.poll(now_s):
                    if kind in KNOB_KINDS:
                        if not self.knob_events and kind == "touch_off":
                            continue  # the touch began before the log: the file must start with touch_on
                        self.knob_events.append((t, kind))
                        self.knob_csv.write(f"{t:.6f},{kind}")
                    if kind in kinds:
                        self.windows.add(t, kind)
                if hasattr(source, "poll_angle"):
                    for t, a in source.poll_angle(now_s):
                        self.angle_csv.write(f"{t:.6f},{a:.4f}")

    def last_pulse_s(self) -> float:
        """Neural time of the latest logged pulse (-inf before the first)."""
        return self.pulses.time_s(-1) if len(self.pulses) else -math.inf

    def _on_pulse(self, tick_us: int) -> None:
        self.pulses.append(tick_us)
        self.trigger_csv.write(str(tick_us))

    def status_line(self) -> str:
        """One line for the terminal: frames, drops, fps, queue fill per camera, and the ring's segments."""
        n = len(self.pulses)
        parts = [f"{n} pulses"]
        for p in self.pipelines:
            r = p.report
            fps = r.delivered / max(self.pulses.time_s(-1) - self.pulses.time_s(0), 1e-9) if n > 1 else 0.0
            if r.stopped:
                parts.append(f"{p.name}: STOPPED after frame {r.stopped['last_frame_id']}")
                continue
            parts.append(f"{p.name}: {r.delivered} frames {fps:.0f} fps, "
                         f"{r.transfer_lost + r.queue_dropped + r.ring_dropped} dropped, "
                         f"{max(n - r.exposed() - p.queue.qsize(), 0)} missed, queue {p.queue.qsize()}/"
                         f"{p.queue.maxsize}")
        if self.cfg.ring.enabled:
            parts.append(f"{len(self.windows.windows)} segment(s) kept")
        if isinstance(self.knob, GpioKnob):
            parts.append(self.knob.status())
        elif isinstance(self.knob, NetworkKnobSource):
            parts.append(f"knob: {self.knob.report.received} network event(s)")
        return " | ".join(parts)

    def run(self, duration_s: float | None = None, on_status: Callable[[str], None] | None = None) -> RecordingResult:
        """Record until the duration (on the trigger clock) is reached, the trigger ends, Ctrl-C or a failure.

        Parameters
        ----------
        duration_s : float, optional, s
            Cap on the recording on the trigger clock; None: until the trigger ends, Ctrl-C or a failure.
        on_status : callable, optional
            Called about once a second with ``status_line()``.

        Returns
        -------
        RecordingResult
            Failures are reported in its status and message, not raised; session.toml is written either way.
        """
        t_start = t_trigger = time.monotonic()
        cfg = self.cfg
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write_session_toml("recording", "")
        self.trigger_csv = _CsvLog(self.folder / "trigger.csv", "tick_us")
        self.knob_csv = _CsvLog(self.folder / "knob_events.csv", "time_s,event")
        self.angle_csv = _CsvLog(self.folder / "knob_angle.csv", "time_s,angle_deg")
        try:
            for backend, settings in zip(self.backends, cfg.cameras):
                backend.configure(settings, cfg.trigger.rate_hz)
                writer = self.writer_factory(self.folder / self.video_name(settings), settings.width,
                                             settings.height, cfg.trigger.rate_hz, cfg.storage)
                self.pipelines.append(_CameraPipeline(self, backend, settings, writer))
            for backend in self.backends:  # streaming before any GetNextImage (-1010 otherwise)
                backend.start()
            for p in self.pipelines:
                p.process_thread.start()
                p.capture_thread.start()
            if isinstance(self.knob, NetworkKnobSource):
                self.knob.start()
            t_trigger = time.monotonic()
            self.trigger.start(self._on_pulse)
            if isinstance(self.knob, GpioKnob):
                self.trigger.attach_knob(self.knob)
            self._wait(duration_s, on_status)
        except AcquisitionError as err:
            self.fail("camera_error" if isinstance(err, CameraError) else "trigger_error", str(err))
        except (ValueError, OSError) as err:
            self.fail("error", f"setup failed: {err}")
        finally:
            problems = self._shutdown()
        stopped = self._stopped_cameras()
        if stopped and self.status in ("completed", "interrupted"):
            self.status, self.message = "camera_error", "; ".join(stopped)
        elif stopped:
            self.message = "; ".join([self.message, *stopped])
        if problems and self.status in ("completed", "interrupted"):
            self.status, self.message = "write_error", "; ".join(problems)
        elif problems:
            self.message += "; " + "; ".join(problems)
        self._write_session_toml(self.status, self.message)
        self._write_ring_files()
        return RecordingResult(self.folder, self.status, self.message, len(self.pulses),
                               {p.name: p.report for p in self.pipelines}, self.windows.windows,
                               list(self.windows.events), time.monotonic() - t_start, time.monotonic() - t_trigger)

    def _wait(self, duration_s: float | None, on_status) -> None:
        next_status = time.monotonic() + 1.0
        while not self.stop_requested.wait(0.02):
            if on_status is not None and time.monotonic() >= next_status:
                on_status(self.status_line())
                next_status += 1.0
            if not self.cfg.ring.enabled:
                self.poll_sources(self.last_pulse_s())
            if self.trigger.finished:
                return
            if duration_s is not None and len(self.pulses) and \
                    self.pulses.time_s(-1) - self.pulses.time_s(0) >= duration_s:
                return

    def _shutdown(self) -> list[str]:
        """Stop the trigger, drain every camera until it times out, end acquisition, close everything."""
        self.stopping.set()
        problems = []
        try:
            self.trigger.stop()
        except Exception as err:  # the Pi may still be pulsing: the drain below ends on its own
            self.fail("trigger_error", f"stopping the trigger failed: {err}")
        self._close_knob()
        self.pulses.close()
        self.draining.set()
        started = [p for p in self.pipelines if p.capture_thread.ident is not None]
        for p in started:
            p.capture_thread.join()
        for p in self.pipelines:  # no GetNextImage is running any more
            try:
                p.backend.stop()
            except Exception as err:  # a camera that stopped delivering is expected to fail here as well
                if p.report.stopped:
                    self.warn(f"stopping camera {p.name} failed: {err}")
                else:
                    problems.append(f"stopping camera {p.name} failed: {err}")
        for p in started:
            p.process_thread.join()
        n_pulses = len(self.pulses)
        for p in self.pipelines:
            problems += p.close()
            p.report.stream = p.backend.stream_stats()
            if p in started:
                p.report.missed_triggers = max(n_pulses - p.report.exposed(), 0)
        try:
            for backend in self.backends:
                try:
                    backend.close()
                except Exception as err:
                    problems.append(f"closing camera {getattr(backend, 'name', '?')} failed: {err}")
            try:
                self.trigger.close()
            except Exception as err:
                problems.append(f"closing the trigger failed: {err}")
            self.poll_sources(self.last_pulse_s())
        finally:
            for csv in (self.trigger_csv, self.knob_csv, self.angle_csv):
                csv.close()
        return problems

    def _close_knob(self) -> None:
        """No more knob input: its callbacks (or socket) end; what went wrong with it becomes warnings."""
        if isinstance(self.knob, GpioKnob):
            self.knob.detach()
        elif isinstance(self.knob, NetworkKnobSource):
            self.knob.stop()
        else:
            return
        self.poll_sources(self.last_pulse_s())  # what arrived last is decoded (and counted) before the report
        problems = (self.knob.report.warnings(self.cfg.knob) if isinstance(self.knob, GpioKnob)
                    else self.knob.report.warnings(self.cfg.ring.latency_s))
        for problem in problems:
            self.warn(problem)

    def _write_session_toml(self, status: str, message: str) -> None:
        cfg = self.cfg
        doc = {"format_version": 1, "subject": cfg.session.subject, "session_datetime": self.started,
               "rig": cfg.session.rig, "task": cfg.session.task, "notes": cfg.session.notes,
               "timezone": cfg.session.timezone,
               "trigger_rate_hz": float(cfg.trigger.rate_hz),
               "camera": [{"name": c.name, "role": c.role, "serial": c.serial, "model": c.model,
                           "pixel_size_um": float(c.pixel_size_um), "lens_mm": float(c.lens_mm),
                           "video": self.video_name(c)} for c in cfg.cameras],
               "recording": {"status": status, "message": message, "codec": cfg.storage.codec,
                             "crf": cfg.storage.crf, "ring_buffer": cfg.ring.enabled,
                             "pre_s": cfg.ring.pre_s, "post_s": cfg.ring.post_s,
                             "policy": list(cfg.ring.policy), "warnings": self.warnings,
                             "cameras": {p.name: self._camera_stats(p) for p in self.pipelines}}}
        (self.folder / "session.toml").write_text(tomli_w.dumps(doc))

    @staticmethod
    def _camera_stats(p: _CameraPipeline) -> dict:
        r = p.report
        return {"written": r.written, "delivered": r.delivered, "incomplete": r.incomplete,
                "transfer_lost": r.transfer_lost, "queue_dropped": r.queue_dropped, "ring_dropped": r.ring_dropped,
                "missed_triggers": r.missed_triggers, "max_writer_lag": r.max_writer_lag,
                "stream": {k: int(v) for k, v in r.stream.items()}, "pulses": r.pulses(len(p.rec.pulses)),
                **({"stopped": r.stopped} if r.stopped else {})}

    def _write_ring_files(self) -> None:
        if not self.cfg.ring.enabled:
            return
        w = self.windows.windows
        (self.folder / "segments.csv").write_text(
            "start_s,end_s\n" + "".join(f"{a:.6f},{b:.6f}\n" for a, b in w))
        (self.folder / "ring_events.csv").write_text(
            "time_s,source\n" + "".join(f"{t:.6f},{s}\n" for t, s in self.windows.events))


def knob_source(cfg: RigSettings, pulses: PulseLog):
    """The knob event source rig.toml's [knob] names (on the trigger's clock through ``pulses``), or None."""
    if cfg.knob.source == "gpio":
        return GpioKnob(cfg.knob, pulses)
    if cfg.knob.source == "network":
        return NetworkKnobSource(cfg.knob.listen, cfg.ring.latency_s, pulses)
    return None


def record(config: RigSettings | str | Path, out_dir: str | Path, *, duration_s: float | None = None,
           cameras: Sequence[CameraBackend] | None = None, trigger: TriggerBackend | None = None,
           event_sources: Sequence[EventSource] = (), writer_factory: WriterFactory = default_writer,
           handle_sigint: bool = True, on_status: Callable[[str], None] | None = None,
           save_user_set: bool = False) -> RecordingResult:
    """Record one session into ``out_dir`` (created; must be empty) and return how it went.

    ``config`` is a RigSettings or a rig TOML path. Backends come from the config (simulated or
    PySpin + pigpio) unless ``cameras``/``trigger`` are given. ``duration_s`` caps the recording on the
    trigger clock (default: until Ctrl-C, or the simulated duration). With the ring buffer's 'manual'
    policy, pressing Enter on the terminal marks an event.

    Parameters
    ----------
    config : RigSettings or str or Path
        The rig config, or the path of a rig TOML file.
    out_dir : str or Path
        The session folder; created, and must not exist or be empty.
    duration_s : float, optional, s
        Cap on the recording on the trigger clock.
    cameras : sequence of CameraBackend, optional
    trigger : TriggerBackend, optional
        Backends to use instead of the config's; give both or neither.
    event_sources : sequence of EventSource
        Extra sources of knob events (the manual key is added by the 'manual' policy).
    writer_factory : callable
        Makes each camera's video writer (see :class:`Recorder`).
    handle_sigint : bool
        Ctrl-C (SIGINT) stops the recording cleanly as "interrupted" (only in the main thread).
    on_status : callable, optional
        Called about once a second with a one-line status.
    save_user_set : bool
        PySpin cameras save their configured state to UserSet1.

    Returns
    -------
    RecordingResult
        Failures during the recording are in its status and message, not raised.

    Raises
    ------
    RigConfigError
        If ``config`` is a path whose file is missing or wrong.
    InputError
        If ``out_dir`` is not empty (or not a folder), or only one of ``cameras`` and ``trigger`` is given.
    """
    cfg = load_rig_config(config) if isinstance(config, (str, Path)) else config
    folder = Path(out_dir)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(f"{folder}: output session folder must not exist or be empty")
    simulated = cfg.trigger.backend == "simulated"
    if cameras is None and trigger is None:
        cameras, trigger = (build_simulated_backends(cfg, duration_s=duration_s) if simulated
                            else build_hardware_backends(cfg, save_user_set))
    elif cameras is None or trigger is None:
        raise InputError("give both cameras and trigger, or neither")
    sources = list(event_sources)
    if cfg.ring.enabled and "manual" in cfg.ring.policy:
        sources.append(ManualKeySource(sys.stdin))
    backpressure = simulated and not cfg.simulation.realtime
    rec = Recorder(cfg, folder, cameras, trigger, event_sources=sources, writer_factory=writer_factory,
                   backpressure=backpressure)
    install = handle_sigint and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: rec.request_stop("Ctrl-C (SIGINT)")) if install else None
    try:
        result = rec.run(duration_s, on_status)
    finally:
        if install:
            signal.signal(signal.SIGINT, previous)
    log.info("recording %s: %s %s", folder, result.status, result.message)
    return result
