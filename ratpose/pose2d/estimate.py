"""What the PoseModel and Pose2D tables compute, as plain functions around ratpose.pose2d.dlc (no database)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..copies import inside_name
from ..errors import InputError
from . import dlc, sleap


@dataclass(frozen=True)
class FittedModel:
    """A trained or registered DLC model with its evaluation (None when it cannot be evaluated).

    ``model`` is None for an 'external' model: only its outputs (DLC .h5 files) come to the pipeline.

    Attributes
    ----------
    model : TrainedModel or None
    evaluation : Evaluation or None
    """

    model: dlc.TrainedModel | None
    evaluation: dlc.Evaluation | None


def fit_pose_model(*, mode: str, labeled_dir: str, workdir: str, bodyparts: tuple[str, ...], scorer: str,
                   train_fraction: float, seed: int, params: dlc.TrainSettings, model_path: str = "") -> FittedModel:
    """Train a DLC model ('train'), describe one trained elsewhere ('register'), or stand for one ('external').

    An 'external' model's files are elsewhere and only its outputs are loaded.
    A registered model must predict exactly the training set's body parts.

    Parameters
    ----------
    mode : {"train", "register", "external"}
    labeled_dir : str
    workdir : str
    bodyparts : tuple of str
    scorer : str
    train_fraction : float
    seed : int
        For 'train': see ``build_project``.
    params : TrainSettings
        For 'train'; its device also evaluates.
    model_path : str
        For 'register': a DLC model folder or snapshot.

    Returns
    -------
    FittedModel
        Evaluated when the model sits in its DLC project.

    Raises
    ------
    InputError
        If the mode is unknown, 'register' has no ``model_path``, or the model's body parts differ.
    DLCError
        If building, training, registering or evaluating fails.
    """
    if mode == "external":
        return FittedModel(None, None)
    if mode == "train":
        config = dlc.build_project(labeled_dir, workdir, bodyparts, train_fraction=train_fraction, seed=seed,
                                   scorer=scorer)
        model = dlc.train(config, params)
    elif mode == "register":
        if not model_path:
            raise InputError("mode 'register' needs model_path (a DLC model folder or snapshot)")
        model = dlc.register_model(model_path)
    else:
        raise InputError(f"unknown mode {mode!r}; use 'train', 'register' or 'external'")
    if tuple(model.bodyparts) != tuple(bodyparts):
        raise InputError(f"model {model.model_dir} predicts body parts {list(model.bodyparts)} but the "
                         f"training set has {list(bodyparts)}")
    evaluation = dlc.evaluate(model, device=params.device) if model.project_config is not None else None
    return FittedModel(model, evaluation)


def pose2d_for_video(*, mode: str, model: dlc.TrainedModel | None, video: str, n_frames: int,
                     bodyparts: tuple[str, ...], dlc_h5: str = "", batch_size: int = 8,
                     device: str = "auto", crop=None, dynamic_margin_px: int | None = None
                     ) -> dlc.Pose2DArrays:
    """2D pose of every frame of a video: DLC inference ('infer') or an existing output ('load').

    'infer' runs on ``crop`` when given, in full-frame pixels, with DLC's dynamic cropping with
    ``dynamic_margin_px``; 'load' reads a DLC .h5 / .csv or SLEAP .slp / analysis .h5.

    The result must have one row per recorded frame and the model's body parts, else ValueError.

    Parameters
    ----------
    mode : {"infer", "load"}
    model : TrainedModel or None
        None for an external model (then only 'load').
    video : str
    n_frames : int
        Frames of the recording.
    bodyparts : tuple of str
    dlc_h5 : str
        For 'load': the output file.
    batch_size : int
    device : str
    crop : CropBox, optional
    dynamic_margin_px : int, optional, px
        For 'infer': see ``analyze_video``.

    Returns
    -------
    Pose2DArrays

    Raises
    ------
    InputError
        (a ValueError) If the mode is unknown, 'infer' has no model, 'load' has no file, or the pose's frames or
        body parts do not match.
    DLCError
        If inference or reading the output fails.
    """
    if mode == "infer":
        if model is None:
            raise InputError(f"{video}: the model is external (no files here); use mode 'load' with its .h5")
        pose = dlc.analyze_video(model, video, batch_size=batch_size, device=device, crop=crop,
                                 dynamic_margin_px=dynamic_margin_px)
    elif mode == "load":
        if not dlc_h5:
            raise InputError(f"mode 'load' for {video} needs the path of a DLC (.h5, .csv) or SLEAP (.slp, .h5) output")
        reader = sleap.load_sleap if sleap.is_sleap_file(dlc_h5) else dlc.load_dlc_h5
        pose = reader(dlc_h5, expected_bodyparts=bodyparts, expected_frames=n_frames)
    else:
        raise InputError(f"unknown mode {mode!r}; use 'infer' or 'load'")
    if len(pose.x) != n_frames:
        raise InputError(f"{dlc_h5 or video}: pose has {len(pose.x)} frames but the recording has {n_frames}")
    if tuple(pose.bodyparts) != tuple(bodyparts):
        raise InputError(f"{dlc_h5 or video}: body parts {list(pose.bodyparts)} differ from the model's "
                         f"{list(bodyparts)}")
    return pose


def model_to_row(model: dlc.TrainedModel | None) -> dict:
    """A TrainedModel as plain values for a database row (paths as strings; empty for external).

    Parameters
    ----------
    model : TrainedModel or None

    Returns
    -------
    dict
        model_dir, snapshot, pytorch_config, project_config (str), checksums, train_indices and test_indices
        (int64 arrays), shuffle, trainset_index.
    """
    if model is None:
        return {"model_dir": "", "snapshot": "", "pytorch_config": "", "project_config": "", "checksums": {},
                "train_indices": np.empty(0, np.int64), "test_indices": np.empty(0, np.int64), "shuffle": 0,
                "trainset_index": 0}
    return {"model_dir": str(model.model_dir), "snapshot": str(model.snapshot),
            "pytorch_config": str(model.pytorch_config),
            "project_config": str(model.project_config) if model.project_config else "",
            "checksums": dict(model.checksums), "train_indices": np.asarray(model.train_indices, dtype=np.int64),
            "test_indices": np.asarray(model.test_indices, dtype=np.int64), "shuffle": int(model.shuffle),
            "trainset_index": int(model.trainset_index)}


def model_from_row(row: dict, bodyparts: tuple[str, ...]) -> dlc.TrainedModel | None:
    """Inverse of model_to_row.

    Parameters
    ----------
    row : dict
        As ``model_to_row`` gives.
    bodyparts : tuple of str

    Returns
    -------
    TrainedModel or None
        None for an external model (empty model_dir).
    """
    if not row["model_dir"]:
        return None
    return dlc.TrainedModel(model_dir=Path(row["model_dir"]), snapshot=Path(row["snapshot"]),
                            pytorch_config=Path(row["pytorch_config"]), bodyparts=tuple(bodyparts),
                            checksums=dict(row["checksums"]), train_indices=tuple(int(i) for i in row["train_indices"]),
                            test_indices=tuple(int(i) for i in row["test_indices"]),
                            project_config=Path(row["project_config"]) if row["project_config"] else None,
                            shuffle=int(row["shuffle"]), trainset_index=int(row["trainset_index"]))


def relocate_model_row(row: dict, folder: Path) -> dict:
    """A model row (``model_to_row``) whose files are copied to ``folder``: model_dir, snapshot and
    pytorch_config point into it; project_config is dropped (the DLC project stays where it was trained; a
    copied model infers without it).

    Parameters
    ----------
    row : dict
    folder : Path
        Holds each file of ``row["checksums"]`` at ``copies.inside_name`` of its path relative to model_dir.

    Returns
    -------
    dict
        The row with the checksums' keys renamed the same way, so ``verify_checksums`` checks the copy.
    """
    def moved(path: str) -> str:
        return str(folder / inside_name(os.path.relpath(path, row["model_dir"])))

    return {**row, "model_dir": str(folder), "project_config": "", "snapshot": moved(row["snapshot"]),
            "pytorch_config": moved(row["pytorch_config"]),
            "checksums": {inside_name(rel): digest for rel, digest in row["checksums"].items()}}
