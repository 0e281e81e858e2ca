"""DeepLabCut 3 (PyTorch engine) adapter: build a project, train, evaluate, register, analyse.

Plain functions on paths and dataclasses for the PoseModel / Pose2D tables; no database here.
DeepLabCut is imported lazily (it takes seconds), so importing this module is cheap.

Offline use: DLC 3.0.2 asks the model hub for ImageNet backbone weights whenever training starts
without a snapshot. :func:`train` therefore always hands DLC an initial snapshot: a randomly
initialised model (``init="random"``), ImageNet weights from the hub or local cache
(``init="imagenet"``, a clear error when unavailable), or a snapshot file of the user's.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("DLClight", "True")  # no GUI imports inside deeplabcut

#: Backbones that DLC 3.0.2 has no config for, built from its resnet_50 config by swapping the
#: timm model and the head input channels (timm model name, output channels).
EXTRA_RESNETS = {"resnet_10": ("resnet10t", 512), "resnet_18": ("resnet18", 512), "resnet_34": ("resnet34", 512)}
SHUFFLE = 1
DYNAMIC_THRESHOLD = 0.5  # keypoint score that keeps DeepLabCut's dynamic crop on the animal (DLC's default)
TRAINSET_INDEX = 0
_COORDS = ("x", "y", "likelihood")
_HEADER_ROWS = ("scorer", "individuals", "bodyparts", "coords")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DLCError(ValueError):
    """A DeepLabCut input, model or output is missing, inconsistent or unusable."""


class ChecksumError(DLCError):
    """Model files are missing or differ from the checksums recorded when the model was made."""


@dataclass(frozen=True)
class TrainParams:
    """How to train a DLC model. ``init``: "imagenet", "random" or a path to a snapshot (.pt)."""

    net_type: str = "resnet_18"
    epochs: int = 200
    batch_size: int = 8
    augmentation: bool = True
    device: str = "auto"
    init: str = "imagenet"
    save_epochs: int = 50
    seed: int = 42

    def __post_init__(self):
        if self.device not in ("auto", "cpu", "cuda"):
            raise DLCError(f"TrainParams.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        for name in ("epochs", "batch_size", "save_epochs"):
            if int(getattr(self, name)) < 1:
                raise DLCError(f"TrainParams.{name} must be >= 1, got {getattr(self, name)!r}")
        object.__setattr__(self, "init", str(self.init))


@dataclass(frozen=True)
class TrainedModel:
    """A DLC pose model on disk: its folder, snapshot, config, body parts and file checksums.

    ``checksums`` maps paths relative to ``model_dir`` to sha256 hex digests. ``project_config``
    is the DLC project's config.yaml when the model still sits in its project (None otherwise);
    ``train_indices``/``test_indices`` index DLC's merged labeled-frame table (empty if unknown).
    """

    model_dir: Path
    snapshot: Path
    pytorch_config: Path
    bodyparts: tuple[str, ...]
    checksums: dict[str, str]
    train_indices: tuple[int, ...] = ()
    test_indices: tuple[int, ...] = ()
    project_config: Path | None = None
    shuffle: int = SHUFFLE
    trainset_index: int = TRAINSET_INDEX


@dataclass(frozen=True)
class Evaluation:
    """DLC's train/test RMSE (px) against the labels, all points and points above ``pcutoff``."""

    train_rmse: float
    test_rmse: float
    train_rmse_pcutoff: float
    test_rmse_pcutoff: float
    pcutoff: float
    n_train: int
    n_test: int
    figures_dir: Path | None = None


@dataclass(frozen=True)
class Pose2DArrays:
    """2D pose of one video: arrays (n_frames, n_bodyparts) of x, y (px) and likelihood."""

    bodyparts: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    likelihood: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "bodyparts", tuple(str(b) for b in self.bodyparts))
        shape = (np.shape(self.x)[0] if np.ndim(self.x) == 2 else -1, len(self.bodyparts))
        for name in ("x", "y", "likelihood"):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.ndim != 2 or arr.shape != shape:
                raise DLCError(f"Pose2DArrays.{name} must have shape (n_frames, {len(self.bodyparts)}), "
                               f"got {arr.shape}")
            object.__setattr__(self, name, arr)

    @property
    def n_frames(self) -> int:
        return self.x.shape[0]

    @property
    def xy(self) -> np.ndarray:
        """Coordinates as one array (n_frames, n_bodyparts, 2)."""
        return np.stack([self.x, self.y], axis=-1)


