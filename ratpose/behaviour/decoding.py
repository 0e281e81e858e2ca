"""Decoding: the paw's velocity and the hand's supination read out of the population, cross-validated by time.

Two decoders, each trained on ``n_folds - 1`` contiguous time blocks and tested on the one left out:

- **linear (Wiener filter)**: ridge regression of each variable on every unit's spike counts from
  ``before_s`` before to ``after_s`` after the bin (motor cortex leads movement, so later spikes carry the
  bin's kinematics).
- **Kalman filter** (Wu et al. 2003): the variables as a linear dynamical state (transition and its noise fitted
  on the training blocks), each unit's square-root count ``kalman_lag_s`` later a linear readout of it; the
  filter's estimate on the test block.
- **Bayesian** (pynapple's ``decode_bayes``): each unit's tuning curve to one variable on the training blocks,
  the most likely value given the test block's counts.

R^2 (1 - SSE/SST) is pooled over the held-out blocks. ``decode_knob_during_turns`` decodes the knob
sensor's angle only where the knob turns: what a lab without pose could decode, for comparison.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .encoding import MIN_BINS_PER_FOLD, kinematics_at, time_block_folds
from .kinematics import as_intervals, interval_index

DECODED = ("paw_vx", "paw_vy", "paw_vz", "supination_deg")


@dataclass(frozen=True)
class DecodingSettings:
    """How the decoders bin, lag, regularise and fold (see the module)."""
    bin_s: float = 0.02
    before_s: float = 0.1
    after_s: float = 0.3
    ridge: float = 10.0
    n_folds: int = 5
    n_bayes_bins: int = 12
    bayes_bin_s: float = 0.1
    kalman_lag_s: float = 0.1

    def __post_init__(self):
        if not (self.bin_s > 0 and self.before_s >= 0 and self.after_s >= 0 and self.ridge >= 0
                and self.n_folds >= 2 and self.n_bayes_bins >= 2):
            raise InputError("DecodingSettings: bin_s > 0, lags and ridge >= 0, n_folds and n_bayes_bins >= 2")


def lagged_counts(counts: np.ndarray, n_before: int, n_after: int) -> tuple[np.ndarray, np.ndarray]:
    """Each bin's counts from ``n_before`` bins before to ``n_after`` after, side by side.

    Returns (features (n_bins, n_units * (n_before + n_after + 1)), defined (n_bins,) bool: every lag inside).
    """
    counts = np.asarray(counts, float)
    n_bins = len(counts)
    blocks = []
    for lag in range(-n_before, n_after + 1):
        shifted = np.zeros_like(counts)
        if lag >= 0:
            shifted[:n_bins - lag] = counts[lag:]
        else:
            shifted[-lag:] = counts[:lag]
        blocks.append(shifted)
    defined = np.zeros(n_bins, bool)
    defined[n_before:n_bins - n_after] = True
    return np.hstack(blocks), defined


def r_squared(truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """1 - SSE/SST per column (per variable)."""
    truth, predicted = np.asarray(truth, float), np.asarray(predicted, float)
    return 1.0 - np.sum((truth - predicted) ** 2, axis=0) / np.sum((truth - truth.mean(axis=0)) ** 2, axis=0)


def wiener_decode(counts: np.ndarray, targets: np.ndarray, usable: np.ndarray,
                  settings: DecodingSettings = DecodingSettings()) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated linear decoding of ``targets`` (n_bins, n_variables) from ``counts`` (n_bins, n_units).

    Parameters
    ----------
    counts : numpy.ndarray, (n_bins, n_units)
        Spike counts (or, for a ceiling, expected counts).
    targets : numpy.ndarray, (n_bins, n_variables)
    usable : numpy.ndarray, (n_bins,) bool
        Bins to fit and score (targets finite there).
    settings : DecodingSettings

    Returns
    -------
    r2 : numpy.ndarray, (n_variables,)
    predicted : numpy.ndarray, (n_bins, n_variables)
        Held-out predictions (NaN outside the scored bins).
    """
    features, defined = lagged_counts(counts, int(round(settings.before_s / settings.bin_s)),
                                      int(round(settings.after_s / settings.bin_s)))
    targets = np.asarray(targets, float).reshape(len(counts), -1)
    usable = np.asarray(usable, bool) & defined & np.isfinite(targets).all(axis=1)
    if usable.sum() < MIN_BINS_PER_FOLD * settings.n_folds:
        raise InputError(f"only {int(usable.sum())} usable bins to decode from "
                         f"(needs {MIN_BINS_PER_FOLD * settings.n_folds})")
    predicted = np.full(targets.shape, np.nan)
    folds = time_block_folds(usable, settings.n_folds)
    for train, test in folds:
        mean_x, mean_y = features[train].mean(axis=0), targets[train].mean(axis=0)
        X = features[train] - mean_x
        weights = np.linalg.solve(X.T @ X + settings.ridge * np.eye(X.shape[1]), X.T @ (targets[train] - mean_y))
        predicted[test] = (features[test] - mean_x) @ weights + mean_y
    scored = np.concatenate([test for _, test in folds])
    return r_squared(targets[scored], predicted[scored]), predicted


