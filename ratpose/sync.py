"""Put camera frames on the neural (Pi) clock: which trigger pulse exposed each delivered frame.

Inputs are what the rig records (docs/session-format.md "Clocks"): the Pi's trigger log (pigpio ticks,
uint32 microseconds that wrap every ~71.6 min) and, per camera, the FrameID and camera-clock timestamp of
every delivered frame. A FrameID jump of k means k-1 frames were exposed but lost in transfer; a missed
trigger leaves FrameID continuous but the camera clock shows a longer gap.

Alignment works on time intervals, so it is immune to the camera clock's offset and drift:
1. The first frame's pulse is found by following the camera's frame intervals through the trigger log
   from every admissible starting pulse; the pulse train's jitter and start pattern leave exactly one
   survivor, or the offset is ambiguous and an error is raised.
2. The rest of the frames are placed chunk by chunk: a linear clock map fitted on the most recent frames
   predicts each frame's neural time and the nearest pulse is taken; chunks grow only as far as the fit
   is certain to a fraction of a trigger period, so slow drift changes and long gaps are handled.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import DataError

TICK_WRAP = 2**32
_STALL_STEPS = 64
# How much the camera clock's rate may change (e.g. with temperature) beyond what the last fit measured;
# it bounds how far a fit may be extrapolated (about 18 min at 226 Hz) and how far a frame may sit off it.
_DRIFT_WANDER = 1e-6
_MIN_FIT_FRAMES = 100  # a clock fit reaches back at least this many frames, e.g. across a recording gap
# The longest interval (in median pulse intervals) that may span a tick wrap: the start pattern's pause is
# ~21 periods and pigpio may lose a few edges; 1000 is 4.4 s at 226 Hz, capped at half the wrap period.
WRAP_MAX_PERIODS = 1000


@dataclass(frozen=True)
class FrameAlignment:
    """Result of aligning one camera's delivered frames to the trigger log.

    ``dropped_pulses`` are the pulses between the first and last delivered frame with no delivered frame; of
    these, ``lost_in_transfer`` were exposed (FrameID jumps) and ``missed_trigger`` never exposed. The camera
    clock is ``clock_offset_s + (1 + drift_ppm 1e-6) * neural time``.

    Attributes
    ----------
    pulse_index : numpy.ndarray, (n_frames,) int64
        Per delivered frame, the pulse that exposed it (index into the trigger log).
    time_s : numpy.ndarray, (n_frames,) float64, s
        Per delivered frame, that pulse's neural time.
    dropped_pulses : numpy.ndarray, (n_dropped,) int64
        Pulses in ``first_pulse..last_pulse`` with no delivered frame.
    lost_in_transfer : int
        Dropped pulses that were exposed but lost in transfer (FrameID jumps).
    missed_trigger : int
        Dropped pulses that never exposed a frame.
    drift_ppm : float, ppm
        The camera clock's rate error against the neural clock.
    clock_offset_s : float, s
        The camera clock's reading at neural time 0.
    residual_rms_s, residual_max_s : float, s
        How far frames sit from their pulse after a local linear clock fit (RMS and largest).
    first_pulse, last_pulse : int
        Pulse indices of the first and last delivered frame.
    n_pulses : int
        Pulses in the trigger log.
    """

    pulse_index: np.ndarray
    time_s: np.ndarray
    dropped_pulses: np.ndarray
    lost_in_transfer: int
    missed_trigger: int
    drift_ppm: float
    clock_offset_s: float
    residual_rms_s: float
    residual_max_s: float
    first_pulse: int
    last_pulse: int
    n_pulses: int

    @property
    def drop_fraction(self) -> float:
        """Dropped pulses over pulses in the recording span."""
        return len(self.dropped_pulses) / (self.last_pulse - self.first_pulse + 1)


def _as_int64(name: str, values) -> np.ndarray:
    """A 1-D int64 array from integer-valued input, or a ValueError naming the argument."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind in "iu":
        if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise DataError(f"{name} has values beyond the int64 range")
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise DataError(f"{name} must hold integers, got non-integer or non-finite values")
        return arr.astype(np.int64)
    raise DataError(f"{name} must be an integer array, got dtype {arr.dtype}")