# --------------------------------------------------------------------------------------------------
# project


def _labeled_data_root(labeled_dir: Path) -> Path:
    return labeled_dir / "labeled-data" if (labeled_dir / "labeled-data").is_dir() else labeled_dir


def labels_path(folder: Path, scorer: str | None = None) -> Path | None:
    """A labeled video folder's CollectedData_<scorer>.h5, else its .csv (any scorer when None); None without."""
    for suffix in (".h5", ".csv"):
        found = sorted(Path(folder).glob(f"CollectedData_{scorer or '*'}{suffix}"))
        if found:
            return found[0]
    return None


def _label_row(name) -> tuple[str, ...]:
    """('labeled-data', video, image) of a labels row named by a tuple or a path string (as DLC does)."""
    parts = name if isinstance(name, tuple) else str(name).replace("\\", "/").split("/")
    return tuple(str(p) for p in parts)


def read_labels(folder: str | Path, scorer: str | None = None, bodyparts=()):
    """A labeled video folder's labels (CollectedData_<scorer>.h5, else .csv; one individual of a multi-animal
    table) with columns (scorer, bodyparts, coords) and rows ('labeled-data', video, image). Reads only."""
    import pandas as pd

    folder = Path(folder)
    path = labels_path(folder, scorer)
    if path is None:
        raise DLCError(f"{folder}: no CollectedData_{scorer or '<scorer>'}.h5 or .csv labels")
    df = _single_animal(read_dlc_table(path, "DLC labels"), path)
    found = df.columns.get_level_values("scorer")[0]
    if scorer is not None and found != scorer:
        raise DLCError(f"{path}: labeled by scorer {found!r}, expected {scorer!r}")
    missing = [b for b in bodyparts if b not in set(df.columns.get_level_values("bodyparts"))]
    if missing:
        raise DLCError(f"{path}: body parts {missing} are not labeled")
    df.index = pd.MultiIndex.from_tuples([_label_row(name) for name in df.index])
    return df


def write_labels(labels, folder: Path, scorer: str) -> None:
    """Write labels as DeepLabCut's CollectedData_<scorer>.h5 and .csv in folder (made if need be)."""
    folder.mkdir(parents=True, exist_ok=True)
    labels.to_hdf(folder / f"CollectedData_{scorer}.h5", key="df_with_missing", mode="w")
    labels.to_csv(folder / f"CollectedData_{scorer}.csv")


