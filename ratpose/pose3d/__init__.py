"""3D pose: triangulation of several cameras' 2D, gap-aware filtering, and what the Pose3D table
computes (match cameras by pulse, triangulate, filter). Pure numpy/OpenCV; no database.
"""
from .filtering import (
    interpolate_gaps,
    mask_by_cameras,
    mask_by_error,
    mask_spikes,
    median_filter,
    savgol_filter,
    valid_points,
)
from .reconstruct import Pose3DResult, Pose3DSettings, reconstruct
from .smooth import SmoothResult, smooth
from .triangulation import Triangulation, triangulate

__all__ = [
    "Pose3DSettings", "Pose3DResult", "Triangulation", "interpolate_gaps", "mask_by_cameras", "mask_by_error",
    "mask_spikes", "median_filter", "reconstruct", "savgol_filter", "smooth", "SmoothResult", "triangulate",
    "valid_points",
]
