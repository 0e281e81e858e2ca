"""The README's main command end to end: real DeepLabCut training and inference on the CPU inside the
pipeline (PoseModel -> Pose2D), on a simulated session, checked against the ground truth."""
from __future__ import annotations

import pytest

from ratpose.demo import DemoSettings, run_demo


@pytest.mark.slow
def test_demo_recovers_the_truth_at_every_stage_and_fails_with_swapped_cameras(clean_db, tmp_path, capsys):
    """The default demo (the README's main command) passes every stage; the same command with the
    calibration's cameras swapped (and the first run's model, so no second training) exits 1 on pose3d."""
    from ratpose import cli, db

    summary = run_demo(tmp_path / "first", DemoSettings(subject="rat_demo_test", db_prefix=db.prefix()))
    text = summary.text()
    assert summary.failed == [] and text.endswith("every stage PASSED"), text
    m = summary.metrics
    assert m["sync_exact_cam0"] == 1.0 and m["sync_exact_cam1"] == 1.0
    assert m["focal_error"] < 0.005 and m["baseline_error"] < 0.005
    # 160x120 frames, heatmap stride 8 px: a model that learned the blobs is within a few px; an
    # untrained one is ~40 px off. 3D: 1 px at f ~ 400 px and 150 mm is ~0.4 mm per camera.
    assert m["test_error_px"] < 6.0
    assert m["pose2d_median_px_cam0"] < 4.0 and m["pose2d_median_px_cam1"] < 4.0
    assert m["pose3d_median_mm"] < 2.0 and m["pose3d_fraction"] > 0.9
    assert m["knob_sensitivity"] > 0.9 and m["knob_precision"] > 0.9
    model_dir = next(row[2] for row in summary.rows if row[0] == "model folder")
    capsys.readouterr()
    code = cli.main(["demo", "--out", str(tmp_path / "swapped"), "--swap-cameras", "--model", model_dir,
                     "--db-prefix", db.prefix()])
    printed = capsys.readouterr().out
    assert code == 1, printed
    verdict = printed.strip().splitlines()[-1]
    assert verdict.startswith("FAILED:") and "pose3d" in verdict, printed
    # the 2D is as good as before: the failure is the swapped calibration's, found by pose3d
    assert "pose2d" not in verdict and "pose model" not in verdict, printed


def test_summary_fits_100_columns_and_a_failed_stage_fails_the_command(monkeypatch, tmp_path):
    """The summary on fabricated stage results: PASS/FAIL per row, 100 columns; `ratpose demo` exits 1 on a FAIL."""
    from ratpose import cli, demo
    from ratpose.demo import DemoSummary, tuning_row

    summary = DemoSummary(session={})
    summary.add("sync cam0", True, "100.0% frames on their pulse, drift 10.00 ppm",
                "3 lost in transfer, 2 missed trigger")
    summary.add("calibration", False, "RMS 0.30 px at 640x480, baseline 150.00 mm " * 3, "cameras swapped " * 5)
    summary.add("knob marker", None, "centre off by 1.00 mm", "radius 10.00 mm")
    ok, found, truth = tuning_row({1: "speed", 2: "direction", 3: "untuned"},
                                  [{"unit_id": 1, "speed_p_value": 0.001, "direction_p_value": 0.5},
                                   {"unit_id": 2, "speed_p_value": 0.3, "direction_p_value": 0.2},
                                   {"unit_id": 3, "speed_p_value": 0.01, "direction_p_value": None}])
    assert not ok and "2:direction speed p=0.300 dir p=0.200" in found and "3:untuned speed p=0.010" in found
    summary.add("unit tuning", ok, found, truth)
    text = summary.text()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert summary.failed == ["calibration", "unit tuning"] and text.endswith("FAILED: calibration, unit tuning")
    assert [r[1] for r in summary.rows] == ["PASS", "FAIL", "-", "FAIL"]
    monkeypatch.setattr(demo, "run_demo", lambda out, settings: summary)
    assert cli.main(["demo", "--out", str(tmp_path)]) == 1
    passing = DemoSummary(session={})
    passing.add("sync cam0", True, "100.0%", "0 lost")
    monkeypatch.setattr(demo, "run_demo", lambda out, settings: passing)
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0


def test_demo_has_its_own_prefix_and_can_swap_the_cameras(monkeypatch, tmp_path):
    """`ratpose demo` writes under <prefix>_demo; --swap-cameras swaps the calibration's camera folders."""
    from ratpose import cli, db, demo
    from ratpose.demo import DemoSummary, swap_camera_folders

    assert DemoSettings().prefix == f"{db.prefix()}_demo" and DemoSettings(db_prefix="x").prefix == "x"
    for name in ("cam0", "cam1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "sync_0.png").write_text(name)
    swap_camera_folders(tmp_path, ("cam0", "cam1"))
    assert [(tmp_path / n / "sync_0.png").read_text() for n in ("cam0", "cam1")] == ["cam1", "cam0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam0", "cam1"]
    seen = []
    monkeypatch.setattr(demo, "run_demo", lambda out, settings: seen.append(settings) or DemoSummary(session={}))
    assert cli.main(["demo", "--out", str(tmp_path), "--swap-cameras"]) == 0
    assert seen[0].swap_cameras and seen[0].prefix == f"{db.prefix()}_demo"
