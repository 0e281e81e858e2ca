"""Pose2D throughput and error on a simulated full-size (1440x1080) session: full frame vs workspace
crop vs DeepLabCut's dynamic crop, one model, one run; and decoding.

A resnet_10 is trained (CPU, random init) on the session's rig's labeled frames, each cut to a
``--window`` px window around its labels with a random shift (as DeepLabCut's crop sampling trains on
big frames). The same model then runs on ``--frames`` consecutive frames of each camera: the full
frame; the workspace crop (the box projected through the calibration, on the network's grid):
``knob`` (default; the knob +/- a margin, where the grasp and turn happen) or ``reach`` (every
keypoint of the session + a margin); and the full frame with DLC's dynamic cropping (the first frame
whole, then the previous frame's keypoints + a margin). 2D error against the simulator's truth, and
how far each keypoint moved from the full frame's, on the keypoints inside the workspace (all variants
see those), per camera and for the rig (frames/s over both cameras' frames: what an hour of the rig
costs). Decoding is overlapped with inference (ratpose.pose2d.frames.prefetch). Also PyAV decode
frames/s and size of raw, FFV1 and H.264 (the recorder's default) at 1440x1080 Mono8. Prints the ratios.

    nice -n 10 python benchmarks/bench_pose2d.py                    # CPU, ~6 min on 2 cores
    python benchmarks/bench_pose2d.py --device cuda --frames 2000   # + hour-long session estimate
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ratpose.pose2d import dlc
from ratpose.pose2d.workspace import CropBox, Workspace, crop_for_camera
from ratpose.sim import BODYPARTS, write_labeled_frames
from ratpose.sim.cameras import rig_and_lab_frame
from ratpose.sim.render import render_background, render_frame
from ratpose.sim.scene import make_scene
from ratpose.video import VideoWriter, decode_gray

SIZE, FPS, HOUR_FRAMES = (1440, 1080), 226.0, 2 * 813_600


def _session(n: int, start_s: float, seed: int = 0):
    """Every camera, its ``n`` frames from ``start_s`` on and their true 2D keypoints; the true 3D keypoints
    and the scene."""
    rig, R, t = rig_and_lab_frame(SIZE, 2)
    scene = make_scene(0.0, start_s + n / FPS + 1.0, seed=seed, lab_to_world_R=R, lab_to_world_t=t)
    points3d = scene.keypoints(start_s + np.arange(n) / FPS)
    views = []
    for cam in rig:
        points2d = cam.project(points3d)
        background = render_background(cam, scene, seed=seed)
        rng = np.random.default_rng(seed)
        views.append((cam, [render_frame(background, p, np.ones(len(p), bool), rng=rng) for p in points2d],
                      points2d))
    return views, points3d, scene


def _write(path: Path, frames, codec: str) -> Path:
    writer = VideoWriter(path, SIZE[0], SIZE[1], FPS, codec=codec)
    for f in frames:
        writer.write(f)
    writer.close()
    return path


def _decode(path: Path, n: int, threads: int) -> tuple[float, float]:
    """Decode frames/s and kB per frame of a video of ``n`` frames."""
    start = time.perf_counter()
    count = sum(1 for _ in decode_gray(path, threads=threads))
    assert count == n, (path, count)
    return n / (time.perf_counter() - start), path.stat().st_size / n / 1e3


def _train(root: Path, n_labels: int, window: int, epochs: int, device: str) -> dlc.TrainedModel:
    """resnet_10 on full-size labeled frames cut to a window around the labels (shifted at random)."""
    write_labeled_frames(root / "full" / "labeled-data" / "sim0", n_labels, SIZE, seed=1)
    rng = np.random.default_rng(1)

    def around_labels(folder, labels):
        return CropBox.around(labels + rng.uniform(-window / 6, window / 6, 2), (window, window), SIZE)

    dlc.crop_labeled_data(root / "full", root / "windows", around_labels, "sim")
    config = dlc.build_project(root / "windows", root / "project", BODYPARTS, train_fraction=0.8, seed=0)
    return dlc.train(config, dlc.TrainSettings(net_type="resnet_10", epochs=epochs, batch_size=8, augmentation=False,
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
    parser.add_argument("--labels", type=int, default=40, help="labeled frames to train on")
    parser.add_argument("--window", type=int, default=448, help="training window (px), DLC's crop sampling size")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="decoder threads (0: FFmpeg's choice)")
    args = parser.parse_args()

    views, points3d, scene = _session(max(args.frames, args.decode_frames), args.start_s)
    if args.workspace == "reach":
        margin = 3.0 if args.margin_mm is None else args.margin_mm
        workspace = Workspace.bounding(scene.keypoints(np.arange(0, scene.bounds[-1, -1], 1 / FPS)), margin)
    else:
        margin = 10.0 if args.margin_mm is None else args.margin_mm
        workspace = Workspace.around(scene.knob_center, margin)
    n = args.frames
    inside = workspace.contains(points3d[:n])
    runs, errors, moves = {}, {}, {}   # variant -> per camera: (frames/s, pose); error / move px on inside points
    with tempfile.TemporaryDirectory(prefix="bench-pose2d-") as tmp:
        root = Path(tmp)
        decode = {codec: _decode(_write(root / f"{codec}.mkv", views[1][1][:args.decode_frames], codec),
                                 args.decode_frames, args.threads) for codec in ("raw", "ffv1", "h264")}
        t0 = time.perf_counter()
        model = _train(root / "train", args.labels, args.window, args.epochs, args.device)
        train_s = time.perf_counter() - t0
        stride = dlc.input_stride(model)
        print(f"\n{n} consecutive frames of {SIZE[0]}x{SIZE[1]} from {args.start_s:g} s per camera; resnet_10 trained "
              f"{train_s:.0f} s ({args.labels} labels in {args.window} px windows, {args.epochs} epochs), device "
              f"{args.device}; workspace {args.workspace} +/- {margin:g} mm holds {inside.mean():.2f} of the keypoints")
        for cam, frames, points2d in views:
            video = _write(root / f"{cam.name}.mkv", frames[:n], "h264")
            crop = crop_for_camera(cam, workspace, stride)
            print(f"{cam.name}: crop {crop.width}x{crop.height} at ({crop.x0}, {crop.y0}) (network stride {stride}), "
                  f"{crop.width * crop.height / (SIZE[0] * SIZE[1]):.2f} of the frame")
            truth = points2d[:n]
            seen = inside & np.isfinite(truth).all(axis=-1)
            for name, box, batch, margin_px in (("full frame", CropBox.full(SIZE), args.batch_size, None),
                                                ("workspace crop", crop, args.batch_size, None),
                                                ("dynamic crop", None, 1, args.dynamic_margin_px)):
                fps, pose = _run(model, video, n, box, batch, args.device, margin_px)
                runs.setdefault(name, []).append((fps, pose))
                full = runs["full frame"][-1][1]   # this camera's (the first variant run)
                errors.setdefault(name, []).append(np.hypot(pose.x - truth[..., 0], pose.y - truth[..., 1])[seen])
                moves.setdefault(name, []).append(np.hypot(pose.x - full.x, pose.y - full.y)[seen])
                _report(f"  {name}", fps, runs["full frame"][-1][0], errors[name][-1], errors["full frame"][-1],
                        moves[name][-1])
    print(f"rig ({len(views)} cameras x {n} frames; targets: x >= 3 at 2D error within 5 %):")
    rig_fps = {name: len(views) / sum(1 / fps for fps, _ in per_camera) for name, per_camera in runs.items()}
    for name in runs:
        _report(f"  {name}", rig_fps[name], rig_fps["full frame"], np.concatenate(errors[name]),
                np.concatenate(errors["full frame"]), np.concatenate(moves[name]))
    for codec, (fps, kb) in decode.items():
        print(f"decode {codec:5s} ({args.decode_frames} frames, threads {args.threads}): {fps:8.1f} frames/s   "
              f"ratio to 452 {fps / 452:.2f}   {kb:7.1f} kB/frame")
    if args.device == "cuda":
        print("hour-long session (2 x 813,600 frames): "
              + ", ".join(f"{name} {HOUR_FRAMES / fps / 3600:.2f} h" for name, fps in rig_fps.items()))


def _report(label: str, fps: float, full_fps: float, error: np.ndarray, full_error: np.ndarray, moved: np.ndarray):
    """One line: frames/s and its ratio to the full frame's, 2D error against the truth, move from the full frame."""
    median, full_median = (float(np.nanmedian(e)) if np.isfinite(e).any() else float("nan")
                           for e in (error, full_error))
    print(f"{label:17s}: {fps:7.3f} frames/s  x{fps / full_fps:5.2f}   2D error median {median:6.2f} px "
          f"(x{median / full_median:4.2f} of full frame), 90th pct {np.nanpercentile(error, 90):6.2f} px, "
          f"{np.isnan(error).mean():.0%} NaN; moved from the full frame's: median {np.nanmedian(moved):.3f} px, "
          f"{np.nanmean(moved > 0.1):.0%} by > 0.1 px")


if __name__ == "__main__":
    main()
