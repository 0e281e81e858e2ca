"""Self-validation without ground truth: leave one camera out, reconstruct from the others, project into it.

The held-out camera's 2D never entered its own check, so the error measures the 3D (and calibration)
as a lab can on its own data: a method that smooths too much, or trusts a wrong camera, shows it here.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..rig import Rig


def held_out_errors(points2d, rig: Rig, likelihood, estimate: Callable, *, min_likelihood: float = 0.5) -> np.ndarray:
    """Leave-one-camera-out reprojection error (n_cameras, n_frames, n_parts), px, per observation.

    For each camera c: ``estimate(points2d, rig, likelihood)`` on the other cameras gives points3d
    (n_frames, n_parts, 3); it is projected into c and compared with c's own 2D where c's likelihood is at
    least min_likelihood. NaN where fewer than two other cameras remain, where c saw nothing confidently,
    or where the estimate has no 3D point (judged = ``likelihood >= min_likelihood`` and finite 2D: the
    caller can tell a missing estimate from an unjudged observation).
    """
    pts = np.asarray(points2d, dtype=np.float64)
    lik = np.asarray(likelihood, dtype=np.float64)
    n_cams = pts.shape[0]
    out = np.full(pts.shape[:-1], np.nan)
    if n_cams < 3:
        return out
    for c in range(n_cams):
        others = [i for i in range(n_cams) if i != c]
        points3d = estimate(pts[others], rig.subset([rig.names[i] for i in others]), lik[others])
        error = np.linalg.norm(rig[c].project(points3d) - pts[c], axis=-1)
        out[c] = np.where(lik[c] >= min_likelihood, error, np.nan)
    return out


def held_out_error(points2d, rig: Rig, likelihood, estimate: Callable, *, min_likelihood: float = 0.5) -> np.ndarray:
    """Leave-one-camera-out reprojection error (n_cameras, n_parts), px: ``held_out_errors``' median over
    frames (NaN where a camera and part has no judged, estimated observation)."""
    errors = held_out_errors(points2d, rig, likelihood, estimate, min_likelihood=min_likelihood)
    out = np.full(errors.shape[::2], np.nan)
    judged = np.isfinite(errors)
    for c, p in zip(*np.nonzero(judged.any(axis=1))):
        out[c, p] = np.median(errors[c, judged[c, :, p], p])
    return out
