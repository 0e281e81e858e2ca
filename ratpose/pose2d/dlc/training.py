"""Training a DeepLabCut model offline: device, pose config, the initial snapshot, the train/test split."""
from __future__ import annotations

import os
from pathlib import Path

from ...copies import sha256_file
from .project import _image_size
from .records import _IMAGE_SUFFIXES, EXTRA_RESNETS, SHUFFLE, TRAINSET_INDEX, DLCError, TrainedModel, TrainSettings


def resolve_device(device: str) -> str:
    """The torch device to use: "cuda" for "auto" when torch sees a CUDA GPU, else "cpu".

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    str
        "cpu" or "cuda".

    Raises
    ------
    DLCError
        If "cuda" is asked for but torch sees no CUDA GPU, or ``device`` is unknown.
    """
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DLCError("device='cuda' was asked for but torch sees no CUDA GPU; use device='auto' or 'cpu'")
    if device not in ("cpu", "cuda"):
        raise DLCError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return device


def _write_pose_config(config_path: Path, pose_cfg_path: Path, params: TrainSettings, device: str,
                       image_size: tuple[int, int]) -> dict:
    """(Re)write the shuffle's pytorch_config.yaml for ``params``; returns it as a dict."""
    from deeplabcut.pose_estimation_pytorch.config.make_pose_config import (
        make_pytorch_pose_config,
    )
    from deeplabcut.utils.auxiliaryfunctions import read_plainconfig, write_plainconfig

    timm_name, channels = EXTRA_RESNETS.get(params.net_type, (None, None))
    try:
        make_pytorch_pose_config(str(config_path), pose_cfg_path,
                                 net_type="resnet_50" if timm_name else params.net_type, save=True)
    except Exception as exc:
        raise DLCError(f"TrainSettings.net_type={params.net_type!r} is not usable with DeepLabCut "
                       f"({exc}); use one of {sorted(EXTRA_RESNETS)} or DLC's own net types") from exc
    cfg = read_plainconfig(pose_cfg_path)
    if cfg.get("method", "bu") != "bu":
        raise DLCError(f"net_type={params.net_type!r} is a top-down model; only bottom-up single-animal "
                       "models are supported")
    if timm_name:
        model = cfg["model"]
        model["backbone"]["model_name"] = timm_name
        model["backbone_output_channels"] = channels
        for head in model["heads"].values():
            for key in ("heatmap_config", "locref_config"):
                if key in head:
                    head[key]["channels"][0] = channels
        # cfg["net_type"] stays "resnet_50": DLC validates it against its own list of net types
    cfg["device"] = cfg["runner"]["device"] = device
    cfg["train_settings"].update(epochs=int(params.epochs), batch_size=int(params.batch_size), seed=int(params.seed))
    cfg["runner"]["snapshots"]["save_epochs"] = int(params.save_epochs)
    train_aug = cfg["data"]["train"]
    if params.augmentation:
        crop = train_aug.get("crop_sampling")
        if crop:  # DLC's 448x448 crops would pad small frames to 448x448
            crop["height"], crop["width"] = min(crop["height"], image_size[0]), min(crop["width"], image_size[1])
    else:
        cfg["data"]["train"] = dict(cfg["data"]["inference"])
    write_plainconfig(pose_cfg_path, cfg)
    return cfg


def _initial_snapshot(init: str, model_cfg: dict, model_dir: Path, seed: int) -> Path:
    """The snapshot DLC starts training from (so it never asks the model hub on its own)."""
    import torch
    from deeplabcut.pose_estimation_pytorch.models import PoseModel

    if init not in ("random", "imagenet"):
        path = Path(init)
        if not path.is_file():
            raise DLCError(f"TrainSettings.init: snapshot {path} does not exist (or use 'random'/'imagenet')")
        return path
    torch.manual_seed(seed)
    try:
        model = PoseModel.build(model_cfg, pretrained_backbone=(init == "imagenet"))
    except Exception as exc:
        if init == "random":
            raise
        raise DLCError(
            "init='imagenet': ImageNet backbone weights could not be loaded from the model hub or the "
            f"local cache ({type(exc).__name__}: {exc}). Train with init='random', or give the path of "
            "a snapshot to start from (TrainSettings.init='/path/snapshot.pt')") from exc
    out = model_dir / f"init-{init}.pt"
    torch.save({"model": model.state_dict()}, out)
    return out


def _checksums(model_dir: Path, files: list[Path]) -> dict[str, str]:
    return {os.path.relpath(f, model_dir): sha256_file(f) for f in files}


