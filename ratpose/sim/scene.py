"""3D ground truth of the knob task: a forelimb reaching, grasping and supinating a knob.

Everything is generated in the lab frame (origin at the knob's front-face centre, x lateral, y towards
the rat, z up; millimetres) and returned in the world frame (camera 0) through ``lab_to_world``.
A trial is: idle, reach (minimum-jerk, bell-shaped speed, lifted in an arc, the digits opening and
closing again), hold, supination turn (hand and knob rotate together about the knob axis), hold,
withdrawal (the knob springs back); trials follow each other. Between and during them the paw fidgets
(a few sinusoids of ~1 mm at 1-6 Hz). The ranges are a rat's, not a gentle robot's: reaches of
~20 mm in 80-160 ms (peak speed several hundred mm/s, accelerations of thousands of mm/s^2) and the
paw-digit segments flexing by ~1 mm. Evaluation is vectorised over time.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from ratpose.behaviour import KnobModel

from ..errors import InputError

BODYPARTS = ("wrist", "paw", "digit1", "digit2", "knob_marker")
#: Hand keypoint offsets from the paw centre (lab frame, before the supination roll), mm.
HAND_OFFSETS_LAB = np.array([[0.0, 9.0, -2.0], [0.0, 0.0, 0.0], [-3.5, -5.0, 1.0], [3.5, -5.0, 1.0]])
KNOB_RADIUS_MM = 10.0
TOUCH_MARGIN_MM = 3.0
_REST_LAB = np.array([0.0, 21.0, -11.0])
_GRASP_LAB = np.array([0.0, 6.0, -1.0])
#: Trial phases, in order; each trial row of ``Scene.bounds`` holds their start times + the trial end.
PHASES = ("idle", "reach", "hold", "turn", "hold_turned", "withdraw")


def _minimum_jerk(tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-jerk profile s(tau) on [0, 1] (clipped outside) and its derivative ds/dtau."""
    tau = np.clip(tau, 0.0, 1.0)
    s = tau**3 * (10 - 15 * tau + 6 * tau**2)
    ds = 30 * tau**2 * (1 - tau) ** 2
    return s, ds


def _rotate_about_y(v: np.ndarray, angle_rad: np.ndarray) -> np.ndarray:
    """Rotate lab vectors v (..., 3) about +y by angle (...,), the knob's turning sense (z towards x)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    x, y, z = np.broadcast_arrays(v[..., 0], v[..., 1], v[..., 2], angle_rad)[:3]
    return np.stack([c * x + s * z, y, c * z - s * x], axis=-1)


def _d_rotate_about_y(v: np.ndarray, angle_rad: np.ndarray) -> np.ndarray:
    """Derivative of ``_rotate_about_y(v, a)`` with respect to a."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    x, z = np.broadcast_arrays(v[..., 0], v[..., 2], angle_rad)[:2]
    return np.stack([-s * x + c * z, np.zeros_like(x), -s * z - c * x], axis=-1)


