"""Pose x spikes: peri-event histograms, tuning curves and their shuffle tests.

Behaviour (a variable sampled at pose frame times, gaps allowed) is resampled once onto a regular
time grid of cells; occupancy and spike counts per variable bin are then histograms over cells,
and a circular time shift of the spike train by k cells is an index shift, so all shuffles of a
unit are computed together with numpy. A test the data are too few for (a recording shorter than two
minimum shifts, no occupied bin, no spike in one) is not run: its result says why (``note``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .kinematics import as_times, pose_at

SHUFFLE_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class PETH:
    """Peri-event time histogram: ``counts`` (n_events, n_bins) over ``bin_edges_s`` relative to events.

    Attributes
    ----------
    bin_edges_s : numpy.ndarray, (n_bins + 1,), s
        Bin edges relative to each event.
    counts : numpy.ndarray, (n_events, n_bins) int
        Spikes per event and bin.
    """

    bin_edges_s: np.ndarray
    counts: np.ndarray

    @property
    def bin_s(self) -> float:
        return float(self.bin_edges_s[1] - self.bin_edges_s[0])

    @property
    def bin_centres_s(self) -> np.ndarray:
        return 0.5 * (self.bin_edges_s[:-1] + self.bin_edges_s[1:])

    @property
    def trial_rates_hz(self) -> np.ndarray:
        """Per-trial firing rate (n_events, n_bins)."""
        return self.counts / self.bin_s

    @property
    def rate_hz(self) -> np.ndarray:
        """Trial-averaged firing rate (n_bins,)."""
        return self.counts.mean(axis=0) / self.bin_s

    @property
    def sem_hz(self) -> np.ndarray:
        """Standard error of the trial-averaged rate (n_bins,); NaN with fewer than 2 events."""
        n = self.counts.shape[0]
        if n < 2:
            return np.full(self.counts.shape[1], np.nan)
        return self.counts.std(axis=0, ddof=1) / np.sqrt(n) / self.bin_s


def _spikes(spike_times) -> np.ndarray:
    return as_times(spike_times, "spike_times", strictly_increasing=False)


def peth(spike_times, event_times, window: tuple[float, float] = (-1.0, 1.0), bin_s: float = 0.02) -> PETH:
    """Spike counts around each event: bins of ``bin_s`` covering ``window`` (s, relative to events).

    Parameters
    ----------
    spike_times : array_like, (n_spikes,), s
        Sorted spike times.
    event_times : array_like, (n_events,), s
        Event times (finite).
    window : tuple of float, (start, stop), s
        Relative to each event; must be a whole number of bins.
    bin_s : float, s
        Bin width, > 0.

    Returns
    -------
    PETH

    Raises
    ------
    DataError
        If spike times are not sorted and finite, event times are not finite, or the window and bin do not fit.
    """
    spikes = _spikes(spike_times)
    events = np.asarray(event_times, dtype=np.float64).reshape(-1)
    if not np.isfinite(events).all():
        raise DataError("event_times must be finite")
    start, stop = window
    if not (bin_s > 0 and stop > start):
        raise DataError(f"need bin_s > 0 and window=(start, stop) with start < stop, got {bin_s}, {window}")
    n_bins = (stop - start) / bin_s
    if abs(n_bins - round(n_bins)) > 1e-6:
        raise DataError(f"window {window} is not a whole number of bins of {bin_s} s")
    edges = start + bin_s * np.arange(round(n_bins) + 1)
    positions = np.searchsorted(spikes, events[:, None] + edges[None, :], side="left")
    return PETH(edges, np.diff(positions, axis=1))


@dataclass(frozen=True)
class TuningCurve:
    """Occupancy-normalised firing rate per bin of a behavioural variable (NaN: too little occupancy).

    Attributes
    ----------
    bin_edges : numpy.ndarray, (n_bins + 1,)
        In the variable's units.
    occupancy_s : numpy.ndarray, (n_bins,), s
        Time spent in each bin.
    spike_counts : numpy.ndarray, (n_bins,) int
    rate_hz : numpy.ndarray, (n_bins,), Hz
        NaN where the bin has too little occupancy.
    """

    bin_edges: np.ndarray
    occupancy_s: np.ndarray
    spike_counts: np.ndarray
    rate_hz: np.ndarray

    @property
    def bin_centres(self) -> np.ndarray:
        return 0.5 * (self.bin_edges[:-1] + self.bin_edges[1:])

    @property
    def preferred_value(self) -> float:
        """Centre of the bin with the highest rate."""
        if not np.isfinite(self.rate_hz).any():
            return np.nan
        return float(self.bin_centres[np.nanargmax(self.rate_hz)])

    @property
    def modulation_depth(self) -> float:
        """(max - min) / (max + min) of the rate over bins with enough occupancy."""
        valid = self.rate_hz[np.isfinite(self.rate_hz)]
        total = valid.max() + valid.min() if valid.size else 0.0
        return float((valid.max() - valid.min()) / total) if total > 0 else np.nan

    @property
    def information_bits_per_spike(self) -> float:
        """Skaggs mutual information between spikes and the variable (bits/spike)."""
        valid = np.isfinite(self.rate_hz)
        return float(_information(self.rate_hz[valid][None], self.occupancy_s[valid])[0])


def _information(rates: np.ndarray, occupancy_s: np.ndarray) -> np.ndarray:
    """Skaggs information (bits/spike) of each row of ``rates`` (n, n_bins) given occupancy."""
    p = occupancy_s / occupancy_s.sum()
    mean = rates @ p
    ratio = np.divide(rates, mean[:, None], out=np.zeros_like(rates), where=mean[:, None] > 0)
    terms = np.where(ratio > 0, ratio * np.log2(np.where(ratio > 0, ratio, 1.0)), 0.0)
    return terms @ p


@dataclass(frozen=True)
class _CellGrid:
    """Behaviour on a regular grid: cell c covers [start_s + c*step_s, start_s + (c+1)*step_s)."""

    start_s: float
    step_s: float
    bin_of_cell: np.ndarray  # variable bin of each cell, -1 where unknown or outside the bins
    n_bins: int

    @classmethod
    def build(cls, times_s, variable, step_s, max_gap_s, to_bins, circular: bool) -> _CellGrid:
        times_s = as_times(times_s, "times_s")
        variable = np.asarray(variable, dtype=np.float64)
        if variable.shape != times_s.shape:
            raise DataError(f"variable must have shape {times_s.shape} (one value per time), got {variable.shape}")
        if times_s.size < 2:
            raise DataError("times_s needs at least 2 samples")
        step_s = float(np.median(np.diff(times_s))) if step_s is None else float(step_s)
        if not step_s > 0:
            raise DataError(f"step_s must be > 0, got {step_s}")
        n_cells = int((times_s[-1] - times_s[0]) // step_s) + 1
        centres = times_s[0] + (np.arange(n_cells) + 0.5) * step_s
        if circular:
            radians = np.radians(variable)
            unit = pose_at(centres, times_s, np.stack([np.cos(radians), np.sin(radians)], axis=1), max_gap_s)
            values = np.degrees(np.arctan2(unit[:, 1], unit[:, 0]))
        else:
            values = pose_at(centres, times_s, variable, max_gap_s)
        bin_of_cell, n_bins = to_bins(values)
        return cls(float(times_s[0]), step_s, bin_of_cell.astype(np.int32), n_bins)

    @property
    def n_cells(self) -> int:
        return self.bin_of_cell.size

    @property
    def occupancy_s(self) -> np.ndarray:
        known = self.bin_of_cell >= 0
        return np.bincount(self.bin_of_cell[known], minlength=self.n_bins) * self.step_s

    def counts(self, spikes: np.ndarray, shifts: np.ndarray) -> np.ndarray:
        """Spike counts per bin (len(shifts), n_bins) with spikes circularly shifted by ``shifts`` cells."""
        cells = np.floor((spikes - self.start_s) / self.step_s)
        cells = cells[(cells >= 0) & (cells < self.n_cells)].astype(np.int64)
        doubled = np.concatenate([self.bin_of_cell, self.bin_of_cell])
        shifts = np.asarray(shifts, dtype=np.int64) % self.n_cells
        out = np.empty((shifts.size, self.n_bins), dtype=np.int64)
        chunk = max(1, SHUFFLE_CHUNK_ELEMENTS // max(cells.size, 1))
        for first in range(0, shifts.size, chunk):
            block = shifts[first:first + chunk]
            bins = doubled[cells[None, :] + block[:, None]]
            rows = np.broadcast_to(np.arange(block.size)[:, None], bins.shape)
            known = bins >= 0
            flat = rows[known] * self.n_bins + bins[known]
            out[first:first + block.size] = (np.bincount(flat, minlength=block.size * self.n_bins)
                                             .reshape(block.size, -1))
        return out

    def shift_range(self, min_shift_s: float) -> tuple[int, int]:
        """Lowest and highest circular shift (cells) at least min_shift_s each way; none if lowest >= highest."""
        lowest = int(np.ceil(min_shift_s / self.step_s))
        return lowest, self.n_cells - lowest

    def random_shifts(self, n_shuffles: int, min_shift_s: float, seed) -> np.ndarray:
        """Shifts (cells) uniform in [min_shift_s, duration - min_shift_s]."""
        if n_shuffles < 1:
            raise DataError(f"n_shuffles must be >= 1, got {n_shuffles}")
        lowest, highest = self.shift_range(min_shift_s)
        return np.random.default_rng(seed).integers(lowest, highest, size=n_shuffles, endpoint=True)


def _linear_binner(bins, variable):
    """Bin edges and a function mapping values -> (bin index or -1, n_bins); right edge inclusive."""
    if np.ndim(bins) == 0:
        finite = np.asarray(variable, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        if int(bins) < 1 or finite.size == 0:
            raise DataError(f"bins must be >= 1 and variable must have finite values (bins={bins})")
        edges = np.linspace(finite.min(), finite.max(), int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 2 or not (np.diff(edges) > 0).all():
            raise DataError(f"bins must be an int or increasing edges (>= 2), got {bins}")
    n_bins = edges.size - 1

    def to_bins(values):
        index = np.searchsorted(edges, values, side="right") - 1
        index[values == edges[-1]] = n_bins - 1
        index[~((index >= 0) & (index < n_bins))] = -1
        return index, n_bins
    return edges, to_bins


def _circular_binner(n_bins: int):
    """Edges over [-180, 180) deg and the matching value -> bin function."""
    if n_bins < 3:
        raise DataError(f"n_bins must be >= 3 for direction tuning, got {n_bins}")
    width = 360.0 / n_bins
    edges = -180.0 + width * np.arange(n_bins + 1)

    def to_bins(values):
        index = np.floor((values + 180.0) / width)
        return np.where(np.isfinite(index), index % n_bins, -1).astype(np.int64), n_bins
    return edges, to_bins


def _enough(occupancy_s: np.ndarray, min_occupancy_s: float) -> np.ndarray:
    """Bins whose rate is defined: occupied for at least min_occupancy_s (and at all)."""
    return (occupancy_s > 0) & (occupancy_s >= min_occupancy_s)


def _curve(edges, grid: _CellGrid, counts: np.ndarray, min_occupancy_s: float) -> TuningCurve:
    occupancy = grid.occupancy_s
    enough = _enough(occupancy, min_occupancy_s)
    rates = np.full(occupancy.shape, np.nan)
    rates[enough] = counts[enough] / occupancy[enough]
    return TuningCurve(edges, occupancy, counts, rates)


def tuning_curve(spike_times, times_s, variable, bins=10, *, min_occupancy_s: float = 1.0,
                 max_gap_s: float | None = None, step_s: float | None = None) -> TuningCurve:
    """Firing rate vs a behavioural ``variable`` sampled at ``times_s`` (e.g. paw speed per frame).

    ``bins``: number of equal bins over the variable's range, or bin edges. The variable is
    interpolated onto a grid of ``step_s`` (default: the median frame interval) and is unknown over
    gaps > ``max_gap_s`` (kinematics.pose_at). Bins with < ``min_occupancy_s`` get a NaN rate.

    Parameters
    ----------
    spike_times : array_like, (n_spikes,), s
        Sorted spike times.
    times_s : array_like, (n_frames,), s
        Sample times of the variable, strictly increasing (at least 2).
    variable : array_like, (n_frames,)
        The variable per sample (NaN: unknown).
    bins : int or array_like
        Number of equal bins (>= 1) over the variable's finite range, or increasing bin edges.
    min_occupancy_s : float, s
    max_gap_s : float, optional, s
        None: 2.5 median frame intervals.
    step_s : float, optional, s
        The grid's cell; None: the median frame interval.

    Returns
    -------
    TuningCurve

    Raises
    ------
    DataError
        If the variable does not match ``times_s``, the bins are invalid, or times are not valid.
    """
    edges, to_bins = _linear_binner(bins, variable)
    grid = _CellGrid.build(times_s, variable, step_s, max_gap_s, to_bins, circular=False)
    return _curve(edges, grid, grid.counts(_spikes(spike_times), np.zeros(1))[0], min_occupancy_s)


@dataclass(frozen=True)
class ShuffleTest:
    """Tuning curve with its Skaggs information, the circular-shift null and the p-value; a test not run
    (too little data) has an empty null, p-value NaN and ``note`` saying why.

    Attributes
    ----------
    curve : TuningCurve
    information_bits_per_spike : float, bits/spike
        Skaggs information of the curve.
    null : numpy.ndarray, (n_shuffles,), bits/spike
        Information of each circularly shifted spike train; empty when the test did not run.
    p_value : float
        (1 + #null >= observed) / (1 + n_shuffles); NaN when the test did not run.
    note : str
        Why the test did not run ('' when it ran).
    """

    curve: TuningCurve
    information_bits_per_spike: float
    null: np.ndarray
    p_value: float
    note: str = ""

    @property
    def preferred_value(self) -> float:
        """The curve's preferred value; NaN when the test did not run."""
        return self.curve.preferred_value if self.null.size else np.nan


def _too_little_data(grid: _CellGrid, observed: np.ndarray, enough: np.ndarray, min_shift_s: float,
                     min_occupancy_s: float, min_bins: int) -> str:
    """Why the shuffle test cannot run on this data ('' when it can)."""
    lowest, highest = grid.shift_range(min_shift_s)
    if highest <= lowest:
        return (f"not enough data: a recording of {grid.n_cells * grid.step_s:.1f} s is too short for shifts of "
                f"at least {min_shift_s:g} s each way")
    if enough.sum() < min_bins:
        return (f"not enough data: {int(enough.sum())} bin(s) with at least {min_occupancy_s:g} s occupancy, "
                f"the test needs {min_bins}")
    if not observed[enough].any():
        return f"not enough data: no spikes in the bins with at least {min_occupancy_s:g} s occupancy"
    return ""


def _shuffled(grid: _CellGrid, spike_times, n_shuffles: int, min_shift_s: float, seed, min_occupancy_s: float,
              min_bins: int):
    """Counts (1 + n_shuffles, n_bins) of the real (row 0) and circularly shifted spike trains, their
    rates in the bins with >= min_occupancy_s, the mask of those bins, and why there are no shuffled rows
    ('' when there are): the test needs ``min_bins`` such bins, a spike in them and room for the shifts."""
    spikes = _spikes(spike_times)
    occupancy = grid.occupancy_s
    enough = _enough(occupancy, min_occupancy_s)
    counts = grid.counts(spikes, np.zeros(1))
    note = _too_little_data(grid, counts[0], enough, min_shift_s, min_occupancy_s, min_bins)
    if not note:
        counts = np.concatenate([counts, grid.counts(spikes, grid.random_shifts(n_shuffles, min_shift_s, seed))])
    return counts, counts[:, enough] / occupancy[enough], enough, note


def _p_value(observed: float, null: np.ndarray) -> float:
    """(1 + #null >= observed) / (1 + #null); NaN without a null (the test did not run)."""
    return float((1 + np.count_nonzero(null >= observed)) / (1 + null.size)) if null.size else np.nan


def shuffle_test(spike_times, times_s, variable, bins=10, *, n_shuffles: int = 1000, seed=0,
                 min_shift_s: float = 20.0, min_occupancy_s: float = 1.0,
                 max_gap_s: float | None = None, step_s: float | None = None) -> ShuffleTest:
    """Tuning curve plus a circular-shift test of its Skaggs information.

    The spike train is shifted circularly over the recording by ``n_shuffles`` random offsets of at
    least ``min_shift_s`` (reproducible with ``seed``); p = (1 + #null >= observed) / (1 + n_shuffles).
    Too little data for the test (see the module): the curve only, ``note`` says why.
    Other arguments as tuning_curve.

    Parameters
    ----------
    spike_times : array_like, (n_spikes,), s
    times_s : array_like, (n_frames,), s
    variable : array_like, (n_frames,)
    bins : int or array_like
        As tuning_curve.
    n_shuffles : int
        Must be >= 1.
    seed : int, optional
        Seed of the random shifts (numpy.random.default_rng).
    min_shift_s : float, s
        Smallest shift each way.
    min_occupancy_s : float, s
    max_gap_s : float, optional, s
    step_s : float, optional, s
        As tuning_curve.

    Returns
    -------
    ShuffleTest

    Raises
    ------
    DataError
        As tuning_curve, or if ``n_shuffles`` < 1.
    """
    edges, to_bins = _linear_binner(bins, variable)
    grid = _CellGrid.build(times_s, variable, step_s, max_gap_s, to_bins, circular=False)
    counts, rates, enough, note = _shuffled(grid, spike_times, n_shuffles, min_shift_s, seed, min_occupancy_s, 1)
    information = _information(rates, grid.occupancy_s[enough]) if enough.any() else np.full(1, np.nan)
    return ShuffleTest(_curve(edges, grid, counts[0], min_occupancy_s), float(information[0]),
                       information[1:], _p_value(information[0], information[1:]), note)


@dataclass(frozen=True)
class DirectionTuning:
    """Direction tuning: binned curve, cosine fit rate = baseline * (1 + depth * cos(theta - preferred)),
    and the shuffle test of the curve's vector strength (``vector_strength``, its ``null``, ``p_value``).

    Attributes
    ----------
    curve : TuningCurve
        Over bins of [-180, 180) deg.
    preferred_deg : float, deg
    baseline_hz : float, Hz
    modulation_depth : float
        Amplitude / baseline of the cosine fit.
    vector_strength : float
        Of the rate over the bins with enough occupancy (0..1).
    null : numpy.ndarray, (n_shuffles,)
        Vector strength of each circularly shifted spike train; empty when the test did not run.
    p_value : float
        NaN when the test did not run.
    """

    curve: TuningCurve
    preferred_deg: float
    baseline_hz: float
    modulation_depth: float
    vector_strength: float
    null: np.ndarray
    p_value: float
    note: str = ""  # why the test did not run (then fit, strength and p-value are NaN); '' when it ran


def _cosine_fit(rates: np.ndarray, centres_deg: np.ndarray, occupancy_s: np.ndarray):
    """Occupancy-weighted fit of b0 + b1 cos + b2 sin to each row of ``rates`` (n, n_bins)."""
    theta = np.radians(centres_deg)
    design = np.column_stack([np.ones_like(theta), np.cos(theta), np.sin(theta)])
    weighted = design * occupancy_s[:, None]
    b0, b1, b2 = np.linalg.solve(design.T @ weighted, weighted.T @ rates.T)
    depth = np.divide(np.hypot(b1, b2), b0, out=np.zeros_like(b0), where=b0 > 0)
    return b0, np.degrees(np.arctan2(b2, b1)), depth


def _vector_strength(rates: np.ndarray, centres_deg: np.ndarray) -> np.ndarray:
    """|sum of rate * e^(i theta)| / sum of rate over the bins of each row of ``rates`` (n, n_bins)."""
    theta = np.radians(centres_deg)
    total = rates.sum(axis=1)
    length = np.hypot(rates @ np.cos(theta), rates @ np.sin(theta))
    return np.divide(length, total, out=np.zeros_like(total), where=total > 0)


def direction_tuning(spike_times, times_s, direction_deg, *, n_bins: int = 12, n_shuffles: int = 1000,
                     seed=0, min_shift_s: float = 20.0, min_occupancy_s: float = 1.0,
                     max_gap_s: float | None = None, step_s: float | None = None) -> DirectionTuning:
    """Tuning to a circular variable (deg, e.g. kinematics.movement_direction; NaN = undefined).

    ``n_bins`` equal bins over [-180, 180); a cosine fit (occupancy-weighted, bins with at least
    ``min_occupancy_s``) gives the preferred direction and modulation depth (amplitude / baseline).
    The test statistic is the vector strength of the rate over those bins, against circular shifts of
    the spike train as in shuffle_test: unlike the fit's depth it stays well defined when the movements
    cover only a narrow arc (a reach task's forward and back), where the fit is ill-conditioned.
    Too little data for the test (fewer than 3 bins with ``min_occupancy_s``, see the module): the curve
    only, ``note`` says why.

    Parameters
    ----------
    spike_times : array_like, (n_spikes,), s
    times_s : array_like, (n_frames,), s
        Sample times of the direction, strictly increasing (at least 2).
    direction_deg : array_like, (n_frames,), deg
    n_bins : int
        Must be >= 3.
    n_shuffles : int
    seed : int
    min_shift_s : float, s
    min_occupancy_s : float, s
    max_gap_s : float, optional, s
    step_s : float, optional, s
        As shuffle_test.

    Returns
    -------
    DirectionTuning
        Fit, strength and p-value NaN when the test did not run.

    Raises
    ------
    DataError
        If ``n_bins`` < 3, or as shuffle_test.
    """
    edges, to_bins = _circular_binner(n_bins)
    grid = _CellGrid.build(times_s, direction_deg, step_s, max_gap_s, to_bins, circular=True)
    counts, rates, enough, note = _shuffled(grid, spike_times, n_shuffles, min_shift_s, seed, min_occupancy_s, 3)
    curve = _curve(edges, grid, counts[0], min_occupancy_s)
    if note:
        return DirectionTuning(curve, np.nan, np.nan, np.nan, np.nan, np.empty(0), np.nan, note)
    centres = 0.5 * (edges[:-1] + edges[1:])
    baseline, preferred, depth = _cosine_fit(rates[:1], centres[enough], grid.occupancy_s[enough])
    strength = _vector_strength(rates, centres[enough])
    return DirectionTuning(curve, float(preferred[0]), float(baseline[0]), float(depth[0]), float(strength[0]),
                           strength[1:], _p_value(strength[0], strength[1:]))
