"""Camera calibration: boards, detection, intrinsics + multi-camera extrinsics, QC and file interop.

Pure numpy/OpenCV; no database. ``calibrate_rig(frames, board)`` is the entry point.
"""
from .boards import (
    BoardError,
    CharucoBoard,
    Checkerboard,
    board_from_dict,
    board_label,
    render_board,
    save_printable_board,
)
from .coverage import choose_instants
from .detect import BoardDetection, CalibrationError, detect_board
from .interop import (
    load_anipose_board,
    load_dlc3d_project,
    load_dlc_stereo_pickle,
    load_rig,
    rig_from_anipose_text,
    rig_to_anipose_text,
    save_rig,
)
from .qc import (
    CalibrationReport,
    CameraQuality,
    corner_coverage,
    heldout_line,
    plot_camera_residuals,
    plot_report,
)
from .solve import (
    LENS_MODELS,
    CalibrationSettings,
    ViewSet,
    calibrate_from_detections,
    calibrate_rig,
    detect_views,
    heldout_errors,
)

__all__ = [
    "board_from_dict", "board_label", "BoardDetection", "BoardError", "calibrate_from_detections", "calibrate_rig",
    "CalibrationError", "CalibrationReport", "CalibrationSettings", "CameraQuality", "CharucoBoard", "Checkerboard",
    "choose_instants", "corner_coverage", "detect_board", "detect_views", "heldout_errors", "heldout_line",
    "LENS_MODELS", "load_anipose_board", "load_dlc3d_project", "load_dlc_stereo_pickle", "load_rig",
    "plot_camera_residuals", "plot_report", "render_board", "rig_from_anipose_text", "rig_to_anipose_text",
    "save_printable_board", "save_rig", "ViewSet",
]
