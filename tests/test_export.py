"""Exports round-trip: NWB (read back with pynwb), Anipose-style CSV and HDF5 (pandas), movement."""
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from ratpose.export import pose_table, to_csv, to_hdf, to_movement, to_nwb
from ratpose.rig import Camera, Rig

BODYPARTS = ["snout", "paw_left", "paw_right", "tail_base"]
START = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def pose():
    rng = np.random.default_rng(0)
    n_frames = 120
    points = rng.normal(0, 20, (n_frames, len(BODYPARTS), 3)) + [0, 0, 150]
    points[5:9, 1] = np.nan  # a gap: not triangulated
    errors = rng.uniform(0, 3, points.shape[:2])
    errors[5:9, 1] = np.nan
    n_cameras = np.where(np.isnan(points[..., 0]), 0, 2)
    scores = rng.uniform(0.6, 1.0, points.shape[:2])
    # neural clock: ~226 Hz from 4000 s after the Pi's counter origin, one dropped pulse
    times = 4000.0 + np.delete(np.arange(n_frames + 1), 50) / 226.0
    return {"points": points, "errors": errors, "n_cameras": n_cameras, "scores": scores, "times": times}


def test_pose_table_layout(pose):
    table = pose_table(pose["points"], BODYPARTS, errors=pose["errors"], n_cameras=pose["n_cameras"],
                       scores=pose["scores"], times_s=pose["times"])
    expected = [f"{p}_{f}" for p in BODYPARTS for f in ("x", "y", "z", "error", "ncams", "score")]
    assert list(table.columns) == expected + ["fnum", "time_s"]
    assert (table["fnum"] == np.arange(len(table))).all()
    np.testing.assert_array_equal(table["paw_left_y"], pose["points"][:, 1, 1])
    empty = pose_table(pose["points"], BODYPARTS)
    assert empty["snout_error"].isna().all() and "time_s" not in empty


def test_csv_and_hdf_round_trip(pose, tmp_path):
    frames = np.arange(1000, 1000 + len(pose["points"]))
    kwargs = {"errors": pose["errors"], "n_cameras": pose["n_cameras"], "scores": pose["scores"],
              "frame_numbers": frames, "times_s": pose["times"]}
    for path, read in ((to_csv(tmp_path / "pose3d.csv", pose["points"], BODYPARTS, **kwargs),
                        lambda p: pd.read_csv(p, float_precision="round_trip")),
                       (to_hdf(tmp_path / "pose3d.h5", pose["points"], BODYPARTS, **kwargs),
                        lambda p: pd.read_hdf(p, "pose3d"))):
        table = read(path)
        for j, part in enumerate(BODYPARTS):
            back = table[[f"{part}_x", f"{part}_y", f"{part}_z"]].to_numpy()
            np.testing.assert_allclose(back, pose["points"][:, j], rtol=0, atol=0)  # exact; NaN == NaN
            np.testing.assert_allclose(table[f"{part}_error"], pose["errors"][:, j], rtol=0, atol=0)
            np.testing.assert_array_equal(table[f"{part}_ncams"], pose["n_cameras"][:, j])
            np.testing.assert_allclose(table[f"{part}_score"], pose["scores"][:, j], rtol=0, atol=0)
        np.testing.assert_array_equal(table["fnum"], frames)
        np.testing.assert_allclose(table["time_s"], pose["times"], rtol=0, atol=0)


