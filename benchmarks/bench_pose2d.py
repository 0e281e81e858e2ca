"""Pose2D throughput on a simulated full-size (1440x1080) session: full frame vs workspace crop, and decoding.

Same DLC model, same run: frames/s on full frames and on the camera's workspace crop (projected
through the calibration, stride-rounded). The workspace is what a lab would set: ``reach`` (default),
the box holding every keypoint of the session (rest position to knob, the whole reach) + a margin;
or ``knob``, the knob +/- a margin only (the grasp and turn; the paw at rest leaves it). On this rig
(12.5 mm lenses at ~150 mm, DESIGN.md: a 60 x 45 mm field) the reach fills much of the image, so the
printed crop area fractions bound what cropping can give. Decoding is overlapped through
ratpose.pose2d.frames.prefetch. Also PyAV decode frames/s of raw, FFV1 and H.264 (the recorder's
default) at 1440x1080 Mono8. Prints the ratios. The model is a throw-away resnet_18 (random init, one
epoch): frames/s do not depend on its weights, so no 2D error is printed for it.

    nice -n 10 python benchmarks/bench_pose2d.py                    # CPU, few frames
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
from ratpose.pose2d.frames import batches, decode_gray, prefetch
from ratpose.pose2d.workspace import CropBox, Workspace, crop_for_camera
from ratpose.sim import BODYPARTS, write_labeled_frames
from ratpose.sim.cameras import rig_and_lab_frame
from ratpose.sim.render import render_background, render_frame
from ratpose.sim.scene import make_scene

SIZE, FPS, HOUR_FRAMES = (1440, 1080), 226.0, 2 * 813_600


def _session_frames(n: int, camera: int, seed: int = 0):
    rig, R, t = rig_and_lab_frame(SIZE, 2)
    scene = make_scene(0.0, n / FPS + 1.0, seed=seed, lab_to_world_R=R, lab_to_world_t=t)
    cam = rig[camera]
    points2d = cam.project(scene.keypoints(np.arange(n) / FPS))
    background = render_background(cam, scene, seed=seed)
    rng = np.random.default_rng(seed)
    frames = [render_frame(background, p, np.ones(len(p), bool), 2.0, rng) for p in points2d]
    return cam, scene, frames


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


def _infer_fps(runner, video: Path, n: int, crop: CropBox | None, batch_size: int) -> float:
    start = time.perf_counter()
    done = 0
    for batch in prefetch(batches(decode_gray(video, crop=crop), batch_size), maxsize=4):
        runner.inference([np.repeat(f[..., None], 3, axis=2) for f in batch])
        done += len(batch)
    assert done == n
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--frames", type=int, default=6, help="frames run through the network, per variant")
    parser.add_argument("--decode-frames", type=int, default=300)
    parser.add_argument("--workspace", default="reach", choices=["reach", "knob"])
    parser.add_argument("--margin-mm", type=float, default=None,
                        help="margin around the reach (default 3) or half-size around the knob (default 10)")
    parser.add_argument("--camera", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="full/crop timings alternated, best of each")
    parser.add_argument("--threads", type=int, default=0, help="decoder threads (0: FFmpeg's choice)")
    args = parser.parse_args()
    from deeplabcut.pose_estimation_pytorch.apis.utils import get_pose_inference_runner
    from deeplabcut.pose_estimation_pytorch.config import read_config_as_dict

    n = max(args.frames, args.decode_frames)
    cam, scene, frames = _session_frames(n, camera=args.camera)
    keypoints = scene.keypoints(np.arange(n) / FPS)
    if args.workspace == "reach":
        margin = 3.0 if args.margin_mm is None else args.margin_mm
        workspace = Workspace.bounding(keypoints, margin)
    else:
        margin = 10.0 if args.margin_mm is None else args.margin_mm
        workspace = Workspace.around(scene.knob_center, margin)
    crop = crop_for_camera(cam, workspace)
    rig = rig_and_lab_frame(SIZE, 2)[0]
    fractions = {c.name: (lambda b: b.width * b.height / (SIZE[0] * SIZE[1]))(crop_for_camera(c, workspace))
                 for c in rig}
    with tempfile.TemporaryDirectory(prefix="bench-pose2d-") as tmp:
        root = Path(tmp)
        decode = {}
        for codec in ("raw", "ffv1", "h264"):
            video = _write(root / f"{codec}.mkv", frames[:args.decode_frames], codec)
            decode[codec] = _decode_fps(video, args.decode_frames, args.threads)
        net_video = _write(root / "net.mkv", frames[:args.frames], "h264")

        write_labeled_frames(root / "labels" / "labeled-data" / "sim0", 8, (crop.width, crop.height), seed=1)
        config = dlc.build_project(root / "labels", root / "project", BODYPARTS, train_fraction=0.75, seed=0)
        model = dlc.train(config, dlc.TrainParams(net_type="resnet_18", epochs=1, batch_size=4, augmentation=False,
                                                  device=args.device, init="random", save_epochs=1))
        runner = get_pose_inference_runner(model_config=read_config_as_dict(model.pytorch_config),
                                           snapshot_path=model.snapshot, device=args.device, max_individuals=1,
                                           batch_size=args.batch_size)
        _infer_fps(runner, net_video, args.frames, crop, args.batch_size)  # warm-up
        full, cropped = 0.0, 0.0
        for _ in range(args.repeats):  # alternated, best of each: the shared cores' load changes under us
            full = max(full, _infer_fps(runner, net_video, args.frames, None, args.batch_size))
            cropped = max(cropped, _infer_fps(runner, net_video, args.frames, crop, args.batch_size))

    print(f"\n{args.frames} frames of {SIZE[0]}x{SIZE[1]}, resnet_18, batch {args.batch_size}, device {args.device}; "
          f"camera {cam.name}, crop {crop.width}x{crop.height} at ({crop.x0}, {crop.y0}), workspace {args.workspace} "
          f"+/- {margin:g} mm {tuple(round(v, 1) for v in workspace.low)}..{tuple(round(v, 1) for v in workspace.high)}")
    print("crop area / full frame: " + ", ".join(f"{k} {v:.2f}" for k, v in fractions.items())
          + f"; keypoints inside the workspace {workspace.contains(keypoints).mean():.2f}")
    print(f"Pose2D full frame : {full:8.2f} frames/s")
    print(f"Pose2D crop       : {cropped:8.2f} frames/s   ratio crop/full {cropped / full:.2f} (target >= 3)")
    for codec, fps in decode.items():
        print(f"decode {codec:5s} ({args.decode_frames} frames, threads {args.threads}): {fps:8.1f} frames/s   "
              f"ratio to 452 {fps / 452:.2f}")
    if args.device == "cuda":
        print(f"hour-long session (2 x 813,600 frames): {HOUR_FRAMES / cropped / 3600:.2f} h with the crop, "
              f"{HOUR_FRAMES / full / 3600:.2f} h full frame")


if __name__ == "__main__":
    main()
