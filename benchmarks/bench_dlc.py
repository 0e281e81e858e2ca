"""Frames/s of ratpose.pose2d.dlc.analyze_video against deeplabcut.analyze_videos on the same video and model.

Trains a throw-away resnet_18 (random init, a few epochs: speed does not depend on accuracy) on
simulated labeled frames, writes a simulated video, then times both calls (best of --repeats).
Prints frames/s and the overhead ratio (ratpose time / DLC time; 1.0 = no overhead).

    python benchmarks/bench_dlc.py                     # CPU
    python benchmarks/bench_dlc.py --device cuda --frames 2000 --size 1440x1080
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ratpose.pose2d import dlc
from ratpose.sim import BODYPARTS, write_labeled_frames
from ratpose.video import VideoWriter


def _video_from_frames(frames_dir: Path, video: Path, n_frames: int, size: tuple[int, int]) -> None:
    images = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(frames_dir.glob("img*.png"))]
    with VideoWriter(video, *size, 226.0, codec="ffv1") as writer:
        for i in range(n_frames):
            writer.write(images[i % len(images)])


def _best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--frames", type=int, default=200, help="video length")
    parser.add_argument("--size", default="160x128", help="frame size WxH")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--net-type", default="resnet_18")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    import deeplabcut

    with tempfile.TemporaryDirectory(prefix="bench-dlc-") as tmp:
        root = Path(tmp)
        write_labeled_frames(root / "labels" / "labeled-data" / "sim0", 24, size, seed=1)
        config = dlc.build_project(root / "labels", root / "project", BODYPARTS, train_fraction=0.75, seed=0)
        t0 = time.perf_counter()
        model = dlc.train(config, dlc.TrainSettings(net_type=args.net_type, epochs=args.epochs, batch_size=8,
                                                  augmentation=False, device=args.device, init="random",
                                                  save_epochs=args.epochs))
        train_s = time.perf_counter() - t0
        frames = write_labeled_frames(root / "video_frames", min(args.frames, 50), size, seed=7)
        video = root / "clip.avi"
        _video_from_frames(frames, video, args.frames, size)

        device = "cuda" if args.device == "cuda" else dlc.resolve_device(args.device)
        dest = root / "dlc_out"
        dest.mkdir()
        pose = dlc.analyze_video(model, video, batch_size=args.batch_size, device=device)  # warm-up
        assert pose.n_frames == args.frames
        ours = _best_time(lambda: dlc.analyze_video(model, video, batch_size=args.batch_size, device=device),
                          args.repeats)
        direct = _best_time(lambda: deeplabcut.analyze_videos(
            str(config), [str(video)], shuffle=1, destfolder=str(dest), batch_size=args.batch_size,
            device=device, overwrite=True), args.repeats)

    print(f"\nnet {args.net_type}, {args.frames} frames of {size[0]}x{size[1]}, batch {args.batch_size}, "
          f"device {device}; training {args.epochs} epochs on 18 frames took {train_s:.1f} s")
    print(f"ratpose.pose2d.dlc.analyze_video : {ours:7.2f} s  {args.frames / ours:8.1f} frames/s")
    print(f"deeplabcut.analyze_videos : {direct:7.2f} s  {args.frames / direct:8.1f} frames/s")
    print(f"overhead ratio (ratpose / DLC): {ours / direct:.3f}")
    print(f"likelihood median {np.median(pose.likelihood):.2f} (untrained-ish model; speed only)")


if __name__ == "__main__":
    main()
