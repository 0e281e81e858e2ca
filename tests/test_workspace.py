"""Rig workspace -> per-camera crop, and crop -> full-frame coordinates (ratpose.pose2d.workspace)."""
import time

import cv2
import numpy as np
import pytest

from ratpose.pose2d.workspace import CropBox, Workspace, crop_for_camera
from ratpose.sim.cameras import rig_and_lab_frame
from ratpose.sim.scene import make_scene

SIZE = (1440, 1080)


@pytest.fixture(scope="module")
def rig_and_workspace():
    rig, R, t = rig_and_lab_frame(SIZE, 2)
    scene = make_scene(0.0, 10.0, seed=3, lab_to_world_R=R, lab_to_world_t=t)
    return rig, Workspace.around(scene.knob_center, 10.0)


def _argmax_network(crop: np.ndarray):
    """A deterministic 'network': the brightest pixel of the image it is given, likelihood 1."""
    y, x = np.unravel_index(np.argmax(crop), crop.shape)
    return np.array([float(x)]), np.array([float(y)]), np.array([1.0])


def test_crop_holds_workspace_projection_like_cv2(rig_and_workspace):
    rig, ws = rig_and_workspace
    for cam in rig:
        crop = crop_for_camera(cam, ws, stride=16)
        assert crop.x0 % 16 == 0 and crop.y0 % 16 == 0      # on the network's grid
        assert crop.width % 16 == 0 or crop.x0 + crop.width == SIZE[0]
        assert crop.height % 16 == 0 or crop.y0 + crop.height == SIZE[1]
        assert crop.width * crop.height < 0.5 * SIZE[0] * SIZE[1]
        pts = ws.surface()
        ref = cv2.projectPoints(pts, cv2.Rodrigues(cam.R)[0], cam.t, cam.K, cam.dist)[0].reshape(-1, 2)
        np.testing.assert_allclose(cam.project(pts), ref, atol=1e-9)
        ref = ref[(ref > -0.5).all(axis=1) & (ref < np.array(SIZE) - 0.5).all(axis=1)]  # inside the image
        assert np.isfinite(crop.to_crop(ref)).all()      # every projected workspace point is in the crop
        lo, hi = ref.min(axis=0), ref.max(axis=0)        # and the crop is tight (within one stride)
        assert lo[0] - crop.x0 < 16.5 and lo[1] - crop.y0 < 16.5
        assert crop.x0 + crop.width - hi[0] < 16.5 + 1 and crop.y0 + crop.height - hi[1] < 16.5 + 1


def test_crop_of_a_workspace_wider_than_the_view_is_the_full_frame(rig_and_workspace):
    rig, ws = rig_and_workspace
    wide = Workspace.around(np.mean([ws.low, ws.high], axis=0), 80.0)   # the rig sees ~60 x 45 mm
    for cam in rig:
        assert crop_for_camera(cam, wide, stride=32) == CropBox.full(SIZE)   # 1080 is no multiple of 32


def test_keypoint_found_at_its_full_frame_pixel(rig_and_workspace):
    rig, ws = rig_and_workspace
    cam = rig[1]
    crop = crop_for_camera(cam, ws)
    rng = np.random.default_rng(0)
    for point in rng.uniform(ws.low, ws.high, (20, 3)):
        px = np.rint(cam.project(point)).astype(int)
        frame = np.zeros(SIZE[::-1], np.uint8)
        frame[px[1], px[0]] = 255
        x, y, lik = crop.to_full_frame(*_argmax_network(crop.cut(frame)))
        assert (x[0], y[0], lik[0]) == (px[0], px[1], 1.0)


def test_outside_crop_is_nan_with_zero_likelihood():
    crop = CropBox(100, 50, 64, 32)
    x, y, lik = crop.to_full_frame(np.array([-3.0, 10.0, 70.0, 5.0]), np.array([4.0, 31.4, 2.0, 40.0]),
                                   np.array([0.9, 0.8, 0.7, 0.6]))
    np.testing.assert_array_equal(x, [np.nan, 110.0, np.nan, np.nan])
    np.testing.assert_array_equal(y, [np.nan, 81.4, np.nan, np.nan])
    np.testing.assert_array_equal(lik, [0.0, 0.8, 0.0, 0.0])
    local = crop.to_crop(np.array([[99.0, 60.0], [120.0, 60.0], [120.0, 90.0]]))
    np.testing.assert_array_equal(local, [[np.nan, np.nan], [20.0, 10.0], [np.nan, np.nan]])


