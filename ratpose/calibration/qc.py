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

    Attributes
    ----------
    name : str
    image_size : tuple of int, (width, height), px
    n_shared_views, n_single_views : int
        Views at shared instants and single-camera (intrinsics) views.
    n_points : int
        Corners used.
    rms_px, p95_px : float, px
        RMS and 95th percentile of the reprojection error.
    coverage : float
    points : numpy.ndarray, (n_points, 2), px
    residuals : numpy.ndarray, (n_points, 2), px
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
    """Quality of a rig calibration: per camera and overall reprojection RMS (px, after bundle adjustment).

    Attributes
    ----------
    cameras : dict of str to CameraQuality
    rms_px : float, px
        Over every camera's corners.
    n_evaluations : int
        Residual evaluations of the bundle adjustment.
    converged : bool
        Whether the bundle adjustment met its tolerance.
    """

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
    """Fraction of the cells of a ``grid`` (across, down) over the image that hold at least one corner.

    Parameters
    ----------
    points : array_like, (n, 2), px
        Corner positions; those outside the image are ignored.
    image_size : tuple of int, (width, height), px
    grid : tuple of int, (across, down)

    Returns
    -------
    float
        In [0, 1].
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    width, height = image_size
    inside = (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
    cx = (points[inside, 0] * grid[0] / width).astype(int)
    cy = (points[inside, 1] * grid[1] / height).astype(int)
    return len(np.unique(cy * grid[0] + cx)) / (grid[0] * grid[1])


def plot_camera_residuals(quality: CameraQuality, ax, grid: tuple[int, int] = (8, 6)) -> None:
    """Draw detected corners and the mean residual vector of each grid cell on ``ax``.

    Corners in grey; the mean residual vector of each cell of a grid x grid over the image, drawn to the
    scale of a 1 px arrow in the key.

    Parameters
    ----------
    quality : CameraQuality
    ax : matplotlib.axes.Axes
    grid : tuple of int, (across, down)
    """
    width, height = quality.image_size
    ax.scatter(quality.points[:, 0], quality.points[:, 1], s=3, color="0.5", label="detected corners")
    cx = np.clip((quality.points[:, 0] * grid[0] / width).astype(int), 0, grid[0] - 1)
    cy = np.clip((quality.points[:, 1] * grid[1] / height).astype(int), 0, grid[1] - 1)
    cell = cy * grid[0] + cx
    used = np.unique(cell)
    mean = np.array([quality.residuals[cell == c].mean(axis=0) for c in used]).reshape(-1, 2)
    centre_x, centre_y = (used % grid[0] + 0.5) * width / grid[0], (used // grid[0] + 0.5) * height / grid[1]
    longest = float(np.linalg.norm(mean, axis=1).max()) if len(mean) else 1.0
    # the longest mean arrow spans about half a cell
    scale = 0.5 * width / grid[0] / max(longest, 1e-6)
    arrows = ax.quiver(centre_x, centre_y, mean[:, 0] * scale, -mean[:, 1] * scale, angles="xy",
                       scale_units="xy", scale=1, width=0.006, color="tab:red", label="mean residual per cell")
    key_px = _nice_length(longest)
    ax.quiverkey(arrows, 0.62, 0.05, key_px * scale, f"{key_px:g} px residual", labelpos="E", coordinates="axes",
                 fontproperties={"size": 7})
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_aspect("equal")
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title(f"{quality.name}: RMS {quality.rms_px:.3f} px, p95 {quality.p95_px:.3f} px, "
                 f"coverage {quality.coverage:.0%}\n{quality.n_shared_views} shared + "
                 f"{quality.n_single_views} single views\n{heldout_line(quality)}", fontsize=8)


def _nice_length(value: float) -> float:
    """1, 2 or 5 times a power of ten, at most value (for a scale bar)."""
    if value <= 0:
        return 1.0
    power = 10 ** np.floor(np.log10(value))
    return float(max(m for m in (1, 2, 5) if m * power <= value) * power)


def heldout_line(quality: CameraQuality) -> str:
    """'lens model k1k2k3 (held out: k1k2 0.303, k1k2k3 0.206, ... px)' for plots and reports.

    Parameters
    ----------
    quality : CameraQuality

    Returns
    -------
    str
        "(forced)" in place of the scores where the model was forced; a note for an imported calibration.
    """
    if quality.lens_model == "imported":
        return "imported calibration (no images: no held-out comparison)"
    scores = ", ".join(f"{m} {e:.3f}" for m, e in quality.heldout_px.items())
    return f"lens model {quality.lens_model}" + (f" (held out: {scores} px)" if scores else " (forced)")


def plot_report(report: CalibrationReport, path) -> Path:
    """Save one panel per camera (corners and binned mean residual vectors) to a PNG at ``path``.

    Parameters
    ----------
    report : CalibrationReport
    path : str or Path

    Returns
    -------
    Path
    """
    from ..figures import new_figure, save

    n = len(report.cameras)
    fig = new_figure(5 * n, 4.6)
    for i, quality in enumerate(report.cameras.values()):
        plot_camera_residuals(quality, fig.add_subplot(1, n, i + 1))
    fig.suptitle(f"calibration: overall RMS {report.rms_px:.3f} px, {report.n_joint_instants} joint instants")
    return save(fig, path)
