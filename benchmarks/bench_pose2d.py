"""Pose2D throughput and error on a simulated full-size (1440x1080) session: full frame vs workspace
crop vs DeepLabCut's dynamic crop, one model, one run; and decoding.

A resnet_10 is trained (CPU, random init) on the session's rig's labeled frames, each cut to a
``--window`` px window around its labels with a random shift (as DeepLabCut's crop sampling trains on
big frames). The same model then runs on ``--frames`` consecutive frames of camera ``--camera``:
the full frame; the workspace crop (the box projected through the calibration, on the network's grid):
``knob`` (default; the knob +/- a margin, where the grasp and turn happen) or ``reach`` (every
keypoint of the session + a margin); and the full frame with DLC's dynamic cropping (the first frame
whole, then the previous frame's keypoints + a margin). 2D error against the simulator's truth is
compared on the keypoints inside the workspace (all variants see those). Decoding is overlapped with
inference (ratpose.pose2d.frames.prefetch). Also PyAV decode frames/s of raw, FFV1 and H.264 (the
recorder's default) at 1440x1080 Mono8. Prints the ratios.

    nice -n 10 python benchmarks/bench_pose2d.py                    # CPU, ~6 min on 2 cores
    python benchmarks/bench_pose2d.py --device cuda --frames 2000   # + hour-long session estimate
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ratpose.acquisition.writers import VideoWriter
from ratpose.pose2d import dlc
from ratpose.pose2d.frames import decode_gray
from ratpose.pose2d.workspace import CropBox, Workspace, crop_for_camera
from ratpose.sim import BODYPARTS, write_labeled_frames
from ratpose.sim.cameras import rig_and_lab_frame
from ratpose.sim.render import render_background, render_frame
from ratpose.sim.scene import make_scene

SIZE, FPS, HOUR_FRAMES = (1440, 1080), 226.0, 2 * 813_600


def _session(n: int, camera: int, start_s: float, seed: int = 0):
    """Camera ``camera``'s frames from ``start_s`` on, their true 2D and 3D keypoints, and the scene."""
    rig, R, t = rig_and_lab_frame(SIZE, 2)
    scene = make_scene(0.0, start_s + n / FPS + 1.0, seed=seed, lab_to_world_R=R, lab_to_world_t=t)
    cam = rig[camera]
    points3d = scene.keypoints(start_s + np.arange(n) / FPS)
    points2d = cam.project(points3d)
    background = render_background(cam, scene, seed=seed)
    rng = np.random.default_rng(seed)
    frames = [render_frame(background, p, np.ones(len(p), bool), 2.0, rng) for p in points2d]
    return cam, scene, frames, points2d, points3d


def _write(path: Path, frames, codec: str) -> Path:
    writer = VideoWriter(path, SIZE[0], SIZE[1], FPS, codec=codec)
    for f in frames:
        writer.write(f)
    writer.close()
    return path


def _decode_fps(path: Path, n: int, threads: int) -> float:
    start = time.perf_counter()
    count = sum(1 for _ in decode_gray(path, threads=threads))
    assert count == n, (path, count)
    return n / (time.perf_counter() - start)


def _train(root: Path, n_labels: int, window: int, epochs: int, device: str) -> dlc.TrainedModel:
    """resnet_10 on full-size labeled frames cut to a window around the labels (shifted at random)."""
    write_labeled_frames(root / "full" / "labeled-data" / "sim0", n_labels, SIZE, seed=1)
    rng = np.random.default_rng(1)

    def around_labels(folder, labels):
        return CropBox.around(labels + rng.uniform(-window / 6, window / 6, 2), (window, window), SIZE)

    dlc.crop_labeled_data(root / "full", root / "windows", around_labels, "sim")
    config = dlc.build_project(root / "windows", root / "project", BODYPARTS, train_fraction=0.8, seed=0)
    return dlc.train(config, dlc.TrainParams(net_type="resnet_10", epochs=epochs, batch_size=8, augmentation=False,
                                             device=device, init="random", save_epochs=epochs))