def _split_indices(config_path: Path, train_fraction: float) -> tuple[tuple[int, ...], tuple[int, ...]]:
    from deeplabcut.utils import auxiliaryfunctions as af

    cfg = af.read_config(str(config_path))
    _, meta = af.get_data_and_metadata_filenames(af.get_training_set_folder(cfg), train_fraction, SHUFFLE, cfg)
    _, train_idx, test_idx, _ = af.load_metadata(Path(cfg["project_path"]) / meta)
    return tuple(int(i) for i in train_idx), tuple(int(i) for i in test_idx)


def _project_model(config_path: Path) -> tuple[dict, Path]:
    """(project config, shuffle model folder) of a project made by :func:`build_project`."""
    from deeplabcut.core.engine import Engine
    from deeplabcut.utils import auxiliaryfunctions as af

    if not config_path.is_file():
        raise DLCError(f"{config_path}: DLC project config.yaml not found")
    cfg = af.read_config(str(config_path))
    folder = config_path.parent / af.get_model_folder(cfg["TrainingFraction"][TRAINSET_INDEX], SHUFFLE, cfg,
                                                      engine=Engine.PYTORCH)
    if not (folder / "train" / "pytorch_config.yaml").is_file():
        raise DLCError(f"{config_path}: no training dataset for shuffle {SHUFFLE} (expected {folder}/train/"
                       "pytorch_config.yaml); make the project with build_project")
    return cfg, folder


def train(config_path: str | Path, params: TrainSettings) -> TrainedModel:
    """Train shuffle 1 of a project made by :func:`build_project`; returns the trained model.

    Parameters
    ----------
    config_path : str or Path
        The project's config.yaml.
    params : TrainSettings

    Returns
    -------
    TrainedModel
        The last epoch's snapshot, with the train/test split.

    Raises
    ------
    DLCError
        If the project or its training dataset is missing, it has no labeled images, the device is unavailable,
        the net type is unusable, or the initial snapshot cannot be had (``init``).
    """
    import deeplabcut

    config_path = Path(config_path)
    _, model_dir = _project_model(config_path)
    device = resolve_device(params.device)
    pose_cfg_path = model_dir / "train" / "pytorch_config.yaml"
    image = next((p for p in sorted((config_path.parent / "labeled-data").rglob("*")) if p.suffix in _IMAGE_SUFFIXES),
                 None)
    if image is None:
        raise DLCError(f"{config_path.parent}/labeled-data: no labeled images")
    image_size = _image_size(image)
    pose_cfg = _write_pose_config(config_path, pose_cfg_path, params, device, image_size)
    for old in (model_dir / "train").glob("snapshot-*.pt"):
        old.unlink()  # a retrain must not pick up snapshots of an earlier run
    init = _initial_snapshot(params.init, pose_cfg["model"], model_dir, params.seed)
    deeplabcut.train_network(str(config_path), shuffle=SHUFFLE, trainingsetindex=TRAINSET_INDEX, device=device,
                             snapshot_path=str(init), max_snapshots_to_keep=None)
    return _model_from_folder(model_dir, None, config_path)


def _latest_snapshot(model_dir: Path) -> Path:
    """The last-epoch snapshot (not DLC's "best", which is chosen on the test split)."""
    from deeplabcut.pose_estimation_pytorch.runners.snapshots import (
        TorchSnapshotManager,
    )
    from deeplabcut.pose_estimation_pytorch.task import Task

    last = TorchSnapshotManager(model_folder=model_dir / "train", snapshot_prefix=Task.BOTTOM_UP.snapshot_prefix).last()
    if last is None:
        raise DLCError(f"{model_dir}/train: no snapshot-*.pt files")
    return Path(last.path)


def _model_from_folder(model_dir: Path, snapshot: Path | None, config_path: Path | None) -> TrainedModel:
    from deeplabcut.utils.auxiliaryfunctions import read_plainconfig

    pose_cfg_path = model_dir / "train" / "pytorch_config.yaml"
    if not pose_cfg_path.is_file():
        raise DLCError(f"{model_dir}: not a DLC PyTorch model folder (no train/pytorch_config.yaml)")
    snapshot = _latest_snapshot(model_dir) if snapshot is None else snapshot
    files = [snapshot, pose_cfg_path] + [p for p in [model_dir / "test" / "pose_cfg.yaml"] if p.is_file()]
    bodyparts = tuple(read_plainconfig(pose_cfg_path)["metadata"]["bodyparts"])
    train_idx = test_idx = ()
    if config_path is not None:
        cfg, _ = _project_model(config_path)
        train_idx, test_idx = _split_indices(config_path, cfg["TrainingFraction"][TRAINSET_INDEX])
    return TrainedModel(model_dir=model_dir.resolve(), snapshot=snapshot.resolve(),
                        pytorch_config=pose_cfg_path.resolve(),
                        bodyparts=bodyparts, checksums=_checksums(model_dir, files), train_indices=train_idx,
                        test_indices=test_idx, project_config=None if config_path is None else config_path.resolve())
