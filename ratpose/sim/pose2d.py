"""DeepLabCut-format 2D pose outputs made from the ground truth, as if DLC had run elsewhere.

Used to exercise Pose2D's 'load' mode and everything downstream without training a network:
true projections plus Gaussian pixel noise, likelihood high where the keypoint is drawn and low
(with a wrong position) where it is occluded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .truth import GroundTruth


def dlc_dataframe(x: np.ndarray, y: np.ndarray, likelihood: np.ndarray, bodyparts, scorer: str) -> pd.DataFrame:
    """A DataFrame in DeepLabCut's single-animal output layout from (n_frames, n_parts) arrays."""
    columns = pd.MultiIndex.from_product([[scorer], list(bodyparts), ["x", "y", "likelihood"]],
                                         names=["scorer", "bodyparts", "coords"])
    values = np.stack([x, y, likelihood], axis=-1).reshape(len(x), -1)
    return pd.DataFrame(values, columns=columns)


def write_truth_pose2d(truth: GroundTruth, out_dir, *, noise_px: float = 0.5, seed: int = 0,
                       scorer: str = "DLC_sim_truth") -> dict[str, Path]:
    """Write one DLC .h5 per camera video (rows = delivered frames); returns camera -> path."""
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_points = truth.points2d()  # (C, N, P, 2)
    paths = {}
    for c, (camera, frames) in enumerate(truth.cameras.items()):
        points = all_points[c, frames.pulse_index] + rng.normal(0.0, noise_px, (len(frames.pulse_index),
                                                                                len(truth.bodyparts), 2))
        visible = truth.visible[frames.pulse_index, c]
        likelihood = np.where(visible, rng.uniform(0.9, 1.0, visible.shape), rng.uniform(0.0, 0.1, visible.shape))
        points[~visible] += rng.normal(0.0, 20.0, (int((~visible).sum()), 2))
        frame = dlc_dataframe(points[..., 0], points[..., 1], likelihood, truth.bodyparts, scorer)
        paths[camera] = out_dir / f"{camera}{scorer}.h5"
        frame.to_hdf(paths[camera], key="df_with_missing", mode="w")
    return paths
