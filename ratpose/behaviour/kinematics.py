"""Kinematics of triangulated pose on the neural clock: interpolation, speed, direction, events.

Pose arrives as ``times_s`` (n_frames,), sorted seconds on the neural clock with gaps where frames
were dropped, and ``points3d`` (n_frames, ..., 3) in mm with NaN where a point was not triangulated.
Every function here is gap-aware: nothing is interpolated or differentiated across two frames that
are more than ``max_gap_s`` apart. By default ``max_gap_s`` is 2.5 median frame intervals, so one
dropped frame is bridged and two are not.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from ..errors import DataError

if TYPE_CHECKING:
    from .knob import KnobModel

DEFAULT_MAX_GAP_FRAMES = 2.5
POSE_AT_CHUNK = 65536  # queries per block: keeps temporaries in cache
EVENT_NAMES = ("reach_onset", "paw_arrival", "touch", "turn_start", "turn_end", "release")


def as_times(values, name: str, *, strictly_increasing: bool = True) -> np.ndarray:
    """Validate a 1-D array of finite, sorted times (s) and return it as float64.

    Parameters
    ----------
    values : array_like, (n,), s
    name : str
        The argument's name, for the error message.
    strictly_increasing : bool
        Require strictly increasing times; False allows repeats (sorted only).

    Returns
    -------
    numpy.ndarray, (n,) float64, s

    Raises
    ------
    DataError
        If the times are not 1-D, not finite, or not (strictly) increasing.
    """
    times = np.asarray(values, dtype=np.float64)
    if times.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {times.shape}")
    if not np.isfinite(times).all():
        raise DataError(f"{name} must be finite (found NaN/inf)")
    steps = np.diff(times)
    bad = steps <= 0 if strictly_increasing else steps < 0
    if bad.any():
        order = "strictly increasing" if strictly_increasing else "sorted"
        raise DataError(f"{name} must be {order} (first violation at index {int(np.argmax(bad)) + 1})")
    return times


def as_intervals(values, name: str = "touch_intervals") -> np.ndarray:
    """Validate (n, 2) [start, end] intervals: finite, start <= end, sorted, non-overlapping.

    Parameters
    ----------
    values : array_like, (n, 2), s
    name : str
        The argument's name, for the error message.

    Returns
    -------
    numpy.ndarray, (n, 2) float64, s
        (0, 2) when ``values`` is empty.

    Raises
    ------
    DataError
        If the intervals are not (n, 2), not finite, end before they start, or overlap or are unsorted.
    """
    intervals = np.asarray(values, dtype=np.float64)
    if intervals.size == 0:
        return np.empty((0, 2))
    if intervals.ndim != 2 or intervals.shape[1] != 2:
        raise DataError(f"{name} must have shape (n, 2), got {intervals.shape}")
    if not np.isfinite(intervals).all():
        raise DataError(f"{name} must be finite")
    if (intervals[:, 1] < intervals[:, 0]).any():
        raise DataError(f"{name}: an interval ends before it starts "
                        f"(row {int(np.argmax(intervals[:, 1] < intervals[:, 0]))})")
    if (intervals[1:, 0] < intervals[:-1, 1]).any():
        raise DataError(f"{name} must be sorted and non-overlapping")
    return intervals


def interval_index(times_s: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Index of the [start, end] interval containing each time, or -1 (intervals from as_intervals)."""
    times_s = np.asarray(times_s, dtype=np.float64)
    idx = np.searchsorted(intervals[:, 0], times_s, side="right") - 1
    inside = idx >= 0
    inside[inside] = times_s[inside] <= intervals[idx[inside], 1]
    return np.where(inside, idx, -1)


def frame_gap_limit(pose_times_s: np.ndarray, max_gap_s: float | None) -> float:
    """The largest frame interval bridged: ``max_gap_s`` (must be > 0), or None: 2.5 median frame intervals."""
    if max_gap_s is None:
        if pose_times_s.size < 2:
            return 0.0
        return DEFAULT_MAX_GAP_FRAMES * float(np.median(np.diff(pose_times_s)))
    if not max_gap_s > 0:
        raise DataError(f"max_gap_s must be > 0, got {max_gap_s}")
    return float(max_gap_s)


