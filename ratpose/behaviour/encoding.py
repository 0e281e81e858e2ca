"""Encoding: each unit's spikes as a Poisson GLM of the forelimb's recent kinematics and its own history.

Per time bin (``bin_s``) a unit's log rate is a constant plus filters over the last ``history_s`` of the paw's
velocity (3 components, per ``COVARIATE_SCALES``) and of the hand's supination, each filter a sum of NeMoS's
raised-cosine basis functions evenly spaced over the history (log-stretched ones, finer at short lags, could
not follow filters that peak 100-200 ms back: correlation with the truth 0.5-0.9 against 0.9-0.99), plus the
paw's position in the bin before (3 weights: a position history would be a second copy of the velocity
history, and the two could not be told apart), plus a filter over its own last ``spike_history_s`` of spikes.
The fit is ridge-penalised Newton (IRLS) in float64 per unit: NeMoS's own GLM (L-BFGS in JAX) gave the
same filters but took 84 s for 3 minutes of 12 units on 2 cores (this: 5 s), mostly compiling, against the
hour-long session's budget of 10 minutes for 30 units.

- **pseudo-R2** (McFadden, 1 - LL_model / LL_constant-rate) on held-out data, cross-validated by ``n_folds``
  contiguous time blocks, so slow drifts and autocorrelation do not inflate it; per covariate group, its
  unique part: the full model's pseudo-R2 minus that of the model fitted without the group.
- **significance**: a likelihood-ratio test of the full model against the spike-history-only model, both
  fitted on all the data (chi-squared with as many degrees of freedom as covariate weights). A unit is
  *tuned* at p < ``alpha`` when the kinematics also predict its held-out spikes better than its history
  alone: the test treats bins as independent, and a unit driven by something slow that the model lacks
  (measured: spikes shifted 100 s against the pose) passed it 3 times in 12 at p < 0.01, the held-out
  gain once.
- **filters**: the full fit's weights over history lags (lag j bins = the covariate j bins before the
  spike's bin), per covariate group, in log rate per scale unit: the simulator's units use the same form.

Bins where the paw is not tracked (any covariate NaN) and the ``history_s`` after them are left out of
fitting and scoring.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import gammaln
from scipy.stats import chi2

from ..errors import InputError
from .kinematics import pose_at

#: covariate group -> forelimb_kinematics columns, and the scale each is divided by (one scale unit)
COVARIATE_GROUPS = {"velocity": ("paw_vx", "paw_vy", "paw_vz"), "position": ("paw_x", "paw_y", "paw_z"),
                    "supination": ("supination_deg",)}
COVARIATE_SCALES = {"velocity": 100.0, "position": 10.0, "supination": 30.0}   # mm/s, mm, deg
MIN_BINS_PER_FOLD = 10


@dataclass(frozen=True)
class EncodingSettings:
    """How ``encode_units`` bins, filters, regularises and tests (see the module)."""
    bin_s: float = 0.02
    history_s: float = 0.3
    n_basis: int = 6
    spike_history_s: float = 0.1
    n_spike_basis: int = 3
    n_folds: int = 5
    ridge: float = 1e-2
    alpha: float = 0.01

    def __post_init__(self):
        if not (self.bin_s > 0 and self.history_s >= 2 * self.bin_s and self.spike_history_s >= 2 * self.bin_s):
            raise InputError("EncodingSettings: bin_s > 0 and both histories at least two bins")
        if self.n_basis < 2 or self.n_spike_basis < 1 or self.n_folds < 2 or not 0 < self.alpha < 1:
            raise InputError("EncodingSettings: n_basis >= 2, n_spike_basis >= 1, n_folds >= 2, 0 < alpha < 1")

    @property
    def n_lags(self) -> int:
        return int(round(self.history_s / self.bin_s))

    @property
    def n_spike_lags(self) -> int:
        return int(round(self.spike_history_s / self.bin_s))

    @property
    def lags_s(self) -> np.ndarray:
        """The filters' lags (s): j + 1 bins for weight j."""
        return np.arange(1, self.n_lags + 1) * self.bin_s


