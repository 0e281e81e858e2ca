"""Trigger and camera clock simulator: what the Pi logs and what each camera delivers, with truth.

Hardware model (see docs/session-format.md "Clocks"):
- The Pi sends ``n_pulses`` trigger pulses at ``rate_hz``; each rising edge is logged as a pigpio tick
  (integer microseconds, unsigned 32-bit, wraps every 2**32 us). The edge time jitters by a few to tens
  of microseconds around the nominal schedule, and the tick records the actual edge, so the neural-clock
  time of pulse i is exactly its unwrapped tick / 1e6.
- With ``start_pattern`` the train opens with a few pulses at irregular intervals and a pause, which makes
  the pulse of any camera's first frame identifiable even without jitter.
- A primary camera is triggered by every pulse; a secondary is triggered by the primary's strobe, so it
  only sees pulses the primary exposed (delayed by ``strobe_delay_us``). A camera exposes nothing before
  it is armed, misses a trigger with probability ``miss_rate`` (no exposure, FrameID does not advance) and
  loses an exposed frame in transfer with probability ``loss_rate`` (FrameID advances, nothing delivered).
- Camera timestamps: ``clock_offset_ns + exposure_time * 1e9 * (1 + drift_ppm * 1e-6)`` plus Gaussian noise.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

TICK_WRAP = 2**32

# Start pattern: intervals (in trigger periods) of the first pulses, then a pause. None is a whole number
# of periods, so no run of missed triggers in the regular train can mimic any of them.
_START_INTERVALS = np.array([2.5, 1.5, 3.5, 1.25, 2.75, 4.5, 1.75, 20.5])


@dataclass(frozen=True)
class CameraClockSettings:
    """How one camera is triggered and how its clock behaves: the one clock model of the simulator and of a
    simulated rig (rig.toml ``[simulation.camera.NAME]``, where name and role come from ``[[camera]]``).

    ``strobe_delay_us``: how much later a secondary's trigger arrives than the primary's exposure start
    (the opto-isolated strobe output's propagation, a few µs); a primary ignores it.
    """

    name: str = ""
    role: str = "primary"
    clock_offset_ns: int = 5_000_000_000
    drift_ppm: float = 20.0
    loss_rate: float = 0.0
    miss_rate: float = 0.0
    armed_after_pulses: int = 0
    strobe_delay_us: float = 2.0
    first_frame_id: int = 0
    timestamp_jitter_ns: float = 100.0


@dataclass
class CameraFrames:
    """What one camera delivered (frame_id, camera_ts_ns) and the truth behind it."""

    frame_id: np.ndarray
    camera_ts_ns: np.ndarray
    pulse_index: np.ndarray
    lost_pulses: np.ndarray
    missed_pulses: np.ndarray


@dataclass
class ClockTruth:
    """The Pi's trigger log (uint32 ticks), true pulse times on the neural clock, and every camera."""

    tick_us: np.ndarray
    pulse_time_s: np.ndarray
    cameras: dict[str, CameraFrames]


def _pulse_offsets_us(n_pulses: int, rate_hz: float, jitter_us: float, start_pattern: bool,
                      rng: np.random.Generator) -> np.ndarray:
    """Integer microsecond times of every pulse, relative to the first, strictly increasing."""
    period_us = 1e6 / rate_hz
    intervals = np.full(max(n_pulses - 1, 0), 1.0)
    if start_pattern:
        k = min(len(_START_INTERVALS), len(intervals))
        intervals[:k] = _START_INTERVALS[:k]
    nominal = np.concatenate([[0.0], np.cumsum(intervals)]) * period_us
    jitter = np.clip(rng.normal(0.0, jitter_us, n_pulses), -0.3 * period_us, 0.3 * period_us)
    jitter[0] = 0.0
    offsets = np.rint(nominal + jitter).astype(np.int64)
    if n_pulses > 1 and np.any(np.diff(offsets) <= 0):
        raise InputError(f"rate_hz={rate_hz} is too high for microsecond ticks")
    return offsets


def _simulate_camera(cfg: CameraClockSettings, triggered: np.ndarray, pulse_time_s: np.ndarray,
                     rng: np.random.Generator) -> tuple[CameraFrames, np.ndarray]:
    """One camera's delivered frames and truth, plus its per-pulse exposure mask."""
    n = len(pulse_time_s)
    armed = np.arange(n) >= cfg.armed_after_pulses
    missed = rng.random(n) < cfg.miss_rate
    exposed = triggered & armed & ~missed
    lost = exposed & (rng.random(n) < cfg.loss_rate)
    delivered = exposed & ~lost

    frame_id_of_exposure = cfg.first_frame_id + np.cumsum(exposed) - 1
    pulse_index = np.flatnonzero(delivered).astype(np.int64)
    delay_s = cfg.strobe_delay_us * 1e-6 if cfg.role == "secondary" else 0.0
    exposure_s = pulse_time_s[pulse_index] + delay_s
    clock_ns = exposure_s * 1e9 * (1.0 + cfg.drift_ppm * 1e-6)
    clock_ns += rng.normal(0.0, cfg.timestamp_jitter_ns, len(pulse_index))
    camera_ts_ns = np.int64(cfg.clock_offset_ns) + np.rint(clock_ns).astype(np.int64)
    frames = CameraFrames(
        frame_id=frame_id_of_exposure[pulse_index].astype(np.int64),
        camera_ts_ns=camera_ts_ns,
        pulse_index=pulse_index,
        lost_pulses=np.flatnonzero(lost).astype(np.int64),
        missed_pulses=np.flatnonzero(~exposed).astype(np.int64),
    )
    return frames, exposed


def _check_config(cfg: CameraClockSettings) -> None:
    if cfg.role not in ("primary", "secondary"):
        raise InputError(f"camera {cfg.name!r}: role must be 'primary' or 'secondary', got {cfg.role!r}")
    for field_name in ("loss_rate", "miss_rate"):
        value = getattr(cfg, field_name)
        if not 0.0 <= value < 1.0:
            raise InputError(f"camera {cfg.name!r}: {field_name} must be in [0, 1), got {value}")
    if cfg.armed_after_pulses < 0:
        raise InputError(f"camera {cfg.name!r}: armed_after_pulses must be >= 0")


def simulate_clocks(n_pulses: int, rate_hz: float, cameras: Sequence[CameraClockSettings], *,
                    start_tick_us: int = 0, jitter_us: float = 20.0, start_pattern: bool = True,
                    seed: int = 0) -> ClockTruth:
    """Simulate the Pi's trigger log and what every camera delivers (secondaries follow the first primary).

    Missed pulses of a camera include pulses before it was armed and, for a secondary, pulses its
    primary did not expose (it never got a strobe for them).
    """
    if n_pulses < 1:
        raise InputError(f"n_pulses must be >= 1, got {n_pulses}")
    if not rate_hz > 0:
        raise InputError(f"rate_hz must be > 0, got {rate_hz}")
    if not 0 <= start_tick_us < TICK_WRAP:
        raise InputError(f"start_tick_us must be in [0, 2**32), got {start_tick_us}")
    names = [c.name for c in cameras]
    if len(set(names)) != len(names):
        raise InputError(f"camera names must be unique, got {names}")
    for cfg in cameras:
        _check_config(cfg)
    primaries = [c for c in cameras if c.role == "primary"]
    if len(primaries) < len(cameras) and not primaries:
        raise InputError("a secondary camera needs a primary camera to strobe it")

    rng = np.random.default_rng(seed)
    unwrapped_us = int(start_tick_us) + _pulse_offsets_us(n_pulses, rate_hz, jitter_us, start_pattern, rng)
    tick_us = (unwrapped_us % TICK_WRAP).astype(np.uint32)
    pulse_time_s = unwrapped_us / 1e6

    every_pulse = np.ones(n_pulses, dtype=bool)
    out: dict[str, CameraFrames] = {}
    strobe = None
    for cfg in primaries + [c for c in cameras if c.role == "secondary"]:
        triggered = every_pulse if cfg.role == "primary" else strobe
        out[cfg.name], exposed = _simulate_camera(cfg, triggered, pulse_time_s, rng)
        if strobe is None:
            strobe = exposed
    return ClockTruth(tick_us=tick_us, pulse_time_s=pulse_time_s,
                      cameras={name: out[name] for name in names})
