"""The README's main command end to end: real DeepLabCut training and inference on the CPU inside the
pipeline (PoseModel -> Pose2D), on a simulated session, checked against the ground truth."""
from __future__ import annotations

import pytest

from ratpose.demo import DemoSettings, run_demo


@pytest.mark.slow
def test_demo_recovers_the_truth_at_every_stage(clean_db, tmp_path):
    summary = run_demo(tmp_path, DemoSettings(seconds=10.0, epochs=20, n_labeled=60, subject="rat_demo_test"))
    text = summary.text()
    assert "ERROR" not in text, text
    m = summary.metrics
    assert m["sync_exact_cam0"] == 1.0 and m["sync_exact_cam1"] == 1.0
    assert m["focal_error"] < 0.005 and m["baseline_error"] < 0.005
    # 160x120 frames, heatmap stride 8 px: a model that learned the blobs is within a few px; an
    # untrained one is ~40 px off. 3D: 1 px at f ~ 400 px and 150 mm is ~0.4 mm per camera.
    assert m["test_error_px"] < 6.0
    assert m["pose2d_median_px_cam0"] < 4.0 and m["pose2d_median_px_cam1"] < 4.0
    assert m["pose3d_median_mm"] < 2.0 and m["pose3d_fraction"] > 0.5
