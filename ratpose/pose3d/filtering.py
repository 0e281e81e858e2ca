"""Gap-respecting smoothing and quality control of pose trajectories.

A trajectory is an array (n_frames, n_parts, D) (D = 3 for 3D points, 2 for pixels); a point is valid
when all D coordinates are finite. Filters work within runs of consecutive valid frames only: they
never carry information across a gap, and NaN gaps stay NaN unless the caller asks for gaps of at
most max_gap frames to be interpolated linearly first.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

from ..errors import DataError

_BLOCK_FRAMES = 16_384  # frames per block in windowed filters: bounds memory for hours of data


def _check_trajectory(traj, name: str = "trajectory") -> np.ndarray:
    arr = np.asarray(traj, dtype=np.float64)
    if arr.ndim != 3:
        raise DataError(f"{name} must have shape (n_frames, n_parts, D), got {arr.shape}")
    return arr


def _check_window(window: int, minimum: int = 1) -> int:
    if int(window) != window or window < minimum or window % 2 == 0:
        raise DataError(f"window must be an odd integer >= {minimum}, got {window}")
    return int(window)


def valid_points(traj) -> np.ndarray:
    """(n_frames, n_parts) bool: all coordinates finite.

    Parameters
    ----------
    traj : array_like, (n_frames, n_parts, D)
        D = 3 for 3D points (mm), 2 for pixels; a point is valid when all D coordinates are finite.

    Returns
    -------
    numpy.ndarray, (n_frames, n_parts) bool

    Raises
    ------
    DataError
        If ``traj`` is not 3-D.
    """
    return np.isfinite(_check_trajectory(traj)).all(axis=-1)


def _run_ids(valid: np.ndarray) -> np.ndarray:
    """Label runs of consecutive True along axis 0 (1, 2, ... per column); False frames get 0."""
    starts = valid.copy()
    starts[1:] &= ~valid[:-1]
    return np.where(valid, np.cumsum(starts, axis=0), 0)


def _run_bounds(valid_column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop (exclusive) frames of each run of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[False], valid_column, [False]]).astype(np.int8))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, start + length) for every (start, length) pair."""
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts - offsets, lengths) + np.arange(lengths.sum())


def interpolate_gaps(traj, max_gap: int) -> np.ndarray:
    """Fill interior gaps of at most max_gap frames by linear interpolation (per body part).

    Gaps at the start or end of the recording, and longer gaps, stay NaN. Returns a new array.

    Parameters
    ----------
    traj : array_like, (n_frames, n_parts, D)
        D = 3 for 3D points (mm), 2 for pixels; a point is valid when all D coordinates are finite.
    max_gap : int, frames
        Longest gap filled (0: none); must be >= 0.

    Returns
    -------
    numpy.ndarray, (n_frames, n_parts, D) float64

    Raises
    ------
    DataError
        If ``traj`` is not 3-D or ``max_gap`` < 0.
    """
    arr = _check_trajectory(traj).copy()
    if max_gap < 0:
        raise DataError(f"max_gap must be >= 0, got {max_gap}")
    if max_gap == 0:
        return arr
    valid = np.isfinite(arr).all(axis=-1)
    frames = np.arange(arr.shape[0])
    for part in range(arr.shape[1]):
        gap_starts, gap_stops = _run_bounds(~valid[:, part])
        short = (gap_stops - gap_starts <= max_gap) & (gap_starts > 0) & (gap_stops < arr.shape[0])
        if not short.any():
            continue
        fill = _ranges(gap_starts[short], gap_stops[short] - gap_starts[short])
        known = frames[valid[:, part]]
        for dim in range(arr.shape[2]):
            arr[fill, part, dim] = np.interp(fill, known, arr[known, part, dim])
    return arr


