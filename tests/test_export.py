"""Exports round-trip through the tools that read them: pynwb + nwbinspector, anipose's CSV convention,
movement, DeepLabCut's .h5 layout."""
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from ratpose.export import pose_table, to_csv, to_movement, to_nwb
from ratpose.rig import CameraModel, Rig

BODYPARTS = ["snout", "paw_left", "paw_right", "tail_base"]
START = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
RIG = Rig((CameraModel("cam0", (1440, 1080), [[3600, 0, 720], [0, 3600, 540], [0, 0, 1]], [-0.1, 0.05, 0, 0, 0]),
           CameraModel("cam1", (1440, 1080), np.diag([2400.0, 2400.0, 1.0]), R=np.eye(3), t=[-80.0, 0.0, 20.0])))


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


def test_anipose_csv_as_anipose_writes_it(pose, tmp_path):
    frames = np.arange(1000, 1000 + len(pose["points"]))
    n_cameras = pose["n_cameras"].astype(float)
    n_cameras[20, 0] = 1  # seen by one camera: anipose writes NaN for its ncams, error and score
    path = to_csv(tmp_path / "pose3d.csv", pose["points"], BODYPARTS, errors=pose["errors"], n_cameras=n_cameras,
                  scores=pose["scores"], frame_numbers=frames)
    table = pd.read_csv(path)  # what anipose's project_2d / label_3d do
    expected = [f"{p}_{f}" for p in BODYPARTS for f in ("x", "y", "z", "error", "ncams", "score")]
    assert list(table.columns) == (expected + [f"M_{i}{j}" for i in range(3) for j in range(3)]
                                   + [f"center_{i}" for i in range(3)] + ["fnum"])
    # anipose's reading convention (project_2d.get_projected_points): undo M and center to get rig points
    M = np.array([[table[f"M_{i}{j}"].mean() for j in range(3)] for i in range(3)])
    center = np.array([table[f"center_{i}"].mean() for i in range(3)])
    bodyparts = [c.replace("_error", "") for c in table.columns if "_error" in c]
    assert bodyparts == BODYPARTS
    points = np.stack([table[[f"{b}_x", f"{b}_y", f"{b}_z"]].to_numpy() for b in bodyparts], axis=1)
    np.testing.assert_allclose((points + center) @ np.linalg.inv(M.T), pose["points"], rtol=1e-14, atol=0)
    seen = n_cameras >= 2
    for j, part in enumerate(BODYPARTS):
        np.testing.assert_allclose(table[f"{part}_error"], np.where(seen[:, j], pose["errors"][:, j], np.nan),
                                   rtol=1e-14)
        np.testing.assert_array_equal(table[f"{part}_ncams"], np.where(seen[:, j], n_cameras[:, j], np.nan))
        np.testing.assert_allclose(table[f"{part}_score"], np.where(seen[:, j], pose["scores"][:, j], np.nan),
                                   rtol=1e-14)
    np.testing.assert_array_equal(table["fnum"], frames)
    movement = pytest.importorskip("movement.io.load_poses")
    ds = movement.from_anipose_file(path, fps=None)
    ds = ds.sel(keypoints=BODYPARTS, individuals=ds.individuals[0])  # movement orders keypoints itself
    np.testing.assert_allclose(ds["position"].values.transpose(0, 2, 1), pose["points"], rtol=1e-14)
    np.testing.assert_allclose(ds["confidence"].values,
                               np.where(seen, pose["scores"], np.nan), rtol=1e-14)


def test_anipose_reads_the_csv_with_its_own_code(pose, tmp_path):
    """anipose's project_2d.get_projected_points (M, center, _error, _score) and compute_angles (x/y/z, fnum)."""
    pytest.importorskip("anipose")
    from anipose.compute_angles import compute_angles
    from anipose.project_2d import get_projected_points
    from aniposelib.cameras import CameraGroup

    from ratpose.calibration.interop import save_rig

    frames = np.arange(1000, 1000 + len(pose["points"]))
    path = to_csv(tmp_path / "pose3d.csv", pose["points"], BODYPARTS, errors=pose["errors"],
                  n_cameras=pose["n_cameras"], scores=pose["scores"], frame_numbers=frames)
    group = CameraGroup.load(str(save_rig(RIG, tmp_path / "calibration.toml")))
    parts, projected, scores = get_projected_points({"triangulation": {"optim": False}}, path, group,
                                                    {cam.name: (0, 0) for cam in RIG})
    assert parts == BODYPARTS
    seen = pose["n_cameras"] >= 2
    np.testing.assert_allclose(scores.T, np.where(seen, pose["scores"], np.nan), rtol=1e-14)
    for c, cam in enumerate(RIG):
        ours = cam.project(pose["points"].reshape(-1, 3)).reshape(len(frames), len(BODYPARTS), 2)
        np.testing.assert_allclose(projected[c].transpose(1, 0, 2), ours, rtol=0, atol=1e-9)  # NaN where unseen
    config = {"angles": {"snout_paw_tail": ["snout", "paw_left", "tail_base"]}}
    compute_angles(config, str(path), str(tmp_path / "angles.csv"))
    angles = pd.read_csv(tmp_path / "angles.csv")
    np.testing.assert_array_equal(angles["fnum"], frames)
    a, b = pose["points"][:, 0] - pose["points"][:, 1], pose["points"][:, 3] - pose["points"][:, 1]
    cosine = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(angles["snout_paw_tail"], np.degrees(np.arccos(cosine)), rtol=1e-12)


