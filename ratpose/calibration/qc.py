"""Calibration quality: per-camera reprojection statistics, image coverage and diagnostic plots."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

COVERAGE_GRID = (8, 6)  # cells across, cells down


@dataclass
class CameraQuality:
    """Reprojection quality of one camera; ``points`` are detections, ``residuals`` projection - detection.

    ``coverage``: fraction of an 8 x 6 grid of image cells holding a detected corner.
    """

    name: str
    image_size: tuple[int, int]
    n_shared_views: int
    n_single_views: int
    n_points: int
    rms_px: float
    p95_px: float
    coverage: float
    intrinsics_std: dict[str, float]  # 1-sigma of each fitted intrinsic (px for fx..cy), from the BA covariance
    lens_model: str                   # the distortion model fitted (ratpose.calibration.solve.LENS_MODELS)
    heldout_px: dict[str, float]      # per candidate model, RMS px on views left out (empty when forced)
    points: np.ndarray
    residuals: np.ndarray

    def summary(self) -> dict:
        """The scalar fields (no arrays), e.g. for a database row."""
        return {k: v for k, v in vars(self).items() if not isinstance(v, np.ndarray)}


@dataclass
class CalibrationReport:
    """Quality of a rig calibration: per camera and overall reprojection RMS (px, after bundle adjustment)."""

    cameras: dict[str, CameraQuality]
    rms_px: float
    n_joint_instants: int  # instants where at least two cameras saw the board
    n_evaluations: int
    converged: bool

    def summary(self) -> dict:
        return {"rms_px": self.rms_px, "n_joint_instants": self.n_joint_instants,
                "n_evaluations": self.n_evaluations, "converged": self.converged,
                "cameras": {name: q.summary() for name, q in self.cameras.items()}}


def corner_coverage(points: np.ndarray, image_size: tuple[int, int], grid: tuple[int, int] = COVERAGE_GRID) -> float:
    """Fraction of the cells of a ``grid`` (across, down) over the image that hold at least one corner."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    width, height = image_size
    inside = (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
    cx = (points[inside, 0] * grid[0] / width).astype(int)
    cy = (points[inside, 1] * grid[1] / height).astype(int)
    return len(np.unique(cy * grid[0] + cx)) / (grid[0] * grid[1])


def plot_camera_residuals(quality: CameraQuality, ax, scale: float = 50.0) -> None:
    """Draw detected corners and residual vectors (magnified ``scale`` times) of one camera on ``ax``."""
    width, height = quality.image_size
    err = np.linalg.norm(quality.residuals, axis=1)
    ax.scatter(quality.points[:, 0], quality.points[:, 1], s=3, c=err, cmap="viridis")
    ax.quiver(quality.points[:, 0], quality.points[:, 1], quality.residuals[:, 0], -quality.residuals[:, 1],
              angles="xy", scale_units="xy", scale=1 / scale, width=0.002, color="tab:red")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_aspect("equal")
    ax.set_title(f"{quality.name}: RMS {quality.rms_px:.3f} px, p95 {quality.p95_px:.3f} px, "
                 f"coverage {quality.coverage:.0%}\n{quality.n_shared_views} shared + "
                 f"{quality.n_single_views} single views (residuals x{scale:g})\n{heldout_line(quality)}", fontsize=8)


def heldout_line(quality: CameraQuality) -> str:
    """'lens model k1k2k3 (held out: k1k2 0.303, k1k2k3 0.206, ... px)' for plots and reports."""
    if quality.lens_model == "imported":
        return "imported calibration (no images: no held-out comparison)"
    scores = ", ".join(f"{m} {e:.3f}" for m, e in quality.heldout_px.items())
    return f"lens model {quality.lens_model}" + (f" (held out: {scores} px)" if scores else " (forced)")


def plot_report(report: CalibrationReport, path, scale: float = 50.0) -> Path:
    """Save one panel per camera (corners and magnified residual vectors) to a PNG at ``path``."""
    from matplotlib.figure import (
        Figure,  # no pyplot: renders with Agg, leaves the global backend alone
    )

    path = Path(path)
    n = len(report.cameras)
    fig = Figure(figsize=(5 * n, 4.2))
    for i, quality in enumerate(report.cameras.values()):
        plot_camera_residuals(quality, fig.add_subplot(1, n, i + 1), scale)
    fig.suptitle(f"calibration: overall RMS {report.rms_px:.3f} px, {report.n_joint_instants} joint instants")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
