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

from ..rig import Rig
from .filtering import median_filter
from .triangulation import _check_inputs, triangulate

#: values of the normal matrices held at once (chunks are solved in groups of about this size)
_GROUP_VALUES = 2e7


@dataclass(frozen=True)
class SmoothResult:
    """points3d (n_frames, n_parts, 3) mm; sigma_mm (n_frames, n_parts): posterior RMS 3D error,
    sqrt(trace of the point's covariance); outliers (n_cameras, n_frames, n_parts): 2D observations
    judged wrong; limb_lengths (n_limbs,) mm used; noise_px (n_cameras,) robust 2D noise scale."""

    points3d: np.ndarray
    sigma_mm: np.ndarray
    outliers: np.ndarray
    limb_lengths: np.ndarray
    noise_px: np.ndarray


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


def _initial(points2d, rig, likelihood, min_likelihood):
    """Robust per-frame triangulation: drop high-error and spiky points, interpolate the rest."""
    tri = triangulate(points2d, rig, likelihood, min_likelihood=max(min_likelihood, 0.5), refine=True)
    X = tri.points3d.copy()
    err = tri.reprojection_error
    if not np.isfinite(err).any():
        raise ValueError("smooth: no body part could be triangulated in any frame (check the 2D and the rig)")
    X[~(err <= 3.0 * np.nanmedian(err) + 1.0)] = np.nan
    dev = np.linalg.norm(X - median_filter(X, 9), axis=-1)
    X[~(dev <= 5.0 * np.nanmedian(dev) + 1e-3)] = np.nan
    return _fill_gaps(X)


def _second_difference_band(n: int, weight: float, stride: int) -> np.ndarray:
    """Upper band storage (2 stride + 1, stride n) of weight * D2^T D2 acting on each of ``stride``
    interleaved series (frame t, unknown q) -> stride t + q. Bandwidth 2 stride: a frame couples to t +/- 2."""
    u = 2 * stride
    ab = np.zeros((u + 1, stride * n))
    d0 = np.full(n, 6.0)
    d0[[0, -1]], d0[[1, -2]] = 1.0, 5.0
    d1 = np.full(n - 1, -4.0)
    d1[[0, -1]] = -2.0
    for q in range(stride):
        ab[u, q::stride] = weight * d0
        ab[u - stride, stride + q::stride] = weight * d1
        ab[0, 2 * stride + q::stride] = weight
    return ab


