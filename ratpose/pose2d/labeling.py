"""Which frames to label next, and DeepLabCut labeled-data for them (no database).

``kmeans_picks``: frames that look different from each other (k-means on downsampled images of every
camera at the same pulse, DeepLabCut's ``extract_frames`` across cameras). ``outlier_scores`` and
``pick_outliers``: frames the network gets wrong (cameras disagree in 3D, the likelihood drops, the 3D
trajectory jumps). ``write_labeled_data``: images + CollectedData_<scorer>.h5/.csv in DeepLabCut's
layout, the predictions as starting labels (for napari-deeplabcut or DLC's labeling GUI).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.cluster.vq import kmeans2

from ..errors import InputError
from ..video import read_frames
from .dlc import write_labels

THUMBNAIL_WIDTH = 32  # px; k-means sees every frame at this width


def thumbnail(image: np.ndarray, width: int = THUMBNAIL_WIDTH) -> np.ndarray:
    """A grey frame shrunk to ``width`` (aspect kept), flattened to float32 in [0, 1]."""
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA).ravel().astype(np.float32) / 255.0


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """At most k indices spread evenly over range(n)."""
    return np.unique(np.linspace(0, n - 1, min(n, k)).round().astype(np.int64)) if n else np.zeros(0, np.int64)


def kmeans_picks(features: np.ndarray, n_pick: int, seed: int = 0) -> np.ndarray:
    """Sorted rows of features (n, d) nearest the centres of n_pick k-means clusters (all rows if n <= n_pick)."""
    if n_pick < 1:
        raise InputError(f"--n must be >= 1, got {n_pick}")
    if len(features) <= n_pick:
        return np.arange(len(features))
    x = features - features.mean(axis=0)
    centres, labels = kmeans2(x, n_pick, minit="++", seed=seed)
    picks = [members[np.argmin(((x[members] - centres[k]) ** 2).sum(axis=1))]
             for k in range(n_pick) if len(members := np.flatnonzero(labels == k))]
    return np.sort(np.array(picks))


@dataclass(frozen=True)
class OutlierSettings:
    """Where a frame counts as an outlier (each criterion's score is 1 there)."""

    max_reprojection_px: float = 10.0  # cameras disagree in 3D
    min_likelihood: float = 0.6        # the network is unsure
    max_jump_mm: float = 5.0           # distance from the median of the surrounding frames
    jump_window: int = 5               # frames


def _jump_mm(points3d: np.ndarray, window: int) -> np.ndarray:
    """(n, P) distance of each 3D point from the median of the window around it (NaN-aware)."""
    half = window // 2
    padded = np.pad(points3d, ((half, half), (0, 0), (0, 0)), constant_values=np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        median = np.nanmedian(sliding_window_view(padded, window, axis=0), axis=-1)
    return np.linalg.norm(points3d - median, axis=-1)


def outlier_scores(reprojection_error: np.ndarray, likelihood: np.ndarray, points3d: np.ndarray,
                   limits: OutlierSettings = OutlierSettings()) -> np.ndarray:
    """Per frame, the worst criterion over body parts (> 1 = outlier): reprojection error (n, P) / its limit,
    likelihood (C, n, P) (0 at 1, 1 at the cutoff, 2 at 0) and 3D jump (points3d (n, P, 3)) / its limit."""
    lik = np.nan_to_num(np.asarray(likelihood, float), nan=0.0)
    cut = limits.min_likelihood
    unsure = np.where(lik >= cut, (1.0 - lik) / (1.0 - cut), 1.0 + (cut - lik) / cut).max(axis=0)
    disagree = np.nan_to_num(np.asarray(reprojection_error, float) / limits.max_reprojection_px, nan=0.0)
    jump = np.nan_to_num(_jump_mm(np.asarray(points3d, float), limits.jump_window) / limits.max_jump_mm, nan=0.0)
    return np.maximum.reduce([unsure, disagree, jump]).max(axis=1)


def pick_outliers(scores: np.ndarray, n_pick: int, min_gap: int = 5) -> np.ndarray:
    """Sorted indices of the n_pick highest scores, no two closer than min_gap frames (one per error bout)."""
    if n_pick < 1:
        raise InputError(f"--n must be >= 1, got {n_pick}")
    taken = np.zeros(len(scores), bool)
    picks = []
    for i in np.argsort(-scores, kind="stable"):
        if len(picks) == n_pick:
            break
        if not taken[i]:
            picks.append(i)
            taken[max(0, i - min_gap + 1):i + min_gap] = True
    return np.sort(np.array(picks, dtype=np.int64))


def collected_data(coords: np.ndarray, video_name: str, image_names: list[str], bodyparts,
                   scorer: str) -> pd.DataFrame:
    """DeepLabCut's CollectedData table: rows ('labeled-data', video, image), columns (scorer, bodyparts,
    coords) with x/y per body part; coords (n_images, n_parts, 2), NaN = unlabeled."""
    columns = pd.MultiIndex.from_product([[scorer], list(bodyparts), ["x", "y"]],
                                         names=["scorer", "bodyparts", "coords"])
    index = pd.MultiIndex.from_tuples([("labeled-data", video_name, n) for n in image_names])
    return pd.DataFrame(np.asarray(coords, float).reshape(len(image_names), -1), index=index, columns=columns)


def image_name(frame: int, n_video_frames: int) -> str:
    """DeepLabCut's name for a video frame's image (``img`` + zero-padded frame index)."""
    return f"img{frame:0{max(1, int(np.ceil(np.log10(max(n_video_frames, 2)))))}d}.png"


def write_labeled_data(folder, frames: dict[int, np.ndarray], n_video_frames: int, xy: np.ndarray,
                       likelihood: np.ndarray, bodyparts, scorer: str, pcutoff: float) -> Path:
    """Write one video's labeled-data folder: imgNNN.png per frame index of ``frames`` (index -> image) and
    CollectedData_<scorer>.h5/.csv with xy (n, P, 2) as starting labels (NaN below pcutoff). Refuses an
    existing folder (labels are never overwritten)."""
    folder = Path(folder)
    if folder.exists():
        raise InputError(f"{folder}: exists already (labels are never overwritten); choose another --out")
    folder.mkdir(parents=True)
    names = [image_name(i, n_video_frames) for i in frames]
    for name, image in zip(names, frames.values()):
        if not cv2.imwrite(str(folder / name), image):
            raise OSError(f"could not write {folder / name}")
    coords = np.where((np.asarray(likelihood) >= pcutoff)[..., None], xy, np.nan)
    write_labels(collected_data(coords, folder.name, names, bodyparts, scorer), folder, scorer)
    return folder


def _frames_at(path, rows, convert) -> dict[int, np.ndarray]:
    """convert(frame) for the video frames at rows (frame index -> image), decoded in one pass."""
    rows = [int(r) for r in rows]
    return {r: convert(image) for r, image in zip(rows, read_frames(path, rows))}


def frames_to_label(pulses: dict, pose2d: dict, videos: dict, n_pick: int, *, rig=None, n_candidates: int = 200,
                    seed: int = 0) -> tuple[np.ndarray, str]:
    """Pulses (seen by every camera) whose frames to label next, and a line saying how they were chosen.

    ``pulses``, ``pose2d`` (x, y, likelihood), ``videos``: per camera its frames' pulse indices, 2D pose and
    video path. With ``rig`` the worst outliers: the cameras' disagreement frame by frame, from a per-frame
    triangulation of this 2D (not a smoothed Pose3D, whose robust fit hides the very 2D errors worth
    relabelling); without, ``n_pick`` of ``n_candidates`` evenly spaced frames that look different (k-means).
    """
    from ..pose3d import triangulate
    from ..pose3d.reconstruct import matched_2d
    from ..sync import match_cameras

    if rig is not None:
        common, _, points2d, likelihood = matched_2d(rig, pulses, pose2d)
        limits = OutlierSettings()
        tri = triangulate(points2d, rig, likelihood, min_likelihood=limits.min_likelihood, refine=True,
                          max_reprojection_px=limits.max_reprojection_px)
        scores = outlier_scores(tri.qc_error, likelihood, tri.points3d, limits)
        chosen = common[pick_outliers(scores, n_pick)]
        return chosen, f"{int((scores > 1).sum())} of {len(scores)} frames are outliers; picked the worst {len(chosen)}"
    common, rows = match_cameras(pulses)
    candidates = evenly_spaced(len(common), n_candidates)
    features = np.hstack([np.stack(list(_frames_at(videos[c], rows[c][candidates], thumbnail).values()))
                          for c in pulses])
    chosen = common[candidates[kmeans_picks(features, n_pick, seed)]]
    return chosen, f"picked {len(chosen)} of {len(candidates)} candidate frames that look different"


def write_frames_to_label(out: Path, stamp: str, chosen: np.ndarray, pulses: dict, pose2d: dict, videos: dict,
                          bodyparts, scorer: str, pcutoff: float) -> list[Path]:
    """A labeled-data folder per camera (``<stamp>_<video stem>`` under ``out``) with the frames at the
    ``chosen`` pulses and the model's predictions as starting labels (``write_labeled_data``)."""
    from ..sync import pulse_rows

    folders = []
    for camera, camera_pulses in pulses.items():
        rows, _ = pulse_rows(camera_pulses, chosen)  # chosen among the pulses every camera saw
        x, y, likelihood = (a[rows] for a in pose2d[camera])
        folders.append(write_labeled_data(Path(out) / f"{stamp}_{Path(videos[camera]).stem}",
                                          _frames_at(videos[camera], rows, np.asarray), len(camera_pulses),
                                          np.stack([x, y], -1), likelihood, bodyparts, scorer, pcutoff))
    return folders
