"""Frames to label next (ratpose.pose2d.labeling): outliers against the simulator's injected errors,
k-means across cameras, and labeled-data that DeepLabCut's own reader takes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ratpose.pose2d import labeling
from ratpose.pose3d.triangulation import triangulate
from ratpose.sim.pose2d import GOOD, DlcErrors, messy_pose2d

# few errors, so that picking frames at random would mostly pick good ones (base rate 3-8 %)
RARE_ERRORS = DlcErrors(outlier_rate=0.003, swap_rate=0.0, occlusion_rate=0.003)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_outliers_are_the_frames_with_injected_errors(seed):
    rig, _, points, likelihood, kind = messy_pose2d(10.0, 2, fps=100.0, seed=seed, errors=RARE_ERRORS)
    tri = triangulate(points, rig, likelihood, refine=True, max_reprojection_px=10.0)
    scores = labeling.outlier_scores(tri.reprojection_error, likelihood, tri.points3d)
    bad = (kind != GOOD).any(axis=(0, 2))  # any camera, any body part
    picks = labeling.pick_outliers(scores, 20)
    assert len(picks) == 20 and np.all(np.diff(picks) >= 5)
    assert bad.mean() < 0.1 and bad[picks].all()  # every pick has an injected error
    assert not (scores[~bad] > 1).any()  # no good frame is called an outlier
    assert (scores[bad] > 1).mean() > 0.6  # most bad frames are (misses: errors along the epipolar line)


def test_a_jump_in_3d_is_an_outlier():
    t = np.arange(100)
    points3d = np.stack([t * 0.5, np.zeros(100), np.full(100, 150.0)], -1)[:, None, :]
    points3d[40, 0, 1] += 12.0  # one frame 12 mm off the path
    scores = labeling.outlier_scores(np.zeros((100, 1)), np.ones((2, 100, 1)), points3d)
    assert scores[40] == pytest.approx(12.0 / 5.0, rel=0.05) and np.delete(scores, 40).max() < 0.2
    assert labeling.pick_outliers(scores, 1).tolist() == [40]


def test_kmeans_picks_one_frame_of_each_kind():
    rng = np.random.default_rng(0)
    kinds = rng.integers(0, 4, 400)
    looks = rng.uniform(0, 1, (4, 2 * 96))  # two cameras' thumbnails, four kinds of scene
    features = looks[kinds] + rng.normal(0, 0.02, (400, 2 * 96))
    picks = labeling.kmeans_picks(features, 4, seed=0)
    assert sorted(kinds[picks].tolist()) == [0, 1, 2, 3]
    assert labeling.kmeans_picks(features[:3], 4).tolist() == [0, 1, 2]


def test_labeled_data_is_read_by_deeplabcut(tmp_path):
    pytest.importorskip("deeplabcut")
    from deeplabcut.generate_training_dataset.trainingsetmanipulation import merge_annotateddatasets

    bodyparts = ("paw", "digit1", "knob_marker")
    rng = np.random.default_rng(1)
    frames = {i: rng.integers(0, 255, (128, 160), dtype=np.uint8) for i in (3, 150, 901)}
    xy = rng.uniform(0, 120, (3, 3, 2))
    likelihood = np.array([[0.9, 0.3, 0.99], [0.7, 0.8, 0.1], [1.0, 1.0, 1.0]])
    folder = labeling.write_labeled_data(tmp_path / "labeled-data" / "rat01_cam0", frames, 1200, xy, likelihood,
                                         bodyparts, "lab", pcutoff=0.6)
    assert sorted(p.name for p in folder.glob("*.png")) == ["img0003.png", "img0150.png", "img0901.png"]
    cfg = {"project_path": str(tmp_path), "scorer": "lab", "bodyparts": list(bodyparts),
           "video_sets": {str(tmp_path / "videos" / "rat01_cam0.avi"): {"crop": "0, 160, 0, 128"}}}
    (tmp_path / "training").mkdir()
    data = merge_annotateddatasets(cfg, tmp_path / "training")
    assert list(data.index) == [("labeled-data", "rat01_cam0", f"img{i:04d}.png") for i in (3, 150, 901)]
    expected = np.where((likelihood >= 0.6)[..., None], xy, np.nan).reshape(3, -1)
    np.testing.assert_array_equal(data.to_numpy(), expected)
    assert data.columns.names == ["scorer", "bodyparts", "coords"]
    csv = pd.read_csv(folder / "CollectedData_lab.csv", header=[0, 1, 2], index_col=[0, 1, 2])  # as DLC reads it
    np.testing.assert_allclose(csv.to_numpy(), expected)
    with pytest.raises(ValueError, match="never overwritten"):
        labeling.write_labeled_data(folder, frames, 1200, xy, likelihood, bodyparts, "lab", pcutoff=0.6)
