"""End-to-end DeepLabCut adapter: simulated labeled frames -> project -> train (CPU, random init)
-> evaluate -> analyse a simulated video, against the simulator's ground truth."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from ratpose.pose2d import dlc
from ratpose.pose2d.workspace import CropBox
from ratpose.sim import BODYPARTS, write_labeled_frames

SIZE = (160, 128)
N_LABELED = 80
N_VIDEO = 30
# resnet_18 on 160x128 frames, no augmentation: the smallest setting that reliably learns the
# blobs on 2 CPU cores in about a minute (see the report / benchmarks/bench_dlc.py).
PARAMS = dlc.TrainSettings(net_type="resnet_18", epochs=25, batch_size=8, augmentation=False, device="cpu",
                         init="random", save_epochs=25, seed=0)
# Thresholds (px, 160x128 frames): labels are exact projections; the heatmap stride is 8 px and
# DLC's location refinement brings errors well under it. A model that has not learned the blobs
# scores ~40 px (random points in the frame), one that confuses two body parts > 15 px. Fresh frames of
# the simulator's rat-like movement (open digits, lifted reaches) measured 2-3.1 px median.
TRAIN_RMSE_MAX = 3.0
TEST_RMSE_MAX = 5.0
VIDEO_MEDIAN_MAX = 4.0


def _write_video(frames_dir: Path, video: Path, n: int) -> None:
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), 30.0, SIZE)
    assert writer.isOpened()
    for i in range(n):
        grey = cv2.imread(str(frames_dir / f"img{i:04d}.png"), cv2.IMREAD_GRAYSCALE)
        writer.write(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    writer.release()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("dlc")
    write_labeled_frames(root / "labels" / "labeled-data" / "sim0", N_LABELED, SIZE, seed=1, scorer="sim")
    config = dlc.build_project(root / "labels", root / "project", BODYPARTS, train_fraction=0.8, seed=0,
                               scorer="sim")
    return dlc.train(config, PARAMS)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """A lossless video of fresh simulated frames (other seed) and its (n, parts, 2) truth."""
    root = tmp_path_factory.mktemp("dlc_video")
    frames = write_labeled_frames(root / "frames", N_VIDEO, SIZE, seed=99, scorer="sim")
    truth = pd.read_hdf(frames / "CollectedData_sim.h5").to_numpy().reshape(N_VIDEO, len(BODYPARTS), 2)
    path = root / "clip.avi"
    _write_video(frames, path, N_VIDEO)
    return path, truth


@pytest.mark.slow
def test_trained_model_records_split_and_files(trained):
    assert trained.bodyparts == tuple(BODYPARTS)
    assert len(trained.train_indices) == 64 and len(trained.test_indices) == 16
    assert sorted(trained.train_indices + trained.test_indices) == list(range(N_LABELED))
    assert trained.snapshot.name == "snapshot-025.pt"
    assert set(trained.checksums) == {"train/snapshot-025.pt", "train/pytorch_config.yaml", "test/pose_cfg.yaml"}
    dlc.verify_checksums(trained)


@pytest.mark.slow
def test_evaluation_against_labels(trained):
    ev = dlc.evaluate(trained, pcutoff=0.5)
    assert (ev.n_train, ev.n_test) == (64, 16)
    assert ev.train_rmse < TRAIN_RMSE_MAX
    assert ev.test_rmse < TEST_RMSE_MAX
    assert ev.test_rmse_pcutoff <= TEST_RMSE_MAX


@pytest.mark.slow
def test_analyze_video_against_truth(trained, video):
    path, truth = video
    pose = dlc.analyze_video(trained, path, batch_size=8, device="cpu")
    assert pose.bodyparts == tuple(BODYPARTS)
    assert pose.x.shape == pose.likelihood.shape == (N_VIDEO, len(BODYPARTS))
    err = np.hypot(pose.x - truth[..., 0], pose.y - truth[..., 1])
    seen = np.isfinite(truth[..., 0])
    assert seen.sum() > 0.8 * seen.size
    assert np.median(err[seen]) < VIDEO_MEDIAN_MAX
    assert np.percentile(err[seen], 90) < 3 * VIDEO_MEDIAN_MAX
    assert np.median(pose.likelihood[seen]) > 0.5


@pytest.mark.slow
def test_probed_batch_size_gives_the_same_poses(trained, video):
    """batch_size=0 probes the fastest batch size first; poses do not depend on the batch size."""
    path, _ = video
    probed = dlc.analyze_video(trained, path, batch_size=0, device="cpu")
    fixed = dlc.analyze_crop(trained, path, None, batch_size=3, device="cpu")
    for a, b in ((probed.x, fixed.x), (probed.y, fixed.y), (probed.likelihood, fixed.likelihood)):
        np.testing.assert_allclose(a, b, atol=1e-3)
    with pytest.raises(dlc.DLCError, match="batch_size"):
        dlc.analyze_video(trained, path, batch_size=-1, device="cpu")


@pytest.mark.slow
def test_dynamic_cropping_follows_the_animal(trained, tmp_path, monkeypatch):
    """DeepLabCut's DynamicCropper: each pose held for 3 frames; every frame after the first shows the
    network only the box of the previous frame's keypoints + margin, and poses come back in full-frame px."""
    from deeplabcut.pose_estimation_pytorch.runners.dynamic_cropping import DynamicCropper

    frames = write_labeled_frames(tmp_path / "frames", 10, SIZE, seed=98, scorer="sim")
    truth = pd.read_hdf(frames / "CollectedData_sim.h5").to_numpy().reshape(10, len(BODYPARTS), 2)
    held = tmp_path / "held"
    held.mkdir()
    for i in range(30):
        shutil.copy(frames / f"img{i // 3:04d}.png", held / f"img{i:04d}.png")
    path = tmp_path / "held.avi"
    _write_video(held, path, 30)
    seen_sizes = []
    crop = DynamicCropper.crop
    monkeypatch.setattr(DynamicCropper, "crop", lambda self, image: seen_sizes.append(
        tuple(crop(self, image).shape[2:])) or crop(self, image))
    pose = dlc.analyze_video(trained, path, device="cpu", dynamic_margin_px=12)
    assert len(seen_sizes) == 30 and seen_sizes[0] == (SIZE[1], SIZE[0])
    later = np.array([i % 3 != 0 for i in range(30)])   # 2nd and 3rd frame of each pose
    stride = dlc.input_stride(trained)
    for i in range(1, 30):   # what frame i showed: frame i-1's keypoints' box + the margin, in the frame,
        # its corner moved down onto the network's grid
        x, y, confident = pose.x[i - 1], pose.y[i - 1], (pose.likelihood[i - 1] >= dlc.DYNAMIC_THRESHOLD).any()
        x0, y0 = (max(int(np.floor(v.min() - 12)), 0) // stride * stride for v in (x, y))
        width, height = min(int(np.ceil(x.max() + 12)), SIZE[0]) - x0, min(int(np.ceil(y.max() + 12)), SIZE[1]) - y0
        assert seen_sizes[i] == ((height, width) if confident else (SIZE[1], SIZE[0])), i
    assert sum(h * w < SIZE[0] * SIZE[1] for h, w in seen_sizes) >= 15
    err = np.hypot(pose.x - truth[np.arange(30) // 3, :, 0], pose.y - truth[np.arange(30) // 3, :, 1])
    seen = np.isfinite(truth[np.arange(30) // 3, :, 0]) & later[:, None]
    # coordinates come back in full-frame pixels (a crop offset left in would be tens of px off)
    assert np.median(err[seen]) < VIDEO_MEDIAN_MAX
    with pytest.raises(dlc.DLCError, match="dynamic_margin_px"):
        dlc.analyze_video(trained, path, device="cpu", dynamic_margin_px=0)


@pytest.mark.slow
def test_exported_snapshot_gives_same_poses(trained, video, tmp_path):
    path, _ = video
    shutil.copy(trained.snapshot, tmp_path / "model.pt")
    shutil.copy(trained.pytorch_config, tmp_path / "pytorch_config.yaml")
    exported = dlc.register_model(tmp_path / "model.pt")
    assert exported.project_config is None and exported.bodyparts == trained.bodyparts
    assert exported.checksums["model.pt"] == trained.checksums["train/snapshot-025.pt"]
    direct = dlc.analyze_video(trained, path, device="cpu")
    via_runner = dlc.analyze_video(exported, path, device="cpu")
    np.testing.assert_allclose(via_runner.x, direct.x, atol=1e-4)
    np.testing.assert_allclose(via_runner.likelihood, direct.likelihood, atol=1e-5)
    with pytest.raises(dlc.DLCError, match="needs the model's DLC project"):
        dlc.evaluate(exported)

    (tmp_path / "model.pt").write_bytes((tmp_path / "model.pt").read_bytes() + b"\0")
    with pytest.raises(dlc.ChecksumError, match="changed files"):
        dlc.analyze_video(exported, path)
    (tmp_path / "pytorch_config.yaml").unlink()
    with pytest.raises(dlc.ChecksumError, match="missing files"):
        dlc.verify_checksums(exported)


@pytest.mark.slow
def test_register_model_folder_matches_training(trained):
    again = dlc.register_model(trained.model_dir)
    assert again == trained


@pytest.mark.slow
def test_unreadable_video_is_a_clear_error(trained, tmp_path):
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"not a video")
    with pytest.raises(dlc.DLCError, match="broken.avi"):
        dlc.analyze_video(trained, bad)


# ---- fast checks (no training) -------------------------------------------------------------------


@pytest.fixture
def small_labels(tmp_path):
    write_labeled_frames(tmp_path / "labels" / "labeled-data" / "sim0", 4, SIZE, seed=2, scorer="sim")
    return tmp_path / "labels"


def test_build_project_rejects_bad_input(small_labels, tmp_path):
    with pytest.raises(dlc.DLCError, match="no labeled-data"):
        dlc.build_project(tmp_path / "nothing", tmp_path / "p0", BODYPARTS, scorer="sim")
    with pytest.raises(dlc.DLCError, match="no labeled-data"):
        dlc.build_project(small_labels, tmp_path / "p1", BODYPARTS, scorer="someone_else")
    with pytest.raises(dlc.DLCError, match=r"body parts \['tail'\] are not labeled"):
        dlc.build_project(small_labels, tmp_path / "p2", list(BODYPARTS) + ["tail"], scorer="sim")
    with pytest.raises(dlc.DLCError, match="train_fraction"):
        dlc.build_project(small_labels, tmp_path / "p3", BODYPARTS, train_fraction=1.0, scorer="sim")


def test_train_params_are_validated():
    with pytest.raises(dlc.DLCError, match="device"):
        dlc.TrainSettings(device="tpu")
    with pytest.raises(dlc.DLCError, match="epochs"):
        dlc.TrainSettings(epochs=0)


def test_imagenet_init_offline_is_a_clear_error(small_labels, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no hub here: fail fast
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_torch_cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_hf_cache"))
    config = dlc.build_project(small_labels, tmp_path / "project", BODYPARTS, train_fraction=0.5, seed=0,
                               scorer="sim")
    with pytest.raises(dlc.DLCError, match="init='random'"):
        dlc.train(config, dlc.TrainSettings(init="imagenet", epochs=1, device="cpu"))
    with pytest.raises(dlc.DLCError, match="does not exist"):
        dlc.train(config, dlc.TrainSettings(init=str(tmp_path / "absent.pt"), epochs=1, device="cpu"))
    assert not list((config.parent / "dlc-models-pytorch").rglob("snapshot-*.pt"))


@pytest.mark.slow
def test_crop_on_the_network_grid_gives_the_full_frame_poses(trained, video):
    """A crop cornered on a multiple of the network's stride shows it the full frame's pixel grid: keypoints
    away from the crop's edge come out as on the full frame, but for the context the crop cuts off. Half a
    stride off the grid, the network sees other pixels and they move by pixels."""
    path, _ = video
    stride = dlc.input_stride(trained)
    assert stride == 16   # DeepLabCut's ResNets: output_stride 16
    full = dlc.analyze_crop(trained, path, None, batch_size=8, device="cpu")

    def moved_px(x0: int, y0: int) -> np.ndarray:
        pose = dlc.analyze_crop(trained, path, CropBox(x0, y0, SIZE[0] - x0, SIZE[1] - y0), batch_size=8,
                                device="cpu")
        away = (full.x - x0 >= 20) & (full.y - y0 >= 20) & (full.likelihood > 0.5)
        return np.hypot(pose.x - full.x, pose.y - full.y)[away]

    on_grid, off_grid = moved_px(stride, stride), moved_px(stride // 2, stride // 2)
    assert len(on_grid) >= 50
    # measured: 0.27 px on the grid (in 160x128 frames every keypoint is near the cut; on 1440x1080 frames
    # the knob crop gives the full frame's poses to < 0.01 px, benchmarks/bench_pose2d.py), 2.6 px off it
    assert np.median(on_grid) < 0.5 and np.median(off_grid) > 4 * np.median(on_grid)


@pytest.mark.slow
def test_a_model_is_fetched_from_the_store_where_its_folder_is_absent(trained, video, clean_db, tmp_path,
                                                                       monkeypatch):
    """PoseModel copies the model's checksummed files to the store; a machine that does not see model_dir
    fetches them into its cache, checks every sha256 and infers the same poses."""
    pose = clean_db["pose"]
    path, _ = video
    elsewhere = tmp_path / "workstation" / "model"
    shutil.copytree(trained.model_dir, elsewhere)
    pose.register_training_set("store", str(tmp_path / "labels"), list(trained.bodyparts), "sim")
    pose.PoseModelParams.insert1({"pose_params": "copied", "mode": "register", "model_path": str(elsewhere)})
    key = pose.request_model("store", "copied")
    pose.PoseModel.populate(key, reserve_jobs=False)
    row = (pose.PoseModel & key).fetch1()
    assert row["model_dir"] == str(elsewhere.resolve()) and len(pose.PoseModel.Files & key) == 1
    shutil.rmtree(elsewhere)                                     # another machine: the folder is not there
    monkeypatch.setenv("RATPOSE_CACHE", str(tmp_path / "gpu-cache"))
    here = pose.model_on_this_machine(row)
    assert Path(here["model_dir"]).is_relative_to(tmp_path / "gpu-cache")
    copied = pose.model_from_row(here, trained.bodyparts)
    np.testing.assert_allclose(dlc.analyze_video(copied, path, device="cpu").x,
                               dlc.analyze_video(trained, path, device="cpu").x, atol=1e-4)
    assert pose.model_on_this_machine(row) == here                # fetched once