def _run(model, video: Path, n: int, crop, batch_size: int, device: str, dynamic_margin_px=None):
    start = time.perf_counter()
    pose = dlc.analyze_crop(model, video, crop, batch_size=batch_size, device=device,
                            dynamic_margin_px=dynamic_margin_px)
    assert pose.x.shape[0] == n
    return n / (time.perf_counter() - start), pose


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--frames", type=int, default=12, help="consecutive frames through the network, per variant")
    parser.add_argument("--start-s", type=float, default=3.0, help="where in the session those frames start")
    parser.add_argument("--decode-frames", type=int, default=300)
    parser.add_argument("--workspace", default="knob", choices=["reach", "knob"])
    parser.add_argument("--margin-mm", type=float, default=None,
                        help="margin around the reach (default 3) or half-size around the knob (default 10)")
    parser.add_argument("--dynamic-margin-px", type=int, default=48, help="DLC dynamic cropping margin")
    parser.add_argument("--camera", type=int, default=1)
    parser.add_argument("--labels", type=int, default=40, help="labeled frames to train on")
    parser.add_argument("--window", type=int, default=448, help="training window (px), DLC's crop sampling size")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="decoder threads (0: FFmpeg's choice)")
    args = parser.parse_args()

    n = max(args.frames, args.decode_frames)
    cam, scene, frames, points2d, points3d = _session(n, args.camera, args.start_s)
    if args.workspace == "reach":
        margin = 3.0 if args.margin_mm is None else args.margin_mm
        workspace = Workspace.bounding(scene.keypoints(np.arange(0, scene.bounds[-1, -1], 1 / FPS)), margin)
    else:
        margin = 10.0 if args.margin_mm is None else args.margin_mm
        workspace = Workspace.around(scene.knob_center, margin)
    with tempfile.TemporaryDirectory(prefix="bench-pose2d-") as tmp:
        root = Path(tmp)
        decode = {codec: _decode_fps(_write(root / f"{codec}.mkv", frames[:args.decode_frames], codec),
                                     args.decode_frames, args.threads) for codec in ("raw", "ffv1", "h264")}
        video = _write(root / "net.mkv", frames[:args.frames], "h264")
        t0 = time.perf_counter()
        model = _train(root / "train", args.labels, args.window, args.epochs, args.device)
        train_s = time.perf_counter() - t0
        stride = dlc.input_stride(model)
        crops = {c.name: crop_for_camera(c, workspace, stride) for c in rig_and_lab_frame(SIZE, 2)[0]}
        crop = crops[cam.name]
        runs = {"full frame": _run(model, video, args.frames, CropBox.full(SIZE), args.batch_size, args.device),
                "workspace crop": _run(model, video, args.frames, crop, args.batch_size, args.device),
                "dynamic crop": _run(model, video, args.frames, None, 1, args.device, args.dynamic_margin_px)}

    truth = points2d[:args.frames]
    inside = workspace.contains(points3d[:args.frames]) & np.isfinite(truth).all(axis=-1)
    print(f"\n{args.frames} consecutive frames of {SIZE[0]}x{SIZE[1]} from {args.start_s:g} s, camera {cam.name}; "
          f"resnet_10 trained {train_s:.0f} s ({args.labels} labels in {args.window} px windows, "
          f"{args.epochs} epochs), "
          f"device {args.device}")
    print(f"workspace {args.workspace} +/- {margin:g} mm: crop {crop.width}x{crop.height} at ({crop.x0}, {crop.y0}) "
          f"(network stride {stride}); crop area / full frame: "
          + ", ".join(f"{k} {b.width * b.height / (SIZE[0] * SIZE[1]):.2f}" for k, b in crops.items())
          + f"; keypoints inside the workspace {inside.mean():.2f} of these frames")
    full_fps, full_pose = runs["full frame"]
    full_error = None
    for name, (fps, pose) in runs.items():
        error = np.hypot(pose.x - truth[..., 0], pose.y - truth[..., 1])[inside]
        moved = np.hypot(pose.x - full_pose.x, pose.y - full_pose.y)[inside]
        missed = np.isnan(error).mean()
        median = float(np.nanmedian(error)) if missed < 1 else float("nan")
        full_error = median if full_error is None else full_error
        print(f"Pose2D {name:15s}: {fps:7.3f} frames/s  x{fps / full_fps:5.2f}   2D error median {median:6.2f} px "
              f"(x{median / full_error:4.2f} of full frame), 90th pct {np.nanpercentile(error, 90):6.2f} px, "
              f"{missed:.0%} NaN; moved from the full frame's: median {np.nanmedian(moved):.3f} px, "
              f"{np.nanmean(moved > 0.1):.0%} by > 0.1 px   (targets: x >= 3 at error within 5 %)")
    for codec, fps in decode.items():
        print(f"decode {codec:5s} ({args.decode_frames} frames, threads {args.threads}): {fps:8.1f} frames/s   "
              f"ratio to 452 {fps / 452:.2f}")
    if args.device == "cuda":
        print("hour-long session (2 x 813,600 frames): "
              + ", ".join(f"{name} {HOUR_FRAMES / fps / 3600:.2f} h" for name, (fps, _) in runs.items()))


if __name__ == "__main__":
    main()
