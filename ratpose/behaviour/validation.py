"""Validate 3D pose against the knob: the task's own sensor says when and how the paw acted on it.

If calibration, synchronisation and tracking are right, the paw is at the knob exactly while the
touch sensor is on (sensitivity, precision), it arrives when the touch starts (latency), and a
paw/digit vector rotates with the knob while it is turned (rotation correlation).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .kinematics import (
    as_intervals,
    as_times,
    interval_index,
    paw_arrivals,
    turn_intervals,
)
from .knob import KnobModel


@dataclass(frozen=True)
class ValidationSettings:
    """Pass/fail limits of validate_against_knob.

    Attributes
    ----------
    min_sensitivity : float
        Fraction of tracked touch frames with the paw at the knob.
    min_precision : float
        Fraction of tracked paw-at-knob frames within a touch.
    min_tracked_fraction : float
        Fraction of touch frames where the paw is tracked.
    min_arrival_fraction : float
        Fraction of touches with a paw arrival found.
    max_abs_median_latency_s : float, s
        Largest |median arrival latency|.
    min_abs_rotation_corr : float
        Smallest |r| of a rotation agreement.
    """

    min_sensitivity: float = 0.8
    min_precision: float = 0.8
    min_tracked_fraction: float = 0.5
    min_arrival_fraction: float = 0.8
    max_abs_median_latency_s: float = 0.05
    min_abs_rotation_corr: float = 0.8


@dataclass(frozen=True)
class RotationAgreement:
    """How a tracked angle follows the knob angle during turns (per-turn means removed).

    Attributes
    ----------
    corr : float
        Pearson's r (its sign depends on the axis/angle conventions); NaN when undefined.
    gain : float
        The slope of tracked vs knob angle; NaN when undefined.
    n_frames : int
        The frames used.
    """

    corr: float
    gain: float
    n_frames: int


@dataclass(frozen=True)
class KnobValidationResult:
    """Outcome of validate_against_knob; ``summary()`` gives the scalars for storage.

    Attributes
    ----------
    sensitivity, precision, tracked_fraction : float
        See validate_against_knob (NaN where undefined).
    latencies_s : numpy.ndarray, (n_touches,), s
        Paw arrival minus touch onset per touch; NaN where no arrival was found.
    arrival_fraction : float
        Fraction of touches with an arrival.
    latency_median_s, latency_iqr_s : float, s
    digit_rotation, marker_rotation : RotationAgreement or None
        None where that track was not given.
    failed_checks : tuple of str
        One message per failed check (empty: passed).
    times_s : numpy.ndarray, (n_frames,), s
    distance_mm : numpy.ndarray, (n_frames,), mm
        Paw-to-knob distance per frame.
    touch_intervals : numpy.ndarray, (n_touches, 2), s
    distance_threshold_mm : float, mm
        The ``distance_mm`` used.
    """

    sensitivity: float
    precision: float
    tracked_fraction: float
    latencies_s: np.ndarray
    arrival_fraction: float
    latency_median_s: float
    latency_iqr_s: float
    digit_rotation: RotationAgreement | None
    marker_rotation: RotationAgreement | None
    failed_checks: tuple[str, ...]
    times_s: np.ndarray
    distance_mm: np.ndarray
    touch_intervals: np.ndarray
    distance_threshold_mm: float

    @property
    def passed(self) -> bool:
        return not self.failed_checks

    def summary(self) -> dict:
        """Scalar results (NaN where not computed) plus passed and the failed checks."""
        out = {name: float(getattr(self, name)) for name in
               ("sensitivity", "precision", "tracked_fraction", "arrival_fraction", "latency_median_s",
                "latency_iqr_s")}
        for name in ("digit_rotation", "marker_rotation"):
            rotation = getattr(self, name)
            out[f"{name}_corr"] = np.nan if rotation is None else float(rotation.corr)
            out[f"{name}_gain"] = np.nan if rotation is None else float(rotation.gain)
        out.update(n_touches=len(self.touch_intervals), passed=self.passed, failed_checks=list(self.failed_checks))
        return out


def _show(value: float, digits: int = 3) -> str:
    return "undefined" if np.isnan(value) else f"{value:.{digits}f}"


def _fraction(flags: np.ndarray) -> float:
    return float(flags.mean()) if flags.size else np.nan


def rotation_agreement(times_s, vectors, knob: KnobModel, windows, angle_times, angle_deg) -> RotationAgreement:
    """Compare the angle of ``vectors`` (n, 3) about the knob axis with the knob angle inside ``windows``.

    ``windows`` are (n, 2) turn intervals (rows with NaN are skipped). Each window's mean is removed
    from both angles (the grip orientation is arbitrary), then r and the gain are pooled.

    Parameters
    ----------
    times_s : numpy.ndarray, (n,), s
        Times of the vectors.
    vectors : array_like, (n, 3)
        E.g. digit - paw, mm.
    knob : KnobModel
        Needs its axis.
    windows : array_like, (n_windows, 2), s
        Turn intervals, e.g. from ``turn_intervals``.
    angle_times : numpy.ndarray, (n_samples,), s
    angle_deg : numpy.ndarray, (n_samples,), deg
        The knob's angle samples.

    Returns
    -------
    RotationAgreement
        corr and gain NaN with fewer than 3 usable frames or no spread.

    Raises
    ------
    DataError
        If the knob has no axis, or the windows overlap or are unsorted.
    """
    windows = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
    windows = as_intervals(windows[np.isfinite(windows).all(axis=1)], "turn windows")
    tracked = knob.rotation_angle(vectors)
    trial = interval_index(times_s, windows)
    keep = (trial >= 0) & np.isfinite(tracked)
    finite_angle = np.isfinite(angle_deg)
    if keep.sum() < 3 or finite_angle.sum() < 2:
        return RotationAgreement(np.nan, np.nan, int(keep.sum()))
    trial = trial[keep]
    knob_angle = np.interp(times_s[keep], angle_times[finite_angle], angle_deg[finite_angle])
    # Unwrapping across windows only adds a constant per window, which the per-window centring removes.
    tracked = np.unwrap(tracked[keep], period=360.0)
    counts = np.bincount(trial, minlength=len(windows)).astype(float)
    centred = [x - (np.bincount(trial, x, len(windows)) / np.maximum(counts, 1))[trial] for x in (knob_angle, tracked)]
    knob_centred, tracked_centred = centred
    spread = np.sqrt((knob_centred ** 2).sum() * (tracked_centred ** 2).sum())
    if not spread > 0:
        return RotationAgreement(np.nan, np.nan, int(keep.sum()))
    cross = float((knob_centred * tracked_centred).sum())
    return RotationAgreement(cross / spread, cross / float((knob_centred ** 2).sum()), int(keep.sum()))


def validate_against_knob(times_s, paw_xyz, knob: KnobModel, touch_intervals, angle_times, angle_deg,
                          digit_xyz=None, *, digit_base_xyz=None, knob_marker_xyz=None, distance_mm: float = 5.0,
                          edge_tolerance_s: float = 0.02, lookback_s: float = 1.0,
                          turn_threshold_deg: float = 2.0, max_gap_s: float | None = None,
                          thresholds: ValidationSettings = ValidationSettings()) -> KnobValidationResult:
    """Check 3D pose against the knob sensor; every input is on the neural clock.

    - sensitivity: fraction of tracked frames during touches with the paw within ``distance_mm``
      of the knob; precision: fraction of tracked paw-at-knob frames that fall in a touch. Frames
      within ``edge_tolerance_s`` of a touch on/off are ignored (sensor vs contact timing).
    - latency: paw arrival (kinematics.paw_arrivals) minus touch onset, per touch; median and IQR.
    - rotation: during knob turns, the angle about the knob axis of (digit - digit base, the base
      being the paw when ``digit_base_xyz`` is None) and/or of (knob marker - knob centre) must
      correlate with the knob angle (|r|; needs ``knob.axis``).

    A check whose metric is undefined (e.g. no tracked frames) fails.

    Parameters
    ----------
    times_s : array_like, (n_frames,), s
        Frame times, strictly increasing.
    paw_xyz : array_like, (n_frames, 3), mm
    knob : KnobModel
    touch_intervals : array_like, (n_touches, 2), s
    angle_times : array_like, (n_samples,), s
    angle_deg : array_like, (n_samples,), deg
    digit_xyz : array_like, (n_frames, 3), optional, mm
        A digit, for the digit rotation check.
    digit_base_xyz : array_like, (n_frames, 3), optional, mm
        The digit vector's base; None: the paw.
    knob_marker_xyz : array_like, (n_frames, 3), optional, mm
        A marker on the knob, for the marker rotation check.
    distance_mm : float, mm
        Paw-to-knob distance within which the paw is at the knob.
    edge_tolerance_s : float, s
        Must be >= 0.
    lookback_s : float, s
        See paw_arrivals.
    turn_threshold_deg : float, deg
        See turn_intervals.
    max_gap_s : float, optional, s
        None: 2.5 median frame intervals.
    thresholds : ValidationSettings
        The pass/fail limits.

    Returns
    -------
    KnobValidationResult

    Raises
    ------
    DataError
        If a track does not have shape (n_frames, 3), angles do not match their times, times or intervals are
        invalid, ``edge_tolerance_s`` < 0, or a rotation check needs an axis the knob lacks.
    """
    times_s = as_times(times_s, "times_s")
    touch_intervals = as_intervals(touch_intervals)
    angle_times = as_times(angle_times, "angle_times")
    angle_deg = np.asarray(angle_deg, dtype=np.float64)
    if angle_deg.shape != angle_times.shape:
        raise DataError(f"angle_deg must have shape {angle_times.shape}, got {angle_deg.shape}")
    tracks = {"paw_xyz": paw_xyz, "digit_xyz": digit_xyz, "digit_base_xyz": digit_base_xyz,
              "knob_marker_xyz": knob_marker_xyz}
    for name, track in tracks.items():
        if track is not None and np.shape(track) != (times_s.size, 3):
            raise DataError(f"{name} must have shape ({times_s.size}, 3), got {np.shape(track)}")
    paw_xyz = np.asarray(paw_xyz, dtype=np.float64)
    if edge_tolerance_s < 0:
        raise DataError(f"edge_tolerance_s must be >= 0, got {edge_tolerance_s}")

    distance = knob.distance(paw_xyz)
    tracked = np.isfinite(distance)
    near = distance <= distance_mm
    in_touch = interval_index(times_s, touch_intervals) >= 0
    edges = np.sort(touch_intervals.ravel())
    nearest_edge = np.full(times_s.shape, np.inf)
    if edges.size:
        k = np.searchsorted(edges, times_s)
        nearest_edge = np.minimum(np.abs(times_s - edges[np.clip(k - 1, 0, None)]),
                                  np.abs(edges[np.clip(k, None, edges.size - 1)] - times_s))
    scored = tracked & (nearest_edge >= edge_tolerance_s)
    sensitivity = _fraction(near[scored & in_touch])
    precision = _fraction(in_touch[scored & near])
    tracked_fraction = _fraction(tracked[in_touch])

    arrivals = paw_arrivals(times_s, distance, touch_intervals, distance_mm, lookback_s, max_gap_s)
    latencies = arrivals - touch_intervals[:, 0]
    found = latencies[np.isfinite(latencies)]
    arrival_fraction = found.size / len(latencies) if len(latencies) else np.nan
    q25, median, q75 = np.percentile(found, [25, 50, 75]) if found.size else (np.nan,) * 3

    rotations = {}
    if digit_xyz is not None or knob_marker_xyz is not None:
        turns = turn_intervals(angle_times, angle_deg, touch_intervals, turn_threshold_deg)
        if digit_xyz is not None:
            base = paw_xyz if digit_base_xyz is None else np.asarray(digit_base_xyz, float)
            rotations["digit"] = rotation_agreement(times_s, np.asarray(digit_xyz, float) - base, knob, turns,
                                                    angle_times, angle_deg)
        if knob_marker_xyz is not None:
            rotations["marker"] = rotation_agreement(times_s, np.asarray(knob_marker_xyz, float) - knob.centre, knob,
                                                     turns, angle_times, angle_deg)

    t = thresholds
    checks = [
        (sensitivity >= t.min_sensitivity, f"sensitivity {_show(sensitivity)} < {t.min_sensitivity}"),
        (precision >= t.min_precision, f"precision {_show(precision)} < {t.min_precision}"),
        (tracked_fraction >= t.min_tracked_fraction,
         f"tracked fraction during touches {_show(tracked_fraction)} < {t.min_tracked_fraction}"),
        (arrival_fraction >= t.min_arrival_fraction,
         f"paw arrival found for {_show(arrival_fraction)} of touches < {t.min_arrival_fraction}"),
        (abs(median) <= t.max_abs_median_latency_s,
         f"|median arrival latency| {_show(median, 4)} s > {t.max_abs_median_latency_s} s"),
    ]
    for name, rotation in rotations.items():
        checks.append((abs(rotation.corr) >= t.min_abs_rotation_corr,
                       f"{name} rotation |r| {_show(rotation.corr)} < {t.min_abs_rotation_corr} "
                       f"({rotation.n_frames} frames)"))
    return KnobValidationResult(
        sensitivity=sensitivity, precision=precision, tracked_fraction=tracked_fraction,
        latencies_s=latencies, arrival_fraction=arrival_fraction, latency_median_s=float(median),
        latency_iqr_s=float(q75 - q25), digit_rotation=rotations.get("digit"),
        marker_rotation=rotations.get("marker"),
        failed_checks=tuple(message for ok, message in checks if not ok),
        times_s=times_s, distance_mm=distance, touch_intervals=touch_intervals,
        distance_threshold_mm=float(distance_mm))


def plot_knob_validation(result: KnobValidationResult, path, time_range: tuple[float, float] | None = None,
                         title: str | None = None, t0_s: float | None = None) -> Path:
    """Plot paw-to-knob distance with touch intervals shaded and arrivals marked; save to ``path``.

    t0_s: neural-clock time of the session start; the axis then shows time from it (time_range too).

    Parameters
    ----------
    result : KnobValidationResult
    path : str or Path
        The PNG to write.
    time_range : tuple of float, (start, end), optional, s
        Only this part is shown.
    title : str, optional
        Prefixed to the figure's title.
    t0_s : float, optional, s

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    DataError
        If ``time_range`` does not have start < end.
    """
    from ..figures import new_figure, save

    offset = t0_s or 0.0
    times, distance = result.times_s - offset, result.distance_mm
    intervals = result.touch_intervals - offset
    arrivals = intervals[:, 0] + result.latencies_s
    if time_range is not None:
        lo, hi = time_range
        if not lo < hi:
            raise DataError(f"time_range must be (start, end) with start < end, got {time_range}")
        shown = (times >= lo) & (times <= hi)
        times, distance = times[shown], distance[shown]
        intervals = intervals[(intervals[:, 1] >= lo) & (intervals[:, 0] <= hi)]
        arrivals = arrivals[(arrivals >= lo) & (arrivals <= hi)]
    figure = new_figure(12, 4)
    ax = figure.add_subplot()
    for k, (on, off) in enumerate(intervals):
        ax.axvspan(on, off, color="tab:orange", alpha=0.3, lw=0, label="touch" if k == 0 else None)
    ax.plot(times, distance, color="k", lw=0.8, label="paw to knob")
    ax.axhline(result.distance_threshold_mm, color="tab:blue", ls="--", lw=1, label="threshold")
    arrivals = arrivals[np.isfinite(arrivals)]
    ax.plot(arrivals, np.full(arrivals.shape, result.distance_threshold_mm), "v", color="tab:red", label="arrival")
    ax.set_xlabel("time (s, neural clock)" if t0_s is None else "time from session start (s)")
    ax.set_ylabel("paw to knob distance (mm)")
    verdict = "passed" if result.passed else "FAILED: " + "; ".join(result.failed_checks)
    ax.set_title(f"{title + ': ' if title else ''}sensitivity {result.sensitivity:.2f}, "
                 f"precision {result.precision:.2f}, "
                 f"median latency {1e3 * result.latency_median_s:.1f} ms, {verdict}", fontsize=9)
    ax.legend(loc="upper right", fontsize=8)
    return save(figure, path)
