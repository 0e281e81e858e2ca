"""Triangulation of 2D pose (pixels, several calibrated cameras) into 3D points in the rig's world frame.

Everything is vectorised over all points of a chunk: the linear (DLT) solution and the Gauss-Newton
refinement are both 3x3 normal-equation systems per point, built with numpy and solved in closed form.
Reprojection errors are measured in pinhole pixels of the undistorted image (normalised residual
times the focal length), which equals the raw-pixel error up to the local lens-distortion scale
(a few percent at most for the rig's lenses) and costs a fraction of re-distorting every point.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from ..rig import Rig

DEFAULT_CHUNK_POINTS = 32_768
DEFAULT_OUTLIER_PX = 10.0
REFINE_ITERATIONS = 5


@dataclass(frozen=True)
class Triangulation:
    """Triangulated pose of one session (NaN where a point could not be triangulated).

    Attributes
    ----------
    points3d : numpy.ndarray, (n_frames, n_parts, 3), mm
        World frame of the rig.
    reprojection_error : numpy.ndarray, (n_frames, n_parts), px
        Mean over the cameras used (pinhole px, see the module).
    n_cameras : numpy.ndarray, (n_frames, n_parts) int
        Number of cameras used (0 where points3d is NaN).
    camera_mask : numpy.ndarray, (n_cameras, n_frames, n_parts) bool
        Which cameras were used.
    score : numpy.ndarray, (n_frames, n_parts)
        Mean 2D likelihood over the cameras used (NaN without likelihoods).
    qc_error : numpy.ndarray, (n_frames, n_parts), px
        For QC tables: raw (distorted) pixels, mean over every camera that saw the point (trusted), also those
        dropped as outliers; NaN where no 3D solution.
    """

    points3d: np.ndarray
    reprojection_error: np.ndarray
    n_cameras: np.ndarray
    camera_mask: np.ndarray
    score: np.ndarray
    qc_error: np.ndarray


@dataclass(frozen=True)
class _Geometry:
    """Per-camera arrays for the normalised (undistorted) projection model: x ~ R X + t."""

    R: np.ndarray  # (C, 3, 3)
    t: np.ndarray  # (C, 3)
    focal: np.ndarray  # (C, 2): fx, fy in px, to express normalised residuals in pixels

    @classmethod
    def of(cls, rig: Rig) -> _Geometry:
        return cls(R=np.stack([c.R for c in rig]), t=np.stack([c.t for c in rig]),
                   focal=np.stack([[c.K[0, 0], c.K[1, 1]] for c in rig]))


def _check_inputs(points2d, rig: Rig, likelihood) -> tuple[np.ndarray, np.ndarray | None]:
    if not isinstance(rig, Rig):
        raise TypeError(f"rig must be a ratpose.rig.Rig, got {type(rig).__name__}")
    pts = np.asarray(points2d)
    if not np.issubdtype(pts.dtype, np.number):
        raise DataError(f"points2d must be numeric, got dtype {pts.dtype}")
    if pts.ndim != 4 or pts.shape[-1] != 2:
        raise DataError(f"points2d must have shape (n_cameras, n_frames, n_parts, 2), got {pts.shape}")
    if pts.shape[0] != len(rig):
        raise DataError(f"points2d has {pts.shape[0]} cameras but the rig has {len(rig)} ({rig.names})")
    if len(rig) < 2:
        raise DataError(f"triangulation needs at least 2 cameras, the rig has {len(rig)}")
    if likelihood is None:
        return pts, None
    lik = np.asarray(likelihood, dtype=np.float64)
    if lik.shape != pts.shape[:-1]:
        raise DataError(f"likelihood must have shape {pts.shape[:-1]} (points2d without its last axis), "
                         f"got {lik.shape}")
    return pts, lik


def _solve_symmetric3(m: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve stacked symmetric 3x3 systems in closed form.

    m: (6, N) unique entries (xx, xy, xz, yy, yz, zz); rhs: (3, N). Singular systems give NaN.
    """
    a, b, c, d, e, f = m
    c11, c12, c13 = d * f - e * e, c * e - b * f, b * e - c * d
    c22, c23, c33 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * c11 + b * c12 + c * c13
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_det = np.where(np.abs(det) > 1e-12 * (a * d * f + 1e-300), 1.0 / det, np.nan)
    r0, r1, r2 = rhs
    return np.stack([(c11 * r0 + c12 * r1 + c13 * r2) * inv_det,
                     (c12 * r0 + c22 * r1 + c23 * r2) * inv_det,
                     (c13 * r0 + c23 * r1 + c33 * r2) * inv_det])