@dataclass(frozen=True)
class Scene:
    """A deterministic multi-trial scene. Arrays are plain so the scene round-trips through npz.

    Attributes
    ----------
    bounds : numpy.ndarray, (n_trials, 7), s
        Start of each phase in PHASES, then the trial end (= next trial start).
    rest : numpy.ndarray, (n_trials + 1, 3), mm
    grasp : numpy.ndarray, (n_trials, 3), mm
        Lab positions of the paw.
    turn_deg : numpy.ndarray, (n_trials,), deg
        Knob turn.
    return_s : numpy.ndarray, (n_trials,), s
        Knob spring-back duration.
    jitter_amp_mm, jitter_hz, jitter_phase : numpy.ndarray, (3, 2)
        The paw's fidgeting (mm, Hz, rad).
    lift_mm : numpy.ndarray, (n_trials,), mm
        Height of the reach's and the withdrawal's arc.
    aperture : numpy.ndarray, (n_trials,)
        How far the digits spread mid-reach (fraction of their lateral offset), closing again on the knob.
    lab_to_world_R : numpy.ndarray, (3, 3)
    lab_to_world_t : numpy.ndarray, (3,), mm
        X_world = R X_lab + t.
    knob_radius_mm : float, mm
    touch_margin_mm : float, mm
        The paw touches the knob within knob_radius_mm + touch_margin_mm of its centre.
    roll_jitter_deg, roll_jitter_hz, roll_jitter_phase : numpy.ndarray, (k,)
        The hand's own small pronation/supination movements about the knob axis (deg, Hz, rad), on top of
        the turns; none by default (``make_scene(roll_jitter_deg=...)``).
    """

    bounds: np.ndarray
    rest: np.ndarray
    grasp: np.ndarray
    turn_deg: np.ndarray
    return_s: np.ndarray
    jitter_amp_mm: np.ndarray
    jitter_hz: np.ndarray
    jitter_phase: np.ndarray
    lift_mm: np.ndarray
    aperture: np.ndarray
    lab_to_world_R: np.ndarray = field(default_factory=lambda: np.eye(3))
    lab_to_world_t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    knob_radius_mm: float = KNOB_RADIUS_MM
    touch_margin_mm: float = TOUCH_MARGIN_MM
    roll_jitter_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    roll_jitter_hz: np.ndarray = field(default_factory=lambda: np.zeros(0))
    roll_jitter_phase: np.ndarray = field(default_factory=lambda: np.zeros(0))

    # -- geometry in the world frame ------------------------------------------------------------
    def to_world(self, lab_points: np.ndarray) -> np.ndarray:
        """Lab points (..., 3) in the world frame.

        Parameters
        ----------
        lab_points : numpy.ndarray, (..., 3), mm

        Returns
        -------
        numpy.ndarray, (..., 3), mm
        """
        return lab_points @ self.lab_to_world_R.T + self.lab_to_world_t

    @property
    def knob_center(self) -> np.ndarray:
        """Knob front-face centre, world mm."""
        return self.lab_to_world_t.copy()

    @property
    def knob_axis(self) -> np.ndarray:
        """Knob rotation axis (unit, world), pointing towards the rat."""
        return self.lab_to_world_R[:, 1].copy()

    @property
    def knob_zero_direction(self) -> np.ndarray:
        """Direction (unit, world) from the knob centre to the marker at angle 0 (lab up)."""
        return self.lab_to_world_R[:, 2].copy()

    @property
    def up(self) -> np.ndarray:
        """The lab's vertical (unit, world)."""
        return self.lab_to_world_R[:, 2].copy()

    def knob(self) -> KnobModel:
        """The true knob geometry, as a lab would measure it and enter it by hand."""
        return KnobModel(self.knob_center, self.knob_radius_mm, self.knob_axis)

    @property
    def horizontal_basis(self) -> np.ndarray:
        """(2, 3) world unit vectors spanning the lab's horizontal plane: lateral (x), towards rat (y)."""
        return self.lab_to_world_R[:, :2].T.copy()

    @property
    def touch_distance_mm(self) -> float:
        """The paw touches the knob when it is closer than this to the knob centre."""
        return self.knob_radius_mm + self.touch_margin_mm

    def knob_rim(self, angle_deg: np.ndarray) -> np.ndarray:
        """World points (..., 3) on the knob rim at the given angles (deg).

        Parameters
        ----------
        angle_deg : array_like, (...), deg
            0 is lab up.

        Returns
        -------
        numpy.ndarray, (..., 3), mm
        """
        a = np.deg2rad(np.asarray(angle_deg, dtype=np.float64))
        lab = self.knob_radius_mm * np.stack([np.sin(a), np.zeros_like(a), np.cos(a)], axis=-1)
        return self.to_world(lab)

    # -- time evaluation ------------------------------------------------------------------------
    def _phase(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Trial index, phase index (0..5, 6 after the last trial), phase start and duration."""
        k = np.clip(np.searchsorted(self.bounds[:, 0], t, side="right") - 1, 0, len(self.bounds) - 1)
        b = self.bounds[k]
        phase = np.sum(t[:, None] >= b[:, 1:], axis=1)
        edges = np.concatenate([b, b[:, -1:] + 1.0], axis=1)
        start = np.take_along_axis(edges, phase[:, None], 1)[:, 0]
        duration = np.take_along_axis(edges, phase[:, None] + 1, 1)[:, 0] - start
        return k, phase, start, duration

    def _roll_and_carrier(self, t: np.ndarray):
        """Hand roll (rad), paw position and velocity (lab), knob angle (deg) and the digits' spread factor."""
        k, phase, start, duration = self._phase(t)
        s, ds = _minimum_jerk((t - start) / duration)
        ds = ds / duration
        delta = np.deg2rad(self.turn_deg[k])
        roll_from = np.select([phase == 4, phase == 5], [delta, delta], 0.0)
        roll_to = np.select([phase == 3, phase == 4], [delta, delta], 0.0)
        roll = roll_from + (roll_to - roll_from) * s
        roll_rate = (roll_to - roll_from) * ds
        if len(self.roll_jitter_deg):
            arg = 2 * np.pi * self.roll_jitter_hz[None] * t[:, None] + self.roll_jitter_phase[None]
            roll = roll + np.deg2rad(np.sum(self.roll_jitter_deg[None] * np.sin(arg), axis=1))
            roll_rate = roll_rate + np.deg2rad(np.sum(self.roll_jitter_deg[None] * 2 * np.pi * self.roll_jitter_hz[None]
                                                      * np.cos(arg), axis=1))
        rest, rest_next, grasp = self.rest[k], self.rest[k + 1], self.grasp[k]
        turned = _rotate_about_y(grasp, delta)
        p_from = np.select([phase[:, None] == i for i in (1, 2, 3, 4, 5, 6)],
                           [rest, grasp, grasp, turned, turned, rest_next], rest)
        p_to = np.select([phase[:, None] == i for i in (1, 2, 3, 4, 5, 6)],
                         [grasp, grasp, grasp, turned, rest_next, rest_next], rest)
        pos = p_from + (p_to - p_from) * s[:, None]
        vel = (p_to - p_from) * ds[:, None]
        moving = np.isin(phase, (1, 5))  # reach and withdrawal arc upwards (lab +z)
        bump = np.where(moving, np.sin(np.pi * s), 0.0)
        pos[:, 2] += self.lift_mm[k] * bump
        vel[:, 2] += np.where(moving, self.lift_mm[k] * np.pi * np.cos(np.pi * s) * ds, 0.0)
        turning = phase == 3
        pos[turning] = _rotate_about_y(grasp[turning], roll[turning])
        vel[turning] = _d_rotate_about_y(grasp[turning], roll[turning]) * roll_rate[turning, None]
        arg = 2 * np.pi * self.jitter_hz[None] * t[:, None, None] + self.jitter_phase[None]
        pos += np.sum(self.jitter_amp_mm[None] * np.sin(arg), axis=2)
        vel += np.sum(self.jitter_amp_mm[None] * 2 * np.pi * self.jitter_hz[None] * np.cos(arg), axis=2)
        knob = np.where(np.isin(phase, (3, 4)), roll, 0.0)
        back, _ = _minimum_jerk((t - self.bounds[k, 5]) / self.return_s[k])
        knob = np.where(phase == 5, delta * (1 - back), knob)
        spread = 1.0 + self.aperture[k] * np.where(phase == 1, bump, 0.0)
        return roll, pos, vel, np.rad2deg(knob), spread

    def keypoints(self, t: np.ndarray) -> np.ndarray:
        """World positions (T, len(BODYPARTS), 3) of every keypoint at times t (s).

        Parameters
        ----------
        t : array_like, (T,), s

        Returns
        -------
        numpy.ndarray, (T, len(BODYPARTS), 3), mm
        """
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        roll, paw, _, knob_deg, spread = self._roll_and_carrier(t)
        offsets = np.repeat(HAND_OFFSETS_LAB[None], len(t), axis=0)
        offsets[:, 2:, :2] *= spread[:, None, None]  # the digits open (spread and extend)
        hand = paw[:, None, :] + _rotate_about_y(offsets, roll[:, None])
        lab_marker = self.knob_radius_mm * np.stack(
            [np.sin(np.deg2rad(knob_deg)), np.zeros_like(t), np.cos(np.deg2rad(knob_deg))], axis=-1)
        return self.to_world(np.concatenate([hand, lab_marker[:, None]], axis=1))

    def paw_velocity(self, t: np.ndarray) -> np.ndarray:
        """World velocity (T, 3) of the paw keypoint, mm/s (analytic).

        Parameters
        ----------
        t : array_like, (T,), s

        Returns
        -------
        numpy.ndarray, (T, 3), mm/s
        """
        t = np.atleast_1d(np.asarray(t, dtype=np.float64))
        return self._roll_and_carrier(t)[2] @ self.lab_to_world_R.T

    def knob_angle(self, t: np.ndarray) -> np.ndarray:
        """Knob angle (deg, 0 at home) at times t.

        Parameters
        ----------
        t : array_like, (T,), s

        Returns
        -------
        numpy.ndarray, (T,), deg
        """
        return self._roll_and_carrier(np.atleast_1d(np.asarray(t, dtype=np.float64)))[3]

    def paw_knob_distance(self, t: np.ndarray) -> np.ndarray:
        """Distance (mm) from the paw keypoint to the knob centre.

        Parameters
        ----------
        t : array_like, (T,), s

        Returns
        -------
        numpy.ndarray, (T,), mm
        """
        paw = self.keypoints(t)[:, BODYPARTS.index("paw")]
        return np.linalg.norm(paw - self.knob_center, axis=1)

    def touch_intervals(self, t_start: float, t_end: float, resolution_s: float = 1e-3) -> np.ndarray:
        """(n, 2) [touch_on, touch_off] times where the paw is within ``touch_distance_mm`` of the knob centre.

        Crossings are linearly interpolated on a ``resolution_s`` grid; touch_off is NaN for a touch still going
        on at ``t_end`` (touch_on is ``t_start`` for one already going on).

        Parameters
        ----------
        t_start, t_end : float, s
        resolution_s : float, s

        Returns
        -------
        numpy.ndarray, (n, 2), s
        """
        grid = np.arange(t_start, t_end + resolution_s / 2, resolution_s)
        excess = self.paw_knob_distance(grid) - self.touch_distance_mm
        inside = excess < 0
        change = np.flatnonzero(np.diff(inside.astype(np.int8)))
        frac = excess[change] / (excess[change] - excess[change + 1])
        times = grid[change] + frac * resolution_s
        if inside[0]:
            times = np.concatenate([[grid[0]], times])
        if inside[-1]:
            times = np.concatenate([times, [np.nan]])
        return times.reshape(-1, 2)

    # -- persistence ----------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every field as a numpy array (for npz)."""
        return {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_arrays(cls, arrays: dict) -> "Scene":
        """Inverse of to_arrays.

        Parameters
        ----------
        arrays : dict of str to numpy.ndarray
            Every field by name (e.g. an npz's contents).

        Returns
        -------
        Scene
        """
        kw = {f.name: np.asarray(arrays[f.name]) for f in fields(cls) if f.name in arrays}  # older: no jitter
        kw["knob_radius_mm"] = float(kw["knob_radius_mm"])
        kw["touch_margin_mm"] = float(kw["touch_margin_mm"])
        return cls(**kw)


def make_scene(t_start: float, t_end: float, seed: int = 0, lab_to_world_R: np.ndarray | None = None,
               lab_to_world_t: np.ndarray | None = None, roll_jitter_deg: float = 0.0) -> Scene:
    """Random trials (deterministic per ``seed``) covering [t_start, t_end] seconds.

    Parameters
    ----------
    t_start, t_end : float, s
        Finite, t_start < t_end.
    seed : int
    lab_to_world_R : numpy.ndarray, (3, 3), optional
    lab_to_world_t : numpy.ndarray, (3,), optional, mm
        The lab-to-world transform (default identity).
    roll_jitter_deg : float, deg
        Scale (about the std) of the hand's own roll movements (8 sinusoids at 0.5-10 Hz); 0: none.

    Returns
    -------
    Scene

    Raises
    ------
    InputError
        If t_start is not finite or t_end <= t_start.
    """
    if not np.isfinite(t_start) or not t_end > t_start:
        raise InputError(f"need finite t_start < t_end, got t_start={t_start}, t_end={t_end}")
    rng = np.random.default_rng(seed)
    durations_lo = np.array([0.25, 0.08, 0.08, 0.30, 0.06, 0.12])
    durations_hi = np.array([0.70, 0.16, 0.20, 0.55, 0.15, 0.25])
    n_trials = int(np.ceil((t_end - t_start) / (durations_lo.sum()))) + 1
    durations = rng.uniform(durations_lo, durations_hi, size=(n_trials, 6))
    starts = t_start + np.concatenate([[0.0], np.cumsum(durations.sum(axis=1))])
    n_trials = max(int(np.searchsorted(starts, t_end, side="left")), 1)  # trials starting before t_end
    durations = durations[:n_trials]
    bounds = starts[:n_trials, None] + np.concatenate([np.zeros((n_trials, 1)),
                                                       np.cumsum(durations, axis=1)], axis=1)
    rest = _REST_LAB + rng.normal(0.0, [1.5, 1.5, 1.0], size=(n_trials + 1, 3))
    grasp = _GRASP_LAB + rng.normal(0.0, 0.6, size=(n_trials, 3))
    turn_deg = rng.uniform(30.0, 70.0, size=n_trials)
    return_s = np.minimum(rng.uniform(0.15, 0.3, size=n_trials), durations[:, 5])
    jitter = ({"roll_jitter_deg": roll_jitter_deg * rng.uniform(0.5, 1.0, 8) / np.sqrt(8),
               "roll_jitter_hz": rng.uniform(0.5, 10.0, 8), "roll_jitter_phase": rng.uniform(0, 2 * np.pi, 8)}
              if roll_jitter_deg else {})
    return Scene(bounds=bounds, rest=rest, grasp=grasp, turn_deg=turn_deg, return_s=return_s, **jitter,
                 jitter_amp_mm=rng.uniform(0.2, 0.8, size=(3, 2)), jitter_hz=rng.uniform(1.0, 6.0, size=(3, 2)),
                 jitter_phase=rng.uniform(0, 2 * np.pi, size=(3, 2)),
                 lift_mm=rng.uniform(3.0, 6.0, size=n_trials), aperture=rng.uniform(0.3, 0.6, size=n_trials),
                 lab_to_world_R=np.eye(3) if lab_to_world_R is None else np.asarray(lab_to_world_R, float),
                 lab_to_world_t=np.zeros(3) if lab_to_world_t is None else np.asarray(lab_to_world_t, float))