def kalman_decode(counts: np.ndarray, targets: np.ndarray, usable: np.ndarray,
                  settings: DecodingSettings = DecodingSettings()) -> np.ndarray:
    """Cross-validated Kalman-filter decoding (see the module): R^2 per variable (n_variables,)."""
    lag = int(round(settings.kalman_lag_s / settings.bin_s))
    observed = np.sqrt(np.asarray(counts, float))
    observed = np.vstack([observed[lag:], np.full((lag, observed.shape[1]), np.nan)])   # spikes lag the movement
    targets = np.asarray(targets, float).reshape(len(counts), -1)
    usable = np.asarray(usable, bool) & np.isfinite(targets).all(axis=1) & np.isfinite(observed).all(axis=1)
    truth, predicted = [], []
    for train, test in time_block_folds(usable, settings.n_folds):
        mean_x, mean_y = targets[train].mean(axis=0), observed[train].mean(axis=0)
        X, Y = targets - mean_x, observed - mean_y
        pairs = train[np.isin(train + 1, train)]                   # consecutive training bins
        A = np.linalg.lstsq(X[pairs], X[pairs + 1], rcond=None)[0].T
        W = np.cov((X[pairs + 1] - X[pairs] @ A.T).T).reshape(A.shape)
        H = np.linalg.lstsq(X[train], Y[train], rcond=None)[0].T
        Q = np.cov((Y[train] - X[train] @ H.T).T) + 1e-6 * np.eye(Y.shape[1])
        state, P = np.zeros(A.shape[0]), np.cov(X[train].T).reshape(A.shape)
        estimate = np.empty((len(test), A.shape[0]))
        for i, t in enumerate(test):
            state, P = A @ state, A @ P @ A.T + W                   # predict (a gap in test bins: predict on)
            gain = np.linalg.solve(H @ P @ H.T + Q, H @ P).T
            state = state + gain @ (Y[t] - H @ state)
            P = P - gain @ H @ P
            estimate[i] = state
        truth.append(targets[test])
        predicted.append(estimate + mean_x)
    return r_squared(np.vstack(truth), np.vstack(predicted))


def bayesian_decode(spikes, feature, epoch, settings: DecodingSettings = DecodingSettings()) -> float:
    """Cross-validated R^2 of pynapple's Bayesian decoder for one variable.

    Parameters
    ----------
    spikes : pynapple.TsGroup
    feature : pynapple.Tsd
        The variable per frame (NaN frames left out).
    epoch : pynapple.IntervalSet
        Where to decode; split into ``n_folds`` contiguous blocks of equal duration.
    settings : DecodingSettings

    Returns
    -------
    float
    """
    import pynapple as nap

    feature = feature.restrict(epoch).dropna()
    low, high = np.nanpercentile(feature.values, [1, 99])
    edges = np.linspace(float(epoch.start[0]), float(epoch.end[-1]), settings.n_folds + 1)
    truth, decoded = [], []
    for k in range(settings.n_folds):
        test = epoch.intersect(nap.IntervalSet(edges[k], edges[k + 1]))
        train = epoch.set_diff(test)
        curves = nap.compute_tuning_curves(spikes, feature.restrict(train), bins=settings.n_bayes_bins,
                                           range=(low, high))
        guess, _ = nap.decode_bayes(curves, spikes, epochs=test, bin_size=settings.bayes_bin_s, uniform_prior=False)
        actual = feature.restrict(test).bin_average(settings.bayes_bin_s, ep=test)
        values = np.interp(guess.times(), actual.times(), actual.values, left=np.nan, right=np.nan)
        keep = np.isfinite(values)
        truth.append(values[keep])
        decoded.append(guess.values[keep])
    return float(r_squared(np.concatenate(truth)[:, None], np.concatenate(decoded)[:, None])[0])