def pose_at(times_s, pose_times_s, points3d, max_gap_s: float | None = None) -> np.ndarray:
    """Linearly interpolate ``points3d`` (n_frames, ...) at arbitrary ``times_s`` (m,) -> (m, ...).

    A result is NaN when the query is outside the pose, when its two bracketing frames are more than
    ``max_gap_s`` apart, or when either of them is NaN (a query exactly on a frame uses that frame).

    Parameters
    ----------
    times_s : array_like, (m,), s
        Query times.
    pose_times_s : array_like, (n_frames,), s
        Frame times, strictly increasing.
    points3d : array_like, (n_frames, ...)
        Values per frame, e.g. positions (n_frames, n_parts, 3) mm.
    max_gap_s : float, optional, s
        Largest frame interval interpolated across; None: 2.5 median frame intervals.

    Returns
    -------
    numpy.ndarray, (m, ...) float64

    Raises
    ------
    DataError
        If ``points3d`` has not one row per pose time, ``times_s`` is not 1-D, the pose times are not strictly
        increasing and finite, or ``max_gap_s`` is not > 0.
    """
    pose_times_s = as_times(pose_times_s, "pose_times_s")
    points = np.asarray(points3d, dtype=np.float64)
    if points.ndim < 1 or points.shape[0] != pose_times_s.size:
        raise DataError(f"points3d must have one row per pose time ({pose_times_s.size}), got shape {points.shape}")
    query = np.asarray(times_s, dtype=np.float64)
    if query.ndim != 1:
        raise DataError(f"times_s must be 1-D, got shape {query.shape}")
    gap = frame_gap_limit(pose_times_s, max_gap_s)
    trailing = points.shape[1:]
    if pose_times_s.size == 0:
        return np.full(query.shape + trailing, np.nan)
    flat = points.reshape(points.shape[0], -1)

    right = np.searchsorted(pose_times_s, query, side="right")
    left = np.clip(right - 1, 0, None)
    right = np.clip(right, None, pose_times_s.size - 1)
    t_left = pose_times_s[left]
    exact = query == t_left
    right[exact] = left[exact]
    t_right = pose_times_s[right]
    span = t_right - t_left
    valid = (query >= pose_times_s[0]) & (query <= pose_times_s[-1]) & (span <= gap)
    weight = np.divide(query - t_left, span, out=np.zeros_like(query), where=span > 0)

    out = np.empty((query.size, flat.shape[1]))
    for first in range(0, query.size, POSE_AT_CHUNK):
        block = slice(first, first + POSE_AT_CHUNK)
        values = np.take(flat, left[block], axis=0)
        step = np.take(flat, right[block], axis=0)
        step -= values
        step *= weight[block, None]
        values += step
        values[~valid[block]] = np.nan
        out[block] = values
    return out.reshape(query.shape + trailing)


def _velocity_by_point(times_s, points3d, smooth_s: float, max_gap_s: float | None) -> np.ndarray:
    """Velocity laid out (n_points, 3, n_frames) for contiguous work along time; see velocity()."""
    times_s = as_times(times_s, "times_s")
    points = np.asarray(points3d, dtype=np.float64)
    if points.shape[:1] != times_s.shape or points.ndim < 2 or points.shape[-1] != 3:
        raise DataError(f"points3d must have shape ({times_s.size}, ..., 3), got {points.shape}")
    if smooth_s < 0:
        raise DataError(f"smooth_s must be >= 0, got {smooth_s}")
    gap = frame_gap_limit(times_s, max_gap_s)
    n = times_s.size
    by_point = np.ascontiguousarray(points.reshape(n, -1, 3).transpose(1, 2, 0))
    total = np.zeros(by_point.shape)
    count = np.zeros((by_point.shape[0], n))
    if n >= 2:
        dt = np.diff(times_s)
        step = np.diff(by_point, axis=-1)
        step /= dt
        usable = np.isfinite(step).all(axis=1) & (dt <= gap)
        step[np.broadcast_to(~usable[:, None], step.shape)] = 0.0
        total[..., 1:] += step
        total[..., :-1] += step
        count[:, 1:] += usable
        count[:, :-1] += usable
    known = count > 0
    result = total
    result /= np.maximum(count, 1.0)[:, None]
    if smooth_s > 0 and n >= 2:
        sigma_frames = smooth_s / float(np.median(dt))
        weight = gaussian_filter1d(known.astype(float), sigma_frames, axis=-1, mode="constant")
        result = gaussian_filter1d(result, sigma_frames, axis=-1, mode="constant")
        result /= np.where(weight > 1e-6, weight, 1.0)[:, None]
    result[np.broadcast_to(~known[:, None], result.shape)] = np.nan
    return result