@dataclass
class UnitEncodingResult:
    """One unit's fit: see the module. ``filters``: group -> (n_lags, n_columns) weights."""
    unit_id: int
    filters: dict[str, np.ndarray]
    filter_se: dict[str, np.ndarray]          # standard errors of the filters (from the fit's covariance)
    spike_history: np.ndarray
    pseudo_r2: float
    group_r2: dict[str, float]
    p_value: float
    tuned: bool               # p_value < alpha and a held-out gain over the spike history alone
    n_spikes: int
    note: str = ""            # why it was not fitted ('' when it was)


def _basis(n_basis: int, window: int):
    import nemos as nmo

    return nmo.basis.RaisedCosineLinearConv(n_basis, window_size=window)


def _kernels(n_basis: int, window: int) -> np.ndarray:
    """The basis functions (window, n_basis) over the window's lags, as ``compute_features`` convolves them."""
    return np.asarray(_basis(n_basis, window).evaluate(np.linspace(0, 1, window)))


def _filled(values: np.ndarray) -> np.ndarray:
    """NaN samples replaced by linear interpolation between finite ones (the ends by the nearest)."""
    values = np.array(values, float)
    finite = np.isfinite(values)
    if finite.any() and not finite.all():
        index = np.arange(len(values))
        values[~finite] = np.interp(index[~finite], index[finite], values[finite])
    return np.nan_to_num(values)


def design(covariates: dict[str, np.ndarray], counts: np.ndarray, settings: EncodingSettings):
    """The shared covariate features and each unit's spike-history features.

    Parameters
    ----------
    covariates : dict of str to numpy.ndarray
        Group -> (n_bins, n_columns), already in scale units; NaN where not tracked.
    counts : numpy.ndarray, (n_bins, n_units)
    settings : EncodingSettings

    Returns
    -------
    X : numpy.ndarray, (n_bins, n_features)
        Covariate features; ``position`` is its value in the previous bin, the other groups basis features.
    columns : dict of str to slice
        Group -> its columns of X.
    history : numpy.ndarray, (n_units, n_bins, n_spike_basis)
        Each unit's own spike-history features.
    usable : numpy.ndarray, (n_bins,) bool
        Bins whose whole history is tracked and defined.
    """
    n_bins, n_units = counts.shape
    lags = settings.n_lags
    basis, spike_basis = _basis(settings.n_basis, lags), _basis(settings.n_spike_basis, settings.n_spike_lags)
    blocks, columns, start = [], {}, 0
    tracked = np.ones(n_bins, bool)
    for group, values in covariates.items():
        values = np.asarray(values, float).reshape(n_bins, -1)
        tracked &= np.isfinite(values).all(axis=1)
        if group == "position":
            features = [np.vstack([np.full((1, values.shape[1]), np.nan), _filled_columns(values)[:-1]])]
        else:
            features = [np.asarray(basis.compute_features(_filled(values[:, c]))) for c in range(values.shape[1])]
        blocks += features
        columns[group] = slice(start, start + sum(f.shape[1] for f in features))
        start = columns[group].stop
    X = np.hstack(blocks)
    history = np.stack([np.asarray(spike_basis.compute_features(counts[:, u])) for u in range(n_units)])
    lost = np.convolve(~tracked, np.ones(lags + 1), mode="full")[:n_bins] > 0   # untracked in the history
    usable = ~lost & np.isfinite(X).all(axis=1) & np.isfinite(history).all(axis=(0, 2))
    return np.nan_to_num(X), columns, np.nan_to_num(history), usable


def _filled_columns(values: np.ndarray) -> np.ndarray:
    return np.column_stack([_filled(values[:, c]) for c in range(values.shape[1])])


