"""What the DeepLabCut adapter passes around: its settings, models, evaluations and outputs, and its errors."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError

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


class DLCError(InputError):
    """A DeepLabCut input, model or output is missing, inconsistent or unusable."""


class ChecksumError(DLCError):
    """Model files are missing or differ from the checksums recorded when the model was made."""


@dataclass(frozen=True)
class TrainSettings:
    """How to train a DLC model. ``init``: "imagenet", "random" or a path to a snapshot (.pt).

    Attributes
    ----------
    net_type : str
        DeepLabCut's net type, or one of EXTRA_RESNETS.
    epochs : int
        Must be >= 1.
    batch_size : int
        Must be >= 1.
    augmentation : bool
        DLC's training augmentation (crops no larger than the labeled frames); False: train on the frames as
        inference sees them.
    device : {"auto", "cpu", "cuda"}
        "auto": CUDA when torch sees a GPU.
    init : str
    save_epochs : int
        A snapshot is saved every this many epochs (>= 1).
    seed : int

    Raises
    ------
    DLCError
        On construction, if ``device`` is unknown or a count is < 1.
    """

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
            raise DLCError(f"TrainSettings.device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        for name in ("epochs", "batch_size", "save_epochs"):
            if int(getattr(self, name)) < 1:
                raise DLCError(f"TrainSettings.{name} must be >= 1, got {getattr(self, name)!r}")
        object.__setattr__(self, "init", str(self.init))


@dataclass(frozen=True)
class TrainedModel:
    """A DLC pose model on disk: its folder, snapshot, config, body parts and file checksums.

    ``checksums`` maps paths relative to ``model_dir`` to sha256 hex digests. ``project_config``
    is the DLC project's config.yaml when the model still sits in its project (None otherwise);
    ``train_indices``/``test_indices`` index DLC's merged labeled-frame table (empty if unknown).

    Attributes
    ----------
    model_dir : Path
        The model (shuffle) folder.
    snapshot : Path
        The snapshot (.pt) used.
    pytorch_config : Path
        Its pytorch_config.yaml.
    bodyparts : tuple of str
    checksums : dict of str to str
    train_indices, test_indices : tuple of int
    project_config : Path or None
    shuffle : int
    trainset_index : int
        DLC's shuffle and training-set index of the model.
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
    """DLC's train/test RMSE (px) against the labels, all points and points above ``pcutoff``.

    Attributes
    ----------
    train_rmse, test_rmse : float, px
    train_rmse_pcutoff, test_rmse_pcutoff : float, px
        Over the points whose likelihood is above ``pcutoff``.
    pcutoff : float
    n_train, n_test : int
        Labeled frames in the train and test splits.
    figures_dir : Path or None
        DLC's labeled evaluation images, when plotted.
    """

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
    """2D pose of one video: arrays (n_frames, n_bodyparts) of x, y (px) and likelihood.

    Attributes
    ----------
    bodyparts : tuple of str
    x, y : numpy.ndarray, (n_frames, n_bodyparts) float64, px
        NaN where a keypoint is not known.
    likelihood : numpy.ndarray, (n_frames, n_bodyparts) float64

    Raises
    ------
    DLCError
        On construction, if an array is not (n_frames, n_bodyparts).
    """

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
