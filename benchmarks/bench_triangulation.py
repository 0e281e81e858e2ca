"""Triangulation throughput: one hour of 2-camera, 10-body-part pose (226 fps) through
ratpose.pose3d.triangulation.triangulate, next to aniposelib's CameraGroup.triangulate and
cv2.triangulatePoints (each on a subset, extrapolated to the hour), in the same run.

Usage: python benchmarks/bench_triangulation.py [--minutes 60] [--subset 200000]
"""
from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np

from ratpose.pose3d.triangulation import triangulate
from ratpose.rig import CameraModel, Rig

FPS = 226
N_PARTS = 10
SIGMA_PX = 0.5


def rig_like_the_lab() -> Rig:
    """Two Blackfly S 1440x1080 with 12.5 mm lenses (f ~ 3623 px), ~152 mm away, 40 degrees apart."""
    target = np.array([0.0, 0.0, 152.0])
    cameras = []
    for name, azimuth in (("cam0", 0.0), ("cam1", 40.0)):
        a = np.deg2rad(azimuth)
        center = target + 152.0 * np.array([np.sin(a), 0.0, -np.cos(a)])
        z = (target - center) / np.linalg.norm(target - center)
        x = np.cross([0.0, 1.0, 0.0], z)
        x /= np.linalg.norm(x)
        R = np.stack([x, np.cross(z, x), z])
        cameras.append(CameraModel(name, (1440, 1080), [[3623, 0, 718], [0, 3623, 541], [0, 0, 1]],
                              [-0.08, 0.12, 0.0005, -0.0003, 0.0], R, -R @ center))
    return Rig(tuple(cameras))


def synthetic_hour(rig: Rig, n_frames: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground truth (n_frames, N_PARTS, 3), noisy pixels (2, n_frames, N_PARTS, 2), likelihoods.

    One minute of distinct points is projected and tiled (projection is not what is measured);
    noise, occlusions (2%) and low-likelihood detections (5%) are drawn for every frame.
    """
    minute = min(n_frames, 60 * FPS)
    truth_minute = np.array([0.0, 0.0, 152.0]) + rng.uniform(-10, 10, (minute, N_PARTS, 3))
    pixels_minute = rig.project(truth_minute)
    reps = -(-n_frames // minute)
    truth = np.tile(truth_minute, (reps, 1, 1))[:n_frames]
    pixels = np.tile(pixels_minute, (1, reps, 1, 1))[:, :n_frames]
    pixels += rng.normal(0.0, SIGMA_PX, pixels.shape)
    pixels[rng.random(pixels.shape[:-1]) < 0.02] = np.nan
    likelihood = np.where(rng.random(pixels.shape[:-1]) < 0.05, rng.uniform(0, 0.6, pixels.shape[:-1]),
                          rng.uniform(0.6, 1.0, pixels.shape[:-1]))
    return truth, pixels, likelihood


def median_error(estimate, truth) -> float:
    return float(np.nanmedian(np.linalg.norm(estimate - truth, axis=-1)))


def contenders(rig: Rig, pixels, likelihood):
    """name -> function triangulating the given (2, n, 1, 2) pixels into (n, 3); same observations for
    all (the others take no likelihoods, so untrusted observations are NaN for them)."""
    trusted = np.where((likelihood >= 0.6)[..., None], pixels, np.nan).reshape(2, -1, 2)
    tools = {
        "ratpose linear": lambda: triangulate(pixels, rig, likelihood).points3d.reshape(-1, 3),
        "ratpose linear, 1 thread": lambda: triangulate(pixels, rig, likelihood, workers=1).points3d.reshape(-1, 3),
        "ratpose + Gauss-Newton": lambda: triangulate(pixels, rig, likelihood, refine=True).points3d.reshape(-1, 3),
    }
    try:
        from aniposelib.cameras import Camera as AniposeCamera
        from aniposelib.cameras import CameraGroup
    except ImportError:
        print("aniposelib not installed: not compared")
    else:
        group = CameraGroup([AniposeCamera(matrix=c.K, dist=c.dist, size=c.size, rvec=c.rvec, tvec=c.t, name=c.name)
                             for c in rig])
        tools["aniposelib triangulate"] = lambda: group.triangulate(trusted, progress=False)
        tools["aniposelib fast=True"] = lambda: group.triangulate(trusted, progress=False, fast=True)

    def opencv():
        undistorted = [cv2.undistortPoints(trusted[c].reshape(-1, 1, 2), cam.K, cam.dist, P=cam.K).reshape(-1, 2)
                       for c, cam in enumerate(rig)]
        projections = [cam.K @ cam.extrinsic_matrix for cam in rig]
        hom = cv2.triangulatePoints(projections[0], projections[1], undistorted[0].T, undistorted[1].T)
        return (hom[:3] / hom[3]).T

    tools["cv2 undistortPoints+triangulatePoints"] = opencv
    return tools


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="recording length to triangulate")
    parser.add_argument("--subset", type=int, default=200_000, help="points for the side-by-side comparison")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds (the best run of each counts)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    rig = rig_like_the_lab()
    n_frames = int(args.minutes * 60 * FPS)
    n_points = n_frames * N_PARTS
    truth, pixels, likelihood = synthetic_hour(rig, n_frames, rng)
    print(f"{n_frames} frames x {N_PARTS} parts x 2 cameras = {n_points:,} 3D points "
          f"({args.minutes:g} min at {FPS} fps); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")

    start = time.perf_counter()
    result = triangulate(pixels, rig, likelihood)
    hour_s = time.perf_counter() - start
    print(f"whole recording through triangulate (linear): {hour_s:.2f} s = {n_points / hour_s / 1e6:.2f} M points/s, "
          f"median 3D error {median_error(result.points3d, truth) * 1000:.1f} um, "
          f"{np.isnan(result.points3d[..., 0]).mean():.1%} NaN (occluded / low likelihood)")
    del result

    # side by side on the same subset, rounds interleaved so that load on a shared machine hits all alike
    n_sub = min(args.subset, n_points)
    frames = -(-n_sub // N_PARTS)
    sub_truth = truth[:frames].reshape(-1, 3)
    tools = contenders(rig, pixels[:, :frames], likelihood[:, :frames])
    first_call = {name: time.perf_counter() for name in tools}
    for name, tool in tools.items():  # warm-up: aniposelib compiles with JAX once per batch shape
        tool()
        first_call[name] = time.perf_counter() - first_call[name]
    best = dict.fromkeys(tools, np.inf)
    errors = {}
    for _ in range(args.repeat):
        for name, tool in tools.items():
            start = time.perf_counter()
            out = tool()
            best[name] = min(best[name], time.perf_counter() - start)
            errors[name] = median_error(out, sub_truth)
    print(f"side by side on {frames * N_PARTS:,} points, best of {args.repeat} interleaved rounds:")
    ours = best["ratpose linear"]
    for name in tools:
        rate = frames * N_PARTS / best[name]
        print(f"  {name:38s} {rate / 1e6:6.2f} M points/s, {n_points / rate:7.2f} s per recording (extrapolated), "
              f"median 3D error {errors[name] * 1000:5.1f} um, ratpose linear is {best[name] / ours:5.1f}x faster"
              + (f" (first call {first_call[name]:.1f} s: JIT)" if name == "aniposelib triangulate" else ""))
    print("cv2 path: no likelihood cut-off, no reprojection error, 2 cameras only")


if __name__ == "__main__":
    main()