def velocity(times_s, points3d, smooth_s: float = 0.02, max_gap_s: float | None = None) -> np.ndarray:
    """Gap-aware velocity (mm/s) of ``points3d`` (n_frames, ..., 3) -> same shape.

    Finite differences between consecutive frames (none across gaps > max_gap_s or where a point has
    a NaN coordinate), averaged onto frames, then Gaussian-smoothed (sigma ``smooth_s``, 0 = off;
    applied over frame index, i.e. assuming nearly regular frames) with missing samples given zero
    weight. A frame with no valid neighbouring difference is NaN.

    Parameters
    ----------
    times_s : array_like, (n_frames,), s
        Frame times, strictly increasing.
    points3d : array_like, (n_frames, ..., 3), mm
    smooth_s : float, s
        Sigma of the Gaussian smoothing (0: off); must be >= 0.
    max_gap_s : float, optional, s
        Largest frame interval differentiated across; None: 2.5 median frame intervals.

    Returns
    -------
    numpy.ndarray, (n_frames, ..., 3), mm/s

    Raises
    ------
    DataError
        If the shapes do not fit, the times are not strictly increasing, or ``smooth_s`` < 0 or ``max_gap_s`` <= 0.
    """
    by_point = _velocity_by_point(times_s, points3d, smooth_s, max_gap_s)
    return by_point.transpose(2, 0, 1).reshape(np.shape(points3d))


def speed(times_s, points3d, smooth_s: float = 0.02, max_gap_s: float | None = None) -> np.ndarray:
    """Gap-aware speed (mm/s) of ``points3d`` (n_frames, ..., 3) -> (n_frames, ...); see velocity().

    Parameters
    ----------
    times_s : array_like, (n_frames,), s
        Frame times, strictly increasing.
    points3d : array_like, (n_frames, ..., 3), mm
    smooth_s : float, s
        Sigma of the velocity's Gaussian smoothing (0: off).
    max_gap_s : float, optional, s
        Largest frame interval differentiated across; None: 2.5 median frame intervals.

    Returns
    -------
    numpy.ndarray, (n_frames, ...), mm/s
        NaN where the velocity is unknown.

    Raises
    ------
    DataError
        As velocity().
    """
    by_point = _velocity_by_point(times_s, points3d, smooth_s, max_gap_s)
    return np.sqrt((by_point ** 2).sum(axis=1)).T.reshape(np.shape(points3d)[:-1])


