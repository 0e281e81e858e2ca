"""DeepLabCut 3 (PyTorch engine) adapter: build a project, train, evaluate, register, analyse.

A module per job: ``records`` (settings, models, outputs, errors), ``project`` (labels -> a DLC project),
``training``, ``registry`` (evaluation, models trained elsewhere, checksums), ``inference`` (a video -> 2D
pose) and ``outputs`` (reading DLC's .h5/.csv).

Plain functions on paths and dataclasses for the PoseModel / Pose2D tables; no database here.
DeepLabCut is imported lazily (it takes seconds), so importing this module is cheap.

Offline use: DLC 3.0.2 asks the model hub for ImageNet backbone weights whenever training starts
without a snapshot. :func:`train` therefore always hands DLC an initial snapshot: a randomly
initialised model (``init="random"``), ImageNet weights from the hub or local cache
(``init="imagenet"``, a clear error when unavailable), or a snapshot file of the user's.
"""
from .inference import (
    analyze_crop,
    analyze_video,
    input_stride,
)
from .outputs import (
    load_dlc_h5,
    read_dlc_table,
)
from .project import (
    build_project,
    crop_labeled_data,
    labels_path,
    read_labels,
    write_labels,
)
from .records import (
    DYNAMIC_THRESHOLD,
    EXTRA_RESNETS,
    SHUFFLE,
    TRAINSET_INDEX,
    ChecksumError,
    DLCError,
    Evaluation,
    Pose2DArrays,
    TrainedModel,
    TrainSettings,
)
from .registry import (
    evaluate,
    register_model,
    verify_checksums,
)
from .training import (
    resolve_device,
    train,
)

__all__ = [
    "analyze_crop",
    "analyze_video",
    "build_project",
    "ChecksumError",
    "crop_labeled_data",
    "DLCError",
    "DYNAMIC_THRESHOLD",
    "evaluate",
    "Evaluation",
    "EXTRA_RESNETS",
    "input_stride",
    "labels_path",
    "load_dlc_h5",
    "Pose2DArrays",
    "read_dlc_table",
    "read_labels",
    "register_model",
    "resolve_device",
    "SHUFFLE",
    "train",
    "TrainedModel",
    "TRAINSET_INDEX",
    "TrainSettings",
    "verify_checksums",
    "write_labels",
]