def _unwrap_us(ticks_us) -> np.ndarray:
    """pigpio ticks -> int64 microseconds, counted from the same origin as the first tick.

    A backward step is read as the counter wrapping only when the interval it implies is plausible:
    at most WRAP_MAX_PERIODS median intervals and at most half the wrap period (35.8 min). Anything else
    (swapped ticks, a tick set back) would become a ~71.6 min gap, so it is refused with a ValueError.
    """
    ticks = _as_int64("ticks_us", ticks_us)
    if ticks.size and (ticks.min() < 0 or ticks.max() >= TICK_WRAP):
        raise DataError("ticks_us must be unsigned 32-bit values in [0, 2**32)")
    if ticks.size == 0:
        return ticks
    raw_steps = np.diff(ticks)
    steps = raw_steps % TICK_WRAP
    if np.any(raw_steps < 0):
        limit = min(WRAP_MAX_PERIODS * float(np.median(steps)), TICK_WRAP // 2)
        bad = np.flatnonzero((raw_steps < 0) & (steps > limit))
        if bad.size:
            i = int(bad[0])
            raise DataError(f"ticks go backwards at pulse index {i + 1}: tick {ticks[i + 1]} after {ticks[i]} is no "
                             f"counter wrap (it would mean a {steps[i] / 1e6:.3f} s interval; a wrap allows at "
                             f"most {limit / 1e6:.3f} s): pulses out of order or the tick set back?")
    return np.concatenate([ticks[:1], ticks[0] + np.cumsum(steps)])


def unwrap_ticks(ticks_us) -> np.ndarray:
    """Unwrap uint32 microsecond ticks (any number of wraps) to monotonic float64 seconds.

    The first pulse is at ``ticks_us[0] / 1e6``. A forward step may be any interval below 2**32 us; a
    backward step must be a plausible wrap (see ``_unwrap_us``), else ValueError names the pulse and ticks.

    Parameters
    ----------
    ticks_us : array_like, (n_pulses,) integer, us
        pigpio ticks, unsigned 32-bit values in [0, 2**32) (integer-valued floats are accepted).

    Returns
    -------
    numpy.ndarray, (n_pulses,) float64, s
        Monotonic times, counted from the same origin as the first tick.

    Raises
    ------
    DataError
        (a ValueError) If the ticks are not 1-D integers in [0, 2**32), or a backward step is no plausible
        counter wrap (pulses out of order or the tick set back).
    """
    return _unwrap_us(ticks_us) / 1e6


@dataclass
class _ClockFit:
    """Linear map neural_us = intercept + slope * (camera_us - ref) and its placement uncertainty."""

    intercept: float
    slope: float
    ref: float
    uncertainty0: float
    uncertainty_per_us: float

    def predict(self, camera_us: np.ndarray) -> np.ndarray:
        return self.intercept + self.slope * (camera_us - self.ref)

    def uncertainty(self, camera_us) -> np.ndarray:
        return self.uncertainty0 + self.uncertainty_per_us * np.abs(camera_us - self.ref)


def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares y = y_mean + slope (x - x_mean): returns x_mean, y_mean, slope, sum (x - x_mean)^2."""
    x_mean, y_mean = float(x.mean()), float(y.mean())
    dx = x - x_mean
    sxx = float(dx @ dx)
    slope = float(dx @ (y - y_mean)) / sxx if sxx > 0 else 1.0
    return x_mean, y_mean, slope, sxx


def _fit_clock(camera_us: np.ndarray, neural_us: np.ndarray, noise_floor_us: float) -> _ClockFit:
    """Least-squares clock line with a 5-sigma prediction band (noise floored at the tick resolution)."""
    ref, y_mean, slope, sxx = _line_fit(camera_us, neural_us)
    residual = neural_us - y_mean - slope * (camera_us - ref)
    sigma = max(float(np.sqrt(np.mean(residual**2))), noise_floor_us)
    slope_se = sigma / np.sqrt(sxx) if sxx > 0 else np.inf
    return _ClockFit(y_mean, slope, ref, 5 * sigma / np.sqrt(len(camera_us)), 5 * slope_se + _DRIFT_WANDER)


def _nearest(sorted_values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Index of the nearest element of a sorted array for every target."""
    right = np.searchsorted(sorted_values, targets)
    np.clip(right, 1, len(sorted_values) - 1, out=right)
    left = right - 1
    # Inside the range sorted[left] < target <= sorted[right]; at the ends the signs pick the end element.
    return left + ((sorted_values[right] - targets) < (targets - sorted_values[left]))


def _first_pulse(pulse_us, frame_ids, camera_us, *, period_us, tolerance_us, max_drift, max_steps) -> int:
    """Pulse index of the first frame: follow frame intervals through the pulse train from every start.

    Gives up as ambiguous after max_steps intervals, or after _STALL_STEPS intervals that rule out no
    candidate (a jitter-free regular train).
    """
    n_frames, n_pulses = len(frame_ids), len(pulse_us)
    n_starts = n_pulses - int(frame_ids[-1] - frame_ids[0])
    if n_starts < 1:
        raise DataError(f"frame_ids span {frame_ids[-1] - frame_ids[0] + 1} FrameIDs but the trigger log "
                         f"has only {n_pulses} pulses")
    starts = np.arange(n_starts)
    current = starts.copy()
    checked, stalled = 0, 0
    while len(starts) > 1 and checked < min(n_frames - 1, max_steps) and stalled < _STALL_STEPS:
        interval = camera_us[checked + 1] - camera_us[checked]
        tol = tolerance_us + max_drift * interval
        if tol >= period_us / 2:
            break  # a gap this long cannot tell neighbouring pulses apart
        target = pulse_us[current] + interval
        nxt = _nearest(pulse_us, target)
        min_step = frame_ids[checked + 1] - frame_ids[checked]
        ok = (np.abs(pulse_us[nxt] - target) <= tol) & (nxt - current >= min_step)
        if not ok.any():
            raise DataError(f"frames cannot be placed: the camera interval between frames {checked} and "
                             f"{checked + 1} ({interval:.1f} us) matches no sequence of trigger pulses "
                             f"within {tol:.1f} us")
        stalled = stalled + 1 if ok.all() else 0
        starts, current = starts[ok], nxt[ok]
        checked += 1
    if len(starts) > 1:
        shown = ", ".join(str(s) for s in starts[:5])
        raise DataError(f"ambiguous alignment: the first {checked} frame intervals fit {len(starts)} "
                         f"different first pulses equally well (e.g. {shown}); neither a start pattern nor "
                         f"jitter in the trigger log identifies the camera's first frame")
    return int(starts[0])


def align_frames(frame_ids, camera_ts_ns, pulse_ticks_us, *, rate_hz: float | None = None,
                 tolerance_us: float = 10.0, max_drift_ppm: float = 200.0, fit_window_s: float = 30.0,
                 max_pattern_frames: int = 512) -> FrameAlignment:
    """Assign every delivered frame of one camera to the trigger pulse that exposed it.

    Parameters
    ----------
    frame_ids : array_like, (n_frames,) integer
        FrameID of every delivered frame, strictly increasing.
    camera_ts_ns : array_like, (n_frames,) integer, ns
        Camera-clock timestamp of every delivered frame, strictly increasing.
    pulse_ticks_us : array_like, (n_pulses,) integer, us
        The Pi's trigger log (uint32 pigpio ticks, may wrap).
    rate_hz : float, optional, Hz
        If given, checked against the trigger log's median rate (within 10 %).
    tolerance_us : float, us
        How far a frame may sit from its pulse once the camera clock is mapped (timestamp noise + tick
        resolution); must be > 0.
    max_drift_ppm : float, ppm
        Bounds the camera clock's rate error before it is measured; must be >= 0.
    fit_window_s : float, s
        How far back the local linear clock fit reaches (at least 100 frames).
    max_pattern_frames : int
        At most this many frame intervals are followed to find the first frame's pulse.

    Returns
    -------
    FrameAlignment
        Each frame's pulse and neural time, drop counts, the camera clock's drift and offset, residuals.

    Raises
    ------
    DataError
        (a ValueError) On inconsistent input (empty, lengths that differ, not strictly increasing, more frames
        than pulses, repeated ticks, a rate that does not match), on frames no pulse explains, and when the first
        frame's pulse is ambiguous.
    """
    fid = _as_int64("frame_ids", frame_ids)
    cam_ns = _as_int64("camera_ts_ns", camera_ts_ns)
    pulse_abs_us = _unwrap_us(pulse_ticks_us)
    if len(fid) == 0 or len(pulse_abs_us) == 0:
        raise DataError(f"empty input: {len(fid)} frames, {len(pulse_abs_us)} trigger pulses")
    if len(fid) != len(cam_ns):
        raise DataError(f"frame_ids ({len(fid)}) and camera_ts_ns ({len(cam_ns)}) differ in length")
    if np.any(np.diff(fid) <= 0):
        i = int(np.flatnonzero(np.diff(fid) <= 0)[0])
        raise DataError(f"frame_ids must be strictly increasing: frame {i + 1} has FrameID {fid[i + 1]} "
                         f"after {fid[i]}")
    if np.any(np.diff(cam_ns) <= 0):
        i = int(np.flatnonzero(np.diff(cam_ns) <= 0)[0])
        raise DataError(f"camera_ts_ns must be strictly increasing: frame {i + 1} is stamped {cam_ns[i + 1]} "
                         f"after {cam_ns[i]}")
    if len(fid) > len(pulse_abs_us):
        raise DataError(f"more frames ({len(fid)}) than trigger pulses ({len(pulse_abs_us)})")
    if np.any(np.diff(pulse_abs_us) == 0):
        raise DataError("pulse_ticks_us holds repeated ticks (zero interval between pulses)")
    if tolerance_us <= 0 or max_drift_ppm < 0:
        raise DataError("tolerance_us must be > 0 and max_drift_ppm >= 0")

    pulse_us = (pulse_abs_us - pulse_abs_us[0]).astype(np.float64)
    period_us = float(np.median(np.diff(pulse_us))) if len(pulse_us) > 1 else np.inf
    if rate_hz is not None and len(pulse_us) > 1 and abs(period_us * rate_hz / 1e6 - 1) > 0.1:
        raise DataError(f"the trigger log's median rate {1e6 / period_us:.2f} Hz does not match "
                         f"rate_hz={rate_hz}")
    camera_us = (cam_ns - cam_ns[0]) / 1e3
    max_drift = max_drift_ppm * 1e-6

    p0 = _first_pulse(pulse_us, fid, camera_us, period_us=period_us, tolerance_us=tolerance_us,
                      max_drift=max_drift, max_steps=max_pattern_frames)
    pulse, residual = _place_frames(pulse_us, camera_us, p0, period_us=period_us, tolerance_us=tolerance_us,
                                    max_drift=max_drift, fit_window_us=fit_window_s * 1e6)

    pulse_steps, fid_steps = np.diff(pulse), np.diff(fid)
    bad = np.flatnonzero(pulse_steps < fid_steps)
    if len(bad):
        i = int(bad[0])
        raise DataError(f"frames cannot be placed: FrameID advances by {fid_steps[i]} between frames {i} and "
                         f"{i + 1} but their camera times span only {pulse_steps[i]} pulses")
    return _summarise(pulse, residual, pulse_abs_us, pulse_us, camera_us, cam_ns, fid_steps)


def _place_frames(pulse_us, camera_us, p0, *, period_us, tolerance_us, max_drift, fit_window_us):
    """Pulse index and fit residual (us) of every frame, chunk by chunk from the first frame's pulse p0.

    Each chunk extends at most as far past the last placed frame as the current fit window spans (so a
    slowly changing drift cannot bend the extrapolation) and only while the fit's prediction band stays
    within a quarter trigger period (so the nearest pulse is the right one, whatever the jitter).
    """
    n = len(camera_us)
    pulse = np.empty(n, dtype=np.int64)
    residual = np.zeros(n)
    pulse[0] = p0
    model = _ClockFit(pulse_us[p0], 1.0, camera_us[0], 0.0, max_drift)  # drift not yet measured
    fit_span = np.inf
    start = 1
    while start < n:
        budget_us = period_us / 4 - tolerance_us - model.uncertainty0
        reach = model.ref + budget_us / model.uncertainty_per_us if model.uncertainty_per_us > 0 else np.inf
        if camera_us[start] > reach:
            raise DataError(f"frames cannot be placed: the camera gap of "
                             f"{(camera_us[start] - camera_us[start - 1]) / 1e6:.3f} s before frame {start} "
                             f"is too long to bridge with the clock fit so far")
        limit = max(min(reach, camera_us[start - 1] + fit_span), camera_us[start])
        end = int(np.searchsorted(camera_us, limit, "right"))
        predicted = model.predict(camera_us[start:end])
        idx = _nearest(pulse_us, predicted)
        excess = np.abs(pulse_us[idx] - predicted) - tolerance_us - model.uncertainty(camera_us[start:end])
        if np.any(excess > 0):
            i = int(np.argmax(excess > 0))
            raise DataError(f"frames cannot be placed: frame {start + i} is "
                             f"{abs(pulse_us[idx[i]] - predicted[i]):.1f} us from the nearest trigger pulse")
        pulse[start:end] = idx
        window = min(int(np.searchsorted(camera_us, camera_us[end - 1] - fit_window_us)),
                     max(end - _MIN_FIT_FRAMES, 0))
        model = _fit_clock(camera_us[window:end], pulse_us[pulse[window:end]], noise_floor_us=0.5)
        fit_span = camera_us[end - 1] - camera_us[window]
        first_new = 0 if start == 1 else start
        residual[first_new:end] = pulse_us[pulse[first_new:end]] - model.predict(camera_us[first_new:end])
        start = end
    return pulse, residual


def _summarise(pulse, residual_us, pulse_abs_us, pulse_us, camera_us, cam_ns, fid_steps) -> FrameAlignment:
    """Drop counts, global clock fit and residual statistics of a finished placement."""
    first, last = int(pulse[0]), int(pulse[-1])
    delivered = np.zeros(last - first + 1, dtype=bool)
    delivered[pulse - first] = True
    lost = int(np.sum(fid_steps - 1))
    missed = int(np.sum(np.diff(pulse) - fid_steps))
    neural_rel_us = pulse_us[pulse] - pulse_us[first]
    neural_mean, camera_mean, slope, _ = _line_fit(neural_rel_us, camera_us)
    # camera clock (s) at neural time 0, from camera_us = camera_mean + slope (neural_rel_us - neural_mean)
    first_time_s = pulse_abs_us[first] / 1e6
    clock_offset_s = cam_ns[0] / 1e9 + (camera_mean - slope * neural_mean) / 1e6 - slope * first_time_s
    return FrameAlignment(
        pulse_index=pulse,
        time_s=pulse_abs_us[pulse] / 1e6,
        dropped_pulses=first + np.flatnonzero(~delivered),
        lost_in_transfer=lost,
        missed_trigger=missed,
        drift_ppm=float((slope - 1.0) * 1e6),
        clock_offset_s=float(clock_offset_s),
        residual_rms_s=float(np.sqrt(np.mean(residual_us**2)) / 1e6),
        residual_max_s=float(np.max(np.abs(residual_us)) / 1e6),
        first_pulse=first,
        last_pulse=last,
        n_pulses=len(pulse_abs_us),
    )


def pulse_rows(frame_pulses, pulses) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``pulses`` is among a camera's ``frame_pulses``: the one pulse -> frame lookup of the project.

    Parameters
    ----------
    frame_pulses : array_like, (n_camera_frames,) int
        The pulse index of each of a camera's video frames, as SyncedFrames stores them; any order.
    pulses : array_like, (n,) int
        The pulses to look up.

    Returns
    -------
    row : numpy.ndarray, (n,) int64
        The frame row of each pulse; -1 for a pulse the camera has no frame for.
    found : numpy.ndarray, (n,) bool
        Whether the camera has a frame for each pulse.
    """
    frame_pulses, pulses = np.asarray(frame_pulses), np.asarray(pulses)
    if not frame_pulses.size:
        return np.full(pulses.shape, -1, np.int64), np.zeros(pulses.shape, bool)
    order = np.argsort(frame_pulses, kind="stable")
    rows = order[np.searchsorted(frame_pulses, pulses, sorter=order).clip(0, len(order) - 1)]
    found = frame_pulses[rows] == pulses
    return np.where(found, rows, -1).astype(np.int64), found


def pulse_slots(pulse_time_s, rate_hz: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Trigger pulses on a fixed-rate grid fitted to them; slot k's time is start + k * period.

    This is the grid that readers which count frames at a rate assume. A pause leaves slots empty; pulses
    before the last interval that is no whole number of periods (the Pi's start pattern) are left out, as are
    any off the grid by more than a quarter period.

    Parameters
    ----------
    pulse_time_s : array_like, (n,) float, s
        Neural-clock times of the trigger pulses, increasing.
    rate_hz : float, Hz
        The nominal trigger rate.

    Returns
    -------
    slot : numpy.ndarray, (m,) int64
        The slot of each pulse kept, counted from the first kept pulse's (0).
    kept : numpy.ndarray, (n,) bool
        Which pulses are on the grid.
    start : float, s
        Time of slot 0.
    period : float, s
        The fitted period.
    """
    times = np.asarray(pulse_time_s, dtype=np.float64)
    steps = np.diff(times) * rate_hz
    irregular = np.flatnonzero((np.abs(steps - np.rint(steps)) > 0.25) | (np.rint(steps) < 1))
    first = irregular[-1] + 1 if irregular.size else 0
    regular = times[first:]
    slots = np.rint((regular - regular[0]) * rate_hz)
    period, start = np.polyfit(slots, regular, 1) if slots[-1] > 0 else (1.0 / rate_hz, regular[0])
    position = (times - start) / period
    slot = np.rint(position).astype(np.int64)
    kept = (np.abs(position - slot) <= 0.25) & (np.arange(len(times)) >= first)
    slot = slot[kept]
    return slot - slot[0], kept, float(start + slot[0] * period), float(period)


def match_cameras(pulse_indices: Mapping[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Pulses delivered by every camera and, per camera, the frame row of each of those pulses.

    Parameters
    ----------
    pulse_indices : mapping of str to array_like, (n_frames,) integer
        Per camera, the pulse index of each of its frames, strictly increasing.

    Returns
    -------
    common : numpy.ndarray, (n_common,) int64
        The pulses every camera delivered a frame for, increasing.
    rows : dict of str to numpy.ndarray, (n_common,) int64
        Per camera, the frame row of each of the common pulses.

    Raises
    ------
    DataError
        If there is no camera, or a camera's pulse indices are not strictly increasing integers.
    """
    if not pulse_indices:
        raise DataError("match_cameras needs at least one camera")
    arrays = {}
    for name, values in pulse_indices.items():
        arr = _as_int64(f"pulse_indices[{name!r}]", values)
        if np.any(np.diff(arr) <= 0):
            raise DataError(f"pulse_indices[{name!r}] must be strictly increasing")
        arrays[name] = arr
    common = None
    for arr in arrays.values():
        common = arr if common is None else np.intersect1d(common, arr, assume_unique=True)
    rows = {name: pulse_rows(arr, common)[0] for name, arr in arrays.items()}
    return common, rows


def sync_qc(alignment: FrameAlignment, *, max_drop_fraction: float = 0.01,
            max_residual_s: float = 20e-6) -> list[str]:
    """Problems with one camera's alignment (empty when fine).

    Parameters
    ----------
    alignment : FrameAlignment
        One camera's alignment, from ``align_frames``.
    max_drop_fraction : float
        The largest acceptable fraction of dropped pulses in the recording span; also bounds (with at least
        10 pulses) how many pulses the trigger log may run on after the camera's last frame.
    max_residual_s : float, s
        The largest acceptable distance of a frame from its pulse.

    Returns
    -------
    list of str
        One message per problem found.
    """
    problems = []
    if alignment.drop_fraction > max_drop_fraction:
        problems.append(f"{len(alignment.dropped_pulses)} of {alignment.last_pulse - alignment.first_pulse + 1} "
                        f"pulses dropped ({alignment.drop_fraction:.2%} > {max_drop_fraction:.2%}: "
                        f"{alignment.lost_in_transfer} lost in transfer, {alignment.missed_trigger} "
                        f"missed triggers)")
    trailing = alignment.n_pulses - 1 - alignment.last_pulse
    if trailing > max(10, max_drop_fraction * alignment.n_pulses):
        problems.append(f"frames end {trailing} pulses before the trigger log does (after pulse "
                        f"{alignment.last_pulse} of {alignment.n_pulses}): the camera stopped delivering")
    if alignment.residual_max_s > max_residual_s:
        problems.append(f"frames sit up to {alignment.residual_max_s * 1e6:.1f} us from their pulse "
                        f"(> {max_residual_s * 1e6:.1f} us)")
    return problems
