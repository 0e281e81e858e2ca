"""DeepLabCut-format 2D pose outputs made from the ground truth, as if DLC had run elsewhere.

Used to exercise Pose2D's 'load' mode and everything downstream without training a network: true
projections plus the errors of ``DlcErrors`` (DeepLabCut-like: heavy-tailed, temporally correlated
jitter, confident outliers, swaps between neighbouring keypoints, occlusion bouts with low likelihood).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from .cameras import rig_and_lab_frame
from .scene import make_scene
from .truth import GroundTruth

#: error kinds returned by dlc_like_errors
GOOD, OUTLIER, SWAP, OCCLUDED = 0, 1, 2, 3


@dataclass(frozen=True)
class DlcErrors:
    """The 2D error model of the simulator's DLC-like outputs (all parameters in one place), in pixels of a
    1440-pixel-wide image (``for_width`` scales them to another: a network errs by a fraction of the animal)."""

    jitter_px: float = 0.5  # scale of the Student-t jitter
    jitter_df: float = 3.0  # its degrees of freedom (heavy tails)
    jitter_frames: float = 4.0  # correlation time of the jitter (AR(1)), frames
    outlier_rate: float = 0.03  # confident outliers: fraction of observations
    outlier_px: tuple[float, float] = (8.0, 60.0)  # their displacement range
    swap_rate: float = 0.02  # fraction of frames where two neighbouring keypoints are swapped
    occlusion_rate: float = 0.10  # fraction of observations inside occlusion bouts
    occlusion_frames: float = 25.0  # mean bout length, frames
    occluded_px: float = 20.0  # position error while occluded (likelihood < 0.2)

    def for_width(self, width_px: int) -> "DlcErrors":
        """The same model for images ``width_px`` wide (pixel sizes scaled, rates kept)."""
        k = width_px / 1440.0
        return replace(self, jitter_px=self.jitter_px * k, outlier_px=(self.outlier_px[0] * k, self.outlier_px[1] * k),
                       occluded_px=self.occluded_px * k)


def _bouts(rng, shape, rate: float, mean_frames: float) -> np.ndarray:
    """Boolean (..., T, P) bouts along axis -2 covering ~rate of the entries, geometric lengths."""
    start = rng.random(shape) < rate / mean_frames
    length = rng.geometric(1.0 / mean_frames, shape)
    end = np.where(start, np.arange(shape[-2])[:, None] + length, -1)
    return np.maximum.accumulate(end, axis=-2) > np.arange(shape[-2])[:, None]


def dlc_like_errors(true_px: np.ndarray, rng, errors: DlcErrors = DlcErrors(), neighbours=(),
                    visible: np.ndarray | None = None):
    """Corrupt true pixels (C, T, P, 2) with ``errors``; neighbours: part index pairs that get swapped.

    visible (C, T, P): where False the keypoint is occluded too. Returns points (C, T, P, 2),
    likelihood (C, T, P) and kind (C, T, P): GOOD, OUTLIER, SWAP or OCCLUDED.
    """
    e = errors
    pts = np.array(true_px, dtype=np.float64)
    a = np.exp(-1.0 / e.jitter_frames)
    shocks = rng.standard_t(e.jitter_df, pts.shape) * e.jitter_px * np.sqrt(1 - a * a)
    pts += lfilter([1.0], [1.0, -a], shocks, axis=1)
    kind = np.zeros(pts.shape[:-1], dtype=np.int8)
    lik = rng.uniform(0.9, 1.0, kind.shape)
    for i, j in neighbours:
        swap = rng.random(kind.shape[:2]) < e.swap_rate
        pts[swap, i], pts[swap, j] = pts[swap, j].copy(), pts[swap, i].copy()
        kind[swap, i] = kind[swap, j] = SWAP
    outlier = rng.random(kind.shape) < e.outlier_rate
    angle = rng.uniform(0, 2 * np.pi, kind.shape)
    radius = rng.uniform(*e.outlier_px, kind.shape)
    pts[outlier] += (radius[..., None] * np.stack([np.cos(angle), np.sin(angle)], -1))[outlier]
    kind[outlier] = OUTLIER
    occluded = _bouts(rng, kind.shape, e.occlusion_rate, e.occlusion_frames)
    if visible is not None:
        occluded |= ~visible
    pts[occluded] += rng.normal(0.0, e.occluded_px, (int(occluded.sum()), 2))
    lik[occluded] = rng.uniform(0.0, 0.2, int(occluded.sum()))
    kind[occluded] = OCCLUDED
    return pts, lik, kind


def dlc_dataframe(x: np.ndarray, y: np.ndarray, likelihood: np.ndarray, bodyparts, scorer: str) -> pd.DataFrame:
    """A DataFrame in DeepLabCut's single-animal output layout from (n_frames, n_parts) arrays.

    Parameters
    ----------
    x, y : numpy.ndarray, (n_frames, n_parts), px
    likelihood : numpy.ndarray, (n_frames, n_parts)
    bodyparts : sequence of str
    scorer : str

    Returns
    -------
    pandas.DataFrame
        Columns (scorer, bodyparts, coords).
    """
    columns = pd.MultiIndex.from_product([[scorer], list(bodyparts), ["x", "y", "likelihood"]],
                                         names=["scorer", "bodyparts", "coords"])
    values = np.stack([x, y, likelihood], axis=-1).reshape(len(x), -1)
    return pd.DataFrame(values, columns=columns)


def write_dlc_outputs(truth: GroundTruth, out_dir, *, errors: DlcErrors | None = DlcErrors(), seed: int = 0,
                      scorer: str = "DLC_sim") -> dict[str, Path]:
    """Write one DLC .h5 per camera video (rows = delivered frames) as if DeepLabCut had tracked the session.

    The rows are the true projections with ``errors`` (scaled to each camera's width; None: exact), keypoints
    the scene hides occluded; returns camera -> path.

    Parameters
    ----------
    truth : GroundTruth
    out_dir : str or Path
        Created if need be.
    errors : DlcErrors or None
    seed : int
    scorer : str
        Also the file names' suffix: ``<camera><scorer>.h5``.

    Returns
    -------
    dict of str to Path
    """
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_points = truth.points2d()  # (C, N, P, 2)
    paths = {}
    for c, (camera, frames) in enumerate(truth.cameras.items()):
        points = all_points[c, frames.pulse_index]
        visible = truth.visible[frames.pulse_index, c]
        if errors is None:
            likelihood = np.where(visible, 1.0, 0.0)
        else:
            model = errors.for_width(truth.rig[camera].size[0])
            points, likelihood, _ = dlc_like_errors(points[None], rng, model, DIGIT_NEIGHBOURS, visible[None])
            points, likelihood = points[0], likelihood[0]
        frame = dlc_dataframe(points[..., 0], points[..., 1], likelihood, truth.bodyparts, scorer)
        paths[camera] = out_dir / f"{camera}{scorer}.h5"
        frame.to_hdf(paths[camera], key="df_with_missing", mode="w")
    return paths


#: rigid segments of the hand keypoints (indices into scene.BODYPARTS) and the swappable digits
HAND_LIMBS = ((0, 1), (1, 2), (1, 3), (2, 3))
DIGIT_NEIGHBOURS = ((2, 3),)


def messy_pose2d(seconds: float, n_cameras: int = 2, *, fps: float = 226.0, seed: int = 0,
                 errors: DlcErrors = DlcErrors(), image_size=(1440, 1080)):
    """A scene's true keypoints seen by the lab-like rig through ``errors``, without rendering.

    Returns rig, truth (T, P, 3) mm, points (C, T, P, 2), likelihood (C, T, P), kind (C, T, P).
    """
    rig, R, t = rig_and_lab_frame(image_size, n_cameras)
    times = np.arange(int(round(seconds * fps))) / fps
    truth = make_scene(0.0, times[-1] + 1.0, seed=seed, lab_to_world_R=R, lab_to_world_t=t).keypoints(times)
    rng = np.random.default_rng(seed)
    points, likelihood, kind = dlc_like_errors(rig.project(truth), rng, errors, DIGIT_NEIGHBOURS)
    return rig, truth, points, likelihood, kind
