"""A DeepLabCut project from labeled frames: read and write labels, crop them, build the project."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .outputs import _single_animal, read_dlc_table
from .records import _IMAGE_SUFFIXES, SHUFFLE, DLCError


def _labeled_data_root(labeled_dir: Path) -> Path:
    return labeled_dir / "labeled-data" if (labeled_dir / "labeled-data").is_dir() else labeled_dir


def labels_path(folder: Path, scorer: str | None = None) -> Path | None:
    """A labeled video folder's CollectedData_<scorer>.h5, else its .csv (any scorer when None); None without.

    Parameters
    ----------
    folder : Path
    scorer : str, optional

    Returns
    -------
    Path or None
    """
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
    """A labeled video folder's labels with columns (scorer, bodyparts, coords). Reads only.

    The labels are CollectedData_<scorer>.h5, else .csv (one individual of a multi-animal table); the rows are
    ('labeled-data', video, image).

    Parameters
    ----------
    folder : str or Path
    scorer : str, optional
        The scorer the labels must be by; None: any.
    bodyparts : sequence of str
        Body parts that must be labeled.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DLCError
        If there are no labels, they are unreadable, by another scorer, or lack a body part.
    """
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
    """Write labels as DeepLabCut's CollectedData_<scorer>.h5 and .csv in folder (made if need be).

    Parameters
    ----------
    labels : pandas.DataFrame
        Columns (scorer, bodyparts, coords), as ``read_labels`` gives.
    folder : Path
    scorer : str
    """
    folder.mkdir(parents=True, exist_ok=True)
    labels.to_hdf(folder / f"CollectedData_{scorer}.h5", key="df_with_missing", mode="w")
    labels.to_csv(folder / f"CollectedData_{scorer}.csv")


def crop_labeled_data(labeled_dir: str | Path, dest: str | Path, crops, scorer: str) -> Path:
    """Copy a labeled-data tree with every image cut to its crop and its labels in crop pixels.

    Labels outside the crop become NaN, so a model trains on what Pose2D's crop inference shows it.

    ``crops``: one ratpose.pose2d.workspace.CropBox, a dict labeled video folder name -> CropBox, or a
    function (folder name, labels (n_parts, 2) in full-frame px) -> CropBox choosing each image's crop
    (e.g. ``CropBox.around`` the animal: what DeepLabCut's dynamic cropping shows the network).
    Returns dest's labeled-data folder.

    Parameters
    ----------
    labeled_dir : str or Path
        A folder holding labeled-data/<video>/, or that labeled-data folder itself.
    dest : str or Path
    crops : CropBox or dict of str to CropBox or callable
    scorer : str

    Returns
    -------
    Path
        ``dest``/labeled-data.

    Raises
    ------
    DLCError
        If labels are missing or unreadable, a labeled image is missing, or a folder has no crop.
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

    Parameters
    ----------
    labeled_dir : str or Path
    workdir : str or Path
        The project folder; must not hold a DLC project yet.
    bodyparts : sequence of str
        Unique names, each labeled.
    train_fraction : float
        In (0, 1).
    seed : int
        Seed of the train/test split.
    scorer : str
    task : str
        DLC's Task name.

    Returns
    -------
    Path
        The project's config.yaml.

    Raises
    ------
    DLCError
        If the body parts are empty or repeat, ``train_fraction`` is not in (0, 1), no labels of ``scorer`` are
        found, ``workdir`` already holds a project, there are fewer than 2 labeled frames, or no labeled images.
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
