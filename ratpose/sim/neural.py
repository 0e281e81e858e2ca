"""What the real-time system records on the neural clock: the knob log and tetrode spikes.

Units are tuned to the paw: to its speed (Gaussian tuning), to its movement direction in the lab's
horizontal plane (rectified cosine tuning, gated by speed), or not at all. Encoding units (the kinds
``velocity`` and ``supination``) follow a Poisson GLM of the covariates' recent history: their log rate
is the base rate's plus a filter over the last ``HISTORY_S`` of the paw's velocity along a preferred axis
(per ``VELOCITY_SCALE_MM_S``) or of the hand's supination (per ``SUPINATION_SCALE_DEG``), so their true
filters are known (``UnitModel.filter``). Spikes are an inhomogeneous Poisson process of the unit's rate,
drawn on a fine time grid.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..behaviour.encoding import COVARIATE_SCALES
from ..errors import InputError
from .scene import Scene

UNIT_KINDS = ("speed", "direction", "untuned")
#: kinds whose rate depends on the covariates' history (a GLM with a known filter), and their scales
HISTORY_KINDS = ("velocity", "supination")
ENCODING_KINDS = ("velocity", "supination", "untuned")
HISTORY_S = 0.3
VELOCITY_SCALE_MM_S = COVARIATE_SCALES["velocity"]     # the analysis' scale units: filters compare one to one
SUPINATION_SCALE_DEG = COVARIATE_SCALES["supination"]
_HISTORY_GRID_S = 1e-3
#: Knob encoder resolution (12-bit) and the real-time system's spike time grid.
KNOB_RESOLUTION_DEG = 360.0 / 4096
SPIKE_GRID_S = 1e-3


@dataclass(frozen=True)
class UnitModel:
    """A simulated sorted unit and its rate function (Hz) of paw velocity v (mm/s, world frame).

    speed:     base_hz + gain_hz * exp(-((|v| - preferred_speed_mm_s) / speed_width_mm_s)**2 / 2)
    direction: base_hz + gain_hz * max(0, cos(theta - preferred_direction_deg)) * (1 - exp(-|v_h| / speed_scale_mm_s)),
               v_h = v in the lab horizontal plane (lab x lateral, lab y towards the rat), theta its angle from lab x
    untuned:   base_hz
    velocity:  base_hz * exp(sum_tau filter(tau) * (v(t - tau) . axis) / VELOCITY_SCALE_MM_S)
    supination: base_hz * exp(sum_tau filter(tau) * supination(t - tau) / SUPINATION_SCALE_DEG)
               (filter: ``gain`` times a Gaussian bump at ``lag_s`` of width ``width_s``, summing to ``gain``)

    Attributes
    ----------
    unit_id : int
    tetrode : int
    kind : {"speed", "direction", "untuned", "velocity", "supination"}
    base_hz, gain_hz : float, Hz
        >= 0.
    preferred_speed_mm_s, speed_width_mm_s : float, mm/s
    preferred_direction_deg : float, deg
    speed_scale_mm_s : float, mm/s
        Widths and scales must be > 0.
    axis : tuple of float, (3,)
        velocity: the preferred direction (unit vector, world frame).
    gain : float
        velocity, supination: change of log rate for a sustained covariate of one scale unit.
    lag_s, width_s : float, s
        velocity, supination: where the filter peaks and its width (> 0), within HISTORY_S.

    Raises
    ------
    InputError
        On construction, if ``kind`` is unknown, a rate is < 0 or a width or scale is not > 0.
    """

    unit_id: int
    tetrode: int
    kind: str
    base_hz: float
    gain_hz: float = 0.0
    preferred_speed_mm_s: float = 0.0
    speed_width_mm_s: float = 1.0
    preferred_direction_deg: float = 0.0
    speed_scale_mm_s: float = 1.0
    axis: tuple[float, float, float] = (1.0, 0.0, 0.0)
    gain: float = 0.0
    lag_s: float = 0.1
    width_s: float = 0.04

    def __post_init__(self):
        object.__setattr__(self, "axis", tuple(float(a) for a in self.axis))   # a list from JSON, too
        if self.kind not in UNIT_KINDS + HISTORY_KINDS:
            raise InputError(f"unit {self.unit_id}: kind must be one of {UNIT_KINDS + HISTORY_KINDS}, "
                             f"got {self.kind!r}")
        if self.base_hz < 0 or self.gain_hz < 0 or self.speed_width_mm_s <= 0 or self.speed_scale_mm_s <= 0:
            raise InputError(f"unit {self.unit_id}: rates must be >= 0 and widths/scales > 0")
        if self.width_s <= 0 or not 0 <= self.lag_s <= HISTORY_S:
            raise InputError(f"unit {self.unit_id}: width_s must be > 0 and lag_s within 0..{HISTORY_S} s")

    def filter(self, lags_s: np.ndarray) -> np.ndarray:
        """The true filter's weight at each history lag (s), for lags spaced evenly from the first: the weights
        of covariate samples that far back, in log rate per scale unit (zero for the non-history kinds).

        Parameters
        ----------
        lags_s : numpy.ndarray, (n_lags,), s
            Evenly spaced lags >= 0 (e.g. bin centres of the history).

        Returns
        -------
        numpy.ndarray, (n_lags,)
        """
        lags_s = np.asarray(lags_s, float)
        if self.kind not in HISTORY_KINDS:
            return np.zeros(len(lags_s))
        grid = np.arange(0.0, HISTORY_S, _HISTORY_GRID_S)
        bump = np.exp(-0.5 * ((grid - self.lag_s) / self.width_s) ** 2)
        density = self.gain * bump / bump.sum() / _HISTORY_GRID_S      # per second of history
        step = float(lags_s[1] - lags_s[0]) if len(lags_s) > 1 else _HISTORY_GRID_S
        return np.interp(lags_s, grid, density, right=0.0) * step

    def rate(self, paw_velocity: np.ndarray, horizontal_basis: np.ndarray) -> np.ndarray:
        """Firing rate (T,) in Hz for paw velocities (T, 3); horizontal_basis (2, 3) = lab x, y in world.

        Parameters
        ----------
        paw_velocity : array_like, (T, 3), mm/s
        horizontal_basis : array_like, (2, 3)

        Returns
        -------
        numpy.ndarray, (T,), Hz
        """
        v = np.asarray(paw_velocity, dtype=np.float64)
        if self.kind == "speed":
            z = (np.linalg.norm(v, axis=1) - self.preferred_speed_mm_s) / self.speed_width_mm_s
            return self.base_hz + self.gain_hz * np.exp(-0.5 * z**2)
        if self.kind == "direction":
            vh = v @ np.asarray(horizontal_basis).T
            theta = np.arctan2(vh[:, 1], vh[:, 0])
            tuning = np.maximum(0.0, np.cos(theta - np.deg2rad(self.preferred_direction_deg)))
            gate = 1.0 - np.exp(-np.linalg.norm(vh, axis=1) / self.speed_scale_mm_s)
            return self.base_hz + self.gain_hz * tuning * gate
        return np.full(len(v), self.base_hz)

    def to_dict(self) -> dict:
        return asdict(self)


def _tuning_draws(kind: str, rng: np.random.Generator) -> dict:
    """Random tuning parameters of one unit of ``kind`` (none for untuned)."""
    if kind == "speed":
        return dict(gain_hz=float(rng.uniform(30.0, 60.0)), preferred_speed_mm_s=float(rng.uniform(60.0, 150.0)),
                    speed_width_mm_s=float(rng.uniform(20.0, 50.0)))
    if kind == "direction":
        return dict(gain_hz=float(rng.uniform(30.0, 60.0)), preferred_direction_deg=float(rng.uniform(0, 360)),
                    speed_scale_mm_s=float(rng.uniform(20.0, 50.0)))
    if kind in HISTORY_KINDS:
        axis = rng.normal(size=3)
        return dict(gain=float(rng.uniform(0.5, 1.0)) * (1 if kind == "velocity" else -1),
                    lag_s=float(rng.uniform(0.06, 0.2)), width_s=float(rng.uniform(0.03, 0.06)),
                    axis=tuple(float(a) for a in axis / np.linalg.norm(axis)))
    return {}


def _cycled_units(n_units: int, seed: int, kinds: tuple[str, ...], base_hz: tuple[float, float]
                  ) -> tuple[UnitModel, ...]:
    """``n_units`` units cycling through ``kinds``, two per tetrode, base rates uniform in ``base_hz``."""
    if n_units < 0:
        raise InputError(f"n_units must be >= 0, got {n_units}")
    rng = np.random.default_rng(seed)
    units = []
    for i in range(n_units):
        kind = kinds[i % len(kinds)]
        common = dict(unit_id=i + 1, tetrode=i // 2 + 1, kind=kind, base_hz=float(rng.uniform(*base_hz)))
        units.append(UnitModel(**common, **_tuning_draws(kind, rng)))
    return tuple(units)


def default_units(n_units: int = 6, seed: int = 0) -> tuple[UnitModel, ...]:
    """``n_units`` units cycling through speed, direction and untuned kinds, two units per tetrode.

    Parameters
    ----------
    n_units : int
        Must be >= 0.
    seed : int
        Seed of their random parameters.

    Returns
    -------
    tuple of UnitModel

    Raises
    ------
    InputError
        If ``n_units`` < 0.
    """
    return _cycled_units(n_units, seed, UNIT_KINDS, (2.0, 6.0))


def encoding_units(n_units: int = 30, seed: int = 0) -> tuple[UnitModel, ...]:
    """``n_units`` units, a third tuned to the paw's velocity, a third to supination, a third untuned (in that
    order, cycling), with random filters (gain 0.5-1 per scale unit, peaking 60-200 ms back), two per tetrode.

    Parameters
    ----------
    n_units : int
        Must be >= 0.
    seed : int

    Returns
    -------
    tuple of UnitModel
    """
    return _cycled_units(n_units, seed, ENCODING_KINDS, (5.0, 15.0))


def _history_drives(units, scene: Scene, t: np.ndarray) -> dict[int, np.ndarray]:
    """unit_id -> log-rate change at times t of each history unit: its filter over the covariates' past, on a
    1 ms grid, interpolated to t."""
    from ..behaviour.forelimb import supination
    from .scene import BODYPARTS

    grid = np.arange(t.min() - HISTORY_S, t.max() + 2 * _HISTORY_GRID_S, _HISTORY_GRID_S)
    velocity = scene.paw_velocity(grid)
    kinds = {u.kind for u in units}
    roll = None
    if "supination" in kinds:
        points = scene.keypoints(grid)
        part = {name: points[:, i] for i, name in enumerate(BODYPARTS)}
        roll = supination(part["wrist"], part["paw"], part["digit1"], part["digit2"], scene.up)
    weights_lags = np.arange(0.0, HISTORY_S, _HISTORY_GRID_S)
    drives = {}
    for u in units:
        if u.kind not in HISTORY_KINDS:
            continue
        covariate = (velocity @ np.asarray(u.axis) / VELOCITY_SCALE_MM_S if u.kind == "velocity"
                     else np.nan_to_num(roll) / SUPINATION_SCALE_DEG)
        drive = np.convolve(covariate, u.filter(weights_lags))[:len(grid)]
        drives[u.unit_id] = np.interp(t, grid, drive)
    return drives


def unit_rates(units, scene: Scene, t: np.ndarray) -> np.ndarray:
    """Rates (n_units, T) in Hz of every unit at neural times t (s).

    Parameters
    ----------
    units : sequence of UnitModel
    scene : Scene
    t : array_like, (T,), s

    Returns
    -------
    numpy.ndarray, (n_units, T), Hz
    """
    t = np.atleast_1d(np.asarray(t, dtype=np.float64))
    if not units:
        return np.zeros((0, len(t)))
    velocity = scene.paw_velocity(t)
    drives = _history_drives(units, scene, t) if any(u.kind in HISTORY_KINDS for u in units) else {}
    return np.stack([u.base_hz * np.exp(drives[u.unit_id]) if u.unit_id in drives
                     else u.rate(velocity, scene.horizontal_basis) for u in units])


def simulate_spikes(units, scene: Scene, t_start: float, t_end: float, rng: np.random.Generator,
                    grid_s: float = SPIKE_GRID_S) -> tuple[np.ndarray, np.ndarray]:
    """Inhomogeneous Poisson spikes in [t_start, t_end): (unit_id, time_s) sorted by time.

    The rate is evaluated at the centre of each ``grid_s`` bin; spikes fall uniformly in their bin.

    Parameters
    ----------
    units : sequence of UnitModel
    scene : Scene
    t_start, t_end : float, s
    rng : numpy.random.Generator
    grid_s : float, s

    Returns
    -------
    unit_id : numpy.ndarray, (n_spikes,) int64
    time_s : numpy.ndarray, (n_spikes,), s
    """
    edges = np.arange(t_start, t_end, grid_s)
    rates = unit_rates(units, scene, edges + grid_s / 2)
    counts = rng.poisson(rates * grid_s)
    unit_index, bin_index = np.nonzero(counts)
    n = counts[unit_index, bin_index]
    times = np.repeat(edges[bin_index], n) + rng.uniform(0.0, grid_s, int(n.sum()))
    ids = np.repeat(np.array([u.unit_id for u in units], dtype=np.int64)[unit_index], n)
    keep = times < t_end
    order = np.argsort(times[keep], kind="stable")
    return ids[keep][order], times[keep][order]


def knob_events(touch_intervals: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The touch_on/touch_off event log (times, names) of (n, 2) touch intervals (NaN off = still touching)."""
    times = np.asarray(touch_intervals, dtype=np.float64).ravel()
    names = ["touch_on", "touch_off"] * len(touch_intervals)
    keep = np.isfinite(times)
    return times[keep], [n for n, k in zip(names, keep) if k]


def knob_angle_log(scene: Scene, t_start: float, t_end: float, rate_hz: float = 100.0,
                   resolution_deg: float = KNOB_RESOLUTION_DEG) -> tuple[np.ndarray, np.ndarray]:
    """The encoder's angle trace (time_s, angle_deg) sampled at ``rate_hz``, quantised to ``resolution_deg``."""
    if not rate_hz > 0 or not resolution_deg > 0:
        raise InputError(f"rate_hz and resolution_deg must be > 0, got {rate_hz}, {resolution_deg}")
    times = np.arange(t_start, t_end, 1.0 / rate_hz)
    return times, np.round(scene.knob_angle(times) / resolution_deg) * resolution_deg