def test_dlc_h5_read_by_movement_and_deeplabcut_layout(pose, tmp_path):
    from ratpose.export import to_dlc_h5

    xy = pose["points"][..., :2] * 4 + 700
    path2d = to_dlc_h5(tmp_path / "cam0DLC.h5", xy, BODYPARTS, scorer="DLC_resnet50", likelihood=pose["scores"])
    path3d = to_dlc_h5(tmp_path / "pose3d.h5", pose["points"], BODYPARTS, scorer="ratpose")
    table = pd.read_hdf(path2d, "df_with_missing")  # DLC's key and its (scorer, bodyparts, coords) header
    assert table.columns.names == ["scorer", "bodyparts", "coords"]
    np.testing.assert_array_equal(table["DLC_resnet50"]["paw_left"]["likelihood"], pose["scores"][:, 1])
    import h5py
    with h5py.File(path2d) as f:
        assert f["df_with_missing"].attrs["pandas_type"] == b"frame_table" or \
            f["df_with_missing"].attrs["pandas_type"] == "frame_table"  # PyTables table, as DLC writes
    three = pd.read_hdf(path3d, "df_with_missing")
    assert list(three.columns.get_level_values("coords")[:3]) == ["x", "y", "z"]
    np.testing.assert_array_equal(three["ratpose"]["snout"].to_numpy(), pose["points"][:, 0])
    movement = pytest.importorskip("movement.io.load_poses")
    ds = movement.from_dlc_file(path2d)
    np.testing.assert_array_equal(ds["position"].values[:, :, :, 0].transpose(0, 2, 1), xy)
    np.testing.assert_allclose(ds["confidence"].values[:, :, 0], pose["scores"], rtol=1e-14)


def test_deeplabcut_finds_and_filters_the_2d_h5(pose, tmp_path, monkeypatch):
    """DeepLabCut's own load_analyzed_data finds <video><scorer>.h5 as export writes it, filterpredictions
    (median) reads it and writes <video><scorer>_filtered.h5."""
    pytest.importorskip("deeplabcut")
    import deeplabcut
    from deeplabcut.utils import auxiliaryfunctions

    from ratpose.export import to_dlc_h5

    scorer, xy = "DLC_ratpose_sim_external", pose["points"][..., :2] * 4 + 700
    to_dlc_h5(tmp_path / f"cam0{scorer}.h5", xy, BODYPARTS, scorer=scorer, likelihood=pose["scores"])
    table, path, found, _ = auxiliaryfunctions.load_analyzed_data(tmp_path, "cam0", scorer)
    assert found == scorer and path == str(tmp_path / f"cam0{scorer}.h5")
    np.testing.assert_array_equal(table.to_numpy().reshape(xy.shape[:2] + (3,))[..., :2], xy)
    np.testing.assert_array_equal(table[scorer]["tail_base"]["likelihood"], pose["scores"][:, 3])
    (tmp_path / "cam0.mp4").write_bytes(b"")  # DLC names outputs after the video; it is not opened
    (tmp_path / "config.yaml").write_text(f"Task: t\nTrainingFraction: [0.95]\nproject_path: {tmp_path}\n")
    monkeypatch.setattr(auxiliaryfunctions, "get_scorer_name", lambda *a, **k: (scorer, scorer))  # no trained model
    deeplabcut.filterpredictions(str(tmp_path / "config.yaml"), str(tmp_path / "cam0.mp4"), save_as_csv=False)
    filtered = pd.read_hdf(tmp_path / f"cam0{scorer}_filtered.h5").to_numpy().reshape(xy.shape[:2] + (3,))
    from scipy.signal import medfilt

    np.testing.assert_array_equal(filtered[..., :2], np.apply_along_axis(medfilt, 0, xy, 5))
    np.testing.assert_array_equal(filtered[..., 2], pose["scores"])


