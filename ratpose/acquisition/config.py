"""Rig configuration (TOML, documented in docs/rig-config.md): cameras, trigger, storage, ring buffer."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from ratpose.acquisition.backends import CameraSettings

from .._toml import tomllib
from ..errors import ConfigurationError, InputError
from ..names import check_subject, check_unique_serials
from ..rig import time_zone
from ..sim.clocks import CameraClockSettings
from ..video import AVI_ONLY, CODECS, CONTAINERS

CAMERA_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
POLICIES = ("knob", "motion", "manual")
_PULLS = ("up", "down", "off")
MIN_READOUT_GAP_US = 50.0  # trigger period must exceed exposure by this much (sensor readout overlap)


class RigConfigError(ConfigurationError):
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
class KnobSettings:
    """rig.toml ``[knob]``: where the knob's events come from (``acquisition.knob_gpio``,
    ``acquisition.knob_network``) and how its inputs are wired (docs/rig-config.md)."""

    source: str = "none"              # "gpio" (this module), "network" (events from a real-time system), "none"
    touch_gpio: int = 17
    touch_pull: str = "up"            # the Pi's internal pull on the touch input: up, down, off
    touch_active: str = "low"         # level while touched (a sensor pulling a pulled-up input low)
    glitch_us: int = 300              # pigpio glitch filter on the touch input
    debounce_us: int = 20_000         # a release shorter than this is contact bounce
    encoder_a_gpio: int = 22          # -1: no encoder
    encoder_b_gpio: int = 23
    encoder_pull: str = "up"
    counts_per_rev: int = 2400        # quadrature counts (each edge of A and B) per revolution
    angle_rate_hz: float = 100.0      # knob_angle.csv rows per second
    listen: str = "0.0.0.0:5556"      # source "network": the UDP address events arrive at

    def check(self, where: str = "[knob]") -> None:
        """Raise RigConfigError for settings that cannot work, naming the key."""
        if self.source not in ("gpio", "network", "none"):
            raise RigConfigError(f"{where}: source must be gpio, network or none, got {self.source!r}")
        for key in ("touch_pull", "encoder_pull"):
            if getattr(self, key) not in _PULLS:
                raise RigConfigError(f"{where}: {key} must be one of {_PULLS}, got {getattr(self, key)!r}")
        if self.touch_active not in ("low", "high"):
            raise RigConfigError(f"{where}: touch_active must be low or high, got {self.touch_active!r}")
        gpios = [self.touch_gpio] + ([self.encoder_a_gpio, self.encoder_b_gpio] if self.has_encoder else [])
        if any(not 0 <= g <= 31 for g in gpios) or len(set(gpios)) != len(gpios):  # pigpio's user GPIOs
            raise RigConfigError(f"{where}: the knob's GPIOs must be distinct BCM numbers 0-31, got {gpios}")
        if self.has_encoder != (self.encoder_b_gpio >= 0):
            raise RigConfigError(f"{where}: give both encoder_a_gpio and encoder_b_gpio, or -1 for both")
        if not 0 <= self.glitch_us <= 300_000 or self.debounce_us < 0:
            raise RigConfigError(f"{where}: glitch_us must be 0-300000 (pigpio's limit) and debounce_us >= 0")
        if self.counts_per_rev <= 0 or not self.angle_rate_hz > 0:
            raise RigConfigError(f"{where}: counts_per_rev and angle_rate_hz must be > 0")
        if self.source == "network":
            from .knob_network import parse_address

            try:
                parse_address(self.listen, f"{where} listen")
            except InputError as err:
                raise RigConfigError(str(err)) from None

    @property
    def has_encoder(self) -> bool:
        return self.encoder_a_gpio >= 0


@dataclass(frozen=True)
class SimulationSettings:
    duration_s: float = 10.0
    realtime: bool = False
    jitter_us: float = 20.0
    start_tick_us: int = 0
    seed: int = 0
    cameras: dict = field(default_factory=dict)  # camera name -> sim.clocks.CameraClockSettings


@dataclass(frozen=True)
class RigSettings:
    """A validated rig configuration (rig.toml, docs/rig-config.md): cameras and the settings tables.

    The tables are rig.toml's [session], [trigger], [storage], [ring_buffer], [simulation] and [knob].

    Attributes
    ----------
    cameras : tuple of CameraSettings
        One per [[camera]] table; exactly one has role "primary" (the ``primary`` property).
    session : SessionInfo
        Subject, rig, task, notes and the rig's IANA time zone.
    trigger : TriggerSettings
        Trigger backend ("pigpio" or "simulated"), GPIO, rate (Hz), pulse width, pigpiod address.
    storage : StorageSettings
        Codec, container and writer queue of the videos.
    ring : RingSettings
        The pre-event ring buffer (the [ring_buffer] table).
    simulation : SimulationSettings
        Settings of a simulated recording, including camera name -> sim.clocks.CameraClockSettings.
    knob : KnobSettings
        Where the knob's events come from (the Pi's GPIOs, the network, none) and its wiring.

    Raises
    ------
    RigConfigError
        On construction, if the fields do not fit together (names, roles, exposure vs rate, codec, ring policy).
    """

    cameras: tuple[CameraSettings, ...]
    session: SessionInfo = SessionInfo()
    trigger: TriggerSettings = TriggerSettings()
    storage: StorageSettings = StorageSettings()
    ring: RingSettings = RingSettings()
    simulation: SimulationSettings = SimulationSettings()
    knob: KnobSettings = KnobSettings()

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


def _clock(name: str, table, where: str) -> CameraClockSettings:
    """A simulated camera's clock from its [simulation.camera.NAME] table (name and role are the camera's own)."""
    if isinstance(table, dict) and {"name", "role"} & set(table):
        raise RigConfigError(f"{where}: 'name' and 'role' come from the camera's [[camera]] table")
    return dataclasses.replace(_build(CameraClockSettings, table, where), name=name)


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


def load_rig_config(path: str | Path) -> RigSettings:
    """Read and validate a rig TOML file.

    Parameters
    ----------
    path : str or Path
        A rig TOML file (layout of examples/rig.toml, docs/rig-config.md).

    Returns
    -------
    RigSettings

    Raises
    ------
    RigConfigError
        If the file is not found, is not valid TOML, or its settings are wrong (the message names the file,
        section and key).
    """
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError as err:
        raise RigConfigError(f"{path}: file not found") from err
    except tomllib.TOMLDecodeError as err:
        raise RigConfigError(f"{path}: not valid TOML ({err})") from err
    return rig_config_from_dict(doc, str(path))


def rig_config_from_dict(doc: dict, source: str = "rig config") -> RigSettings:
    """Build a RigSettings from the parsed TOML structure (same layout as examples/rig.toml).

    Parameters
    ----------
    doc : dict
        The parsed TOML: sections session, trigger, storage, ring_buffer, simulation and a list of camera tables.
    source : str
        What the structure came from (e.g. the file's path), named in error messages.

    Returns
    -------
    RigSettings

    Raises
    ------
    RigConfigError
        On an unknown section or key, a value of the wrong type, no [[camera]] table, or settings that do not
        fit together.
    """
    allowed = {"session", "trigger", "storage", "ring_buffer", "camera", "simulation", "knob"}
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
    clocks = {name: _clock(name, t, f"{source} [simulation.camera.{name}]") for name, t in sim_cams.items()}
    simulation = dataclasses.replace(_build(SimulationSettings, sim, f"{source} [simulation]"), cameras=clocks)
    try:
        return RigSettings(cameras=cameras,
                         session=_build(SessionInfo, doc.get("session", {}), f"{source} [session]"),
                         trigger=_build(TriggerSettings, doc.get("trigger", {}), f"{source} [trigger]"),
                         storage=_build(StorageSettings, doc.get("storage", {}), f"{source} [storage]"),
                         ring=_build(RingSettings, doc.get("ring_buffer", {}), f"{source} [ring_buffer]"),
                         simulation=simulation, knob=_build(KnobSettings, doc.get("knob", {}), f"{source} [knob]"))
    except RigConfigError as err:
        raise RigConfigError(f"{source}: {err}") from None


def check_exposure(exposure_us: float, rate_hz: float, camera: str) -> None:
    """Raise if an exposure does not fit in the trigger period (with readout margin)."""
    period_us = 1e6 / rate_hz
    if not 0 < exposure_us <= period_us - MIN_READOUT_GAP_US:
        raise RigConfigError(f"camera {camera!r}: exposure_us={exposure_us} must be > 0 and at most "
                             f"{period_us - MIN_READOUT_GAP_US:.0f} us at {rate_hz} Hz (period {period_us:.0f} us "
                             f"minus {MIN_READOUT_GAP_US:.0f} us readout)")


def validate(cfg: RigSettings) -> None:
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
    cfg.knob.check()
    if cfg.knob.source == "gpio" and cfg.trigger.backend != "pigpio":
        raise RigConfigError("[knob] source = \"gpio\" reads the knob through the trigger's pigpio connection: it "
                             f"needs [trigger] backend = \"pigpio\", got {cfg.trigger.backend!r}")
    if cfg.knob.source == "gpio" and cfg.trigger.gpio in (cfg.knob.touch_gpio, cfg.knob.encoder_a_gpio,
                                                          cfg.knob.encoder_b_gpio):
        raise RigConfigError(f"[knob] uses GPIO {cfg.trigger.gpio}, the trigger's output ([trigger] gpio)")
