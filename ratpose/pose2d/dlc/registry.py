"""Evaluating a trained model, registering one trained elsewhere, and its files' checksums."""
from __future__ import annotations

from pathlib import Path

from ...copies import mismatches
from .records import ChecksumError, DLCError, Evaluation, TrainedModel
from .training import _checksums, _model_from_folder, _project_model, resolve_device


def _require_project(trained: TrainedModel, what: str) -> Path:
    if trained.project_config is None or not Path(trained.project_config).is_file():
        raise DLCError(f"{what} needs the model's DLC project (labeled data and config.yaml); "
                       f"model {trained.model_dir} has none (project_config={trained.project_config})")
    return Path(trained.project_config)


def evaluate(trained: TrainedModel, *, pcutoff: float | None = None, plot: bool = False,
             device: str = "auto") -> Evaluation:
    """DLC's own evaluation of the model's snapshot on its train and test frames (RMSE in px).

    ``pcutoff`` defaults to the project's; ``plot`` makes DLC draw labeled evaluation images.

    Parameters
    ----------
    trained : TrainedModel
        Must still sit in its DLC project.
    pcutoff : float, optional
    plot : bool
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    Evaluation

    Raises
    ------
    DLCError
        If the model has no DLC project, the device is unavailable, or DLC writes no results.
    ChecksumError
        If a model file is missing or changed.
    """
    import deeplabcut
    import pandas as pd
    from deeplabcut.core.engine import Engine
    from deeplabcut.pose_estimation_pytorch.apis.utils import (
        get_model_snapshots,
        get_scorer_name,
        get_scorer_uid,
    )
    from deeplabcut.pose_estimation_pytorch.task import Task
    from deeplabcut.utils import auxiliaryfunctions as af

    config_path = _require_project(trained, "evaluate()")
    verify_checksums(trained)
    cfg = af.read_config(str(config_path))
    pcutoff = float(cfg.get("pcutoff", 0.6) if pcutoff is None else pcutoff)
    deeplabcut.evaluate_network(str(config_path), shuffles=[trained.shuffle], trainingsetindex=trained.trainset_index,
                                snapshots_to_evaluate=[trained.snapshot.stem], plotting=plot,
                                device=resolve_device(device), pcutoff=pcutoff)
    eval_dir = config_path.parent / af.get_evaluation_folder(cfg["TrainingFraction"][trained.trainset_index],
                                                             trained.shuffle, cfg, engine=Engine.PYTORCH)
    snapshot = get_model_snapshots(-1, trained.model_dir / "train", Task.BOTTOM_UP,
                                   snapshot_filter=[trained.snapshot.stem])[0]
    scorer = get_scorer_name(cfg=cfg, shuffle=trained.shuffle,
                             train_fraction=cfg["TrainingFraction"][trained.trainset_index],
                             snapshot_uid=get_scorer_uid(snapshot, None))
    results = eval_dir / f"{scorer}-results.csv"
    if not results.is_file():
        raise DLCError(f"DeepLabCut wrote no evaluation results for {trained.snapshot} (expected {results})")
    row = pd.read_csv(results).iloc[0]
    figures = eval_dir / f"LabeledImages_{scorer}"
    return Evaluation(train_rmse=float(row["train rmse"]), test_rmse=float(row["test rmse"]),
                      train_rmse_pcutoff=float(row["train rmse_pcutoff"]),
                      test_rmse_pcutoff=float(row["test rmse_pcutoff"]), pcutoff=pcutoff,
                      n_train=len(trained.train_indices), n_test=len(trained.test_indices),
                      figures_dir=figures if plot and figures.is_dir() else None)


def register_model(folder_or_snapshot: str | Path, *, pytorch_config: str | Path | None = None,
                   snapshot: str | None = None) -> TrainedModel:
    """Describe a model trained elsewhere: a DLC shuffle folder or an exported snapshot (.pt).

    For a folder (``.../dlc-models-pytorch/iteration-N/<name>-trainsetNNshuffleS``) the latest
    snapshot is used unless ``snapshot`` names one (e.g. "snapshot-200"); if the folder still sits
    in its DLC project, the project is attached (for :func:`evaluate`). For a snapshot file,
    ``pytorch_config`` defaults to the pytorch_config.yaml next to it.

    Parameters
    ----------
    folder_or_snapshot : str or Path
    pytorch_config : str or Path, optional
    snapshot : str, optional

    Returns
    -------
    TrainedModel

    Raises
    ------
    DLCError
        If the folder or file does not exist, the snapshot or pytorch_config.yaml is not found, or the config
        is not a bottom-up DLC PyTorch pose config.
    """
    path = Path(folder_or_snapshot)
    if path.is_dir():
        snap = None
        if snapshot is not None:
            snap = path / "train" / f"{Path(snapshot).stem}.pt"
            if not snap.is_file():
                raise DLCError(f"{path}: snapshot {snap.name} not found in train/")
        return _model_from_folder(path, snap, _owning_project(path))
    if not path.is_file():
        raise DLCError(f"{path}: no such model folder or snapshot file")
    cfg_path = Path(pytorch_config) if pytorch_config is not None else path.parent / "pytorch_config.yaml"
    if not cfg_path.is_file():
        raise DLCError(f"{path}: needs its pytorch_config.yaml ({cfg_path} not found); pass pytorch_config=")
    return _model_from_files(path, cfg_path)


def _owning_project(model_dir: Path) -> Path | None:
    """The config.yaml of the DLC project whose shuffle-1 model folder is ``model_dir``, if any."""
    config_path = model_dir.resolve().parents[2] / "config.yaml" if len(model_dir.resolve().parents) > 2 else None
    if config_path is None or not config_path.is_file():
        return None
    try:
        _, folder = _project_model(config_path)
    except (DLCError, KeyError, IndexError):
        return None
    return config_path if folder.resolve() == model_dir.resolve() else None


def _model_from_files(snapshot: Path, pose_cfg_path: Path) -> TrainedModel:
    from deeplabcut.utils.auxiliaryfunctions import read_plainconfig

    try:
        pose_cfg = read_plainconfig(pose_cfg_path)
        bodyparts = tuple(pose_cfg["metadata"]["bodyparts"])
    except Exception as exc:
        raise DLCError(f"{pose_cfg_path}: not a DLC PyTorch pose config ({exc})") from exc
    if pose_cfg.get("method", "bu") != "bu":
        raise DLCError(f"{pose_cfg_path}: method {pose_cfg.get('method')!r}; only bottom-up models are supported")
    model_dir = snapshot.parent.resolve()
    return TrainedModel(model_dir=model_dir, snapshot=snapshot.resolve(), pytorch_config=pose_cfg_path.resolve(),
                        bodyparts=bodyparts, checksums=_checksums(model_dir, [snapshot, pose_cfg_path]))


def verify_checksums(trained: TrainedModel) -> None:
    """Raise :class:`ChecksumError` if a model file is missing or differs from its recorded sha256.

    Parameters
    ----------
    trained : TrainedModel

    Raises
    ------
    ChecksumError
        Naming the missing and the changed files.
    """
    folder = Path(trained.model_dir)
    bad = [folder / rel for rel in mismatches(folder, trained.checksums)]
    missing = [str(path) for path in bad if not path.is_file()]
    changed = [str(path) for path in bad if path.is_file()]
    if missing or changed:
        raise ChecksumError(f"model {trained.model_dir}: missing files {missing}, changed files {changed}")