class _NormalEquations:
    """Accumulates sum_rows (a.X - b)^2 for N points at once: 6 unique entries of A^T A and A^T b."""

    def __init__(self, n_points: int):
        self.m = np.zeros((6, n_points))  # xx, xy, xz, yy, yz, zz
        self.rhs = np.zeros((3, n_points))
        self._products = np.empty((6, n_points))

    def add(self, a: np.ndarray, b: np.ndarray):
        """Add one row per point: a (3, N) (already zero for unused observations), target b (N,)."""
        products = self._products
        np.multiply(a[0], a, out=products[:3])
        np.multiply(a[1], a[1:], out=products[3:5])
        np.multiply(a[2], a[2], out=products[5])
        self.m += products
        self.rhs += a * b

    def solve(self) -> np.ndarray:
        return _solve_symmetric3(self.m, self.rhs)


def _projection_rows(R: np.ndarray, coord: np.ndarray, axis: int) -> np.ndarray:
    """(R[axis] - coord * R[2]) for every point: (3, N); x/z = coord is linear in X along these rows."""
    return R[axis][:, None] - coord * R[2][:, None]


def _linear(norm: np.ndarray, weights: np.ndarray, geo: _Geometry) -> np.ndarray:
    """DLT in normalised coordinates: camera c gives (R_k - u_k R_3).X = u_k t_3 - t_k for k = x, y.

    norm: (C, 2, N) undistorted normalised points (finite where weight > 0); returns X (3, N).
    """
    eq = _NormalEquations(norm.shape[-1])
    for c in range(len(geo.R)):
        for axis in (0, 1):
            coord = norm[c, axis]
            eq.add(_projection_rows(geo.R[c], coord, axis) * weights[c], coord * geo.t[c, 2] - geo.t[c, axis])
    return eq.solve()


def _camera_coords(X: np.ndarray, geo: _Geometry, c: int) -> np.ndarray:
    """World points (3, N) in the frame of camera c: (3, N)."""
    return geo.R[c] @ X + geo.t[c][:, None]


def _residuals_px(X: np.ndarray, norm: np.ndarray, geo: _Geometry) -> np.ndarray:
    """Reprojection error of X (3, N) in every camera, px: (C, N)."""
    out = np.empty(norm[:, 0].shape)
    for c in range(len(geo.R)):
        xc = _camera_coords(X, geo, c)
        diff = (norm[c] - xc[:2] / xc[2]) * geo.focal[c][:, None]
        out[c] = np.hypot(diff[0], diff[1])
    return out


def _mean_error(per_camera: np.ndarray, weights: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weights > 0, per_camera, 0.0).sum(axis=0) / weights.sum(axis=0)


def _refine(X: np.ndarray, norm: np.ndarray, weights: np.ndarray, geo: _Geometry) -> np.ndarray:
    """Gauss-Newton on the pixel reprojection error, vectorised over points; starts from X (3, N)."""
    for _ in range(REFINE_ITERATIONS):
        eq = _NormalEquations(X.shape[1])
        for c in range(len(geo.R)):
            xc = _camera_coords(X, geo, c)
            inv_z = 1.0 / xc[2]
            for axis in (0, 1):
                proj = xc[axis] * inv_z
                scale = geo.focal[c, axis] * weights[c]
                # d(x/z)/dX = (R_k - (x/z) R_3) / z
                eq.add(_projection_rows(geo.R[c], proj, axis) * (inv_z * scale), (norm[c, axis] - proj) * scale)
        step = eq.solve()
        X = X + np.where(np.isfinite(step), step, 0.0)
    return X