def plane_basis(normal, reference=(1.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal (e1, e2) spanning the plane perpendicular to ``normal``; e1 follows ``reference``.

    Angles measured as atan2(v . e2, v . e1) then turn counter-clockwise seen from the normal's tip.

    Parameters
    ----------
    normal : array_like, (3,)
        Normal of the plane (any length but 0).
    reference : array_like, (3,)
        Direction that e1 follows (projected onto the plane).

    Returns
    -------
    e1, e2 : numpy.ndarray, (3,)
        Unit vectors; e2 = normal x e1.

    Raises
    ------
    DataError
        If ``normal`` is zero or ``reference`` is parallel to it.
    """
    normal = np.asarray(normal, dtype=np.float64).reshape(3)
    norm = np.linalg.norm(normal)
    if not norm > 0:
        raise DataError(f"normal/axis must be a non-zero 3-vector, got {normal}")
    normal = normal / norm
    e1 = np.asarray(reference, dtype=np.float64).reshape(3)
    e1 = e1 - (e1 @ normal) * normal
    if np.linalg.norm(e1) < 1e-6:
        raise DataError(f"reference {reference} is parallel to the normal {normal}")
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(normal, e1)


def movement_direction(times_s, points3d, up=(0.0, 0.0, 1.0), reference=(1.0, 0.0, 0.0),
                       smooth_s: float = 0.02, max_gap_s: float | None = None,
                       min_speed_mm_s: float = 0.0) -> np.ndarray:
    """Direction (deg, in (-180, 180]) of horizontal velocity, measured from ``reference`` about ``up``.

    ``up`` is the world's vertical (the world frame is camera 0's, so say where up is). NaN where
    the velocity is unknown or the horizontal speed is below ``min_speed_mm_s``.

    Parameters
    ----------
    times_s : array_like, (n_frames,), s
        Frame times, strictly increasing.
    points3d : array_like, (n_frames, ..., 3), mm
    up : array_like, (3,)
        The world's vertical.
    reference : array_like, (3,)
        The direction of 0 deg (projected onto the horizontal plane).
    smooth_s : float, s
        Sigma of the velocity's Gaussian smoothing (0: off).
    max_gap_s : float, optional, s
        Largest frame interval differentiated across; None: 2.5 median frame intervals.
    min_speed_mm_s : float, mm/s
        Horizontal speed below which the direction is NaN.

    Returns
    -------
    numpy.ndarray, (n_frames, ...), deg

    Raises
    ------
    DataError
        If ``up`` is zero or parallel to ``reference``, or as velocity().
    """
    e1, e2 = plane_basis(up, reference)
    v = velocity(times_s, points3d, smooth_s, max_gap_s)
    vx, vy = v @ e1, v @ e2
    direction = np.degrees(np.arctan2(vy, vx))
    direction[~(np.hypot(vx, vy) >= min_speed_mm_s)] = np.nan
    return direction


def upward_crossings(times_s: np.ndarray, values: np.ndarray, level: float, max_gap_s: float) -> np.ndarray:
    """Times (linearly interpolated) where ``values`` goes from below ``level`` to at/above it.

    Only between consecutive finite samples no more than ``max_gap_s`` apart.
    """
    below, above = values[:-1] < level, values[1:] >= level
    dt = np.diff(times_s)
    idx = np.flatnonzero(below & above & (dt <= max_gap_s))
    y0, y1 = values[idx], values[idx + 1]
    return times_s[idx] + (level - y0) / (y1 - y0) * dt[idx]


def _crossing_before(crossings: np.ndarray, limits: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """Latest crossing <= limits[i] and >= lower[i] per trial, else NaN."""
    pick = np.searchsorted(crossings, limits, side="right") - 1
    found = pick >= 0
    result = np.full(limits.shape, np.nan)
    result[found] = crossings[pick[found]]
    result[~(result >= lower)] = np.nan
    return result


def _trial_windows(touch_intervals: np.ndarray, lookback_s: float) -> np.ndarray:
    """Earliest time a trial's approach may start: lookback before touch, after the previous release."""
    previous_release = np.concatenate([[-np.inf], touch_intervals[:-1, 1]])
    return np.maximum(touch_intervals[:, 0] - lookback_s, previous_release)


def paw_arrivals(times_s, distance_mm, touch_intervals, arrival_distance_mm: float = 5.0,
                 lookback_s: float = 1.0, max_gap_s: float | None = None) -> np.ndarray:
    """Per touch, when the paw entered the knob zone (distance <= arrival_distance_mm), else NaN.

    The entry closest to touch onset, searched from ``lookback_s`` before the touch (not before the
    previous release) until the touch ends. Entry times are interpolated between frames.

    Parameters
    ----------
    times_s : array_like, (n_frames,), s
        Frame times, strictly increasing.
    distance_mm : array_like, (n_frames,), mm
        Paw-to-knob distance per frame (e.g. ``KnobModel.distance``).
    touch_intervals : array_like, (n_touches, 2), s
        (start, end) of each touch, sorted and non-overlapping.
    arrival_distance_mm : float, mm
        The knob zone's radius.
    lookback_s : float, s
        How long before a touch an entry may be.
    max_gap_s : float, optional, s
        Largest frame interval interpolated across; None: 2.5 median frame intervals.

    Returns
    -------
    numpy.ndarray, (n_touches,), s
        Arrival time per touch; NaN where none was found.

    Raises
    ------
    DataError
        If ``distance_mm`` does not have one value per frame, or times or intervals are invalid.
    """
    times_s = as_times(times_s, "times_s")
    touch_intervals = as_intervals(touch_intervals)
    distance_mm = np.asarray(distance_mm, dtype=np.float64)
    if distance_mm.shape != times_s.shape:
        raise DataError(f"distance_mm must have shape {times_s.shape}, got {distance_mm.shape}")
    entries = upward_crossings(times_s, -distance_mm, -arrival_distance_mm, frame_gap_limit(times_s, max_gap_s))
    onsets = touch_intervals[:, 0]
    lower = _trial_windows(touch_intervals, lookback_s)
    before = _crossing_before(entries, onsets, lower)
    first_after = np.searchsorted(entries, onsets, side="right")
    after = np.full(onsets.shape, np.nan)
    has_after = first_after < entries.size
    after[has_after] = entries[first_after[has_after]]
    after[~(after <= touch_intervals[:, 1])] = np.nan
    use_after = np.isnan(before) | (after - onsets < onsets - before)
    return np.where(use_after, after, before)


def turn_intervals(angle_times, angle_deg, touch_intervals, threshold_deg: float = 2.0) -> np.ndarray:
    """Per touch, (turn_start, turn_end) of the knob, or NaN when it turned less than ``threshold_deg``.

    Within a touch the excursion is the angle minus its value at touch onset; the turn starts when
    |excursion| first reaches ``threshold_deg`` and ends when it first comes within ``threshold_deg``
    of its peak. Crossing times are interpolated between angle samples.

    Parameters
    ----------
    angle_times : array_like, (n_samples,), s
        Times of the knob's angle samples, strictly increasing.
    angle_deg : array_like, (n_samples,), deg
        Knob angle (NaN samples are ignored).
    touch_intervals : array_like, (n_touches, 2), s
        (start, end) of each touch, sorted and non-overlapping.
    threshold_deg : float, deg
        Must be > 0.

    Returns
    -------
    numpy.ndarray, (n_touches, 2), s
        (turn_start, turn_end) per touch; NaN rows where the knob did not turn.

    Raises
    ------
    DataError
        If ``angle_deg`` does not match ``angle_times``, the times or intervals are invalid, or
        ``threshold_deg`` is not > 0.
    """
    angle_times = as_times(angle_times, "angle_times")
    angle_deg = np.asarray(angle_deg, dtype=np.float64)
    if angle_deg.shape != angle_times.shape:
        raise DataError(f"angle_deg must have shape {angle_times.shape}, got {angle_deg.shape}")
    touch_intervals = as_intervals(touch_intervals)
    if not threshold_deg > 0:
        raise DataError(f"threshold_deg must be > 0, got {threshold_deg}")
    result = np.full(touch_intervals.shape, np.nan)
    if angle_times.size == 0:
        return result
    finite = np.isfinite(angle_deg)
    angle_times, angle_deg = angle_times[finite], angle_deg[finite]
    baselines = np.interp(touch_intervals[:, 0], angle_times, angle_deg)
    starts = np.searchsorted(angle_times, touch_intervals[:, 0], side="right")
    stops = np.searchsorted(angle_times, touch_intervals[:, 1], side="right")
    for trial, (onset, baseline, i0, i1) in enumerate(zip(touch_intervals[:, 0], baselines, starts, stops)):
        t = np.concatenate([[onset], angle_times[i0:i1]])
        excursion = np.concatenate([[0.0], angle_deg[i0:i1] - baseline])
        peak = int(np.argmax(np.abs(excursion)))
        signed = excursion * np.sign(excursion[peak])
        if signed[peak] < threshold_deg:
            continue
        for column, level in enumerate((threshold_deg, signed[peak] - threshold_deg)):
            k = max(int(np.argmax(signed >= level)), 1)
            fraction = np.clip((level - signed[k - 1]) / (signed[k] - signed[k - 1]), 0.0, 1.0)
            result[trial, column] = t[k - 1] + fraction * (t[k] - t[k - 1])
    return result


def detect_events(times_s, paw_xyz, knob: KnobModel, touch_intervals, angle_times, angle_deg, *,
                  speed_threshold_mm_s: float = 50.0, lookback_s: float = 1.0,
                  arrival_distance_mm: float = 5.0, turn_threshold_deg: float = 2.0,
                  smooth_s: float = 0.02, max_gap_s: float | None = None) -> pd.DataFrame:
    """Behavioural events per touch (trial) -> DataFrame(trial, event, time_s) sorted by time.

    Events (see EVENT_NAMES): ``reach_onset`` (paw speed last rose above ``speed_threshold_mm_s``
    before arrival/touch, within ``lookback_s`` and after the previous release), ``paw_arrival``
    (see paw_arrivals), ``touch`` (touch on), ``turn_start``/``turn_end`` (see turn_intervals),
    ``release`` (touch off). Events that cannot be found for a trial are left out.

    Parameters
    ----------
    times_s : array_like, (n_frames,), s
        Frame times on the neural clock, strictly increasing.
    paw_xyz : array_like, (n_frames, 3), mm
        The paw's position per frame.
    knob : KnobModel
        The knob, in the same frame as ``paw_xyz``.
    touch_intervals : array_like, (n_touches, 2), s
        (start, end) of each touch, sorted and non-overlapping.
    angle_times : array_like, (n_samples,), s
    angle_deg : array_like, (n_samples,), deg
        The knob's angle samples.
    speed_threshold_mm_s : float, mm/s
    lookback_s : float, s
        How far before a touch reach onset and arrival are searched.
    arrival_distance_mm : float, mm
        See paw_arrivals.
    turn_threshold_deg : float, deg
        See turn_intervals.
    smooth_s : float, s
        Sigma of the paw velocity's Gaussian smoothing.
    max_gap_s : float, optional, s
        Largest frame interval bridged; None: 2.5 median frame intervals.

    Returns
    -------
    pandas.DataFrame
        Columns trial (int, the touch's row), event (str), time_s (float, s), sorted by time.

    Raises
    ------
    DataError
        If ``paw_xyz`` is not (n_frames, 3), or times, intervals or angles are invalid.
    """
    times_s = as_times(times_s, "times_s")
    paw_xyz = np.asarray(paw_xyz, dtype=np.float64)
    if paw_xyz.shape != (times_s.size, 3):
        raise DataError(f"paw_xyz must have shape ({times_s.size}, 3), got {paw_xyz.shape}")
    touch_intervals = as_intervals(touch_intervals)
    gap = frame_gap_limit(times_s, max_gap_s)

    arrivals = paw_arrivals(times_s, knob.distance(paw_xyz), touch_intervals, arrival_distance_mm, lookback_s, gap)
    paw_speed = speed(times_s, paw_xyz, smooth_s, gap)
    rises = upward_crossings(times_s, paw_speed, speed_threshold_mm_s, gap)
    reach_deadline = np.fmin(arrivals, touch_intervals[:, 0])
    reach_onsets = _crossing_before(rises, reach_deadline, _trial_windows(touch_intervals, lookback_s))
    turns = turn_intervals(angle_times, angle_deg, touch_intervals, turn_threshold_deg)

    columns = (reach_onsets, arrivals, touch_intervals[:, 0], turns[:, 0], turns[:, 1], touch_intervals[:, 1])
    times = np.stack(columns, axis=1)
    trials = np.broadcast_to(np.arange(len(touch_intervals))[:, None], times.shape)
    names = np.broadcast_to(np.array(EVENT_NAMES, dtype=object), times.shape)
    found = np.isfinite(times)
    events = pd.DataFrame({"trial": trials[found], "event": names[found], "time_s": times[found]})
    return events.sort_values("time_s", kind="stable").reset_index(drop=True)