def test_nwb_round_trip(pose, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    pytest.importorskip("ndx_pose")
    rig = Rig((Camera("cam0", (1440, 1080), [[3600, 0, 720], [0, 3600, 540], [0, 0, 1]], [-0.1, 0.05, 0, 0, 0]),
               Camera("cam1", (1440, 1080), np.diag([2400.0, 2400.0, 1.0]), R=np.eye(3), t=[-80.0, 0.0, 20.0])))
    path = to_nwb(tmp_path / "pose.nwb", pose["points"], pose["times"], BODYPARTS, session_start_time=START,
                  scores=pose["scores"], errors=pose["errors"], n_cameras=pose["n_cameras"], rig=rig,
                  edges=[[0, 1], [0, 2], [0, 3]], subject_id="rat01")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        behavior = nwb.processing["behavior"]
        estimation = behavior["PoseEstimation"]
        assert list(estimation.skeleton.nodes[:]) == BODYPARTS
        np.testing.assert_array_equal(estimation.skeleton.edges[:], [[0, 1], [0, 2], [0, 3]])
        assert sorted(estimation.pose_estimation_series) == sorted(BODYPARTS)
        for j, part in enumerate(BODYPARTS):
            series = estimation.pose_estimation_series[part]
            assert series.unit == "mm"
            np.testing.assert_array_equal(series.data[:], pose["points"][:, j])
            np.testing.assert_array_equal(series.timestamps[:], pose["times"])  # neural clock, float64 kept
            np.testing.assert_allclose(series.confidence[:], pose["scores"][:, j], atol=1e-7)  # float32 in spec
        np.testing.assert_array_equal(behavior["reprojection_error"].data[:], pose["errors"])
        np.testing.assert_array_equal(behavior["n_cameras"].data[:], pose["n_cameras"])
        np.testing.assert_array_equal(behavior["n_cameras"].timestamps[:], pose["times"])
        cam0 = nwb.devices["cam0"]
        np.testing.assert_array_equal(cam0.intrinsic_matrix[:], rig[0].K)
        np.testing.assert_array_equal(nwb.devices["cam1"].translation_vector[:], rig[1].t)
        assert nwb.subject.subject_id == "rat01"
        assert nwb.session_start_time == START


def test_nwb_rejects_bad_input(pose, tmp_path):
    pytest.importorskip("pynwb")
    path = tmp_path / "bad.nwb"
    with pytest.raises(ValueError, match="timezone"):
        to_nwb(path, pose["points"], pose["times"], BODYPARTS, session_start_time=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="times_s"):
        to_nwb(path, pose["points"], pose["times"][::-1], BODYPARTS, session_start_time=START)
    with pytest.raises(ValueError, match="times_s"):
        to_nwb(path, pose["points"], pose["times"][:-1], BODYPARTS, session_start_time=START)
    with pytest.raises(ValueError, match="edges"):
        to_nwb(path, pose["points"], pose["times"], BODYPARTS, session_start_time=START, edges=[[0, 4]])


@pytest.mark.parametrize("points, parts, extra, message", [
    (np.zeros((5, 4, 2)), BODYPARTS, {}, "points3d"),
    (np.zeros((5, 3, 3)), BODYPARTS, {}, "4 names but points3d has 3"),
    (np.zeros((5, 2, 3)), ["a", "a"], {}, "unique"),
    (np.zeros((5, 4, 3)), BODYPARTS, {"errors": np.zeros((5, 3))}, "errors"),
    (np.zeros((5, 4, 3)), BODYPARTS, {"times_s": np.zeros(4)}, "times_s"),
])
def test_table_rejects_bad_input(points, parts, extra, message):
    with pytest.raises(ValueError, match=message):
        pose_table(points, parts, **extra)


def test_to_movement(pose):
    pytest.importorskip("movement")
    ds = to_movement(pose["points"], BODYPARTS, times_s=pose["times"], scores=pose["scores"])
    position = ds["position"].sel(individuals="rat")
    np.testing.assert_array_equal(position.sel(keypoints="paw_right").values, pose["points"][:, 2])
    np.testing.assert_array_equal(ds["time"].values, pose["times"])
    np.testing.assert_array_equal(ds["confidence"].sel(individuals="rat").values, pose["scores"])


def test_to_movement_without_movement_says_so(pose, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "movement", None)  # makes `import movement...` raise ImportError
    monkeypatch.setitem(sys.modules, "movement.io", None)
    with pytest.raises(ImportError, match="movement"):
        to_movement(pose["points"], BODYPARTS)
