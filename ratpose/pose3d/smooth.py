"""Spatio-temporal 3D reconstruction: all body parts' trajectories estimated jointly from every
camera's 2D over time (robust reprojection terms, an acceleration prior, limb-length priors).

Solved by iteratively reweighted Gauss-Newton: each camera's projection is linearised around the
current estimate and the Cauchy loss becomes per-observation weights. Unknowns are ordered frame by
frame, so the normal matrix is banded (a frame's parts couple through limbs within the frame, and to
the two frames on either side through the acceleration prior) and one solve costs O(n_frames). Time
is cut into equal, overlapping chunks solved side by side in the same banded system. Posterior
variances come from each part's banded Cholesky factor (Takahashi's recursion).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..errors import DataError
from ..rig import Rig
from .triangulation import _check_inputs, triangulate

#: values of the normal matrices held at once (chunks are solved in groups of about this size)
_GROUP_VALUES = 2e7
#: a point closer to a camera's centre than this (or behind it) gets no pull from that camera (a degenerate
#: triangulation, e.g. two cameras at one place, lands on the centre itself)
_MIN_DEPTH_MM = 1.0


@dataclass(frozen=True)
class SmoothResult:
    """The jointly estimated trajectories of ``smooth``, with their uncertainty and the priors used.

    Attributes
    ----------
    points3d : numpy.ndarray, (n_frames, n_parts, 3), mm
    sigma_mm : numpy.ndarray, (n_frames, n_parts), mm
        Posterior RMS 3D error, sqrt(trace of the point's covariance).
    outliers : numpy.ndarray, (n_cameras, n_frames, n_parts) bool
        2D observations judged wrong.
    limb_lengths : numpy.ndarray, (n_limbs,), mm
        The limb lengths used.
    noise_px : numpy.ndarray, (n_cameras,), px
        Robust 2D noise scale of each camera.
    accel_mm_s2 : numpy.ndarray, (n_parts,), mm/s^2
    limb_sigma_mm : numpy.ndarray, (n_limbs,), mm
        The priors used (given, or estimated).
    """

    points3d: np.ndarray
    sigma_mm: np.ndarray
    outliers: np.ndarray
    limb_lengths: np.ndarray
    noise_px: np.ndarray
    accel_mm_s2: np.ndarray
    limb_sigma_mm: np.ndarray


@dataclass(frozen=True)
class Priors:
    """What a session's own data say about its motion (estimate_priors): per body part accel_mm_s2, the robust
    scale of its acceleration (its typical size, what the smoother's robust prior is scaled by), and
    accel_rms_mm_s2, its RMS (the bursts of a reach included: what the posterior variance assumes); limb_sigma_mm
    per limb, the spread of its length over time (beyond what the jitter explains)."""

    accel_mm_s2: np.ndarray
    accel_rms_mm_s2: np.ndarray
    limb_sigma_mm: np.ndarray


#: second differences of lags 1.._LAGS frames enter the estimate of the motion and the jitter
_LAGS = 6
#: likelihood bins in which each camera's 2D noise is learned
_LIKELIHOOD_BINS = 5
#: shortest run of trusted frames whose second differences enter the estimate of the priors
_MIN_RUN = 8
#: priors are kept within these bounds (mm/s^2; fraction of a limb's length)
_ACCEL_RANGE = (10.0, 1e6)
_LIMB_SIGMA_FLOOR = 0.01
#: priors of parts and limbs the data cannot tell about: a rat's body point accelerates at a median of
#: ~1,000 mm/s^2 (motion capture); a limb's length is given a weak 10 % spread
_FALLBACK_ACCEL = 1000.0
_FALLBACK_LIMB_FRACTION = 0.1


def _mad_scale(values: np.ndarray, axis=None):
    """The robust standard deviation of values about zero: 1.4826 x their median absolute value."""
    return 1.4826 * np.median(np.abs(values), axis=axis)


def _trusted_runs(ok: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the runs of at least _MIN_RUN consecutive True values of ok (n,)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
    return [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= _MIN_RUN]


def _lag_fit(runs: list[np.ndarray], jitter2: float) -> tuple[float, float]:
    """(robust q, RMS q): the variance per axis of the motion's second difference per frame, from runs of one
    part's positions (each (n_run, 3)) whose jitter has variance jitter2 per axis. The variance of the second
    differences at lags k = 1.._LAGS (robust: from their MAD; RMS: their mean square) is fitted, in log space,
    by the smoother's own motion model (white acceleration: q k (2 k^2 + 1) / 3) plus the jitter, correlated in
    time with an AR(1) coefficient a fitted too (DeepLabCut's is): 2 jitter2 (3 - 4 a^k + a^2k). The RMS fit
    starts from the robust one."""
    from scipy.optimize import minimize

    lags = np.arange(1, _LAGS + 1)
    robust, mean_square = [], []
    for k in lags:
        d2 = np.concatenate([r[2 * k:] - 2 * r[k:-k] + r[:-2 * k] for r in runs if len(r) > 2 * k])
        d2 = d2 - np.median(d2, 0)
        robust.append(np.mean(_mad_scale(d2, 0) ** 2))
        mean_square.append(np.mean(d2 ** 2))
    motion = lags * (2 * lags ** 2 + 1) / 3

    def cost(params, observed):
        """Squared log misfit; params (..., 2) = (log q, logit a)."""
        q = np.exp(np.clip(params[..., 0:1], -80.0, 80.0))
        a = 1 / (1 + np.exp(-np.clip(params[..., 1:2], -30.0, 30.0)))
        model = q * motion + 2 * jitter2 * (3 - 4 * a ** lags + a ** (2 * lags))
        return np.sum((np.log(model) - observed) ** 2, axis=-1)

    def fit(observed, start):
        return minimize(lambda x: float(cost(x, observed)), start, method="Nelder-Mead",
                        options={"xatol": 1e-4, "fatol": 1e-10, "maxiter": 1000}).x

    observed = np.log(np.maximum(robust, 1e-30))
    grid = np.stack(np.meshgrid(observed[0] + np.linspace(-16.0, 2.0, 37), np.linspace(-6.0, 6.0, 25)), -1)
    best = fit(observed, grid.reshape(-1, 2)[np.argmin(cost(grid, observed))])  # polished from a coarse grid
    rms = fit(np.log(np.maximum(mean_square, 1e-30)), best)
    return tuple(float(np.exp(np.clip(x[0], -80.0, 80.0))) for x in (best, rms))


def estimate_priors(X: np.ndarray, trusted: np.ndarray, fps: float, jitter_mm: np.ndarray, limbs=()) -> Priors:
    """A session's priors from its per-frame triangulation X (n_frames, n_parts, 3) mm, trusted where the
    (n_frames, n_parts) mask says so, whose jitter per axis is jitter_mm (n_parts,) (what the cameras' noise
    gives through the geometry): per part the robust and the RMS acceleration per axis (``_lag_fit`` over runs
    of trusted frames), per limb the robust spread of its length less the jitter of its two ends. Parts or
    limbs without enough trusted frames get NaN."""
    n_parts = X.shape[1]
    jitter_mm = np.broadcast_to(np.asarray(jitter_mm, dtype=np.float64), (n_parts,))
    accel, rms = np.full(n_parts, np.nan), np.full(n_parts, np.nan)
    for p in range(n_parts):
        runs = [X[a:b, p] for a, b in _trusted_runs(trusted[:, p])]
        if sum(len(r) for r in runs) >= 4 * _MIN_RUN:
            accel[p], rms[p] = np.sqrt(_lag_fit(runs, jitter_mm[p] ** 2)) * fps ** 2
    accel, rms = np.clip(accel, *_ACCEL_RANGE), np.clip(np.fmax(rms, accel), *_ACCEL_RANGE)
    sigma = np.full(len(limbs), np.nan)
    for k, (i, j) in enumerate(limbs):
        both = trusted[:, i] & trusted[:, j]
        if both.sum() >= 4 * _MIN_RUN:
            length = np.linalg.norm(X[both, i] - X[both, j], axis=-1)
            spread2 = _mad_scale(length - np.median(length)) ** 2
            sigma[k] = np.sqrt(max(spread2 - jitter_mm[i] ** 2 - jitter_mm[j] ** 2,
                                   (_LIMB_SIGMA_FLOOR * np.median(length)) ** 2))
    return Priors(accel_mm_s2=accel, accel_rms_mm_s2=rms, limb_sigma_mm=sigma)


def _fill_gaps(X: np.ndarray) -> np.ndarray:
    """Linear interpolation over time per part and coordinate (constant beyond the ends)."""
    out = X.copy()
    t = np.arange(len(X))
    fallback = np.nanmean(X.reshape(-1, 3), axis=0)
    for p in range(X.shape[1]):
        ok = np.isfinite(X[:, p]).all(axis=1)
        for k in range(3):
            out[:, p, k] = np.interp(t, t[ok], X[ok, p, k]) if ok.any() else fallback[k]
    return out


def _neighbour_prediction(X: np.ndarray, reach: int = 3) -> np.ndarray:
    """Each frame of X (n_frames, ...) as its neighbours predict it: the median of the midpoints of the frames
    k before and after (k = 1..reach) and of the linear extrapolations from the two frames on either side.
    Unlike a median filter it follows a fast, curved movement (a reach), so what stands out is a spike."""
    n, pad = len(X), reach + 2
    P = np.concatenate([np.full((pad,) + X.shape[1:], np.nan), X, np.full((pad,) + X.shape[1:], np.nan)])

    def at(offset):
        return P[pad + offset:pad + offset + n]

    guesses = np.sort([(at(-k) + at(k)) / 2 for k in range(1, reach + 1)] + [2 * at(-1) - at(-2), 2 * at(1) - at(2)],
                      axis=0)  # NaN (no such neighbour) sorts last
    count = np.isfinite(guesses).sum(axis=0)
    lo, hi = (np.take_along_axis(guesses, np.maximum(i, 0)[None], axis=0)[0] for i in ((count - 1) // 2, count // 2))
    return np.where(count > 0, (lo + hi) / 2, np.nan)  # the median of the finite guesses


def _initial(points2d, rig, likelihood, min_likelihood):
    """Robust per-frame triangulation: drop high-error and spiky points, interpolate the rest; returns the
    filled points and the mask (n_frames, n_parts) of those triangulated and kept."""
    tri = triangulate(points2d, rig, likelihood, min_likelihood=max(min_likelihood, 0.5), refine=True)
    X = tri.points3d.copy()
    err = tri.reprojection_error
    if not np.isfinite(err).any():
        raise DataError("smooth: no body part could be triangulated in any frame (check the 2D and the rig)")
    X[~(err <= 3.0 * np.nanmedian(err) + 1.0)] = np.nan
    dev = np.linalg.norm(X - _neighbour_prediction(X), axis=-1)
    X[~(dev <= 5.0 * np.nanmedian(dev) + 1e-3)] = np.nan
    trusted = np.isfinite(X).all(axis=-1)
    return _fill_gaps(X), trusted


def _second_difference_band(weights: np.ndarray) -> np.ndarray:
    """Upper band storage (2 m + 1, K n m) of D2^T W D2 for K chunks of n frames, each with m interleaved
    series (chunk k, frame t, unknown q) -> (k n + t) m + q; weights (K, n - 2, m) weigh each second
    difference (the one centred on frame t + 1). Bandwidth 2 m: a frame couples to t +/- 2; chunks do not
    couple across their seams."""
    K, rows, m = weights.shape
    n = rows + 2
    diagonal, next1, next2 = np.zeros((K, n, m)), np.zeros((K, n, m)), np.zeros((K, n, m))
    diagonal[:, :-2] += weights
    diagonal[:, 1:-1] += 4 * weights
    diagonal[:, 2:] += weights
    next1[:, 1:-1] -= 2 * weights  # (t, t + 1): as first and middle point of the difference centred on t + 1
    next1[:, 2:] -= 2 * weights  # as middle and last point of the one centred on t
    next2[:, 2:] = weights
    ab = np.zeros((2 * m + 1, K * n * m))
    ab[2 * m], ab[m], ab[0] = diagonal.reshape(-1), next1.reshape(-1), next2.reshape(-1)
    return ab


def _limb_terms(d: np.ndarray, length: float, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normal-matrix block (..., 3, 3) and pull (..., 3) on the first end of a limb d = x_i - x_j of the
    term weight (|d| - length)^2 / 2 (weight (..., 1, 1): per frame): Gauss-Newton plus the curvature of a
    stretched limb (which keeps a point seen by one camera from running along its ray)."""
    current = np.linalg.norm(d, axis=-1, keepdims=True)
    unit = d / np.maximum(current, 1e-9)
    outer = unit[..., :, None] * unit[..., None, :]
    stretched = np.maximum(0.0, 1.0 - length / np.maximum(current, 1e-9))[..., None]
    return weight * (outer + stretched * (np.eye(3) - outer)), weight[..., 0] * unit * (length - current)


def _add_blocks(band: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """band (upper band storage, C order) plus the symmetric blocks (n, m, m) on its block diagonal,
    as a new Fortran-ordered array (what LAPACK reads without a copy)."""
    ab = band.copy()
    u, (n, m, _) = ab.shape[0] - 1, blocks.shape
    for offset in range(m):
        ab[u - offset].reshape(n, m)[:, offset:] += np.diagonal(blocks, offset, axis1=1, axis2=2)
    return np.asfortranarray(ab)


def _cholesky_banded(ab: np.ndarray) -> np.ndarray:
    """Upper banded Cholesky factor of a positive definite matrix in LAPACK band storage (overwrites ab;
    Fortran order avoids a copy)."""
    factor, info = lapack.dpbtrf(ab, lower=0, overwrite_ab=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"smooth: normal matrix not positive definite (LAPACK info {info})")
    return factor


def _solve_banded(ab: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve A x = rhs for A positive definite in upper band storage ab (overwritten)."""
    x, info = lapack.dpbtrs(_cholesky_banded(ab), rhs, lower=0)
    if info != 0:
        raise DataError(f"smooth: banded solve failed (LAPACK info {info})")
    return x


def _gauss_newton_step(accel_w: np.ndarray, blocks: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve for the step (K, n, P, 3) of the normal equations: the acceleration prior's band (weights accel_w
    (K, n - 2, P)) plus the frames' blocks, right-hand side g (K, n, P, 3). blocks (K, n, P, 3, P, 3) couple a
    frame's parts (limbs): one band for all; blocks (K, n, P, 3, 3) do not: each part is solved in its own
    narrow band (a fraction of the cost)."""
    K, n, P, _ = g.shape
    if blocks.ndim == 6:
        normal = _add_blocks(_second_difference_band(np.repeat(accel_w, 3, axis=-1)), blocks.reshape(-1, 3 * P, 3 * P))
        return _solve_banded(normal, g.reshape(-1)).reshape(g.shape)
    step = np.empty_like(g)
    for p in range(P):
        step[:, :, p] = _solve_banded(_part_normal(accel_w, blocks, p), g[:, :, p].reshape(-1)).reshape(K, n, 3)
    return step


def _part_normal(accel_w: np.ndarray, blocks: np.ndarray, p: int) -> np.ndarray:
    """Upper band of part ``p``'s own normal matrix: its acceleration prior (weights accel_w[..., p]) plus its
    frames' 3x3 blocks (blocks[:, :, p])."""
    return _add_blocks(_second_difference_band(np.repeat(accel_w[..., p:p + 1], 3, axis=-1)),
                       blocks[:, :, p].reshape(-1, 3, 3))


def _second_differences(X: np.ndarray) -> np.ndarray:
    """D2 X along axis 1 (time) of (K, n, ...): (K, n - 2, ...)."""
    return X[:, 2:] - 2 * X[:, 1:-1] + X[:, :-2]


def _apply_d2(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """D2^T W D2 X along axis 1 (time) of (K, n, P, 3), weights (K, n - 2, P)."""
    d2 = _second_differences(X) * weights[..., None]
    out = np.zeros_like(X)
    out[:, 2:] += d2
    out[:, 1:-1] -= 2 * d2
    out[:, :-2] += d2
    return out


def _inverse_diagonal(cb: np.ndarray) -> np.ndarray:
    """Diagonal of A^-1 from stacked upper banded Cholesky factors cb (B, u + 1, n): Takahashi."""
    B, u1, n = cb.shape
    u = u1 - 1
    pad = np.zeros((B, u1, n + u))
    pad[:, :, :n] = cb
    pad[:, u, n:] = 1.0
    W = np.zeros((B, u, u))
    W[:, np.arange(u), np.arange(u)] = 1.0
    out = np.empty((B, n))
    for i in range(n - 1, -1, -1):
        uii = pad[:, u, i]
        row = pad[:, np.arange(u - 1, -1, -1), np.arange(i + 1, i + u + 1)]  # U[i, i+1..i+u]
        v = -(row[:, None, :] @ W)[:, 0] / uii[:, None]
        d = 1.0 / uii ** 2 - (row * v).sum(1) / uii
        out[:, i] = d
        W[:, 1:, 1:] = W[:, :-1, :-1]
        W[:, 0, 1:] = v[:, :-1]
        W[:, 1:, 0] = v[:, :-1]
        W[:, 0, 0] = d
    return out


def _chunks(n_frames: int, chunk: int, overlap: int) -> tuple[np.ndarray, int]:
    """Frame index windows (n_chunks, chunk + 2 overlap) (-1 = padding) and the core length."""
    core = max(1, min(chunk, n_frames))
    starts = np.arange(0, n_frames, core) - overlap
    idx = starts[:, None] + np.arange(core + 2 * overlap)
    return np.where((idx >= 0) & (idx < n_frames), idx, -1), core


@threadpool_limits.wrap(limits=1, user_api="blas")  # threaded BLAS slows these small solves
def smooth(points2d, rig: Rig, likelihood, *, fps: float, limbs=None, limb_lengths=None,
           accel_mm_s2=None, limb_sigma_mm=None, min_likelihood: float = 0.1,
           cauchy_scale: float = 3.0, outlier_scale: float = 6.0, accel_cauchy: float = 3.0, limb_cauchy: float = 3.0,
           prior_sigma_mm: float = 50.0,
           iterations: int = 5, limb_iterations: int = 3, max_step_mm: float = 5.0, chunk_frames: int = 1000,
           overlap_frames: int = 60) -> SmoothResult:
    """Jointly estimate all body parts' 3D trajectories (mm) from several cameras' 2D over time.

    points2d (n_cameras, n_frames, n_parts, 2) raw pixels (NaN = missing); likelihood (n_cameras,
    n_frames, n_parts) weights each observation (below min_likelihood: ignored). fps: frame rate.
    Costs: Cauchy loss on pixel residuals (scale cauchy_scale x each camera's robust noise, estimated
    from the data); a robust acceleration prior of scale accel_mm_s2 (one value, or one per part; None:
    estimated per part from this session's data, ``estimate_priors``), Gaussian up to about accel_cauchy
    times it and Cauchy beyond (animals accelerate in bursts); for limbs (index pairs into the parts),
    length terms with std limb_sigma_mm (one value, one per limb, or None: estimated) around limb_lengths
    (default: the median length of a robust per-frame triangulation), Gaussian up to about limb_cauchy times
    it and Cauchy beyond (a digit that flexes is let go, not pulled back to its usual length); a weak
    prior_sigma_mm pull towards that triangulation so frames with no evidence stay defined with an honest,
    large sigma. Observations whose residual exceeds
    outlier_scale x the noise are flagged as outliers. Gauss-Newton runs for ``iterations`` steps of at
    most max_step_mm per point; time is cut into chunk_frames windows overlapping by overlap_frames.
    With limbs, the solve runs without them first and then limb_iterations more steps with them from there.
    sigma_mm counts the cameras and a Gaussian acceleration prior of the session's RMS acceleration as
    evidence, not the limbs (see below), inflated for the 2D jitter's correlation in time.

    Parameters
    ----------
    points2d : array_like, (n_cameras, n_frames, n_parts, 2), px
        Raw (distorted) pixels, cameras in rig order; NaN = missing.
    rig : Rig
        At least 2 cameras.
    likelihood : array_like, (n_cameras, n_frames, n_parts), or None
        None: every observation weighs 1.
    fps : float, frames/s
        Must be > 0.
    limbs : array_like, (n_limbs, 2) int, optional
        Pairs of distinct part indices.
    limb_lengths : array_like, (n_limbs,), optional, mm
    accel_mm_s2 : float or array_like, (n_parts,), optional, mm/s^2
    limb_sigma_mm : float or array_like, (n_limbs,), optional, mm
        Priors (> 0); None: estimated.
    min_likelihood : float
    cauchy_scale, outlier_scale : float
        In units of each camera's robust noise.
    accel_cauchy, limb_cauchy : float
        In units of the respective prior's scale.
    prior_sigma_mm : float, mm
    iterations, limb_iterations : int
    max_step_mm : float, mm
    chunk_frames, overlap_frames : int, frames

    Returns
    -------
    SmoothResult

    Raises
    ------
    DataError
        If the inputs do not fit the rig (shapes, fewer than 2 cameras), ``fps`` <= 0, limbs are not pairs of
        distinct part indices, a prior is not > 0, no body part could be triangulated in any frame, or the
        banded solve fails.
    """
    pts, lik = _check_inputs(points2d, rig, likelihood)
    if fps <= 0:
        raise DataError(f"fps must be > 0, got {fps}")
    if lik is None:
        lik = np.ones(pts.shape[:-1])
    n_cams, n_frames, n_parts, _ = pts.shape
    limbs = np.zeros((0, 2), int) if limbs is None else np.asarray(limbs, dtype=int).reshape(-1, 2)
    if limbs.size and (limbs.min() < 0 or limbs.max() >= n_parts or (limbs[:, 0] == limbs[:, 1]).any()):
        raise DataError(f"limbs must be pairs of distinct part indices in 0..{n_parts - 1}, got {limbs.tolist()}")

    X0, trusted = _initial(pts, rig, lik, min_likelihood)
    if limb_lengths is None:
        limb_lengths = np.array([np.median(np.linalg.norm(X0[:, i] - X0[:, j], axis=-1)) for i, j in limbs])
    limb_lengths = np.asarray(limb_lengths, dtype=np.float64).reshape(len(limbs))

    norm = np.stack([cam.undistort(pts[c].astype(np.float64)) for c, cam in enumerate(rig)])  # (C, T, P, 2)
    w0 = np.where(np.isfinite(norm).all(axis=-1) & (lik >= min_likelihood), np.nan_to_num(lik), 0.0)
    norm = np.nan_to_num(norm)
    R = np.stack([c.R for c in rig])
    t = np.stack([c.t for c in rig])
    focal = np.stack([[c.K[0, 0], c.K[1, 1]] for c in rig])

    def residuals(X):
        """Pixel residuals (C, ..., 2), Jacobians (C, ..., 2, 3) of the projection at X (..., 3)."""
        xc = np.einsum("cij,...j->c...i", R, X) + t.reshape((n_cams,) + (1,) * (X.ndim - 1) + (3,))
        depth = xc[..., 2:]
        inv_z = np.where(depth > _MIN_DEPTH_MM, 1.0 / np.where(depth > _MIN_DEPTH_MM, depth, 1.0), 0.0)
        proj = xc[..., :2] * inv_z
        f = focal.reshape((n_cams,) + (1,) * (X.ndim - 1) + (2,))
        Rb = R.reshape((n_cams,) + (1,) * (X.ndim - 1) + (3, 3))
        J = (Rb[..., :2, :] - proj[..., :, None] * Rb[..., 2:, :]) * (inv_z * f)[..., None]
        return (norm_w - proj) * f, J

    # each observation's noise scale, learned from the initial residuals: its camera's, at its likelihood
    norm_w = norm
    r0, J0 = residuals(X0)
    in_triangulation = (w0 > 0) & (lik >= max(min_likelihood, 0.5)) & trusted
    sigma_obs = _observation_noise(r0, J0, lik, w0 > 0, in_triangulation)  # (C, T, P) px
    noise_px = np.array([np.median(sigma_obs[c][w0[c] > 0]) if (w0[c] > 0).any() else 1.0 for c in range(n_cams)])
    prior_w = 1.0 / prior_sigma_mm ** 2
    if accel_mm_s2 is None or limb_sigma_mm is None:
        estimated = estimate_priors(X0, trusted, fps, _jitter_mm(J0, w0 > 0, noise_px, trusted, prior_w), limbs)
    accel = _chosen(accel_mm_s2, estimated.accel_mm_s2 if accel_mm_s2 is None else None, n_parts, _FALLBACK_ACCEL)
    # the posterior variance's Gaussian prior: the session's RMS acceleration (its bursts), or the one given
    accel_rms = accel if accel_mm_s2 is not None else np.fmax(_chosen(None, estimated.accel_rms_mm_s2, n_parts,
                                                                      _FALLBACK_ACCEL), accel)
    limb_sigma = _chosen(limb_sigma_mm, estimated.limb_sigma_mm if limb_sigma_mm is None else None, len(limbs),
                         _FALLBACK_LIMB_FRACTION * limb_lengths)

    windows, core = _chunks(n_frames, chunk_frames, overlap_frames)
    n_chunks, n = windows.shape
    starts = np.arange(n_chunks)[:, None] * core - overlap_frames + np.arange(n)
    lam, lam_variance = (fps ** 2 / accel) ** 2, (fps ** 2 / accel_rms) ** 2  # (P,)
    accel_scale = accel_cauchy * accel / fps ** 2  # (P,) mm per frame^2
    limb_w = 1.0 / limb_sigma ** 2  # (L,)
    m = 3 * n_parts  # unknowns per frame; the joint system is ordered (chunk, frame, part, coordinate)
    per_group = max(1, int(_GROUP_VALUES // (n * m * m)))  # chunks solved together: bounded memory
    lo = overlap_frames
    take = (slice(None), slice(lo, lo + core))
    points, sigmas, flags = [], [], []
    for first in tqdm(range(0, n_chunks, per_group), desc="smooth 3D", unit="group", leave=False,
                      disable=n_chunks <= per_group or None):
        safe = np.clip(starts[first:first + per_group], 0, n_frames - 1)
        n_chunks_g = len(safe)
        norm_w = norm[:, safe]  # (C, K, n, P, 2)
        wobs = np.where((windows[first:first + per_group] >= 0)[None, :, :, None] & (w0[:, safe] > 0),
                        1.0 / sigma_obs[:, safe] ** 2, 0.0)
        scale = cauchy_scale * sigma_obs[:, safe]
        X = X0[safe]  # (K, n, P, 3)
        anchor = X.copy()
        # without limbs first, then with them from there: a limb's length fits its mirror image along a ray as
        # well, and started from the gap-filled guess a point one camera sees can settle on the wrong one
        for with_limbs, steps in ((False, iterations), (True, limb_iterations))[:2 if len(limbs) else 1]:
            for it in range(steps + 1):
                # robust acceleration prior: Cauchy weights on each part's second differences (a reach's burst is
                # not smoothed away), scale accel_cauchy x the part's own acceleration
                accel_w = lam / (1.0 + (np.linalg.norm(_second_differences(X), axis=-1) / accel_scale) ** 2)
                r, J = residuals(X)
                rn2 = (r ** 2).sum(-1)
                w = wobs / (1.0 + rn2 / scale ** 2)  # Cauchy IRLS weights, (C, K, n, P)
                wJ = w[..., None, None] * J
                diag = (J.swapaxes(-1, -2) @ wJ).sum(0) + prior_w * np.eye(3)  # (K, n, P, 3, 3)
                g = (wJ.swapaxes(-1, -2) @ r[..., None])[..., 0].sum(0) + prior_w * (anchor - X)
                blocks = diag
                if with_limbs:  # the frame's parts couple through their limbs: one block per frame
                    blocks = np.zeros((n_chunks_g, n, n_parts, 3, n_parts, 3))
                    blocks[:, :, np.arange(n_parts), :, np.arange(n_parts), :] = diag.transpose(2, 0, 1, 3, 4)
                    for (i, j), L, wl, ls in zip(limbs, limb_lengths, limb_w, limb_sigma):
                        d = X[:, :, i] - X[:, :, j]
                        wl = wl / (1.0 + ((np.linalg.norm(d, axis=-1) - L) / (limb_cauchy * ls)) ** 2)[..., None, None]
                        A, pull = _limb_terms(d, L, wl)
                        blocks[:, :, i, :, i] += A
                        blocks[:, :, j, :, j] += A
                        blocks[:, :, i, :, j] -= A
                        blocks[:, :, j, :, i] -= A
                        g[:, :, i] += pull
                        g[:, :, j] -= pull
                g -= _apply_d2(X, accel_w)
                if it == steps:
                    break
                step = _gauss_newton_step(accel_w, blocks, g)
                size = np.linalg.norm(step, axis=-1, keepdims=True)
                X += step * np.minimum(1.0, max_step_mm / np.maximum(size, 1e-12))  # trust region per point
                if size.max() < 1e-4:
                    break

        # posterior variance from the cameras and a Gaussian acceleration prior of the part's RMS acceleration
        # (the robust prior's heavy tail as a variance: a reach hidden from a camera is as uncertain as
        # reaches are fast) alone: a limb fixes a point's distance to its neighbours, not on which side of them
        # it sits (a mirrored pose fits as well), so limbs are not counted as evidence; without them the
        # parts decouple and each has its own band
        variance_w = np.broadcast_to(lam_variance, accel_w.shape)
        factors = [_cholesky_banded(_part_normal(variance_w, diag, p)) for p in range(n_parts)]

        # the jitter is correlated in time (rho: the lag-1 correlation of the inlier residuals), which the
        # variance above ignores: inflate it as for an average over the frames that the point's estimate
        # leans on (n_eff: its per-frame variance over its posterior one), ``_correlated_average``
        good = (w > 0.5 * wobs) & (wobs > 0)
        pair = (good[:, :, 1:] & good[:, :, :-1])[..., None]
        lag1 = (r[:, :, 1:] * r[:, :, :-1] * pair).sum() / max((r[:, :, 1:] ** 2 * pair).sum(), 1e-12)
        rho = np.clip(lag1, 0, 0.95)
        rows = factors[0].shape[0]  # band rows of one part's factor
        stacked = np.stack(factors).reshape(n_parts, rows, n_chunks_g, 3 * n).transpose(0, 2, 1, 3)
        stacked = stacked.reshape(-1, rows, 3 * n)
        var = _inverse_diagonal(stacked).reshape(n_parts, n_chunks_g, n, 3).sum(-1).transpose(1, 2, 0)
        per_frame = np.trace(np.linalg.inv(diag), axis1=-2, axis2=-1)  # (K, n, P): the cameras alone
        var *= _correlated_average(np.maximum(per_frame / np.maximum(var, 1e-30), 1.0), rho)
        r, _ = residuals(X)
        bad = np.sqrt((r ** 2).sum(-1)) > outlier_scale * sigma_obs[:, safe]
        points.append(X[take].reshape(-1, n_parts, 3))
        sigmas.append(np.sqrt(var[take]).reshape(-1, n_parts))
        flags.append(bad[:, take[0], take[1]].reshape(n_cams, -1, n_parts))
    points3d = np.concatenate(points)[:n_frames]
    sigma = np.concatenate(sigmas)[:n_frames]
    outliers = np.concatenate(flags, axis=1)[:, :n_frames] & np.isfinite(pts).all(-1)
    return SmoothResult(points3d=points3d, sigma_mm=sigma, outliers=outliers, limb_lengths=limb_lengths,
                        noise_px=noise_px, accel_mm_s2=accel, limb_sigma_mm=limb_sigma)


def _correlated_average(n_eff: np.ndarray, rho: float) -> np.ndarray:
    """Variance factor of an average over n_eff frames of AR(1) noise of lag-1 correlation rho against
    independent noise: 1 + 2 sum_j (1 - j / n) rho^j, from 1 (one frame) to (1 + rho) / (1 - rho) (many)."""
    if rho <= 0:
        return np.ones_like(n_eff)
    return (1 + rho) / (1 - rho) - 2 * rho * (1 - rho ** n_eff) / (n_eff * (1 - rho) ** 2)


def _observation_noise(r0: np.ndarray, J: np.ndarray, likelihood: np.ndarray, usable: np.ndarray,
                       in_triangulation: np.ndarray) -> np.ndarray:
    """Robust 2D noise scale (px) of every observation (C, T, P): per camera, the residuals r0 (C, T, P, 2) of
    the per-frame triangulation binned by likelihood (_LIKELIHOOD_BINS quantile bins of its usable
    observations), 1.4826 x the median absolute residual of each bin. So the data say how much a detection of
    a given confidence is worth, whatever network scored it (DeepLabCut, SLEAP); never below 0.05 px.
    A residual of an observation that took part in its point's triangulation (in_triangulation) is smaller
    than its error, the more so the fewer cameras: it is divided by sqrt(1 - h), h its leverage from the
    projection's Jacobians J (C, T, P, 2, 3) (on two cameras h = 3/4 on average: the residuals are half the
    noise)."""
    info = np.einsum("ctp,ctpki,ctpkj->tpij", in_triangulation.astype(np.float64), J, J)
    solvable = (in_triangulation.sum(0) >= 2) & (np.linalg.cond(info) < 1e12)
    inverse = np.zeros_like(info)
    inverse[solvable] = np.linalg.inv(info[solvable])
    leverage = np.einsum("ctpki,tpij,ctpkj->ctp", J, inverse, J) / 2  # per coordinate, on average
    leverage = np.where(in_triangulation & solvable, np.clip(leverage, 0.0, 0.9), 0.0)
    r0 = r0 / np.sqrt(1.0 - leverage)[..., None]
    noise = np.ones(likelihood.shape)
    for c in range(len(r0)):
        lik, ok = np.nan_to_num(likelihood[c]), usable[c]
        if not ok.any():
            continue
        edges = np.unique(np.quantile(lik[ok], np.linspace(0, 1, _LIKELIHOOD_BINS + 1)))
        bins = np.clip(np.searchsorted(edges, lik, side="right") - 1, 0, max(len(edges) - 2, 0))
        overall = _mad_scale(r0[c][ok])
        for b in range(max(len(edges) - 1, 1)):
            chosen = ok & (bins == b)
            noise[c][bins == b] = _mad_scale(r0[c][chosen]) if chosen.sum() >= 10 else overall
    return np.maximum(noise, 0.05)


def _jitter_mm(J: np.ndarray, seen: np.ndarray, noise_px: np.ndarray, trusted: np.ndarray,
               prior_w: float) -> np.ndarray:
    """Per part, the median over trusted frames of the per-axis RMS error (mm) that the cameras' noise gives a
    per-frame triangulation: sqrt(trace(inverse Fisher information) / 3), J (C, T, P, 2, 3) the projection's
    Jacobians, seen (C, T, P) where each camera observes; prior_w (1/mm^2), the smoother's weak pull, keeps
    the information invertible when cameras see a point along one line."""
    info = np.einsum("ctp,ctpki,ctpkj->tpij", seen / noise_px[:, None, None] ** 2, J, J) + np.eye(3) * prior_w
    ok = trusted & (seen.sum(0) >= 2) & np.isfinite(info).all(axis=(-2, -1))
    out = np.full(J.shape[2], np.nan)
    for p in range(J.shape[2]):
        if ok[:, p].any():  # trace of the inverse from the eigenvalues: no singular solve
            eigenvalues = np.maximum(np.linalg.eigvalsh(info[ok[:, p], p]), prior_w)
            out[p] = np.median(np.sqrt((1.0 / eigenvalues).sum(-1) / 3))
    return out


def _chosen(given, estimated, count: int, fallback) -> np.ndarray:
    """Prior values (count,): the given ones (a scalar or one each), else the estimated ones, where one is NaN
    the others' median, or the fallback when none was estimated."""
    if given is not None:
        values = np.broadcast_to(np.asarray(given, dtype=np.float64), (count,)).copy()
    else:
        values = np.asarray(estimated, dtype=np.float64).copy()
        if np.isfinite(values).any():
            values[~np.isfinite(values)] = np.nanmedian(values)
        values = np.where(np.isfinite(values), values, fallback)
    if not (values > 0).all():
        raise DataError(f"smooth: priors must be > 0, got {values.tolist()}")
    return values
