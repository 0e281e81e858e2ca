"""What the Pose3D table computes: match cameras by pulse, triangulate, filter, summarise (no database)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .filtering import median_filter
from ..rig import Rig
from ..sync import match_cameras
from .smooth import smooth
from .triangulation import Triangulation, triangulate

METHODS = ("linear", "smooth")


@dataclass(frozen=True)
class Pose3DParams:
    """Reconstruction settings: likelihood cutoff, error limit, refinement, optional median filter, and
    method: 'linear' (each frame triangulated on its own) or 'smooth' (pose3d.smooth: all frames jointly,
    robust to outliers, no gaps; observations below min_likelihood are ignored, max_reprojection_px and
    refine do not apply)."""

    min_likelihood: float = 0.6
    max_reprojection_px: float | None = 10.0
    refine: bool = True
    median_window: int = 0  # frames; 0 = no filtering
    method: str = "linear"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"Pose3D method must be one of {METHODS}, got {self.method!r}")


@dataclass(frozen=True)
class Pose3DResult:
    """3D pose on the neural clock: one row per pulse seen by every camera."""

    pulse_index: np.ndarray
    time_s: np.ndarray
    triangulation: Triangulation
    points3d: np.ndarray  # (n_frames, n_parts, 3) after optional filtering

    def part_summary(self, p: int) -> dict:
        """QC of body part p: fraction triangulated, median and 95th percentile reprojection error (raw px,
        every camera that saw the point: ``Triangulation.qc_error``)."""
        ok = np.isfinite(self.points3d[:, p, 0])
        errors = self.triangulation.qc_error[ok, p]
        return {"fraction_triangulated": float(ok.mean()) if ok.size else 0.0,
                "median_error_px": float(np.median(errors)) if errors.size else float("nan"),
                "p95_error_px": float(np.percentile(errors, 95)) if errors.size else float("nan")}


def reconstruct(rig: Rig, frames: dict[str, tuple[np.ndarray, np.ndarray]],
                pose2d: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], params: Pose3DParams) -> Pose3DResult:
    """Triangulate the 2D pose of several cameras, matched by pulse index.

    frames: camera -> (pulse_index, time_s) per video frame (SyncedFrames); pose2d: camera -> (x, y,
    likelihood), each (n_frames, n_parts) aligned row-for-row with that camera's frames.
    """
    missing = [name for name in rig.names if name not in frames or name not in pose2d]
    if missing:
        raise ValueError(f"cameras {missing} of the calibration have no synced 2D pose in this session")
    for name in rig.names:
        if len(frames[name][0]) != len(pose2d[name][0]):
            raise ValueError(f"camera {name!r}: {len(pose2d[name][0])} pose rows for {len(frames[name][0])} frames")
    common, rows = match_cameras({name: frames[name][0] for name in rig.names})
    points2d = np.stack([np.stack([pose2d[n][0][rows[n]], pose2d[n][1][rows[n]]], axis=-1) for n in rig.names])
    likelihood = np.stack([pose2d[n][2][rows[n]] for n in rig.names])
    result = triangulate(points2d, rig, likelihood, min_likelihood=params.min_likelihood, refine=params.refine,
                         max_reprojection_px=params.max_reprojection_px)
    time_s = frames[rig.names[0]][1][rows[rig.names[0]]]
    if params.method == "smooth":
        fps = 1.0 / float(np.median(np.diff(time_s))) if len(time_s) > 1 else 1.0
        points3d = smooth(points2d, rig, likelihood, fps=fps, min_likelihood=params.min_likelihood).points3d
        result = _with_points(result, points3d, rig, points2d, likelihood >= params.min_likelihood)
    points3d = result.points3d
    if params.median_window > 1:
        points3d = median_filter(points3d, params.median_window)
    return Pose3DResult(pulse_index=common, time_s=time_s, triangulation=result, points3d=points3d)


def _with_points(tri: Triangulation, points3d: np.ndarray, rig: Rig, points2d: np.ndarray,
                 trusted: np.ndarray) -> Triangulation:
    """The triangulation's QC for other 3D points: mean raw-pixel reprojection error over the trusted cameras."""
    used = trusted & np.isfinite(points2d).all(axis=-1)
    error = np.linalg.norm(rig.project(points3d) - points2d, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(used, error, 0.0).sum(axis=0) / used.sum(axis=0)
    return Triangulation(points3d=points3d, reprojection_error=mean, n_cameras=used.sum(axis=0),
                         camera_mask=used, score=tri.score, qc_error=mean)