def _limb_terms(d: np.ndarray, length: float, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Normal-matrix block (..., 3, 3) and pull (..., 3) on the first end of a limb d = x_i - x_j of the
    term weight (|d| - length)^2 / 2: Gauss-Newton plus the curvature of a stretched limb (which keeps a
    point seen by one camera from running along its ray)."""
    current = np.linalg.norm(d, axis=-1, keepdims=True)
    unit = d / np.maximum(current, 1e-9)
    outer = unit[..., :, None] * unit[..., None, :]
    stretched = np.maximum(0.0, 1.0 - length / np.maximum(current, 1e-9))[..., None]
    return weight * (outer + stretched * (np.eye(3) - outer)), weight * unit * (length - current)


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
        raise ValueError(f"smooth: banded solve failed (LAPACK info {info})")
    return x


def _apply_d2(X: np.ndarray) -> np.ndarray:
    """D2^T D2 X along axis 1 (time) of (B, n, ...)."""
    d2 = X[:, 2:] - 2 * X[:, 1:-1] + X[:, :-2]
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
           accel_mm_s2: float = 500.0, limb_sigma_mm: float = 0.03, min_likelihood: float = 0.1,
           cauchy_scale: float = 3.0, outlier_scale: float = 6.0, prior_sigma_mm: float = 50.0,
           iterations: int = 5, max_step_mm: float = 5.0, chunk_frames: int = 1000,
           overlap_frames: int = 60) -> SmoothResult:
    """Jointly estimate all body parts' 3D trajectories (mm) from several cameras' 2D over time.

    points2d (n_cameras, n_frames, n_parts, 2) raw pixels (NaN = missing); likelihood (n_cameras,
    n_frames, n_parts) weights each observation (below min_likelihood: ignored). fps: frame rate.
    Costs: Cauchy loss on pixel residuals (scale cauchy_scale x each camera's robust noise, estimated
    from the data); acceleration prior with std accel_mm_s2; for limbs (index pairs into the parts),
    length terms with std limb_sigma_mm around limb_lengths (default: the median length of a robust
    per-frame triangulation); a weak prior_sigma_mm pull towards that triangulation so frames with no
    evidence stay defined with an honest, large sigma. Observations whose residual exceeds
    outlier_scale x the noise are flagged as outliers. Gauss-Newton runs for ``iterations`` steps of at
    most max_step_mm per point; time is cut into chunk_frames windows overlapping by overlap_frames.
    sigma_mm counts the cameras and the acceleration prior as evidence, not the limbs (see below).
    """
    pts, lik = _check_inputs(points2d, rig, likelihood)
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if lik is None:
        lik = np.ones(pts.shape[:-1])
    n_cams, n_frames, n_parts, _ = pts.shape
    limbs = np.zeros((0, 2), int) if limbs is None else np.asarray(limbs, dtype=int).reshape(-1, 2)
    if limbs.size and (limbs.min() < 0 or limbs.max() >= n_parts or (limbs[:, 0] == limbs[:, 1]).any()):
        raise ValueError(f"limbs must be pairs of distinct part indices in 0..{n_parts - 1}, got {limbs.tolist()}")

    X0 = _initial(pts, rig, lik, min_likelihood)
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
        inv_z = 1.0 / xc[..., 2:]
        proj = xc[..., :2] * inv_z
        f = focal.reshape((n_cams,) + (1,) * (X.ndim - 1) + (2,))
        Rb = R.reshape((n_cams,) + (1,) * (X.ndim - 1) + (3, 3))
        J = (Rb[..., :2, :] - proj[..., :, None] * Rb[..., 2:, :]) * (inv_z * f)[..., None]
        return (norm_w - proj) * f, J

    # noise scale per camera from the initial residuals of trusted observations
    norm_w = norm
    r0, _ = residuals(X0)
    noise_px = np.array([1.4826 * np.median(np.abs(r0[c][w0[c] > 0.5])) if (w0[c] > 0.5).any() else 1.0
                         for c in range(n_cams)])
    noise_px = np.maximum(noise_px, 0.05)

    windows, core = _chunks(n_frames, chunk_frames, overlap_frames)
    n_chunks, n = windows.shape
    starts = np.arange(n_chunks)[:, None] * core - overlap_frames + np.arange(n)
    lam = (fps ** 2 / accel_mm_s2) ** 2
    prior_w = 1.0 / prior_sigma_mm ** 2
    limb_w = 1.0 / limb_sigma_mm ** 2
    m = 3 * n_parts  # unknowns per frame; the joint system is ordered (chunk, frame, part, coordinate)
    scale = (cauchy_scale * noise_px)[:, None, None, None]
    per_group = max(1, int(_GROUP_VALUES // (n * m * m)))  # chunks solved together: bounded memory
    lo = overlap_frames
    take = (slice(None), slice(lo, lo + core))
    points, sigmas, flags = [], [], []
    for first in tqdm(range(0, n_chunks, per_group), desc="smooth 3D", unit="group", leave=False,
                      disable=n_chunks <= per_group or None):
        safe = np.clip(starts[first:first + per_group], 0, n_frames - 1)
        n_chunks_g = len(safe)
        norm_w = norm[:, safe]  # (C, K, n, P, 2)
        wobs = np.where((windows[first:first + per_group] >= 0)[None, :, :, None], w0[:, safe], 0.0) \
            / noise_px[:, None, None, None] ** 2
        X = X0[safe]  # (K, n, P, 3)
        anchor = X.copy()
        # chunks end to end in one band, no coupling across their seams
        smooth_band = np.tile(_second_difference_band(n, lam, m), n_chunks_g)
        for it in range(iterations + 1):
            r, J = residuals(X)
            rn2 = (r ** 2).sum(-1)
            w = wobs / (1.0 + rn2 / scale ** 2)  # Cauchy IRLS weights, (C, K, n, P)
            wJ = w[..., None, None] * J
            H = np.zeros((n_chunks_g, n, n_parts, 3, n_parts, 3))
            diag = (J.swapaxes(-1, -2) @ wJ).sum(0) + prior_w * np.eye(3)  # (K, n, P, 3, 3)
            H[:, :, np.arange(n_parts), :, np.arange(n_parts), :] = diag.transpose(2, 0, 1, 3, 4)
            g = (wJ.swapaxes(-1, -2) @ r[..., None])[..., 0].sum(0) + prior_w * (anchor - X)
            for (i, j), L in zip(limbs, limb_lengths):
                A, pull = _limb_terms(X[:, :, i] - X[:, :, j], L, limb_w)
                H[:, :, i, :, i] += A
                H[:, :, j, :, j] += A
                H[:, :, i, :, j] -= A
                H[:, :, j, :, i] -= A
                g[:, :, i] += pull
                g[:, :, j] -= pull
            g -= lam * _apply_d2(X)
            if it == iterations:
                break
            normal = _add_blocks(smooth_band, H.reshape(-1, m, m))
            step = _solve_banded(normal, g.reshape(-1)).reshape(X.shape)
            size = np.linalg.norm(step, axis=-1, keepdims=True)
            X += step * np.minimum(1.0, max_step_mm / np.maximum(size, 1e-12))  # trust region per point
            if size.max() < 1e-4:
                break

        # posterior variance from the cameras and the acceleration prior alone: a limb fixes a point's
        # distance to its neighbours, not on which side of them it sits (a mirrored pose fits as well), so
        # limbs are not counted as evidence; without them the parts decouple and each has its own band
        part_band = np.tile(_second_difference_band(n, lam, 3), n_chunks_g)
        factors = [_cholesky_banded(_add_blocks(part_band, diag[:, :, p].reshape(-1, 3, 3)))
                   for p in range(n_parts)]

        # the jitter is correlated in time: inflate the variance by (1 + rho) / (1 - rho), rho = the
        # lag-1 correlation of the inlier residuals (as if each run of correlated frames counted once)
        good = (w > 0.5 * wobs) & (wobs > 0)
        pair = (good[:, :, 1:] & good[:, :, :-1])[..., None]
        lag1 = (r[:, :, 1:] * r[:, :, :-1] * pair).sum() / max((r[:, :, 1:] ** 2 * pair).sum(), 1e-12)
        rho = np.clip(lag1, 0, 0.95)
        rows = factors[0].shape[0]  # band rows of one part's factor
        stacked = np.stack(factors).reshape(n_parts, rows, n_chunks_g, 3 * n).transpose(0, 2, 1, 3)
        stacked = stacked.reshape(-1, rows, 3 * n)
        var = _inverse_diagonal(stacked).reshape(n_parts, n_chunks_g, n, 3).sum(-1).transpose(1, 2, 0)
        var *= (1 + rho) / (1 - rho)
        r, _ = residuals(X)
        bad = np.sqrt((r ** 2).sum(-1)) > (outlier_scale * noise_px)[:, None, None, None]
        points.append(X[take].reshape(-1, n_parts, 3))
        sigmas.append(np.sqrt(var[take]).reshape(-1, n_parts))
        flags.append(bad[:, take[0], take[1]].reshape(n_cams, -1, n_parts))
    points3d = np.concatenate(points)[:n_frames]
    sigma = np.concatenate(sigmas)[:n_frames]
    outliers = np.concatenate(flags, axis=1)[:, :n_frames] & np.isfinite(pts).all(-1)
    return SmoothResult(points3d=points3d, sigma_mm=sigma, outliers=outliers, limb_lengths=limb_lengths,
                        noise_px=noise_px)