def _prepare(traj, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    arr = interpolate_gaps(traj, max_gap) if max_gap else _check_trajectory(traj).copy()
    valid = np.isfinite(arr).all(axis=-1)
    arr[~valid] = np.nan
    return arr, valid


def median_filter(traj, window: int, *, max_gap: int = 0) -> np.ndarray:
    """Running median over `window` frames (odd), computed within runs of valid frames only.

    Near a gap or the ends the window is truncated to the frames of the same run. Gaps stay NaN
    (after interpolating gaps of at most max_gap frames). Returns a new array.

    Parameters
    ----------
    traj : array_like, (n_frames, n_parts, D)
        D = 3 for 3D points (mm), 2 for pixels; a point is valid when all D coordinates are finite.
    window : int, frames
        Odd, >= 1.
    max_gap : int, frames
        Gaps of at most this many frames are interpolated first (0: none).

    Returns
    -------
    numpy.ndarray, (n_frames, n_parts, D) float64

    Raises
    ------
    DataError
        If ``traj`` is not 3-D, ``window`` is not an odd integer >= 1, or ``max_gap`` < 0.
    """
    window = _check_window(window)
    arr, valid = _prepare(traj, max_gap)
    half = window // 2
    n_frames = arr.shape[0]
    out = np.full_like(arr, np.nan)
    runs = _run_ids(valid)
    padded_vals = np.pad(arr, ((half, half), (0, 0), (0, 0)), constant_values=np.nan)
    padded_runs = np.pad(runs, ((half, half), (0, 0)), constant_values=0)
    for start in range(0, n_frames, _BLOCK_FRAMES):
        stop = min(start + _BLOCK_FRAMES, n_frames)
        vals = np.lib.stride_tricks.sliding_window_view(padded_vals[start:stop + 2 * half], window, axis=0)
        ids = np.lib.stride_tricks.sliding_window_view(padded_runs[start:stop + 2 * half], window, axis=0)
        same_run = ids == runs[start:stop, :, None]  # (frames, parts, window)
        samples = np.sort(np.where(same_run[:, :, None, :], vals, np.nan), axis=-1)  # NaN sort last
        count = same_run.sum(axis=-1)[:, :, None, None]
        lower = np.take_along_axis(samples, np.maximum(count - 1, 0) // 2, axis=-1)
        upper = np.take_along_axis(samples, count // 2 - (count == 0), axis=-1)
        out[start:stop] = (0.5 * (lower + upper))[..., 0]
    out[~valid] = np.nan
    return out


def _polynomial_hat(length: int, degree: int) -> np.ndarray:
    """(length, length) matrix mapping samples to their least-squares polynomial fit of `degree`."""
    positions = np.arange(length) - (length - 1) / 2
    vander = np.vander(positions, degree + 1, increasing=True)
    return vander @ np.linalg.pinv(vander)


def _fit(rows: np.ndarray, values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Apply `rows` (k, length) of a hat matrix to the `length` frames of values (n_frames, D) from
    each start: the fitted values at k positions per start, stacked as (len(starts) * k, D)."""
    windows = values[starts[:, None] + np.arange(rows.shape[1])]  # (n, length, D)
    return np.einsum("kw,nwd->nkd", rows, windows).reshape(-1, values.shape[1])


def savgol_filter(traj, window: int, polyorder: int = 2, *, max_gap: int = 0) -> np.ndarray:
    """Savitzky-Golay smoothing (local polynomial of `polyorder` over `window` frames, odd) within runs.

    Only valid frames of one run enter each fit. Frames near the ends of a run take the value of the
    polynomial fitted to the run's first (or last) `window` frames; runs shorter than the window get one
    polynomial fit over the whole run (degree capped at run length - 1). Gaps stay NaN (after interpolating
    gaps of at most max_gap frames). Returns a new array.

    Parameters
    ----------
    traj : array_like, (n_frames, n_parts, D)
        D = 3 for 3D points (mm), 2 for pixels; a point is valid when all D coordinates are finite.
    window : int, frames
        Odd, >= 3.
    polyorder : int
        In [0, window).
    max_gap : int, frames
        Gaps of at most this many frames are interpolated first (0: none).

    Returns
    -------
    numpy.ndarray, (n_frames, n_parts, D) float64

    Raises
    ------
    DataError
        If ``traj`` is not 3-D, ``window`` is not an odd integer >= 3, ``polyorder`` is out of range, or
        ``max_gap`` < 0.
    """
    window = _check_window(window, minimum=3)
    if not 0 <= polyorder < window:
        raise DataError(f"polyorder must be in [0, window), got {polyorder} for window {window}")
    arr, valid = _prepare(traj, max_gap)
    half = window // 2
    hat = _polynomial_hat(window, polyorder)
    # interior frames: plain correlation; any window touching a gap or the ends comes out NaN
    out = correlate1d(arr, hat[half], axis=0, mode="constant", cval=np.nan)
    for part in range(arr.shape[1]):
        values = arr[:, part]
        starts, stops = _run_bounds(valid[:, part])
        lengths = stops - starts
        long_runs = lengths >= window
        heads, tails = starts[long_runs], stops[long_runs] - window
        out[_ranges(heads, np.full(heads.size, half)), part] = _fit(hat[:half], values, heads)
        out[_ranges(tails + window - half, np.full(tails.size, half)), part] = _fit(hat[window - half:], values, tails)
        for length in np.unique(lengths[~long_runs]):
            short = starts[lengths == length]
            out[_ranges(short, np.full(short.size, length)), part] = _fit(
                _polynomial_hat(length, min(polyorder, length - 1)), values, short)
    out[~valid] = np.nan
    return out


def mask_by_error(traj, error, max_error: float) -> np.ndarray:
    """Copy of traj with NaN where the per-point error (n_frames, n_parts) exceeds max_error or is NaN.

    Parameters
    ----------
    traj : array_like, (n_frames, n_parts, D)
        D = 3 for 3D points (mm), 2 for pixels; a point is valid when all D coordinates are finite.
    error : array_like, (n_frames, n_parts)
        E.g. reprojection errors, px.
    max_error : float
        In the units of ``error``.

    Returns
    -------
    numpy.ndarray, (n_frames, n_parts, D) float64

    Raises
    ------
    DataError
        If ``traj`` is not 3-D or ``error`` does not have shape (n_frames, n_parts).
    """
    arr = _check_trajectory(traj).copy()
    err = np.asarray(error, dtype=np.float64)
    if err.shape != arr.shape[:2]:
        raise DataError(f"error must have shape {arr.shape[:2]}, got {err.shape}")
    with np.errstate(invalid="ignore"):
        arr[~(err <= max_error)] = np.nan
    return arr


def mask_by_cameras(traj, n_cameras, min_cameras: int) -> np.ndarray:
    """Copy of traj with NaN where fewer than min_cameras cameras (n_frames, n_parts) were used.

    Parameters
    ----------
    traj : array_like, (n_frames, n_parts, D)
        D = 3 for 3D points (mm), 2 for pixels; a point is valid when all D coordinates are finite.
    n_cameras : array_like, (n_frames, n_parts)
        Cameras used per point.
    min_cameras : int

    Returns
    -------
    numpy.ndarray, (n_frames, n_parts, D) float64

    Raises
    ------
    DataError
        If ``traj`` is not 3-D or ``n_cameras`` does not have shape (n_frames, n_parts).
    """
    arr = _check_trajectory(traj).copy()
    n = np.asarray(n_cameras)
    if n.shape != arr.shape[:2]:
        raise DataError(f"n_cameras must have shape {arr.shape[:2]}, got {n.shape}")
    arr[n < min_cameras] = np.nan
    return arr


def mask_spikes(traj, max_step: float) -> np.ndarray:
    """Copy of traj with NaN at isolated spikes: points far from both the previous and the next frame's point.

    A spike is farther than max_step (same units as traj) from both neighbours (both must be valid).

    Parameters
    ----------
    traj : array_like, (n_frames, n_parts, D)
        D = 3 for 3D points (mm), 2 for pixels; a point is valid when all D coordinates are finite.
    max_step : float
        In the units of ``traj`` (mm or px).

    Returns
    -------
    numpy.ndarray, (n_frames, n_parts, D) float64

    Raises
    ------
    DataError
        If ``traj`` is not 3-D.
    """
    arr = _check_trajectory(traj).copy()
    step = np.linalg.norm(np.diff(arr, axis=0), axis=-1)  # (n_frames - 1, n_parts), NaN at gaps
    with np.errstate(invalid="ignore"):
        spike = (step[:-1] > max_step) & (step[1:] > max_step)
    arr[1:-1][spike] = np.nan
    return arr