def _drop_outlier_cameras(X, norm, weights, geo, outlier_px):
    """While a point seen by 3+ cameras has mean error > outlier_px, drop the camera whose removal
    lowers the error most (leave-one-out over the cameras, vectorised over the affected points)."""
    n_cams = weights.shape[0]
    for _ in range(n_cams - 2):
        err = _mean_error(_residuals_px(X, norm, geo), weights)
        bad = np.flatnonzero((weights.sum(axis=0) >= 3) & (err > outlier_px))
        if bad.size == 0:
            break
        sub_norm, sub_w = norm[..., bad], weights[:, bad]
        best_err = np.full(bad.size, np.inf)
        best_cam = np.full(bad.size, -1)
        best_X = X[:, bad]
        for cam in range(n_cams):
            w = sub_w.copy()
            w[cam] = 0.0
            cand = _linear(sub_norm, w, geo)
            cand_err = _mean_error(_residuals_px(cand, sub_norm, geo), w)
            better = (sub_w[cam] > 0) & (cand_err < best_err)
            best_err = np.where(better, cand_err, best_err)
            best_cam = np.where(better, cam, best_cam)
            best_X = np.where(better, cand, best_X)
        found = best_cam >= 0
        weights[best_cam[found], bad[found]] = 0.0
        X[:, bad] = best_X
    return X


def _triangulate_chunk(pts, trusted, geo, rig, refine, outlier_px):
    """pts: (C, N, 2) raw px; trusted: (C, N) bool. Returns X (3, N), error (N,), used (C, N), qc error (N,)."""
    norm = np.empty((len(rig), 2, pts.shape[1]))  # (C, 2, N) undistorted normalised coordinates
    for c, cam in enumerate(rig):
        norm[c] = cam.undistort(np.where(trusted[c, :, None], pts[c], np.nan)).T
    trusted = trusted & np.isfinite(norm[:, 0]) & np.isfinite(norm[:, 1])
    np.nan_to_num(norm, copy=False, nan=0.0)  # untrusted rows get weight 0; keep them finite
    weights = trusted.astype(np.float64)
    X = _linear(norm, weights, geo)
    if len(rig) >= 3:
        X = _drop_outlier_cameras(X, norm, weights, geo, outlier_px)
    if refine:
        X = _refine(X, norm, weights, geo)
    used = weights > 0
    depth = np.einsum("ci,in->cn", geo.R[:, 2], X) + geo.t[:, 2, None]
    in_front = ((depth > 0) | ~used).all(axis=0)  # a point behind a camera that saw it is no solution
    ok = (used.sum(axis=0) >= 2) & np.isfinite(X).all(axis=0) & in_front
    error = _mean_error(_residuals_px(X, norm, geo), weights)
    X[:, ~ok] = np.nan
    error[~ok] = np.nan
    used[:, ~ok] = False
    return X, error, used, _raw_error(X, pts, trusted, rig)


