"""Where training sets and models come from: DLC labeled-data folders and DLC projects (no database)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from ..errors import InputError
from . import dlc

_PROJECT_KEYS = ("Task", "scorer", "bodyparts", "TrainingFraction")


@dataclass(frozen=True)
class TrainingSource:
    """Labeled frames ready for a TrainingSet row: ``labeled_dir`` holds ``<video>/CollectedData_<scorer>.h5``/.csv."""

    labeled_dir: Path
    scorer: str
    bodyparts: tuple[str, ...]
    train_fraction: float = 0.8
    pcutoff: float | None = None


def read_project(config_yaml) -> dict:
    """A DLC project's config.yaml, checked to be one (ValueError naming the file otherwise)."""
    path = Path(config_yaml)
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"{path}: not a readable YAML file ({err})") from None
    missing = [k for k in _PROJECT_KEYS if not isinstance(cfg, dict) or k not in cfg]
    if missing:
        raise InputError(f"{path}: not a DeepLabCut project config.yaml (no {', '.join(missing)})")
    return cfg


def _video_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("CollectedData_*.*")))


def read_training_source(source) -> TrainingSource:
    """A labeled-data folder (of one video, or of several video folders) or a DLC project's config.yaml (only
    read: labels from .h5, else .csv)."""
    source = Path(source)
    cfg = read_project(source) if source.is_file() else None
    root = source.parent / "labeled-data" if cfg else source
    if not root.is_dir():
        raise InputError(f"{root}: no such labeled-data folder")
    folders = _video_folders(root)
    if not folders:
        raise InputError(f"{root}: no <video>/CollectedData_<scorer>.h5 or .csv labels (give DLC's labeled-data "
                         "folder, the one above the video folders)")
    frames = [dlc.read_labels(f) for f in folders]
    scorers = {s for df in frames for s in df.columns.get_level_values("scorer")}
    parts = {tuple(dict.fromkeys(df.columns.get_level_values("bodyparts"))) for df in frames}
    if len(scorers) != 1 or len(parts) != 1:
        raise InputError(f"{root}: video folders disagree on scorer {sorted(scorers)} or body parts")
    bodyparts = parts.pop()
    if cfg and (cfg["scorer"] not in scorers or tuple(cfg["bodyparts"]) != bodyparts):
        raise InputError(f"{source}: labels by {sorted(scorers)} with {list(bodyparts)} differ from the project's "
                         f"scorer {cfg['scorer']!r} and body parts {cfg['bodyparts']}")
    return TrainingSource(labeled_dir=root, scorer=scorers.pop(), bodyparts=bodyparts,
                          train_fraction=float(cfg["TrainingFraction"][0]) if cfg else 0.8,
                          pcutoff=float(cfg["pcutoff"]) if cfg and "pcutoff" in cfg else None)


def project_model_folder(config_yaml, shuffle: int = 1) -> Path:
    """The PyTorch model folder of a DLC project's shuffle (first training fraction, current iteration)."""
    cfg = read_project(config_yaml)
    base = Path(config_yaml).parent / "dlc-models-pytorch" / f"iteration-{cfg.get('iteration', 0)}"
    found = sorted(base.glob(f"*trainset{int(round(cfg['TrainingFraction'][0] * 100))}shuffle{shuffle}"))
    if not found:
        raise InputError(f"{config_yaml}: no trained model for shuffle {shuffle} under {base}")
    return found[0]


def merge_labeled(base: TrainingSource, extra: TrainingSource, out_dir) -> TrainingSource:
    """A new labeled-data folder: base's frames plus extra's (extra's labels win on the same image)."""
    if (extra.scorer, extra.bodyparts) != (base.scorer, base.bodyparts):
        raise InputError(f"{extra.labeled_dir}: scorer {extra.scorer!r} / body parts {list(extra.bodyparts)} differ "
                         f"from the base training set's {base.scorer!r} / {list(base.bodyparts)}")
    out = Path(out_dir)
    if out.exists():
        raise InputError(f"{out}: exists already (training sets are never edited in place)")
    for source in (base, extra):
        for folder in _video_folders(source.labeled_dir):
            target = out / folder.name
            labels = dlc.read_labels(folder)
            if dlc.labels_path(target, base.scorer):
                previous = dlc.read_labels(target, base.scorer)
                labels = pd.concat([previous[~previous.index.isin(labels.index)], labels])
            shutil.copytree(folder, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("CollectedData_*"))
            dlc.write_labels(labels, target, base.scorer)
    return TrainingSource(out, base.scorer, base.bodyparts, base.train_fraction, base.pcutoff)
