"""Rig configuration (TOML, documented in docs/rig-config.md): cameras, trigger, storage, ring buffer."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from .._toml import tomllib
from ..names import check_subject, check_unique_serials
from ..rig import time_zone

from ratpose.acquisition.backends import CameraSettings
from ratpose.acquisition.writers import AVI_ONLY, CODECS, CONTAINERS

CAMERA_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
POLICIES = ("knob", "motion", "manual")
MIN_READOUT_GAP_US = 50.0  # trigger period must exceed exposure by this much (sensor readout overlap)


class RigConfigError(ValueError):
    """The rig configuration is wrong; the message names the file/section and the problem."""


@dataclass(frozen=True)
class SessionInfo:
    subject: str = "unknown"
    rig: str = "knob-rig-1"
    task: str = "knob-supination"
    notes: str = ""
    timezone: str = "UTC"  # IANA zone of the rig's clock; session_datetime is local time in it


@dataclass(frozen=True)
class TriggerSettings:
    backend: str = "pigpio"
    gpio: int = 18
    rate_hz: float = 226.0
    pulse_width_us: int = 100
    host: str = "localhost"
    port: int = 8888
    start_pattern: bool = True
    camera_stall_s: float = 0.5  # a camera that answers no trigger for this long has stopped (cable, firmware)


@dataclass(frozen=True)
class StorageSettings:
    codec: str = "raw"  # the only one a CPU encodes at 2 x 226 fps of 1440x1080 (benchmarks/bench_codecs.py)
    crf: int = 18
    preset: str = "veryfast"
    container: str = "mkv"
    threads: int = 0
    queue_frames: int = 256
    writer_lag_warn: float = 0.5  # fraction of queue_frames waiting for the writer that warns
    writer_lag_stop: float = 0.9  # ... and that stops the recording before a frame is lost
    sync_every_s: float = 1.0  # fdatasync each video this often (0: leave it to the page cache)


@dataclass(frozen=True)
class RingSettings:
    enabled: bool = False
    pre_s: float = 5.0
    post_s: float = 2.0
    latency_s: float = 0.25
    policy: tuple[str, ...] = ("knob",)
    knob_event: str = "touch_on"
    motion_roi: tuple[int, ...] = ()
    motion_threshold: float = 4.0
    motion_refractory_s: float = 1.0


@dataclass(frozen=True)
class SimulatedCameraClock:
    """Clock and drop behaviour of one simulated camera (see ratpose.sim.clocks.CameraClockConfig)."""

    clock_offset_ns: int = 5_000_000_000
    drift_ppm: float = 20.0
    loss_rate: float = 0.0
    miss_rate: float = 0.0
    armed_after_pulses: int = 0
    strobe_delay_us: float = 2.0
    first_frame_id: int = 0
    timestamp_jitter_ns: float = 100.0


@dataclass(frozen=True)
class SimulationSettings:
    duration_s: float = 10.0
    realtime: bool = False
    jitter_us: float = 20.0
    start_tick_us: int = 0
    seed: int = 0
    cameras: dict = field(default_factory=dict)  # camera name -> SimulatedCameraClock


@dataclass(frozen=True)
class RigConfig:
    cameras: tuple[CameraSettings, ...]
    session: SessionInfo = SessionInfo()
    trigger: TriggerSettings = TriggerSettings()
    storage: StorageSettings = StorageSettings()
    ring: RingSettings = RingSettings()
    simulation: SimulationSettings = SimulationSettings()

    def __post_init__(self):
        validate(self)

    @property
    def primary(self) -> CameraSettings:
        return next(c for c in self.cameras if c.role == "primary")


def _build(cls, table, where: str):
    """Instantiate a settings dataclass from a TOML table, rejecting unknown keys and wrong types."""
    if not isinstance(table, dict):
        raise RigConfigError(f"{where}: expected a table, got {type(table).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise RigConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(fields)}")
    values = {}
    for key, value in table.items():
        default = fields[key].default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and isinstance(default, int) and not isinstance(default, bool):
                ok = float(value).is_integer()
                value = int(value) if ok else value
        elif isinstance(default, str):
            ok = isinstance(value, str)
        elif isinstance(default, tuple):
            ok = isinstance(value, list)
            value = tuple(value) if ok else value
        else:
            ok = True
        if not ok:
            raise RigConfigError(f"{where}: key '{key}' has the wrong type ({value!r}); "
                                 f"expected like {default!r}")
        values[key] = value
    return cls(**values)


def _camera_from_toml(table: dict, where: str) -> CameraSettings:
    table = dict(table)
    roi = table.pop("roi", None)
    if roi is not None:
        if not (isinstance(roi, list) and len(roi) == 4 and all(isinstance(v, int) for v in roi)):
            raise RigConfigError(f"{where}: roi must be [offset_x, offset_y, width, height] integers")
        table.update(offset_x=roi[0], offset_y=roi[1], width=roi[2], height=roi[3])
    if "role" in table and table["role"] == "secondary":
        table.setdefault("trigger_line", "Line3")
    if table.get("role", "primary") == "primary":
        table.setdefault("strobe_line", "Line1")
    return _build(CameraSettings, table, where)


def load_rig_config(path: str | Path) -> RigConfig:
    """Read and validate a rig TOML file."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as err:
        raise RigConfigError(f"{path}: file not found") from err
    except tomllib.TOMLDecodeError as err:
        raise RigConfigError(f"{path}: not valid TOML ({err})") from err
    return rig_config_from_dict(doc, str(path))


