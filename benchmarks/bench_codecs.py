"""Codecs for the rig's video at 1440x1080 Mono8 with a sensor's noise: speed on this machine, size, and
how far DeepLabCut's 2D keypoints move against the raw frames.

Run: nice -n 10 python benchmarks/bench_codecs.py [--frames 226] [--dlc-frames 40] [--threads 2]

Frames are the simulator's rig view of a reaching paw (ratpose.sim.SensorNoise: shot, read and
fixed-pattern noise), one camera. Per codec: encode frames/s with ``--threads`` encoder threads (the
speed ``ratpose compress`` needs is 226 x cameras frames/s, 452 for the lab's two cameras, for a session
to be compressed in the time it lasted), PyAV decode frames/s, kB per frame, the largest pixel change.
A resnet_10 is trained on the rig's labeled frames (bench_pose2d's recipe) and run on the knob workspace
crop of each codec's first ``--dlc-frames`` frames: median and 90th percentile of how far each keypoint
moved from its position on the raw frames (the target: <= 0.1 px median), and the 2D error against the
simulator's truth. Then ``ratpose compress`` itself on a 2-camera raw session of ``--frames`` frames:
its wall time against the session's duration.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import tomli_w
from bench_pose2d import FPS, SIZE, _session, _train  # the same frames and model recipe

from ratpose.acquisition.compress import compress_session
from ratpose.pose2d import dlc
from ratpose.pose2d.workspace import Workspace, crop_for_camera
from ratpose.video import VideoWriter, decode_gray, nvenc_available

# label -> (codec of VideoWriter, crf, preset, extra encoder options)
VARIANTS = {
    "raw": ("raw", 18, "veryfast", {}),
    "ffv1 (compress until now: level 3, 4 slices)": ("ffv1", 18, "veryfast", {}),
    "ffv1 level 3, 16 slices": ("ffv1", 18, "veryfast", {"slices": "16"}),
    "ffv1 level 3, 24 slices, range coder": ("ffv1", 18, "veryfast", {"slices": "24", "coder": "range_def"}),
    "magicyuv median (avi)": ("magicyuv", 18, "veryfast", {}),
    "ffvhuff median (avi)": ("ffvhuff", 18, "veryfast", {}),
    "x264 lossless ultrafast": ("h264_lossless", 18, "ultrafast", {}),
    "x264 lossless superfast": ("h264_lossless", 18, "superfast", {}),
    "x264 lossless veryfast": ("h264_lossless", 18, "veryfast", {}),
    "x264 crf 18 veryfast fastdecode (recorder)": ("h264", 18, "veryfast", {}),
    "x264 crf 18 ultrafast fastdecode": ("h264", 18, "ultrafast", {}),
    "x264 crf 23 ultrafast fastdecode": ("h264", 23, "ultrafast", {}),
    "x265 crf 23 ultrafast": ("h265", 23, "ultrafast", {}),
}


def encode(path: Path, frames, codec, crf, preset, options, threads) -> float:
    """Frames/s of encoding ``frames`` into ``path`` (the encoder flushed and the file closed)."""
    start = time.perf_counter()
    writer = VideoWriter(path, SIZE[0], SIZE[1], FPS, codec=codec, crf=crf, preset=preset, threads=threads,
                         extra_options=options)
    for f in frames:
        writer.write(f)
    writer.close()
    return len(frames) / (time.perf_counter() - start)


def decode(path: Path, threads: int) -> tuple[float, list[np.ndarray]]:
    start = time.perf_counter()
    frames = list(decode_gray(path, threads=threads))
    return len(frames) / (time.perf_counter() - start), frames


def compress_speed(root: Path, frames, n_cameras: int = 2) -> tuple[float, float]:
    """Wall seconds of ``ratpose compress`` (FFV1 + frame-by-frame verification) of a raw session of
    ``n_cameras`` x len(frames) frames, and the session's duration."""
    folder = root / "session"
    folder.mkdir()
    cams = []
    for c in range(n_cameras):
        encode(folder / f"cam{c}.avi", frames, "raw", 18, "veryfast", {}, 0)
        cams.append({"name": f"cam{c}", "video": f"cam{c}.avi"})
    (folder / "session.toml").write_text(tomli_w.dumps({"camera": cams}))
    start = time.perf_counter()
    compress_session(folder)
    return time.perf_counter() - start, len(frames) / FPS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=226, help="frames per codec (226: one second of one camera)")
    parser.add_argument("--dlc-frames", type=int, default=40, help="frames through the network per codec")
    parser.add_argument("--threads", type=int, default=2, help="encoder/decoder threads (this machine: 2 cores)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--only", default="", help="run only the codecs whose label contains this text")
    parser.add_argument("--no-dlc", action="store_true", help="speed and size only (no network trained)")
    args = parser.parse_args()
    views, points3d, scene = _session(args.frames, 3.0)
    cam, frames, points2d = views[1]
    variants = {label: v for label, v in VARIANTS.items() if label == "raw" or args.only in label}
    if nvenc_available():
        variants["nvenc cq 18 (GPU)"] = ("h264_nvenc", 18, "veryfast", {})
    workspace = Workspace.around(scene.knob_center, 10.0)
    n = min(args.dlc_frames, args.frames)
    with tempfile.TemporaryDirectory(prefix="bench-codecs-") as tmp:
        root = Path(tmp)
        model = None if args.no_dlc else _train(root / "train", 40, 448, args.epochs, "cpu")
        crop = crop_for_camera(cam, workspace, 16 if model is None else dlc.input_stride(model))
        truth = points2d[:n]
        inside = workspace.contains(points3d[:n]) & np.isfinite(truth).all(axis=-1)
        reference = None

        def keypoints(decoded):  # the network on the decoded pixels (as raw, so no decoder differs)
            if model is None:
                return np.full(truth.shape, np.nan)
            cut = root / "dlc.avi"
            encode(cut, decoded[:n], "raw", 18, "veryfast", {}, 0)
            pose = dlc.analyze_crop(model, cut, crop, batch_size=2)
            return np.stack([pose.x, pose.y], axis=-1)

        print(f"{args.frames} frames {SIZE[0]}x{SIZE[1]} of {cam.name}, {args.threads} threads; DLC on the first {n} "
              f"frames' knob crop {crop.width}x{crop.height}; target encode >= {2 * FPS:.0f} frames/s (2 cameras), "
              f"2D move <= 0.1 px median")
        print(f"{'codec':46s} {'encode/s':>9} {'x452':>6} {'decode/s':>9} {'kB/frame':>9} {'max |dpx|':>9} "
              f"{'2D move med':>11} {'p90':>6} {'2D err med':>10}")
        for label, (codec, crf, preset, options) in variants.items():
            path = root / f"{len(label)}-{codec}.{'avi' if codec in ('magicyuv', 'ffvhuff') else 'mkv'}"
            enc = encode(path, frames, codec, crf, preset, options, args.threads)
            dec, decoded = decode(path, args.threads)
            change = max(int(np.abs(a.astype(int) - b).max()) for a, b in zip(frames, decoded))
            if reference is None:
                reference = keypoints(decoded)
            xy = reference if change == 0 else keypoints(decoded)  # identical pixels: identical keypoints
            moved = np.linalg.norm(xy - reference, axis=-1)[inside]
            error = np.linalg.norm(xy - truth, axis=-1)[inside]
            if model is None:
                moved = np.zeros(1) if change == 0 else moved
            kb = path.stat().st_size / len(frames) / 1e3
            print(f"{label:46s} {enc:9.1f} {enc / (2 * FPS):6.2f} {dec:9.1f} {kb:9.1f} "
                  f"{change:9d} {np.nanmedian(moved):11.3f} {np.nanpercentile(moved, 90):6.3f} "
                  f"{np.nanmedian(error):10.2f}", flush=True)
        wall, duration = compress_speed(root, frames)
        print(f"ratpose compress of 2 cameras x {args.frames} raw frames ({duration:.2f} s of session): {wall:.2f} s, "
              f"{wall / duration:.1f} x the session's duration")


if __name__ == "__main__":
    main()