def decode_knob_during_turns(counts: np.ndarray, bin_times: np.ndarray, angle_times: np.ndarray,
                             angle_deg: np.ndarray, turns: np.ndarray,
                             settings: DecodingSettings = DecodingSettings()) -> float:
    """Cross-validated linear decoding of the knob sensor's angle, scored only in bins within turns."""
    angle = np.interp(bin_times, angle_times, angle_deg)
    inside = interval_index(bin_times, as_intervals(turns, "turns")) >= 0
    return float(wiener_decode(counts, angle[:, None], inside, settings)[0][0])


@dataclass
class PopulationDecodingResult:
    """``decode_session``'s R^2 (held out): per variable of DECODED for the linear and Kalman decoders,
    supination for the Bayesian one, and the knob sensor's angle during turns."""
    linear_r2: dict[str, float]
    kalman_r2: dict[str, float]
    bayesian_r2: dict[str, float]
    knob_turns_r2: float
    n_units: int
    n_bins: int
    note: str = ""            # why a decoder did not run ('' when all did)
    bin_times_s: np.ndarray | None = None       # (n_bins,) s
    actual: dict[str, np.ndarray] | None = None       # variable -> (n_bins,) the pose's value
    predicted: dict[str, np.ndarray] | None = None    # variable -> (n_bins,) held-out linear decoding (NaN unscored)


def decode_session(timeseries, angle_time_s: np.ndarray, angle_deg: np.ndarray,
                   settings: DecodingSettings = DecodingSettings(), epoch=None) -> PopulationDecodingResult:
    """Decode one session's ``SessionTimeseries`` (see the module) within ``epoch`` (default the recorded span)."""
    if timeseries.kinematics is None:
        raise InputError("decoding needs the forelimb's kinematics (the session's knob gives the lab's up direction)")
    epoch = timeseries.epoch if epoch is None else epoch
    counts = timeseries.spikes.count(settings.bin_s, ep=epoch)
    times = counts.times()
    targets = kinematics_at(timeseries.kinematics, times, DECODED)
    tracked = np.isfinite(targets).all(axis=1)
    if tracked.sum() < MIN_BINS_PER_FOLD * settings.n_folds:
        return PopulationDecodingResult(linear_r2={c: np.nan for c in DECODED}, kalman_r2={c: np.nan for c in DECODED},
                                        bayesian_r2={"supination_deg": np.nan},
                                        knob_turns_r2=np.nan, n_units=len(timeseries.spikes), n_bins=len(times),
                                        note=f"not decoded: {int(tracked.sum())} bins with the paw tracked")
    linear, predicted = wiener_decode(counts.values, targets, tracked, settings)
    kalman = kalman_decode(counts.values, targets, tracked, settings)
    bayesian = {"supination_deg": bayesian_decode(timeseries.spikes, timeseries.kinematics["supination_deg"], epoch,
                                                  settings)}
    turns = timeseries.turns.intersect(epoch).values
    knob = (decode_knob_during_turns(counts.values, times, angle_time_s, angle_deg, turns, settings)
            if len(turns) else np.nan)
    return PopulationDecodingResult(linear_r2=dict(zip(DECODED, map(float, linear))),
                                    kalman_r2=dict(zip(DECODED, map(float, kalman))), bayesian_r2=bayesian,
                                    knob_turns_r2=knob, n_units=len(timeseries.spikes), n_bins=len(times),
                                    bin_times_s=times, actual=dict(zip(DECODED, targets.T)),
                                    predicted=dict(zip(DECODED, predicted.T)))