def rig_config_from_dict(doc: dict, source: str = "rig config") -> RigConfig:
    """Build a RigConfig from the parsed TOML structure (same layout as examples/rig.toml)."""
    allowed = {"session", "trigger", "storage", "ring_buffer", "camera", "simulation"}
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise RigConfigError(f"{source}: unknown section(s) {unknown}; allowed: {sorted(allowed)}")
    cams = doc.get("camera")
    if not isinstance(cams, list) or not cams:
        raise RigConfigError(f"{source}: needs at least one [[camera]] table")
    cameras = tuple(_camera_from_toml(c, f"{source} [[camera]] #{i + 1}") for i, c in enumerate(cams))
    sim = dict(doc.get("simulation", {}))
    sim_cams = sim.pop("camera", {})
    if not isinstance(sim_cams, dict):
        raise RigConfigError(f"{source} [simulation.camera]: expected tables named after cameras")
    clocks = {name: _build(SimulatedCameraClock, t, f"{source} [simulation.camera.{name}]")
              for name, t in sim_cams.items()}
    simulation = dataclasses.replace(_build(SimulationSettings, sim, f"{source} [simulation]"), cameras=clocks)
    try:
        return RigConfig(cameras=cameras,
                         session=_build(SessionInfo, doc.get("session", {}), f"{source} [session]"),
                         trigger=_build(TriggerSettings, doc.get("trigger", {}), f"{source} [trigger]"),
                         storage=_build(StorageSettings, doc.get("storage", {}), f"{source} [storage]"),
                         ring=_build(RingSettings, doc.get("ring_buffer", {}), f"{source} [ring_buffer]"),
                         simulation=simulation)
    except RigConfigError as err:
        raise RigConfigError(f"{source}: {err}") from None


def check_exposure(exposure_us: float, rate_hz: float, camera: str) -> None:
    """Raise if an exposure does not fit in the trigger period (with readout margin)."""
    period_us = 1e6 / rate_hz
    if not 0 < exposure_us <= period_us - MIN_READOUT_GAP_US:
        raise RigConfigError(f"camera {camera!r}: exposure_us={exposure_us} must be > 0 and at most "
                             f"{period_us - MIN_READOUT_GAP_US:.0f} us at {rate_hz} Hz (period {period_us:.0f} us "
                             f"minus {MIN_READOUT_GAP_US:.0f} us readout)")