def test_workspace_outside_image_or_behind_camera_is_refused(rig_and_workspace):
    rig, ws = rig_and_workspace
    cam = rig[0]
    far = Workspace.around(np.array([5000.0, 0.0, 300.0]), 10.0)
    with pytest.raises(ValueError, match="outside"):
        crop_for_camera(cam, far)
    with pytest.raises(ValueError, match="behind"):
        crop_for_camera(cam, Workspace.around(np.array([0.0, 0.0, -300.0]), 10.0))
    with pytest.raises(ValueError, match="exceed"):
        Workspace((0, 0, 0), (1, -1, 1))


def _random_video(path, n_frames: int, codec: str, seed: int) -> np.ndarray:
    """Write n_frames random 64x48 Mono8 frames with codec; returns them."""
    from ratpose.video import VideoWriter

    frames = np.random.default_rng(seed).integers(0, 256, (n_frames, 48, 64), dtype=np.uint8)
    writer = VideoWriter(path, 64, 48, 226.0, codec=codec)
    for f in frames:
        writer.write(f)
    writer.close()
    return frames


def test_decode_cropped_and_prefetched_matches_frames(tmp_path):
    from ratpose.pose2d.frames import batches, prefetch
    from ratpose.video import decode_gray

    frames = _random_video(tmp_path / "v.mkv", 7, "ffv1", seed=1)
    crop = CropBox(8, 16, 32, 24)
    got = np.concatenate(list(batches(prefetch(decode_gray(tmp_path / "v.mkv", crop=crop, threads=2), 2), 3)))
    np.testing.assert_array_equal(got, frames[:, 16:40, 8:40])


def test_prefetch_passes_producer_errors():
    from ratpose.pose2d.frames import prefetch

    def broken():
        yield 1
        raise OSError("disk gone")

    out = []
    with pytest.raises(OSError, match="disk gone"):
        for item in prefetch(broken(), 1):
            out.append(item)
    assert out == [1]


def test_labeled_frames_cropped_like_inference(tmp_path):
    import pandas as pd

    from ratpose.pose2d.dlc import crop_labeled_data
    from ratpose.sim import write_labeled_frames

    src = write_labeled_frames(tmp_path / "src" / "labeled-data" / "v0", 4, (160, 128), seed=2)
    crop = CropBox(40, 24, 64, 56)
    out = crop_labeled_data(tmp_path / "src", tmp_path / "dst", crop, "sim") / "v0"
    before, after = pd.read_hdf(src / "CollectedData_sim.h5"), pd.read_hdf(out / "CollectedData_sim.h5")
    for name in before.index:
        image = name[-1] if isinstance(name, tuple) else name.split("/")[-1]
        full = cv2.imread(str(src / image), cv2.IMREAD_UNCHANGED)
        cut = cv2.imread(str(out / image), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(cut, full[24:80, 40:104])
    for part in dict.fromkeys(before.columns.get_level_values("bodyparts")):
        x, y = before[("sim", part, "x")].to_numpy(), before[("sim", part, "y")].to_numpy()
        inside = (x >= 39.5) & (x <= 103.5) & (y >= 23.5) & (y <= 79.5)
        np.testing.assert_allclose(after[("sim", part, "x")].to_numpy()[inside], x[inside] - 40)
        np.testing.assert_allclose(after[("sim", part, "y")].to_numpy()[inside], y[inside] - 24)
        assert np.isnan(after[("sim", part, "x")].to_numpy()[~inside]).all()


def test_h264_luma_plane_equals_swscale_grey(tmp_path):
    """decode_gray reads H.264's full-range Y plane directly: the same pixels as PyAV's grey conversion."""
    import av

    from ratpose.video import decode_gray

    frames = _random_video(tmp_path / "v.mkv", 5, "h264", seed=2)
    with av.open(str(tmp_path / "v.mkv")) as container:
        reference = np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])
    got = np.stack(list(decode_gray(tmp_path / "v.mkv", threads=2)))
    np.testing.assert_array_equal(got, reference)
    assert got.shape == frames.shape


