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
from .detect import BoardDetection, CalibrationError, detect_board
from .interop import load_anipose_board, load_dlc_stereo_pickle, load_rig, rig_from_anipose_text, save_rig
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
    "BoardDetection", "BoardError", "CalibrationError", "CalibrationReport", "CalibrationSettings", "CameraQuality", "LENS_MODELS", "CharucoBoard",
    "Checkerboard", "ViewSet", "board_from_dict", "board_label", "calibrate_from_detections", "calibrate_rig",
    "corner_coverage", "detect_board", "detect_views", "heldout_errors", "heldout_line", "load_anipose_board", "load_dlc_stereo_pickle", "load_rig", "rig_from_anipose_text",
    "plot_camera_residuals", "plot_report", "render_board", "save_printable_board", "save_rig",
]
