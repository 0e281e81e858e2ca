"""2D pose: the DeepLabCut adapter and what the PoseModel and Pose2D tables compute (no database).

``dlc`` builds projects from labeled frames, trains, evaluates, registers models trained elsewhere and
runs inference; ``estimate`` turns a training set + parameters into a fitted model and a video into
per-frame (x, y, likelihood); ``workspace`` projects the rig's 3D workspace into per-camera crops on the
network's grid (``input_stride``), where the network gives the full frame's poses.
DeepLabCut itself is imported lazily, so importing this is cheap.
"""
from . import dlc
from .dlc import (
    ChecksumError,
    DLCError,
    Evaluation,
    Pose2DArrays,
    TrainedModel,
    TrainSettings,
    analyze_video,
    build_project,
    crop_labeled_data,
    evaluate,
    input_stride,
    load_dlc_h5,
    register_model,
    train,
    verify_checksums,
)
from .estimate import (
    FittedModel,
    fit_pose_model,
    model_from_row,
    model_to_row,
    pose2d_for_video,
)
from .workspace import CropBox, Workspace, crop_for_camera

__all__ = [
    "ChecksumError", "CropBox", "DLCError", "Evaluation", "FittedModel", "Pose2DArrays", "TrainSettings",
    "TrainedModel", "Workspace", "analyze_video", "build_project", "crop_for_camera", "crop_labeled_data", "dlc",
    "evaluate", "fit_pose_model", "input_stride", "load_dlc_h5", "model_from_row", "model_to_row", "pose2d_for_video",
    "register_model", "train", "verify_checksums",
]