def validate(cfg: RigConfig) -> None:
    """Cross-field checks: camera names/roles, exposure vs rate, codec, ring policy."""
    names = [c.name for c in cfg.cameras]
    if len(set(names)) != len(names):
        raise RigConfigError(f"camera names repeat: {names}")
    try:
        time_zone(cfg.session.timezone)
    except ValueError as err:
        raise RigConfigError(f"[session] {err}") from None
    try:
        check_subject(cfg.session.subject)
    except ValueError as err:
        raise RigConfigError(f"[session] 'subject': {err}") from None
    try:
        check_unique_serials((c.name, c.serial) for c in cfg.cameras)
    except ValueError as err:
        raise RigConfigError(f"[[camera]] 'serial': {err}") from None
    for cam in cfg.cameras:
        if not CAMERA_NAME.fullmatch(cam.name):
            raise RigConfigError(f"camera name {cam.name!r} must match {CAMERA_NAME.pattern}")
        if cam.role not in ("primary", "secondary"):
            raise RigConfigError(f"camera {cam.name!r}: role must be 'primary' or 'secondary', got {cam.role!r}")
        if cam.width <= 0 or cam.height <= 0 or cam.offset_x < 0 or cam.offset_y < 0:
            raise RigConfigError(f"camera {cam.name!r}: ROI must have positive size and offsets >= 0")
        if cam.buffer_handling != "OldestFirst":  # NewestFirst delivers out of order: FrameID gaps, matcher break
            raise RigConfigError(f"camera {cam.name!r}: buffer_handling must be OldestFirst (frames in order; "
                                 f"NewestFirst breaks the FrameID gap count and pulse matching)")
        if cam.strobe_pullup not in ("line2_3v3", "external"):
            raise RigConfigError(f"camera {cam.name!r}: strobe_pullup must be 'line2_3v3' or 'external'")
        check_exposure(cam.exposure_us, cfg.trigger.rate_hz, cam.name)
    if [c.role for c in cfg.cameras].count("primary") != 1:
        raise RigConfigError(f"exactly one camera must be role='primary', got roles {[c.role for c in cfg.cameras]}")
    if cfg.trigger.backend not in ("pigpio", "simulated"):
        raise RigConfigError(f"[trigger] backend must be 'pigpio' or 'simulated', got {cfg.trigger.backend!r}")
    if not 0 < cfg.trigger.rate_hz <= 1000:
        raise RigConfigError(f"[trigger] rate_hz must be in (0, 1000], got {cfg.trigger.rate_hz}")
    if cfg.storage.codec not in CODECS:
        raise RigConfigError(f"[storage] codec must be one of {sorted(CODECS)}, got {cfg.storage.codec!r}")
    if cfg.storage.container not in CONTAINERS:
        raise RigConfigError(f"[storage] container must be one of {CONTAINERS}, got {cfg.storage.container!r}")
    if cfg.storage.codec in AVI_ONLY and cfg.storage.container != "avi":
        raise RigConfigError(f"[storage] codec {cfg.storage.codec!r} needs container = \"avi\" (Matroska cannot "
                             f"hold it), got {cfg.storage.container!r}")
    if not 0 <= cfg.storage.crf <= 51:
        raise RigConfigError(f"[storage] crf must be in 0..51, got {cfg.storage.crf}")
    if not 0 < cfg.storage.writer_lag_warn <= cfg.storage.writer_lag_stop < 1:
        raise RigConfigError("[storage] need 0 < writer_lag_warn <= writer_lag_stop < 1 (fractions of queue_frames)")
    if cfg.storage.sync_every_s < 0:
        raise RigConfigError(f"[storage] sync_every_s must be >= 0, got {cfg.storage.sync_every_s}")
    if cfg.storage.queue_frames < 4:
        raise RigConfigError(f"[storage] queue_frames must be >= 4, got {cfg.storage.queue_frames}")
    if cfg.trigger.camera_stall_s <= 0:
        raise RigConfigError(f"[trigger] camera_stall_s must be > 0, got {cfg.trigger.camera_stall_s}")
    ring = cfg.ring
    bad = sorted(set(ring.policy) - set(POLICIES))
    if bad:
        raise RigConfigError(f"[ring_buffer] unknown policy {bad}; choose from {POLICIES}")
    if ring.pre_s < 0 or ring.post_s < 0 or ring.latency_s < 0:
        raise RigConfigError("[ring_buffer] pre_s, post_s and latency_s must be >= 0")
    if ring.motion_roi and len(ring.motion_roi) != 4:
        raise RigConfigError("[ring_buffer] motion_roi must be [x, y, width, height]")
    unknown = sorted(set(cfg.simulation.cameras) - set(names))
    if unknown:
        raise RigConfigError(f"[simulation.camera] names {unknown} are not cameras of the rig {names}")