#: UnitEncoding.Unit rows (one fitted, one not) and a PopulationDecoding row, as the database gives them
ANALYSIS = {"lags_s": np.array([0.02, 0.04, 0.06]),
            "encoding": [{"unit_id": 3, "tuned": True, "p_value": 1e-6, "pseudo_r2": 0.05,
                          "group_r2": {"velocity": 0.03, "position": 0.0, "supination": 0.01},
                          "filters": {"velocity": np.arange(9.0).reshape(3, 3), "supination": np.ones((3, 1))},
                          "note": ""},
                         {"unit_id": 4, "tuned": False, "p_value": None, "pseudo_r2": None, "group_r2": {},
                          "filters": {}, "note": "not fitted"}],
            "decoding": {"linear_r2": {"paw_vx": 0.1, "supination_deg": 0.8},
                         "kalman_r2": {"paw_vx": 0.05, "supination_deg": 0.6}, "bayesian_r2": {"supination_deg": 0.2},
                         "knob_turns_r2": 0.7}}


def test_nwb_round_trip_and_inspector(pose, tmp_path):
    pynwb = pytest.importorskip("pynwb")
    pytest.importorskip("ndx_pose")
    rig = RIG
    # each camera's own frames on its own times: cam1 dropped frames 10-12
    kept = {"cam0": np.arange(len(pose["times"])), "cam1": np.delete(np.arange(len(pose["times"])), [10, 11, 12])}
    projected = {cam.name: cam.project(pose["points"].reshape(-1, 3)).reshape(len(pose["points"]), -1, 2)
                 for cam in rig}
    pose2d = {cam: (projected[cam][rows], pose["scores"][rows], pose["times"][rows]) for cam, rows in kept.items()}
    spikes = np.sort(np.random.default_rng(1).uniform(4000.1, 4000.5, 30))
    touches = np.array([[4000.05, 4000.1], [4000.3, 4000.4]])
    path = to_nwb(tmp_path / "pose.nwb", pose["points"], pose["times"], BODYPARTS, session_start_time=START,
                  clock_offset_s=3990.0, scores=pose["scores"], errors=pose["errors"],
                  n_cameras=pose["n_cameras"], rig=rig, pose2d=pose2d, edges=[[0, 1], [0, 2], [0, 3]],
                  subject={"subject_id": "rat01", "sex": "M", "age": "P90D"},
                  units=[(3, spikes, {"tetrode": 2})], spike_resolution_s=1 / 30000, touches=touches,
                  turns=touches[:1] + 0.01, scorer="dlc-model", analysis=ANALYSIS)
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        encoding = nwb.processing["analysis"]["unit_encoding"].to_dataframe()
        assert list(encoding.index) == [3, 4] and list(encoding.tuned) == [True, False]
        np.testing.assert_allclose(encoding.loc[3, "velocity_filter"], ANALYSIS["encoding"][0]["filters"]["velocity"])
        assert np.isnan(encoding.loc[4, "pseudo_r2"]) and encoding.loc[4, "note"] == "not fitted"
        decoding = nwb.processing["analysis"]["population_decoding"].to_dataframe().set_index("variable")
        assert decoding.loc["supination_deg", "linear_r2"] == 0.8
        assert decoding.loc["supination_deg", "bayesian_r2"] == 0.2
        assert decoding.loc["paw_vx", "kalman_r2"] == 0.05
        assert decoding.loc["knob_angle_during_turns", "linear_r2"] == 0.7
        behavior = nwb.processing["behavior"]
        estimation = behavior["PoseEstimation"]
        assert list(estimation.skeleton.nodes[:]) == BODYPARTS
        np.testing.assert_array_equal(estimation.skeleton.edges[:], [[0, 1], [0, 2], [0, 3]])
        assert sorted(estimation.pose_estimation_series) == sorted(BODYPARTS)
        assert estimation.scorer == "dlc-model"
        for j, part in enumerate(BODYPARTS):
            series = estimation.pose_estimation_series[part]
            assert series.unit == "millimeters"
            np.testing.assert_array_equal(series.data[:], pose["points"][:, j])
            np.testing.assert_allclose(series.timestamps[:] + 3990.0, pose["times"], rtol=0, atol=1e-12)
            np.testing.assert_allclose(series.confidence[:], pose["scores"][:, j], atol=1e-7)  # float32 in spec
            for cam in rig:
                series2d = estimation.pose_estimations[f"PoseEstimation_{cam.name}"].pose_estimation_series[part]
                np.testing.assert_array_equal(series2d.data[:], pose2d[cam.name][0][:, j])
                np.testing.assert_allclose(np.asarray(series2d.get_timestamps()[:]) + 3990.0, pose2d[cam.name][2],
                                           rtol=0, atol=1e-9)
                assert series2d.unit == "pixels"
        assert estimation.pose_estimations["PoseEstimation_cam1"].device is nwb.devices["cam1"]
        np.testing.assert_array_equal(behavior["reprojection_error"].data[:], pose["errors"])
        np.testing.assert_array_equal(behavior["n_cameras"].data[:], pose["n_cameras"])
        cam0 = nwb.devices["cam0"]
        np.testing.assert_array_equal(cam0.intrinsic_matrix[:], rig[0].K)
        np.testing.assert_array_equal(cam0.distortion_coefficients[:], rig[0].dist)
        np.testing.assert_array_equal(nwb.devices["cam1"].translation_vector[:], rig[1].t)
        np.testing.assert_allclose(nwb.units["spike_times"][0] + 3990.0, spikes, rtol=0, atol=1e-12)
        assert nwb.units["tetrode"][0] == 2 and nwb.units.id[0] == 3
        touches_back = nwb.intervals["knob_touches"].to_dataframe()[["start_time", "stop_time"]].to_numpy()
        np.testing.assert_allclose(touches_back + 3990.0, touches, rtol=0, atol=1e-12)
        assert "3990.0" in nwb.notes
        assert nwb.subject.sex == "M" and nwb.subject.species == "Rattus norvegicus"
        assert nwb.session_start_time == START
    inspector = pytest.importorskip("nwbinspector")
    config = inspector.load_config("dandi")
    messages = list(inspector.inspect_nwbfile(nwbfile_path=str(path), config=config))
    bad = [m for m in messages if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR")]
    assert not bad, [m.message for m in bad]


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
    (np.zeros((5, 4, 3)), BODYPARTS, {"frame_numbers": np.zeros(4)}, "frame_numbers"),
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


def test_on_pulses_and_lowest_used_likelihood():
    from ratpose.export.session import lowest_used_likelihood, on_pulses

    camera_pulses = np.array([10, 11, 13, 14])  # pulse 12 dropped by this camera
    x = np.arange(8.0).reshape(4, 2)
    xy, counts = on_pulses(camera_pulses, np.array([11, 12, 14, 15]), np.stack([x, x + 100], -1), x, fill=0)
    np.testing.assert_array_equal(xy[[0, 2], :, 0], x[[1, 3]])
    np.testing.assert_array_equal(xy[[0, 2], :, 1], x[[1, 3]] + 100)
    assert (xy[[1, 3]] == 0).all() and (counts[[1, 3]] == 0).all()
    lik = np.array([[[0.9, 0.5]], [[0.7, 0.4]]])  # 2 cameras, 1 frame, 2 parts
    np.testing.assert_array_equal(lowest_used_likelihood(lik, 0.6), [[0.7, np.nan]])


def test_nwb_times_from_the_rate_on_a_pulse_grid(tmp_path):
    """Trigger pulses at 226 Hz on the Pi's microsecond ticks with 20 us jitter: written as starting_time + rate,
    so readers that build time from the rate (movement) get every frame within 0.1 ms, even an hour in."""
    from ratpose.export import REGULAR_TOLERANCE_S, _timing

    jitter = np.random.default_rng(2).uniform(-20, 20, 226 * 3600)
    ticks = np.round(np.arange(226 * 3600) * 1e6 / 226 + jitter)  # pigpio: integer microseconds
    times = 4000.0 + ticks / 1e6
    timing = _timing(times)
    assert set(timing) == {"starting_time", "rate"}
    rebuilt = timing["starting_time"] + np.arange(len(times)) / timing["rate"]
    assert np.abs(rebuilt - times).max() <= REGULAR_TOLERANCE_S
    assert np.abs(rebuilt - times).max() > 1e-5  # the jitter is there, and within the tolerance
    assert set(_timing(np.delete(times, 500))) == {"timestamps"}  # a gap: the real times


def test_skeleton_edges_from_the_limbs_else_the_dlc_project(tmp_path):
    from ratpose.export.session import skeleton_edges

    parts = ["snout", "paw", "digit", "tail_base"]
    assert skeleton_edges(parts, "paw-digit,snout-tail_base", None) == [(1, 2), (0, 3)]
    with pytest.raises(ValueError, match="'paw-elbow' is not two different body parts"):  # as Pose3D refuses it
        skeleton_edges(parts, "paw-digit,paw-elbow", None)
    labeled = tmp_path / "project" / "labeled-data"
    labeled.mkdir(parents=True)
    (tmp_path / "project" / "config.yaml").write_text("skeleton:\n- [snout, paw]\n- [paw, digit]\n")
    assert skeleton_edges(parts, "", str(labeled)) == [(0, 1), (1, 2)]
    assert skeleton_edges(parts, "digit-paw", str(labeled)) == [(2, 1)]  # the limbs first
    assert skeleton_edges(parts, "", str(tmp_path / "elsewhere")) == []