def fit_poisson_glm(X: np.ndarray, y: np.ndarray, ridge: float, max_iterations: int = 50,
                    covariance: bool = False):
    """Ridge-penalised Poisson regression with a log link by Newton's method (IRLS), float64.

    Parameters
    ----------
    X : numpy.ndarray, (n_bins, n_features)
        Without the intercept (added as the first weight, not penalised).
    y : numpy.ndarray, (n_bins,)
        Counts.
    ridge : float
        Penalty per bin: ``ridge * n_bins / 2 * |w|^2``.
    max_iterations : int
    covariance : bool
        Also return the weights' covariance (the inverse of the penalised Hessian at the optimum).

    Returns
    -------
    numpy.ndarray, (n_features + 1,)
        Intercept, then the weights (and with ``covariance`` their (n_features + 1)^2 covariance).
    """
    A = np.column_stack([np.ones(len(y)), X])
    penalty = np.full(A.shape[1], ridge * len(y))
    penalty[0] = 0.0
    w = np.zeros(A.shape[1])
    w[0] = np.log(max(y.mean(), 1e-6))

    def objective(weights):
        eta = np.clip(A @ weights, -30, 30)
        return float(np.sum(y * eta - np.exp(eta)) - 0.5 * np.sum(penalty * weights ** 2))

    current = objective(w)
    for _ in range(max_iterations):
        rate = np.exp(np.clip(A @ w, -30, 30))
        gradient = A.T @ (y - rate) - penalty * w
        hessian = (A * rate[:, None]).T @ A + np.diag(penalty)
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(w)), gradient)
        scale, trial = 1.0, objective(w + step)
        while trial < current - 1e-9 and scale > 1e-4:   # halve the step until the objective does not fall
            scale /= 2
            trial = objective(w + scale * step)
        w, previous, current = w + scale * step, current, trial
        if abs(current - previous) < 1e-8 * max(1.0, abs(current)):
            break
    if not covariance:
        return w
    rate = np.exp(np.clip(A @ w, -30, 30))
    return w, np.linalg.inv((A * rate[:, None]).T @ A + np.diag(penalty) + 1e-9 * np.eye(len(w)))