def test_workspace_bounding_pilot_points_plus_margin():
    points = np.array([[[1.0, -2.0, 150.0], [np.nan, np.nan, np.nan]], [[4.0, 3.0, 140.0], [2.0, 0.0, 145.0]]])
    ws = Workspace.bounding(points, 2.0)
    assert ws.low == (-1.0, -4.0, 138.0) and ws.high == (6.0, 5.0, 152.0)
    assert ws.contains(points).tolist() == [[True, False], [True, True]]


def test_window_around_points_stays_inside_the_frame():
    box = CropBox.around([[100.0, 50.0], [120.0, 70.0], [np.nan, np.nan]], (64, 48), (320, 240))
    assert (box.x0, box.y0, box.width, box.height) == (78, 36, 64, 48)   # centred on (110, 60)
    assert CropBox.around([[5.0, 230.0]], (64, 48), (320, 240)) == CropBox(0, 192, 64, 48)
    assert CropBox.around(np.full((3, 2), np.nan), (64, 48), (320, 240)) == CropBox(128, 96, 64, 48)
    with pytest.raises(ValueError, match="does not fit"):
        CropBox.around([[0.0, 0.0]], (400, 48), (320, 240))


def test_labeled_frames_cropped_per_image_around_the_labels(tmp_path):
    import pandas as pd

    from ratpose.pose2d.dlc import crop_labeled_data
    from ratpose.sim import write_labeled_frames

    src = write_labeled_frames(tmp_path / "src" / "labeled-data" / "v0", 4, (160, 128), seed=3)
    windows = {}

    def window(folder, labels):
        box = CropBox.around(labels, (48, 40), (160, 128))
        windows[len(windows)] = box
        return box

    out = crop_labeled_data(tmp_path / "src", tmp_path / "dst", window, "sim") / "v0"
    before, after = pd.read_hdf(src / "CollectedData_sim.h5"), pd.read_hdf(out / "CollectedData_sim.h5")
    for row, name in enumerate(before.index):
        box = windows[row]
        image = name[-1] if isinstance(name, tuple) else name.split("/")[-1]
        full = cv2.imread(str(src / image), cv2.IMREAD_UNCHANGED)
        cut = cv2.imread(str(out / image), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(cut, box.cut(full))
        xy = before.iloc[row].to_numpy().reshape(-1, 2)
        np.testing.assert_allclose(after.iloc[row].to_numpy().reshape(-1, 2), box.to_crop(xy))


def test_rig_defaults_give_new_pose2d_tasks_their_workspace(clean_db, tmp_path, capsys):
    """`ratpose defaults --workspace ... --dynamic-margin ...`: the rig's next Pose2DTask rows infer on
    that box's crops with DLC's dynamic cropping; a box with high <= low is one clear error."""
    from conftest import build_simulated_pipeline

    from ratpose import cli
    from ratpose.pose2d import model_to_row
    from ratpose.sim import SessionSettings

    db = clean_db
    _, session, _ = build_simulated_pipeline(db, tmp_path, SessionSettings(seconds=4.0, fps=30.0, size=(640, 480)))
    pose, raw = db["pose"], db["raw"]
    rig = (raw.Session & session).fetch1("rig")
    pose.PoseModelParams.insert1({"pose_params": "cropnet", "mode": "register", "model_path": "elsewhere"})
    model = pose.request_model("sim", "cropnet")
    pose.PoseModel.insert1({**model, **model_to_row(None), "model_dir": "elsewhere"}, allow_direct_insert=True)
    assert cli.main(["defaults", "--rig", rig, "--model", "cropnet", "--workspace", "0", "0", "0", "-1", "5", "5"]) == 1
    assert "--workspace: workspace high" in capsys.readouterr().err
    assert not pose.PoseDefaults & {"rig": rig}
    assert cli.main(["defaults", "--rig", rig, "--model", "cropnet", "--workspace", "-10", "-10", "140", "10", "10",
                     "160", "--dynamic-margin", "40"]) == 0
    (pose.Pose2DTask & session).delete(prompt=False, part_integrity="cascade")
    assert pose.Pose2D.schedule() == 2
    tasks = (pose.Pose2DTask & session).to_dicts()
    assert {t["pose_params"] for t in tasks} == {"cropnet"} and {t["mode"] for t in tasks} == {"infer"}
    for task in tasks:
        np.testing.assert_array_equal(task["workspace"], [[-10, -10, 140], [10, 10, 160]])
        assert task["dynamic_margin_px"] == 40


def test_batch_size_probe_stops_at_the_first_slower_or_out_of_memory_size():
    from ratpose.pose2d.frames import fastest_batch_size

    frame = np.zeros((4, 4), np.uint8)
    seen = []

    def gpu_like(batch):   # a fixed cost per call + per frame: larger batches are faster, up to 8
        seen.append(len(batch))
        if len(batch) > 8:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        time.sleep(0.004 + 0.0005 * len(batch))

    assert fastest_batch_size(gpu_like, frame) == 8 and max(seen) == 16

    def cpu_like(batch):   # best at 2 frames a call, much worse at 4 (caches): 2 wins, 4 stops the probe
        time.sleep({1: 0.004, 2: 0.005}.get(len(batch), 0.01 * len(batch)))

    assert fastest_batch_size(cpu_like, frame, candidates=(1, 2, 4, 8)) == 2

    def broken(batch):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        fastest_batch_size(broken, frame)


@pytest.mark.slow
def test_pose2d_on_a_workspace_keeps_the_crop_the_network_saw(clean_db, tmp_path):
    """Pose2D with a workspace: each camera's network runs on the box's crop (corner on the network's
    grid), the row keeps that crop, and keypoints come back in full-frame px inside it or NaN, likelihood 0."""
    from conftest import build_simulated_pipeline

    from ratpose.pose2d import input_stride, model_from_row
    from ratpose.schema.jobs import populate
    from ratpose.sim import SessionSettings

    db = clean_db
    truth, session, _ = build_simulated_pipeline(db, tmp_path, SessionSettings(seconds=1.0, fps=30.0, size=(640, 480)))
    pose, calib = db["pose"], db["calib"]
    pose.PoseModelParams.insert1({"pose_params": "quick", "mode": "train", "net_type": "resnet_10", "epochs": 1,
                                  "augmentation": False, "device": "cpu", "init": "random"})
    model_key = pose.request_model("sim", "quick")
    populate({"PoseModel": pose.PoseModel})
    model = model_from_row((pose.PoseModel & model_key).fetch1(), tuple(pose.training_bodyparts(model_key)))
    workspace = Workspace.around(truth.scene.knob_center, 10.0)
    assert pose.schedule_pose2d(session, model_key, workspace=workspace, batch_size=4) == 2
    assert populate({"Pose2D": pose.Pose2D})["Pose2D"]["error_list"] == []
    rig = calib.session_rig(session)
    rows = (pose.Pose2D & session & model_key).to_dicts()
    assert len(rows) == 2
    for row in rows:
        crop = crop_for_camera(rig[row["camera"]], workspace, stride=input_stride(model))
        assert (crop.x0 % 16, crop.y0 % 16) == (0, 0) and crop.width * crop.height < 0.5 * 640 * 480
        assert (row["crop_x0"], row["crop_y0"], row["crop_width"], row["crop_height"]) == (
            crop.x0, crop.y0, crop.width, crop.height)
        for part in (pose.Pose2D.BodyPart & row).to_dicts():
            xy = np.stack([part["x"], part["y"]], axis=1)
            seen = np.isfinite(xy).all(axis=1)
            assert len(xy) == row["n_frames"] and np.isfinite(crop.to_crop(xy[seen])).all()
            assert (part["likelihood"][~seen] == 0).all()
