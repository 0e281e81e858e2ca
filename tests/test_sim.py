"""The synthetic rig against its own ground truth: determinism, geometry, clocks, knob, spikes, DLC data."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pandas as pd
import pytest
import tomllib

from ratpose.sim import (
    BODYPARTS,
    SensorNoise,
    default_rig,
    make_scene,
    render_frame,
    rig_and_lab_frame,
    write_labeled_frames,
)
from ratpose.sim.neural import default_units, simulate_spikes, unit_rates
from ratpose.sim.session import SessionSettings, session_backgrounds, write_session
from ratpose.sim.truth import load_ground_truth
from ratpose.sync import align_frames, unwrap_ticks

SMALL = dict(seconds=2.0, fps=60.0)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _video(path):
    cap = cv2.VideoCapture(str(path))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame[..., 0] if frame.ndim == 3 else frame)
    cap.release()
    return count, np.array(frames)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "session"
    config = SessionSettings(**SMALL, seed=3, wrap=True, loss_rate=0.02, miss_rate=0.01, noise_std=0.0,
                           occlusion_rate_hz=1.0)
    return path, config, write_session(path, config)


def test_same_seed_same_session_other_seed_differs(tmp_path, session):
    path, config, truth = session
    again = write_session(tmp_path / "a", config)
    np.testing.assert_array_equal(again.points3d, truth.points3d)
    np.testing.assert_array_equal(again.spike_time_s, truth.spike_time_s)
    for name in ("trigger.csv", "cam0.frames.csv", "cam1.frames.csv", "knob_events.csv", "spikes.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (path / name).read_bytes(), name
    np.testing.assert_array_equal(_video(tmp_path / "a" / "cam1.avi")[1], _video(path / "cam1.avi")[1])
    other = write_session(tmp_path / "b", SessionSettings(**SMALL, seed=4, wrap=True, noise_std=0.0))
    assert np.nanmax(np.abs(other.points3d[:50] - truth.points3d[:50])) > 0.5


def test_truth_round_trip(session):
    path, _, truth = session
    loaded = load_ground_truth(path)
    for name in ("tick_us", "pulse_time_s", "points3d", "visible", "knob_angle_deg", "spike_time_s"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(truth, name), err_msg=name)
    np.testing.assert_array_equal(loaded.touch_intervals, truth.touch_intervals)
    assert loaded.units == truth.units and loaded.rig.to_dict() == truth.rig.to_dict()
    t = truth.pulse_time_s[::7]
    np.testing.assert_array_equal(loaded.rates(t), truth.rates(t))
    with pytest.raises(FileNotFoundError, match="ground truth"):
        load_ground_truth(path.parent)


def test_rig_geometry():
    """f = 12.5 mm / 3.45 um at 1440 px; cam0 is the world frame; both cameras ~150 mm from the knob."""
    rig, _, knob_center = rig_and_lab_frame((1440, 1080))  # the lab origin is the knob centre
    cam0, cam1 = rig
    np.testing.assert_allclose(cam0.K[0, 0], 12.5 / 3.45e-3, rtol=1e-12)  # 3623.2 px
    np.testing.assert_array_equal(cam0.R, np.eye(3))
    np.testing.assert_array_equal(cam0.t, np.zeros(3))
    for cam in rig:
        assert 140 < np.linalg.norm(cam.center - knob_center) < 165
    assert 30 < np.degrees(np.arccos(cam0.R[2] @ cam1.R[2])) < 80
    small = default_rig((160, 128))[1]
    np.testing.assert_allclose(small.K[0, 0], cam1.K[0, 0] / 9, rtol=1e-12)
    np.testing.assert_allclose(small.R, cam1.R, atol=1e-15)


def test_blob_centres_are_projected_truth(session):
    """Centroid of (frame - background) around each drawn keypoint = projection of the true 3D point.
    The session is noise-free, so only uint8 rounding (<= 0.5 DN) and pixel sampling remain: 0.15 px."""
    path, _, truth = session
    backgrounds = session_backgrounds(truth)
    uv_all = truth.points2d()
    errors, checked = [], 0
    for c, cam in enumerate(truth.rig):
        _, frames = _video(path / f"{cam.name}.avi")
        pulses = truth.cameras[cam.name].pulse_index
        uv, vis = uv_all[c][pulses], truth.visible[pulses, c]
        rows, cols = np.mgrid[0:cam.size[1], 0:cam.size[0]]
        for f in range(0, len(pulses), 3):
            residual = np.abs(frames[f].astype(np.float64) - backgrounds[c])
            for p in range(len(BODYPARTS)):
                others = np.delete(np.flatnonzero(vis[f]), np.flatnonzero(np.flatnonzero(vis[f]) == p))
                near = np.linalg.norm(uv[f, others] - uv[f, p], axis=1).min(initial=np.inf)
                x, y = uv[f, p]
                if not vis[f, p] or near < 18 or not (9 < x < cam.size[0] - 10 and 9 < y < cam.size[1] - 10):
                    continue
                window = (np.hypot(cols - x, rows - y) < 8) & (residual > 1.0)
                wts = residual * window
                centroid = np.array([(wts * cols).sum(), (wts * rows).sum()]) / wts.sum()
                errors.append(np.linalg.norm(centroid - uv[f, p]))
                checked += 1
        hidden = ~vis
        assert hidden.any()  # occlusions exist ...
    assert checked > 100
    assert np.max(errors) < 0.15, np.max(errors)


def test_occluded_keypoints_are_not_drawn(session):
    path, _, truth = session
    backgrounds = session_backgrounds(truth)
    cam = truth.rig[0]
    _, frames = _video(path / "cam0.avi")
    pulses = truth.cameras["cam0"].pulse_index
    uv = truth.points2d()[0][pulses]
    vis = truth.visible[pulses, 0]
    inside = (uv[..., 0] > 2) & (uv[..., 0] < cam.size[0] - 3) & (uv[..., 1] > 2) & (uv[..., 1] < cam.size[1] - 3)
    f, p = np.nonzero(~vis & inside)
    assert len(f) > 5
    # a hidden keypoint leaves its pixel at the background level unless another blob is within 12 px
    lonely = [(fi, pi) for fi, pi in zip(f, p)
              if np.linalg.norm(uv[fi, vis[fi]] - uv[fi, pi], axis=1).min(initial=np.inf) > 12]
    assert lonely
    for fi, pi in lonely:
        x, y = np.rint(uv[fi, pi]).astype(int)
        assert abs(float(frames[fi][y, x]) - backgrounds[0][y, x]) <= 0.5


def test_files_match_clock_truth(session):
    path, config, truth = session
    meta = tomllib.loads((path / "session.toml").read_text())
    assert meta["trigger_rate_hz"] == config.fps and [c["name"] for c in meta["camera"]] == ["cam0", "cam1"]
    ticks = np.array([int(r["tick_us"]) for r in _rows(path / "trigger.csv")], dtype=np.int64)
    np.testing.assert_array_equal(ticks, truth.tick_us)
    assert np.any(np.diff(ticks) < 0)  # the tick counter wrapped
    np.testing.assert_allclose(unwrap_ticks(ticks), truth.pulse_time_s, atol=1e-9)
    for cam in meta["camera"]:
        rows = _rows(path / f"{cam['name']}.frames.csv")
        true = truth.cameras[cam["name"]]
        np.testing.assert_array_equal([int(r["frame_id"]) for r in rows], true.frame_id)
        np.testing.assert_array_equal([int(r["camera_ts_ns"]) for r in rows], true.camera_ts_ns)
        count, frames = _video(path / cam["video"])
        assert count == len(frames) == len(rows)
        # FrameID jumps count the frames lost in transfer between delivered frames
        lost_inside = np.sum((true.lost_pulses > true.pulse_index[0]) & (true.lost_pulses < true.pulse_index[-1]))
        assert np.sum(np.diff(true.frame_id) - 1) == lost_inside
        assert not set(true.pulse_index) & set(true.lost_pulses) | set(true.missed_pulses) & set(true.pulse_index)
        assert len(true.lost_pulses) + len(true.missed_pulses) > 0
        alignment = align_frames(true.frame_id, true.camera_ts_ns, ticks, rate_hz=config.fps)
        np.testing.assert_array_equal(alignment.pulse_index, true.pulse_index)
    # the strobe-triggered secondary only exposes pulses the primary exposed
    primary_exposed = np.setdiff1d(np.arange(len(ticks)), truth.cameras["cam0"].missed_pulses)
    assert np.isin(truth.cameras["cam1"].pulse_index, primary_exposed).all()


def test_knob_log_matches_paw(session):
    path, config, truth = session
    scene = truth.scene
    events = _rows(path / "knob_events.csv")
    names = [e["event"] for e in events]
    assert names == ["touch_on", "touch_off"] * (len(names) // 2) + ["touch_on"] * (len(names) % 2)
    times = np.array([float(e["time_s"]) for e in events])
    np.testing.assert_allclose(times, truth.touch_intervals.ravel()[: len(times)], atol=1e-6)
    assert len(truth.touch_intervals) >= 1
    # paw within radius + margin of the knob centre <=> inside a touch interval (1 ms grid, 2 ms guard)
    t = np.arange(truth.pulse_time_s[0], truth.pulse_time_s[-1], 1e-4)
    on = np.zeros(len(t), bool)
    guard = np.zeros(len(t), bool)
    for start, stop in truth.touch_intervals:
        stop = t[-1] if np.isnan(stop) else stop
        on |= (t >= start) & (t <= stop)
        guard |= (np.abs(t - start) < 2e-3) | (np.abs(t - stop) < 2e-3)
    close = scene.paw_knob_distance(t) < scene.touch_distance_mm
    assert np.array_equal(close[~guard], on[~guard])
    # the knob turns only while touched (then springs back within 0.3 s): 30..70 deg per touch
    angle = scene.knob_angle(t)
    after = np.zeros(len(t), bool)
    for start, stop in truth.touch_intervals:
        if np.isfinite(stop):
            after |= (t > stop) & (t < stop + 0.3)
            assert 30 <= angle[(t >= start) & (t <= stop)].max() <= 70
    assert np.all(angle[~on & ~after] == 0)
    # the knob marker sits on the rim at the knob angle
    marker = truth.points3d[:, BODYPARTS.index("knob_marker")]
    np.testing.assert_allclose(marker, scene.knob_rim(truth.knob_angle_deg), atol=1e-9)
    log = _rows(path / "knob_angle.csv")
    log_t = np.array([float(r["time_s"]) for r in log])
    log_a = np.array([float(r["angle_deg"]) for r in log])
    assert np.all(np.diff(log_t) > 0)
    np.testing.assert_allclose(log_a, scene.knob_angle(log_t), atol=360 / 4096 / 2 + 1e-3)
    assert log_a.max() > 30


def test_hand_rotates_with_knob_while_turning():
    scene = make_scene(0.0, 5.0, seed=1)
    b = scene.bounds[0]
    t = np.linspace(b[3], b[4], 50)  # the turn phase of the first trial
    kp = scene.keypoints(t)
    d1, d2 = kp[:, BODYPARTS.index("digit1")], kp[:, BODYPARTS.index("digit2")]
    across = d2 - d1  # lab frame here: roll about y rotates the digit axis in the x-z plane
    roll = np.degrees(np.arctan2(-across[:, 2], across[:, 0]))
    np.testing.assert_allclose(roll - roll[0], scene.knob_angle(t) - scene.knob_angle(t[:1]), atol=1e-9)
    speed = np.linalg.norm(scene.paw_velocity(np.linspace(b[1], b[2], 101)), axis=1)
    # bell-shaped reach: peak mid-way; at the ends only the fidget (< 0.8 mm at < 6 Hz) moves the paw
    assert np.argmax(speed) in range(35, 66) and max(speed[0], speed[-1]) < 0.2 * speed.max()
    fine = np.linspace(0.0, 5.0, 200001)
    numeric = np.gradient(scene.keypoints(fine)[:, 1], fine, axis=0)
    np.testing.assert_allclose(scene.paw_velocity(fine)[1:-1], numeric[1:-1], atol=0.05)


def test_scene_moves_like_a_rat():
    """Reach speeds, accelerations and segment flex in a rat's ranges (issue 32), not a gentle robot's:
    reaches peaking at several hundred mm/s, accelerations of thousands of mm/s^2, digits flexing ~0.5 mm."""
    scene = make_scene(0.0, 60.0, seed=2)
    t = np.arange(0.0, 60.0, 1 / 226)
    kp = scene.keypoints(t)
    speed = np.linalg.norm(scene.paw_velocity(t), axis=1)
    accel = np.linalg.norm(np.gradient(scene.paw_velocity(t), t, axis=0), axis=1)
    reach = (t[:, None] >= scene.bounds[:, 1]) & (t[:, None] < scene.bounds[:, 2])
    peaks = np.array([speed[reach[:, k]].max() for k in range(len(scene.bounds)) if reach[:, k].any()])
    assert 200 < np.median(peaks) < 600, np.median(peaks)
    assert 2000 < np.percentile(accel, 90) < 8000, np.percentile(accel, 90)
    paw, digit = BODYPARTS.index("paw"), BODYPARTS.index("digit1")
    assert 0.2 < np.linalg.norm(kp[:, digit] - kp[:, paw], axis=1).std() < 2.0


def test_frames_carry_a_sensors_noise():
    """Shot noise grows with the signal (variance = level / electrons_per_dn + read^2), the fixed pattern is
    the same in every frame of a camera and differs between cameras, as on a real CMOS sensor."""
    sensor = SensorNoise()
    rng = np.random.default_rng(0)
    frames = {}
    for seed in (1, 2):
        flat = sensor.fixed_pattern(np.r_[np.full((64, 256), 40.0), np.full((64, 256), 180.0)].astype(np.float32),
                                    seed)
        frames[seed] = np.array([render_frame(flat, np.zeros((0, 2)), np.zeros(0, bool), sensor, rng)
                                 for _ in range(200)], dtype=float)
    temporal = frames[1].var(axis=0)  # per pixel, over frames: shot + read (+ 1/12 DN^2 of rounding)
    for rows, level in ((slice(0, 64), 40.0), (slice(64, 128), 180.0)):
        expected = level / sensor.electrons_per_dn + sensor.read_dn ** 2 + 1 / 12
        assert np.median(temporal[rows]) == pytest.approx(expected, rel=0.1)
        pattern = frames[1].mean(axis=0)[rows] - level  # the fixed pattern survives averaging
        fpn = np.sqrt(sensor.dsnu_dn ** 2 + (sensor.prnu * level) ** 2)
        assert pattern.std() == pytest.approx(fpn, rel=0.2)
    other = (frames[2].mean(axis=0) - frames[1].mean(axis=0))[:64]  # another camera, another pattern
    assert other.std() == pytest.approx(np.sqrt(2 * (sensor.dsnu_dn ** 2 + (sensor.prnu * 40) ** 2)), rel=0.2)
    again = sensor.fixed_pattern(np.full((4, 4), 90.0, np.float32), 1)
    np.testing.assert_array_equal(again, sensor.fixed_pattern(np.full((4, 4), 90.0, np.float32), 1))
    quiet = SensorNoise.with_read_noise(0.0)
    image = np.full((8, 8), 90.4, np.float32)
    assert (render_frame(quiet.fixed_pattern(image, 1), np.zeros((0, 2)), np.zeros(0, bool), quiet) == 90).all()


def test_spike_counts_follow_rates():
    """Counts in 0.25 s bins vs the integrated rate: the Pearson chi-square of a correct Poisson process
    has mean n_bins and sd sqrt(2 n_bins); 5 sd is a generous bound. Tuned units must actually vary, and
    their counts follow their rates as closely as Poisson noise allows."""
    scene = make_scene(0.0, 120.0, seed=5)
    units = default_units(6, seed=5)
    ids, times = simulate_spikes(units, scene, 0.0, 120.0, np.random.default_rng(11))
    fine = np.arange(0.0, 120.0, 1e-4) + 5e-5
    rates = unit_rates(units, scene, fine)
    edges = np.arange(0.0, 120.0 + 1e-9, 0.25)
    expected = rates.reshape(len(units), len(edges) - 1, -1).mean(axis=2) * 0.25
    for u, unit in enumerate(units):
        observed = np.histogram(times[ids == unit.unit_id], edges)[0]
        chi2 = np.sum((observed - expected[u]) ** 2 / expected[u])
        n = len(observed)
        assert abs(chi2 - n) < 5 * np.sqrt(2 * n), (unit.kind, chi2, n)
        if unit.kind != "untuned":
            assert expected[u].max() > 2 * expected[u].min()
            # Poisson counts correlate with their rate by sqrt(var(rate) / (var(rate) + mean(rate)))
            e = expected[u]
            assert abs(np.corrcoef(observed, e)[0, 1] - np.sqrt(e.var() / (e.var() + e.mean()))) < 0.1
    # a unit tuned the opposite way would fail: the direction unit's counts do not follow a flipped rate
    flipped = next(u for u in units if u.kind == "direction")
    flipped = type(flipped)(**{**flipped.to_dict(), "preferred_direction_deg": flipped.preferred_direction_deg + 180})
    wrong = unit_rates([flipped], scene, fine).reshape(len(edges) - 1, -1).mean(axis=1) * 0.25
    observed = np.histogram(times[ids == flipped.unit_id], edges)[0]
    assert np.sum((observed - wrong) ** 2 / wrong) > len(observed) + 5 * np.sqrt(2 * len(observed))


def test_session_spikes_match_truth_rates(session):
    path, _, truth = session
    rows = _rows(path / "spikes.csv")
    ids = np.array([int(r["unit_id"]) for r in rows])
    times = np.array([float(r["time_s"]) for r in rows])
    np.testing.assert_allclose(times, truth.spike_time_s, atol=1e-6)
    t = np.arange(truth.pulse_time_s[0], truth.pulse_time_s[-1] + 1 / 60, 1e-4)
    expected = truth.rates(t).sum(axis=1) * 1e-4
    for unit, mu in zip(truth.units, expected):
        assert abs(np.sum(ids == unit.unit_id) - mu) < 5 * np.sqrt(mu) + 1


def test_labeled_frames_in_deeplabcut_layout(tmp_path):
    folder = write_labeled_frames(tmp_path / "labeled-data" / "simvid", 12, (160, 128), seed=2)
    df = pd.read_hdf(folder / "CollectedData_sim.h5", "df_with_missing")
    assert df.columns.names == ["scorer", "bodyparts", "coords"]
    assert list(df.columns.get_level_values("bodyparts").unique()) == list(BODYPARTS)
    assert list(df.index) == [("labeled-data", "simvid", f"img{i:04d}.png") for i in range(12)]
    csv_df = pd.read_csv(folder / "CollectedData_sim.csv", header=[0, 1, 2], index_col=[0, 1, 2])
    np.testing.assert_allclose(csv_df.to_numpy(), df.to_numpy(), rtol=1e-12)
    coords = df.to_numpy().reshape(12, len(BODYPARTS), 2)
    assert np.isfinite(coords).mean() > 0.8
    digit1 = BODYPARTS.index("digit1")  # bright blob, 105 DN above a <= 145 DN background
    for i in np.flatnonzero(np.isfinite(coords[:, digit1, 0])):
        image = cv2.imread(str(folder / f"img{i:04d}.png"), cv2.IMREAD_GRAYSCALE)
        x, y = np.rint(coords[i, digit1]).astype(int)
        assert image.shape == (128, 160) and image[y, x] > 150
    again = write_labeled_frames(tmp_path / "again" / "simvid", 12, (160, 128), seed=2)
    pd.testing.assert_frame_equal(pd.read_hdf(again / "CollectedData_sim.h5"), df)


def test_bad_input_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="seconds"):
        SessionSettings(seconds=0)
    with pytest.raises(ValueError, match="size"):
        SessionSettings(size=(8, 8))
    with pytest.raises(ValueError, match="n_frames"):
        write_labeled_frames(tmp_path / "x", 0)
    with pytest.raises(ValueError, match="t_start"):
        make_scene(2.0, 1.0)