def _raw_error(X: np.ndarray, pts: np.ndarray, seen: np.ndarray, rig: Rig) -> np.ndarray:
    """Mean raw-pixel distance between the projections of X (3, N) and pts (C, N, 2) over the cameras in seen."""
    total, count = np.zeros(X.shape[1]), seen.sum(axis=0)
    for c, cam in enumerate(rig):
        total += np.where(seen[c], np.linalg.norm(cam.project(X.T) - pts[c], axis=-1), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def triangulate(points2d, rig: Rig, likelihood=None, min_likelihood: float = 0.6, *,
                refine: bool = False, max_reprojection_px: float | None = None,
                outlier_px: float = DEFAULT_OUTLIER_PX, chunk_points: int = DEFAULT_CHUNK_POINTS,
                workers: int | None = None) -> Triangulation:
    """Triangulate 2D points of several cameras into 3D (mm, the rig's world frame).

    Observations below min_likelihood (or NaN) are not trusted. Points with fewer than 2 trusted cameras,
    or whose solution lies behind a camera that saw them, are NaN.
    With 3+ cameras, while a point's mean reprojection error exceeds outlier_px the camera whose
    removal lowers it most is dropped (down to 2 cameras).

    Parameters
    ----------
    points2d : array_like, (n_cameras, n_frames, n_parts, 2), px
        Raw (distorted) pixels, cameras in rig order; NaN = not detected.
    rig : Rig
        At least 2 cameras.
    likelihood : array_like, (n_cameras, n_frames, n_parts), optional
    min_likelihood : float
    refine : bool
        Gauss-Newton on the reprojection error after the linear solution.
    max_reprojection_px : float, optional, px
        Points whose final error exceeds it become NaN (their error is kept, for QC).
    outlier_px : float, px
    chunk_points : int
        Work is split into chunks of this many points (bounded memory); >= 1.
    workers : int, optional
        Threads the chunks run on (default: the CPU count, at most 8); >= 1.

    Returns
    -------
    Triangulation

    Raises
    ------
    DataError
        If ``points2d`` is not numeric or not (n_cameras, n_frames, n_parts, 2) for the rig's cameras, the rig has
        fewer than 2 cameras, ``likelihood`` has another shape, or ``chunk_points`` or ``workers`` < 1.
    """
    pts, lik = _check_inputs(points2d, rig, likelihood)
    if chunk_points < 1:
        raise DataError(f"chunk_points must be >= 1, got {chunk_points}")
    workers = min(os.cpu_count() or 1, 8) if workers is None else workers
    if workers < 1:
        raise DataError(f"workers must be >= 1, got {workers}")
    n_cams, n_frames, n_parts, _ = pts.shape
    n_points = n_frames * n_parts
    flat = pts.reshape(n_cams, n_points, 2)
    lik_flat = None if lik is None else lik.reshape(n_cams, n_points)
    geo = _Geometry.of(rig)

    points3d = np.full((n_points, 3), np.nan)
    error = np.full(n_points, np.nan)
    qc_error = np.full(n_points, np.nan)
    used = np.zeros((n_cams, n_points), dtype=bool)
    score = np.full(n_points, np.nan)

    def run(start: int):
        sl = slice(start, start + chunk_points)
        chunk = flat[:, sl].astype(np.float64, copy=False)
        trusted = np.isfinite(chunk[..., 0]) & np.isfinite(chunk[..., 1])
        if lik_flat is not None:
            trusted &= lik_flat[:, sl] >= min_likelihood
        X, err, use, qc_error[sl] = _triangulate_chunk(chunk, trusted, geo, rig, refine, outlier_px)
        if max_reprojection_px is not None:
            rejected = err > max_reprojection_px
            X[:, rejected] = np.nan
            use[:, rejected] = False
        points3d[sl], error[sl], used[:, sl] = X.T, err, use
        if lik_flat is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                score[sl] = np.where(use, lik_flat[:, sl], 0.0).sum(axis=0) / use.sum(axis=0)

    starts = range(0, n_points, chunk_points)
    if workers == 1 or len(starts) == 1:
        for start in starts:
            run(start)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, starts))
    shape = (n_frames, n_parts)
    return Triangulation(points3d=points3d.reshape(shape + (3,)), reprojection_error=error.reshape(shape),
                         n_cameras=used.sum(axis=0).reshape(shape), camera_mask=used.reshape((n_cams,) + shape),
                         score=score.reshape(shape), qc_error=qc_error.reshape(shape))
