"""Synthetic rig throughput: rendering and session writing, small and full size (1440x1080 @ 226 fps).

Run: python benchmarks/bench_sim.py  [--seconds S]   (prints frames/s and the ratio to real time)
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from ratpose.sim import SessionSettings, default_rig, make_scene, render_background, render_frame, rig_and_lab_frame
from ratpose.sim.session import write_session


def bench_render(size, n_frames=100):
    rig, R, t = rig_and_lab_frame(size)
    scene = make_scene(0.0, 5.0, seed=0, lab_to_world_R=R, lab_to_world_t=t)
    uv = rig[0].project(scene.keypoints(np.linspace(0, 5, n_frames)))
    background = render_background(rig[0], scene)
    rng = np.random.default_rng(0)
    visible = np.ones(uv.shape[1], bool)
    start = time.perf_counter()
    for f in range(n_frames):
        render_frame(background, uv[f], visible, rng=rng)
    return n_frames / (time.perf_counter() - start)


def bench_session(config):
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        truth = write_session(tmp, config)
        elapsed = time.perf_counter() - start
    n_frames = sum(len(c.pulse_index) for c in truth.cameras.values())
    return n_frames / elapsed, elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0, help="simulated seconds of the full-size session")
    args = parser.parse_args()
    assert default_rig((1440, 1080))[0].size == (1440, 1080)
    for size in [(160, 128), (640, 480), (1440, 1080)]:
        fps = bench_render(size, 200 if size[0] < 1000 else 50)
        print(f"render_frame {size[0]}x{size[1]}: {fps:8.1f} frames/s  ({fps / 226:.2f} x one camera at 226 fps)")
    small = SessionSettings(seconds=5.0, fps=100.0)
    fps, elapsed = bench_session(small)
    print(f"write_session 160x128, 5 s @ 100 fps, 2 cameras: {elapsed:6.2f} s, {fps:7.1f} frames/s, "
          f"{elapsed / small.seconds:.2f} x real time")
    full = SessionSettings.full_size(seconds=args.seconds, progress=False)
    fps, elapsed = bench_session(full)
    print(f"write_session 1440x1080, {args.seconds:g} s @ 226 fps, 2 cameras: {elapsed:6.2f} s, {fps:7.1f} frames/s, "
          f"{elapsed / full.seconds:.1f} x real time")


if __name__ == "__main__":
    main()