def crop_labeled_data(labeled_dir: str | Path, dest: str | Path, crops, scorer: str) -> Path:
    """Copy a labeled-data tree with every image cut to its crop and its labels in crop pixels (labels
    outside the crop become NaN), so a model trains on what Pose2D's crop inference shows it.

    ``crops``: one ratpose.pose2d.workspace.CropBox, a dict labeled video folder name -> CropBox, or a
    function (folder name, labels (n_parts, 2) in full-frame px) -> CropBox choosing each image's crop
    (e.g. ``CropBox.around`` the animal: what DeepLabCut's dynamic cropping shows the network).
    Returns dest's labeled-data folder.
    """
    import cv2

    root, out_root = _labeled_data_root(Path(labeled_dir)), Path(dest) / "labeled-data"
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        df = read_labels(folder, scorer)
        parts = list(dict.fromkeys(df.columns.get_level_values("bodyparts")))
        cols = [(scorer, part, axis) for part in parts for axis in ("x", "y")]
        xy = df[cols].to_numpy(dtype=np.float64).reshape(len(df), len(parts), 2)
        out = out_root / folder.name
        out.mkdir(parents=True, exist_ok=True)
        for row, name in enumerate(df.index):
            crop = _crop_of(crops, folder, xy[row])
            image_name = name[-1] if isinstance(name, tuple) else Path(name).name
            image = cv2.imread(str(folder / image_name), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise DLCError(f"{folder / image_name}: labeled image is missing or unreadable")
            cv2.imwrite(str(out / image_name), np.ascontiguousarray(crop.cut(image)))
            xy[row] = crop.to_crop(xy[row])
        df[cols] = xy.reshape(len(df), -1)
        write_labels(df, out, scorer)
    return out_root


def _crop_of(crops, folder: Path, labels: np.ndarray):
    if hasattr(crops, "cut"):
        return crops
    if callable(crops):
        return crops(folder.name, labels)
    if folder.name not in crops:
        raise DLCError(f"{folder}: no crop given for this labeled video")
    return crops[folder.name]


def build_project(labeled_dir: str | Path, workdir: str | Path, bodyparts: list[str] | tuple[str, ...],
                  train_fraction: float = 0.8, seed: int = 0, scorer: str = "sim",
                  task: str = "ratpose") -> Path:
    """Make a DLC project in ``workdir`` from labeled frames and create its training dataset.

    ``labeled_dir`` holds ``labeled-data/<video>/CollectedData_<scorer>.h5`` or ``.csv`` (or is that
    ``labeled-data`` folder itself); it is only read, the project gets a copy (labels as .h5 and .csv). The
    train/test split is a seeded random permutation of the labeled frames; it is stored by DLC and reported by
    :func:`train`. Returns config.yaml.
    """
    import deeplabcut
    from deeplabcut.core.config.utils import create_config_template, write_config
    from deeplabcut.core.engine import Engine

    labeled_dir, project = Path(labeled_dir), Path(workdir)
    bodyparts = [str(b) for b in bodyparts]
    if not bodyparts or len(set(bodyparts)) != len(bodyparts):
        raise DLCError(f"bodyparts must be a non-empty list of unique names, got {bodyparts}")
    if not 0 < train_fraction < 1:
        raise DLCError(f"train_fraction must lie in (0, 1), got {train_fraction}")
    root = _labeled_data_root(labeled_dir)
    videos = sorted(p for p in root.glob("*") if p.is_dir() and labels_path(p, scorer))
    if not videos:
        raise DLCError(f"{labeled_dir}: no labeled-data/<video>/CollectedData_{scorer}.h5 or .csv found")
    if (project / "config.yaml").exists():
        raise DLCError(f"{project}: already holds a DLC project (config.yaml exists)")

    frames = [read_labels(v, scorer, bodyparts) for v in videos]
    n = sum(len(df) for df in frames)
    n_train = int(np.clip(round(train_fraction * n), 1, n - 1)) if n >= 2 else 0
    if n_train == 0:
        raise DLCError(f"{labeled_dir}: need at least 2 labeled frames for a train/test split, got {n}")
    first_image = next((p for p in sorted(videos[0].iterdir()) if p.suffix in _IMAGE_SUFFIXES), None)
    if first_image is None:
        raise DLCError(f"{videos[0]}: no labeled images (.png/.jpg) next to the labels")
    height, width = _image_size(first_image)

    (project / "labeled-data").mkdir(parents=True, exist_ok=True)
    (project / "videos").mkdir(exist_ok=True)
    for v, labels in zip(videos, frames):
        copy = project / "labeled-data" / v.name
        shutil.copytree(v, copy, dirs_exist_ok=True, ignore=shutil.ignore_patterns("CollectedData_*"))
        write_labels(labels, copy, scorer)
    cfg, _ = create_config_template()
    cfg.update({
        "Task": task, "scorer": scorer, "date": "Jan1", "multianimalproject": False, "identity": None,
        "project_path": str(project.resolve()), "engine": "pytorch",
        "video_sets": {str((project / "videos" / f"{v.name}.avi").resolve()): {"crop": f"0, {width}, 0, {height}"}
                       for v in videos},
        "bodyparts": bodyparts, "skeleton": [], "skeleton_color": "black",
        "start": 0, "stop": 1, "numframes2pick": 20, "pcutoff": 0.6, "dotsize": 4, "alphavalue": 0.7,
        "colormap": "rainbow", "TrainingFraction": [round(n_train / n, 2)], "iteration": 0,
        "default_net_type": "resnet_50", "default_augmenter": "albumentations", "snapshotindex": -1,
        "detector_snapshotindex": -1, "batch_size": 8, "detector_batch_size": 1, "cropping": False,
        "x1": 0, "x2": width, "y1": 0, "y2": height, "corner2move2": [50, 50], "move2corner": True,
    })
    config_path = project / "config.yaml"
    write_config(config_path, cfg)

    order = np.random.default_rng(seed).permutation(n)
    train_idx, test_idx = np.sort(order[:n_train]), np.sort(order[n_train:])
    deeplabcut.create_training_dataset(str(config_path), Shuffles=[SHUFFLE], trainIndices=[train_idx.tolist()],
                                       testIndices=[test_idx.tolist()], net_type="resnet_50",
                                       userfeedback=False, engine=Engine.PYTORCH)
    return config_path


def _image_size(path: Path) -> tuple[int, int]:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DLCError(f"{path}: unreadable image")
    return img.shape[0], img.shape[1]


# --------------------------------------------------------------------------------------------------
# training


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise DLCError("device='cuda' was asked for but torch sees no CUDA GPU; use device='auto' or 'cpu'")
    if device not in ("cpu", "cuda"):
        raise DLCError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return device


def _write_pose_config(config_path: Path, pose_cfg_path: Path, params: TrainParams, device: str,
                       image_size: tuple[int, int]) -> dict:
    """(Re)write the shuffle's pytorch_config.yaml for ``params``; returns it as a dict."""
    from deeplabcut.pose_estimation_pytorch.config.make_pose_config import make_pytorch_pose_config
    from deeplabcut.utils.auxiliaryfunctions import read_plainconfig, write_plainconfig

    timm_name, channels = EXTRA_RESNETS.get(params.net_type, (None, None))
    try:
        make_pytorch_pose_config(str(config_path), pose_cfg_path,
                                 net_type="resnet_50" if timm_name else params.net_type, save=True)
    except Exception as exc:
        raise DLCError(f"TrainParams.net_type={params.net_type!r} is not usable with DeepLabCut "
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
            raise DLCError(f"TrainParams.init: snapshot {path} does not exist (or use 'random'/'imagenet')")
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
            "a snapshot to start from (TrainParams.init='/path/snapshot.pt')") from exc
    out = model_dir / f"init-{init}.pt"
    torch.save({"model": model.state_dict()}, out)
    return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checksums(model_dir: Path, files: list[Path]) -> dict[str, str]:
    return {os.path.relpath(f, model_dir): _sha256(f) for f in files}


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


def train(config_path: str | Path, params: TrainParams) -> TrainedModel:
    """Train shuffle 1 of a project made by :func:`build_project`; returns the trained model."""
    import deeplabcut

    config_path = Path(config_path)
    _, model_dir = _project_model(config_path)
    device = _resolve_device(params.device)
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
    from deeplabcut.pose_estimation_pytorch.runners.snapshots import TorchSnapshotManager
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


# --------------------------------------------------------------------------------------------------
# evaluation, registration, checksums


def _require_project(trained: TrainedModel, what: str) -> Path:
    if trained.project_config is None or not Path(trained.project_config).is_file():
        raise DLCError(f"{what} needs the model's DLC project (labeled data and config.yaml); "
                       f"model {trained.model_dir} has none (project_config={trained.project_config})")
    return Path(trained.project_config)


def evaluate(trained: TrainedModel, *, pcutoff: float | None = None, plot: bool = False,
             device: str = "auto") -> Evaluation:
    """DLC's own evaluation of the model's snapshot on its train and test frames (RMSE in px).

    ``pcutoff`` defaults to the project's; ``plot`` makes DLC draw labeled evaluation images.
    """
    import deeplabcut
    import pandas as pd
    from deeplabcut.core.engine import Engine
    from deeplabcut.pose_estimation_pytorch.apis.utils import get_model_snapshots, get_scorer_name, get_scorer_uid
    from deeplabcut.pose_estimation_pytorch.task import Task
    from deeplabcut.utils import auxiliaryfunctions as af

    config_path = _require_project(trained, "evaluate()")
    verify_checksums(trained)
    cfg = af.read_config(str(config_path))
    pcutoff = float(cfg.get("pcutoff", 0.6) if pcutoff is None else pcutoff)
    deeplabcut.evaluate_network(str(config_path), shuffles=[trained.shuffle], trainingsetindex=trained.trainset_index,
                                snapshots_to_evaluate=[trained.snapshot.stem], plotting=plot,
                                device=_resolve_device(device), pcutoff=pcutoff)
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
    """Raise :class:`ChecksumError` if a model file is missing or differs from its recorded sha256."""
    missing, changed = [], []
    for rel, digest in trained.checksums.items():
        path = Path(trained.model_dir) / rel
        if not path.is_file():
            missing.append(str(path))
        elif _sha256(path) != digest:
            changed.append(str(path))
    if missing or changed:
        raise ChecksumError(f"model {trained.model_dir}: missing files {missing}, changed files {changed}")


# --------------------------------------------------------------------------------------------------
# inference and DLC outputs


def _video_frame_count(video_path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(video_path))
    try:
        ok = cap.isOpened() and cap.read()[0]
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if not ok:
        raise DLCError(f"{video_path}: video is missing or unreadable")
    return n


def analyze_video(trained: TrainedModel, video_path: str | Path, *, batch_size: int = 8,
                  device: str = "auto", crop=None, dynamic_margin_px: int | None = None) -> Pose2DArrays:
    """2D pose of every frame of one video, computed by DeepLabCut with the model's snapshot.

    Uses ``deeplabcut.analyze_videos`` when the model sits in its DLC project, else the same DLC
    inference runner on the snapshot and pytorch_config; GPU when torch sees one (device="auto").
    With ``crop`` (a ratpose.pose2d.workspace.CropBox), the network sees only that crop and the result
    is in full-frame pixels (see analyze_crop). ``dynamic_margin_px`` turns on DeepLabCut's dynamic
    cropping inside that crop (or the full frame), batch size 1: see analyze_crop. ``batch_size=0``
    probes the fastest batch size on the device first (ratpose.pose2d.frames.fastest_batch_size).
    """
    video_path = Path(video_path)
    n_frames = _video_frame_count(video_path)
    verify_checksums(trained)
    device = _resolve_device(device)
    if batch_size < 0:
        raise DLCError(f"batch_size must be >= 1 (or 0: probe the fastest), got {batch_size}")
    if crop is not None or dynamic_margin_px is not None or batch_size == 0:
        pose = analyze_crop(trained, video_path, crop, batch_size=batch_size, device=device,
                            dynamic_margin_px=dynamic_margin_px)
        if pose.n_frames != n_frames:
            raise DLCError(f"{video_path}: decoded {pose.n_frames} frames, the file says {n_frames}")
        return pose
    with tempfile.TemporaryDirectory(prefix="ratpose-dlc-") as dest:
        if trained.project_config is not None and Path(trained.project_config).is_file():
            h5 = _analyze_in_project(trained, video_path, Path(dest), batch_size, device)
        else:
            h5 = _analyze_with_runner(trained, video_path, Path(dest), batch_size, device)
        return load_dlc_h5(h5, expected_bodyparts=trained.bodyparts, expected_frames=n_frames)


def analyze_crop(trained: TrainedModel, video_path: str | Path, crop, *, batch_size: int = 8,
                 device: str = "cpu", dynamic_margin_px: int | None = None) -> Pose2DArrays:
    """DLC's inference runner on ``crop`` of every frame (None: the full frame), decoded ahead in a
    thread (bounded queue); coordinates mapped to full-frame pixels, keypoints outside the crop NaN
    with likelihood 0.

    ``dynamic_margin_px``: DeepLabCut's DynamicCropper within the crop (for an animal that moves
    through a large workspace): after a frame where a keypoint scores >= DYNAMIC_THRESHOLD, the next
    frame is cut to the box of that frame's keypoints + the margin, its corner moved back onto the
    network's grid (input_stride); when none does, the whole crop is seen again. It works frame by
    frame, so the batch size is 1. A ``crop`` on that grid (workspace.crop_for_camera) gives the full
    frame's poses away from its edges."""
    from deeplabcut.pose_estimation_pytorch.apis.utils import get_pose_inference_runner
    from deeplabcut.pose_estimation_pytorch.config import read_config_as_dict

    from ..video import decode_gray
    from .frames import BATCH_SIZES, batches, fastest_batch_size, prefetch

    def runner_for(size: int, dynamic=None):
        return get_pose_inference_runner(model_config=read_config_as_dict(trained.pytorch_config),
                                         snapshot_path=trained.snapshot, device=device, max_individuals=1,
                                         batch_size=size, dynamic=dynamic)

    dynamic = None
    if dynamic_margin_px is not None:
        if int(dynamic_margin_px) < 1:
            raise DLCError(f"dynamic_margin_px must be >= 1 px, got {dynamic_margin_px}")
        dynamic, batch_size = _grid_dynamic_cropper(int(dynamic_margin_px), input_stride(trained)), 1
    runner = None
    if batch_size == 0:
        first = next(decode_gray(video_path, crop=crop), None)
        if first is None:
            raise DLCError(f"{video_path}: no frame to decode")
        # the runner batches what one call gives it: fed batch_size frames a call, it runs that size
        runner = runner_for(max(BATCH_SIZES))
        batch_size = fastest_batch_size(lambda frames: runner.inference(_rgb(frames)), first)
    if runner is None:
        runner = runner_for(batch_size, dynamic)
    out = []
    for batch in prefetch(batches(decode_gray(video_path, crop=crop), batch_size), maxsize=4):
        predictions = runner.inference(_rgb(batch))
        out.extend(p["bodyparts"][0] for p in predictions)  # (n_parts, 3): x, y, score of the one animal
    xyl = np.asarray(out, dtype=np.float64).reshape(-1, len(trained.bodyparts), 3)
    x, y, likelihood = xyl[..., 0], xyl[..., 1], xyl[..., 2]
    if crop is not None:
        x, y, likelihood = crop.to_full_frame(x, y, likelihood)
    return Pose2DArrays(trained.bodyparts, x, y, likelihood)


def input_stride(trained: TrainedModel) -> int:
    """The shift (px) the network's output follows exactly: its backbone's downsampling (DeepLabCut's
    ResNets: ``output_stride``, 16 by default; 32, the coarsest of its other backbones, otherwise).
    An image cut at a multiple of it shows the network the full frame's pixel grid."""
    from deeplabcut.pose_estimation_pytorch.config import read_config_as_dict

    return int(read_config_as_dict(trained.pytorch_config)["model"]["backbone"].get("output_stride", 32))


def _grid_dynamic_cropper(margin_px: int, stride: int):
    """DeepLabCut's DynamicCropper whose boxes start on the network's grid (corner moved down to a
    multiple of ``stride``), so a cropped frame is seen as the full frame would be."""
    from deeplabcut.pose_estimation_pytorch.runners.dynamic_cropping import DynamicCropper

    class GridDynamicCropper(DynamicCropper):
        def _min_value(self, coordinates, maximum: int) -> int:
            value = super()._min_value(coordinates, maximum)
            return value - value % stride

    return GridDynamicCropper(DYNAMIC_THRESHOLD, margin_px)


def _rgb(frames) -> list[np.ndarray]:
    """Grey frames as the 3-channel images DLC's runner takes."""
    return [np.repeat(f[..., None], 3, axis=2) for f in frames]


def _analyze_in_project(trained: TrainedModel, video: Path, dest: Path, batch_size: int, device: str) -> Path:
    import deeplabcut
    from deeplabcut.pose_estimation_pytorch.apis.utils import get_model_snapshots
    from deeplabcut.pose_estimation_pytorch.task import Task

    snapshots = get_model_snapshots("all", trained.model_dir / "train", Task.BOTTOM_UP)
    snapshots = [Path(s.path).resolve() for s in snapshots]
    deeplabcut.analyze_videos(str(trained.project_config), [str(video)], shuffle=trained.shuffle,
                              trainingsetindex=trained.trainset_index, snapshot_index=snapshots.index(trained.snapshot),
                              device=device, destfolder=str(dest), batch_size=batch_size)
    return _single_h5(dest, video)


def _analyze_with_runner(trained: TrainedModel, video: Path, dest: Path, batch_size: int, device: str) -> Path:
    from deeplabcut.pose_estimation_pytorch.apis.utils import get_pose_inference_runner
    from deeplabcut.pose_estimation_pytorch.apis.videos import VideoIterator, create_df_from_prediction, video_inference
    from deeplabcut.pose_estimation_pytorch.config import read_config_as_dict

    model_cfg = read_config_as_dict(trained.pytorch_config)
    runner = get_pose_inference_runner(model_config=model_cfg, snapshot_path=trained.snapshot, device=device,
                                       max_individuals=1, batch_size=batch_size)
    predictions = video_inference(video=VideoIterator(video), pose_runner=runner)
    create_df_from_prediction(predictions=predictions, dlc_scorer=f"DLC_{trained.snapshot.stem}", multi_animal=False,
                              model_cfg=model_cfg, output_path=dest, output_prefix=video.stem)
    return _single_h5(dest, video)


def _single_h5(dest: Path, video: Path) -> Path:
    found = sorted(dest.glob(f"{video.stem}*.h5"))
    if len(found) != 1:
        raise DLCError(f"DeepLabCut wrote {len(found)} .h5 outputs for {video} (expected 1): {found}")
    return found[0]


def _read_dlc_csv(path: Path):
    """A DLC .csv with the header rows (scorer, [individuals,] bodyparts, coords) and index columns (1, or 3:
    labeled-data, video, image) that the file itself has."""
    import csv
    import itertools

    import pandas as pd

    with open(path, newline="") as f:
        rows = list(itertools.islice(csv.reader(f), 4))
    n_header = next((i for i, row in enumerate(rows) if not row or row[0] not in _HEADER_ROWS), len(rows))
    if not n_header or rows[0][0] != "scorer":
        raise DLCError(f"{path}: not a DLC table (no scorer, bodyparts, coords header rows)")
    n_index = 1 + next((i for i, cell in enumerate(rows[0][1:]) if cell), len(rows[0]) - 1)
    return pd.read_csv(path, header=list(range(n_header)), index_col=list(range(n_index)))


def read_dlc_table(path: str | Path, what: str = "DLC output"):
    """A user's DLC table, .h5 or .csv, as pandas reads it; DLCError naming the file (and ``what`` it should be)
    when it is missing or not one."""
    import pandas as pd

    path = Path(path)
    try:
        return _read_dlc_csv(path) if path.suffix.lower() == ".csv" else pd.read_hdf(path)
    except FileNotFoundError:
        raise DLCError(f"{path}: no such {what} file") from None
    except DLCError:
        raise
    except Exception as exc:  # pandas/tables raise many kinds
        raise DLCError(f"{path}: not a readable {what} ({type(exc).__name__}: {exc})") from exc


def _single_animal(df, path: Path):
    """df with columns (scorer, bodyparts, coords) of one scorer; a multi-animal table's one individual kept."""
    names = list(df.columns.names)
    if "individuals" in names:
        individuals = df.columns.get_level_values("individuals").unique()
        if len(individuals) != 1:
            raise DLCError(f"{path}: holds {len(individuals)} individuals {list(individuals)}; expected one")
        df = df.droplevel("individuals", axis=1)
    if list(df.columns.names) != ["scorer", "bodyparts", "coords"]:
        raise DLCError(f"{path}: columns {names} are not DLC's (scorer, [individuals,] bodyparts, coords)")
    scorers = df.columns.get_level_values("scorer").unique()
    if len(scorers) != 1:
        raise DLCError(f"{path}: holds {len(scorers)} scorers {list(scorers)}; expected one")
    return df


def load_dlc_h5(path: str | Path, expected_bodyparts: list[str] | tuple[str, ...] | None = None,
                expected_frames: int | None = None) -> Pose2DArrays:
    """Read a DLC pose output (.h5 or .csv, single animal or one individual) into :class:`Pose2DArrays`.

    With ``expected_bodyparts`` the body parts must be the same set (they are returned in that
    order); with ``expected_frames`` the row count must match.
    """
    import pandas as pd

    path = Path(path)
    df = _single_animal(read_dlc_table(path), path)
    scorers = df.columns.get_level_values("scorer").unique()
    found = tuple(df.columns.get_level_values("bodyparts").unique())
    bodyparts = found
    if expected_bodyparts is not None:
        bodyparts = tuple(expected_bodyparts)
        missing, extra = sorted(set(bodyparts) - set(found)), sorted(set(found) - set(bodyparts))
        if missing or extra or len(bodyparts) != len(found):
            raise DLCError(f"{path}: body parts {list(found)} do not match the expected {list(bodyparts)} "
                           f"(missing {missing}, extra {extra})")
    if expected_frames is not None and len(df) != int(expected_frames):
        raise DLCError(f"{path}: {len(df)} frames, expected {int(expected_frames)}")
    columns = pd.MultiIndex.from_product([[scorers[0]], bodyparts, _COORDS])
    missing = columns.difference(df.columns)
    if len(missing):
        raise DLCError(f"{path}: missing columns {list(missing)[:6]} (is this a labels file, not a DLC output?)")
    values = df.reindex(columns=columns).to_numpy(dtype=np.float64).reshape(len(df), len(bodyparts), 3)
    likelihood = values[..., 2]
    bad = np.argwhere(~((likelihood >= 0) & (likelihood <= 1)) & ~np.isnan(likelihood))
    if bad.size:
        frame, part = bad[0]
        raise DLCError(f"{path}: likelihood {likelihood[frame, part]} of {bodyparts[part]!r} at frame {frame} "
                       "is outside [0, 1] (not a DLC output?)")
    return Pose2DArrays(bodyparts, values[..., 0], values[..., 1], values[..., 2])
