"""3D from messy 2D: ratpose linear and smooth next to aniposelib's triangulate_optim (anipose's default
settings) and, where installed, EKS (ensemble-kalman-smoother's calibrated multi-camera smoother, its default
settings, the one set of 2D as a one-member ensemble), on simulated sessions with the DLC-like error model
(ratpose.sim.pose2d.DlcErrors), 2 and 3 cameras, in the same run.

EKS needs a jax that the project's venv cannot hold, so it runs in its own Python (--eks-python, default
$RATPOSE_EKS_PYTHON) through benchmarks/eks_runner.py; its time is that of its fit_eks_multicam call.
Reports median / p95 3D error (missing counts as wrong), limb-length RMS against the true lengths,
seconds per 10k frames (scaled to 6 body parts), and the ratios of smooth to the best outside tool.
Usage: python benchmarks/bench_pose3d_smooth.py [--seconds 20] [--seed 0] [--eks-python PATH]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ratpose.pose3d import smooth, triangulate
from ratpose.sim.pose2d import HAND_LIMBS, messy_pose2d

FPS = 226.0
#: anipose's DEFAULT_CONFIG['triangulation'] (anipose/anipose.py), limbs as its constraints
ANIPOSE = dict(scale_smooth=2, scale_length=2, scale_length_weak=1, reproj_error_threshold=5, n_deriv_smooth=3)
ANIPOSE_SCORE_THRESHOLD = 0.8
EKS_RUNNER = Path(__file__).with_name("eks_runner.py")


def aniposelib_optim(rig, points, likelihood):
    from aniposelib.cameras import Camera, CameraGroup

    group = CameraGroup([Camera(matrix=c.K, dist=c.dist, size=c.size, rvec=c.rvec, tvec=c.t, name=c.name) for c in rig])
    pts = np.where((likelihood >= ANIPOSE_SCORE_THRESHOLD)[..., None], points, np.nan)
    scores = np.where(likelihood >= ANIPOSE_SCORE_THRESHOLD, likelihood, 0.0)
    with warnings.catch_warnings():  # numba's object-mode fallback notes on aniposelib's error function
        warnings.simplefilter("ignore")
        return group.triangulate_optim(pts, constraints=[list(l) for l in HAND_LIMBS], scores=scores,
                                       verbose=False, **ANIPOSE)


def eks_multicam(python):
    """EKS in its own interpreter; returns its 3D points and the seconds of its own call."""
    def run(rig, points, likelihood):
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = Path(tmp, "in.npz"), Path(tmp, "out.npz")
            np.savez(src, points=points, likelihood=likelihood, names=[c.name for c in rig],
                     K=[c.K for c in rig], dist=[c.dist for c in rig], rvec=[c.rvec for c in rig],
                     tvec=[c.t for c in rig], size=[c.size for c in rig])
            done = subprocess.run([python, str(EKS_RUNNER), str(src), str(dst)], capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"EKS failed ({python} {EKS_RUNNER.name}): {done.stderr.strip().splitlines()[-1]}")
            out = np.load(dst)
            return out["points3d"], float(out["seconds"])
    return run


def tools(eks_python):
    out = {"ratpose linear": lambda rig, p, l: triangulate(p, rig, l, refine=True, max_reprojection_px=10.0).points3d,
           "ratpose smooth": lambda rig, p, l: smooth(p, rig, l, fps=FPS, limbs=HAND_LIMBS).points3d}
    try:
        import aniposelib  # noqa: F401
        out["aniposelib optim"] = aniposelib_optim
    except ImportError:
        print("aniposelib not installed: not compared")
    if eks_python:
        if not os.access(eks_python, os.X_OK):
            sys.exit(f"--eks-python {eks_python}: not an executable Python")
        out["EKS multicam"] = eks_multicam(eks_python)
    else:
        print("EKS (ensemble-kalman-smoother) not installed: not compared (give --eks-python or RATPOSE_EKS_PYTHON)")
    return out


def scores(estimate, truth):
    e = np.linalg.norm(estimate - truth, axis=-1)
    e = np.where(np.isfinite(e), e, np.inf)
    d = [np.linalg.norm(estimate[:, i] - estimate[:, j], axis=-1) - np.linalg.norm(truth[:, i] - truth[:, j], axis=-1)
         for i, j in HAND_LIMBS]
    return (np.median(e), np.percentile(e, 95, method="higher"), float(np.sqrt(np.nanmean(np.square(d)))),
            np.isfinite(e).mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eks-python", default=os.environ.get("RATPOSE_EKS_PYTHON"),
                    help="a Python with ensemble-kalman-smoother installed (default: $RATPOSE_EKS_PYTHON)")
    args = ap.parse_args()
    methods = tools(args.eks_python)
    for n_cameras in (2, 3):
        rig, truth, points, likelihood, _ = messy_pose2d(args.seconds, n_cameras, seed=args.seed)
        print(f"\n{n_cameras} cameras, {truth.shape[0]} frames x {truth.shape[1]} parts at {FPS:g} fps")
        print(f"{'method':18s} {'median mm':>10s} {'p95 mm':>8s} {'limb RMS':>9s} {'estimates':>9s} {'s/10k fr':>9s}")
        rows = {}
        for name, run in methods.items():
            t0 = time.perf_counter()
            estimate = run(rig, points, likelihood)
            seconds = time.perf_counter() - t0
            if isinstance(estimate, tuple):  # a tool in another process, timed by itself
                estimate, seconds = estimate
            rows[name] = scores(estimate, truth) + (seconds * 1e4 / truth.shape[0] * 6 / truth.shape[1],)
            med, p95, limb, cover, s = rows[name]
            print(f"{name:18s} {med:10.3f} {p95:8.3f} {limb:9.3f} {cover:9.1%} {s:9.2f}")
        outside = [n for n in rows if not n.startswith("ratpose")]
        if outside:
            ours = rows["ratpose smooth"]
            ratios = []
            for label, i in (("median", 0), ("p95", 1), ("limb RMS", 2), ("time", 4)):
                best = min(outside, key=lambda n: rows[n][i])
                ratios.append(f"{label} {ours[i] / rows[best][i]:.3f} ({best})")
            print(f"smooth / best of ({', '.join(outside)}): " + ", ".join(ratios))


if __name__ == "__main__":
    main()