def _predict(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.exp(np.clip(w[0] + X @ w[1:], -30, 30))


def poisson_log_likelihood(counts: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """Poisson log-likelihood of counts given expected counts, summed over the first axis."""
    rates = np.maximum(np.asarray(rates, float), 1e-12)
    return np.sum(counts * np.log(rates) - rates - gammaln(counts + 1.0), axis=0)


def time_block_folds(usable: np.ndarray, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) bin indices of ``n_folds`` folds, each testing one contiguous block of the usable bins and
    training on the others: cross-validation by time, so slow drifts and autocorrelation do not leak from
    training into test data."""
    blocks = np.array_split(np.flatnonzero(usable), n_folds)
    return [(np.concatenate(blocks[:k] + blocks[k + 1:]), test) for k, test in enumerate(blocks)]


def _cross_validated_r2(X: np.ndarray, y: np.ndarray, folds, ridge: float) -> float:
    """Held-out McFadden pseudo-R2 over contiguous time-block folds."""
    model_ll = null_ll = 0.0
    for train, test in folds:
        w = fit_poisson_glm(X[train], y[train], ridge)
        model_ll += poisson_log_likelihood(y[test], _predict(X[test], w))
        null_ll += poisson_log_likelihood(y[test], np.full(len(test), y[train].mean()))
    return float(1.0 - model_ll / null_ll)


def encode_units(covariates: dict[str, np.ndarray], counts: np.ndarray, unit_ids,
                 settings: EncodingSettings = EncodingSettings()) -> list[UnitEncodingResult]:
    """Fit every unit's encoding model (see the module).

    Parameters
    ----------
    covariates : dict of str to numpy.ndarray
        Group -> (n_bins, n_columns) in scale units (``binned_covariates``); NaN where not tracked.
    counts : numpy.ndarray, (n_bins, n_units)
        Spike counts per bin.
    unit_ids : sequence of int
    settings : EncodingSettings

    Returns
    -------
    list of UnitEncodingResult
        In the order of ``unit_ids``.

        Not fitted (NaN scores, ``note`` says why) when fewer than ``n_folds`` x MIN_BINS_PER_FOLD bins are usable.

    Raises
    ------
    InputError
        If the shapes do not fit.
    """
    counts = np.asarray(counts, float)
    unit_ids = list(unit_ids)
    if counts.ndim != 2 or counts.shape[1] != len(unit_ids):
        raise InputError(f"counts must be (n_bins, {len(unit_ids)} units), got {counts.shape}")
    if not unit_ids:
        return []
    X, columns, history, usable = design(covariates, counts, settings)
    if usable.sum() < MIN_BINS_PER_FOLD * settings.n_folds:
        note = (f"not fitted: {int(usable.sum())} bins with the paw tracked over the last {settings.history_s} s "
                f"(needs {MIN_BINS_PER_FOLD * settings.n_folds})")
        return [UnitEncodingResult(unit_id=int(u), filters={}, filter_se={}, spike_history=np.zeros(0),
                                   pseudo_r2=np.nan, group_r2={}, p_value=np.nan, tuned=False, n_spikes=0, note=note)
                for u in unit_ids]
    groups, rows, folds = list(covariates), np.flatnonzero(usable), time_block_folds(usable, settings.n_folds)
    kernels = _kernels(settings.n_basis, settings.n_lags)
    spike_kernels = _kernels(settings.n_spike_basis, settings.n_spike_lags)
    n_covariate = columns[groups[-1]].stop
    results = []
    for u, unit_id in enumerate(unit_ids):
        y, own = counts[:, u], history[u]
        full = np.hstack([X, own])
        r2 = _cross_validated_r2(full, y, folds, settings.ridge)
        unique = {}
        for g in groups:
            keep = np.ones(full.shape[1], bool)
            keep[columns[g]] = False
            unique[g] = r2 - _cross_validated_r2(full[:, keep], y, folds, settings.ridge)
        gain = r2 - _cross_validated_r2(own, y, folds, settings.ridge)   # held out, over spike history alone
        w, cov = fit_poisson_glm(full[rows], y[rows], settings.ridge, covariance=True)
        w0 = fit_poisson_glm(own[rows], y[rows], settings.ridge)
        statistic = 2.0 * (poisson_log_likelihood(y[rows], _predict(full[rows], w))
                           - poisson_log_likelihood(y[rows], _predict(own[rows], w0)))
        p_value = float(chi2.sf(max(float(statistic), 0.0), df=n_covariate))
        weights, cov = w[1:], cov[1:, 1:]
        filters, filter_se = {}, {}
        for g in groups:
            if g == "position":
                filters[g] = weights[columns[g]][None, :]
                filter_se[g] = np.sqrt(np.diag(cov)[columns[g]])[None, :]
                continue
            block = np.arange(columns[g].start, columns[g].stop).reshape(-1, settings.n_basis)   # per column
            filters[g] = kernels @ weights[block].T
            filter_se[g] = np.column_stack([np.sqrt(np.einsum("lb,bc,lc->l", kernels, cov[np.ix_(b, b)], kernels))
                                            for b in block])
        results.append(UnitEncodingResult(
            unit_id=int(unit_id), filters=filters, filter_se=filter_se,
            spike_history=spike_kernels @ weights[n_covariate:],
            pseudo_r2=r2, group_r2={g: float(v) for g, v in unique.items()}, p_value=p_value,
            tuned=bool(p_value < settings.alpha and gain > 0), n_spikes=int(y[rows].sum())))
    return results


def binned_covariates(kinematics, spikes, epoch, bin_s: float):
    """Spike counts and the covariate groups (in scale units) on the same bins of ``epoch``.

    Parameters
    ----------
    kinematics : pynapple.TsdFrame
        ``forelimb_kinematics`` columns.
    spikes : pynapple.TsGroup
    epoch : pynapple.IntervalSet
    bin_s : float, s

    Returns
    -------
    times : numpy.ndarray, (n_bins,), s
        Bin centres.
    covariates : dict of str to numpy.ndarray
        Group -> (n_bins, n_columns); NaN where no tracked frame falls in a bin.
    counts : numpy.ndarray, (n_bins, n_units)
        In ``spikes``' key order.
    """
    counts = spikes.count(bin_s, ep=epoch)
    times = counts.times()
    covariates = {group: kinematics_at(kinematics, times, names) / COVARIATE_SCALES[group]
                  for group, names in COVARIATE_GROUPS.items()}
    return times, covariates, np.asarray(counts.values, float)


def kinematics_at(kinematics, times_s: np.ndarray, columns) -> np.ndarray:
    """Columns of the kinematics TsdFrame at ``times_s`` (e.g. bin centres): linear between frames, NaN across
    gaps of more than 2.5 frame intervals and next to untracked frames (``kinematics.pose_at``), so bins
    shorter than a frame interval still get a value."""
    return pose_at(times_s, kinematics.times(), np.column_stack([kinematics[c].values for c in columns]))


def encode_session(timeseries, settings: EncodingSettings = EncodingSettings(), epoch=None) -> list[UnitEncodingResult]:
    """``encode_units`` on one session's ``SessionTimeseries`` (its forelimb kinematics and spikes), within
    ``epoch`` (an IntervalSet, e.g. ``timeseries.tracked`` or a reach phase; default the recorded span)."""
    if timeseries.kinematics is None:
        raise InputError("encoding needs the forelimb's kinematics (the session's knob gives the lab's up direction)")
    _, covariates, counts = binned_covariates(timeseries.kinematics, timeseries.spikes,
                                              timeseries.epoch if epoch is None else epoch, settings.bin_s)
    return encode_units(covariates, counts, list(timeseries.spikes.keys()), settings)


def continuous_tuning(spikes, feature, epoch=None, *, bins: int = 12, n_shuffles: int = 200, min_shift_s: float = 20.0,
                      seed: int = 0):
    """Each unit's tuning curve to one continuous variable (pynapple) and its shuffle-based significance.

    The information (Skaggs, bits/spike, pynapple's ``compute_mutual_information``) of each unit's curve is compared
    with that of the same spikes circularly shifted by at least ``min_shift_s`` within the epoch
    (``nap.shift_timestamps``, each unit independently): p = (1 + shuffles at least as informative) / (1 + n).

    Parameters
    ----------
    spikes : pynapple.TsGroup
    feature : pynapple.Tsd
        E.g. ``SessionTimeseries.kinematics["supination_deg"]``; NaN frames are left out.
    epoch : pynapple.IntervalSet, optional
        Where to look (default the feature's time support), e.g. a reach phase.
    bins : int
    n_shuffles : int
    min_shift_s : float, s
    seed : int

    Returns
    -------
    curves : xarray.DataArray
        (units, bins) Hz, pynapple's tuning curves.
    table : pandas.DataFrame
        Indexed by unit: bits_per_spike, p_value.
    """
    import pynapple as nap

    feature = feature.dropna()
    epoch = feature.time_support if epoch is None else epoch
    spikes, feature = spikes.restrict(epoch), feature.restrict(epoch)
    limits = (float(np.nanmin(feature.values)), float(np.nanmax(feature.values)))

    def information(group):
        curves = nap.compute_tuning_curves(group, feature, bins=bins, range=limits, epochs=epoch)
        return curves, nap.compute_mutual_information(curves)["bits/spike"].to_numpy()

    curves, observed = information(spikes)
    np.random.seed(seed)      # nap.shift_timestamps draws from numpy's global generator
    null = np.stack([information(nap.shift_timestamps(spikes, min_shift=min_shift_s, mode="wrap"))[1]
                     for _ in range(n_shuffles)])
    p_values = (1 + np.sum(null >= observed[None], axis=0)) / (1 + n_shuffles)
    return curves, pd.DataFrame({"bits_per_spike": observed, "p_value": p_values}, index=list(spikes.keys()))
