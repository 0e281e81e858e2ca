"""3D from real 2D without ground truth: ratpose's default reconstruction (Pose3DSettings(), through
ratpose.pose3d.reconstruct, gates included), ratpose linear (the LINEAR row of Pose3DParams) and aniposelib's
triangulate (DLT) and triangulate_optim (anipose's default settings) on sleap-anipose's real 4-camera
minimal session, scored by held-out-camera error (ratpose.pose3d.validation.held_out_errors: for each
camera, reconstruct from the others, project into it, compare with its own 2D).

Data: --data DIR holding calibration.toml (anipose format; ratpose reads it with
ratpose.calibration.interop, aniposelib with CameraGroup.load) and <cam>/minimal_<cam>_proofread.analysis.h5
(SLEAP analysis HDF5: tracks, point_scores as likelihood; where there are no scores, 1 where the 2D is
finite). aniposelib gets what anipose's triangulate.py gives it: 2D below score_threshold 0.8 as NaN, no
scores, no constraints (anipose's default config has none; the SLEAP skeleton's edges include the tail,
which is not rigid). anipose's 0.8 was chosen for DeepLabCut likelihoods; SLEAP's point scores run lower
(half of back's and side's are below 0.45), so 'aniposelib optim, all 2D' is the same call on every finite
2D point (no threshold, as sleap-anipose passes them). triangulate_optim fills frames where a point has too
few cameras by interpolation, as anipose does. Each method is called once on the first 30 frames before
it is timed (numba compiles aniposelib's functions on first use).

The session's calibration has 'side' as an exact copy of 'top' (ratpose's reader refuses such a file; here
it is read anyway). Where calibration.metadata.h5 holds the board corners, each camera's median board
reprojection error is printed, and the benchmark runs twice: all calibrated cameras, then without those
whose board error exceeds --broken-px (a calibration that does not fit its own board).

Prints per run and method: per camera the median over parts of the held-out error (px), the median and
p95 over all held-out (camera, frame, part) errors, the fraction of judged held-out observations that got a
3D point, coverage (fraction of (frame, part) with a finite 3D point from all cameras of the run), seconds
of that all-camera reconstruction (for ratpose: reconstruct() as called, its own QC and held-out check
included); then ratpose default / each aniposelib triangulate_optim per camera.
Usage: python benchmarks/bench_pose3d_real.py [--data DIR] [--min-likelihood 0.5] [--broken-px 10]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ratpose.calibration.interop import CalibrationError, load_rig
from ratpose.pose3d import Pose3DSettings, reconstruct
from ratpose.pose3d.validation import held_out_errors

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sleap-anipose-minimal"
#: ratpose/schema/pose.py Pose3DParams.LINEAR, as the dataclass
LINEAR = Pose3DSettings(method="linear", min_likelihood=0.6, max_reprojection_px=10.0, refine=True, median_window=0)
#: anipose's DEFAULT_CONFIG['triangulation'] (anipose/anipose.py)
ANIPOSE = dict(scale_smooth=2, scale_length=2, scale_length_weak=1, reproj_error_threshold=5, n_deriv_smooth=3)
ANIPOSE_SCORE_THRESHOLD = 0.8


def load_session(data: Path, names: list[str]):
    """points2d (C, T, P, 2), likelihood (C, T, P) in the given camera order, body part names, fps."""
    import h5py

    points, scores, parts = [], [], None
    for name in names:
        path = data / name / f"minimal_{name}_proofread.analysis.h5"
        with h5py.File(path, "r") as f:
            tracks = f["tracks"][:]  # (n_tracks, 2, n_nodes, n_frames)
            if tracks.shape[0] != 1:
                print(f"{path.name}: {tracks.shape[0]} tracks, using the first")
            xy = tracks[0].transpose(2, 1, 0)  # (T, P, 2)
            finite = np.isfinite(xy).all(axis=-1)
            if "point_scores" in f:
                lik = np.where(finite, f["point_scores"][0].T, np.nan)
            else:
                print(f"{path.name}: no point_scores, likelihood 1 where the 2D is finite")
                lik = np.where(finite, 1.0, np.nan)
            nodes = [n.decode() for n in f["node_names"][:]]
        if parts is not None and nodes != parts:
            sys.exit(f"{path}: body parts {nodes} differ from {parts}")
        parts = nodes
        points.append(xy)
        scores.append(lik)
    lengths = [len(p) for p in points]
    n = min(lengths)
    if len(set(lengths)) > 1:
        print(f"frame counts differ {dict(zip(names, lengths))}: truncated to the common {n}")
    return (np.stack([p[:n] for p in points]), np.stack([s[:n] for s in scores]), parts,
            video_fps(data / names[0] / f"minimal_{names[0]}.mp4"))


def video_fps(path: Path) -> float:
    from ratpose.video import VideoError, video_info

    try:
        fps = video_info(path, count="header").fps
    except VideoError:
        fps = 0.0
    if not fps or not np.isfinite(fps):
        print(f"no frame rate from {path}: assuming 30 fps")
        return 30.0
    return float(fps)


def ratpose_method(params: Pose3DSettings, fps: float, parts: list[str]):
    """estimate(points2d, rig, likelihood) through ratpose.pose3d.reconstruct: every camera's frames are
    pulses 0..T-1 at fps."""
    def estimate(points2d, rig, likelihood):
        n = points2d.shape[1]
        frames = {name: (np.arange(n), np.arange(n) / fps) for name in rig.names}
        pose2d = {name: (points2d[i, ..., 0], points2d[i, ..., 1], likelihood[i]) for i, name in enumerate(rig.names)}
        points3d = reconstruct(rig, frames, pose2d, params, tuple(parts)).points3d
        assert points3d.shape == (n, len(parts), 3), points3d.shape
        return points3d
    return estimate


def aniposelib_method(group, optim: bool, score_threshold: float = ANIPOSE_SCORE_THRESHOLD):
    """estimate(points2d, rig, likelihood) by aniposelib on its own CameraGroup, as anipose's
    triangulate.py calls it (2D below score_threshold as NaN, then triangulate or triangulate_optim)."""
    def estimate(points2d, rig, likelihood):
        g = group.subset_cameras_names(rig.names)
        pts = np.where((likelihood >= score_threshold)[..., None], points2d, np.nan)
        n_cams, n_frames, n_parts, _ = pts.shape
        if not optim:
            return g.triangulate(pts.reshape(n_cams, -1, 2)).reshape(n_frames, n_parts, 3)
        with warnings.catch_warnings():  # numba's object-mode fallback notes on aniposelib's error function
            warnings.simplefilter("ignore")
            return g.triangulate_optim(pts, constraints=[], constraints_weak=[], verbose=False, **ANIPOSE)
    return estimate


def board_errors(data: Path, rig) -> dict[str, float] | None:
    """Each camera's median board-corner reprojection error (px) of the calibration's own triangulated
    corners (calibration.metadata.h5), or None where the file is absent."""
    path = data / "calibration.metadata.h5"
    if not path.exists():
        return None
    import h5py

    with h5py.File(path, "r") as f:
        detected, corners = f["detected_corners"][:], f["triangulated_corners"][:]
    return {c.name: float(np.nanmedian(np.linalg.norm(c.project(corners) - detected[i], axis=-1)))
            for i, c in enumerate(rig)}


def run(label, rig, points2d, likelihood, methods, min_likelihood):
    names = rig.names
    print(f"\n{label}: cameras {', '.join(names)}; held-out 2D judged where likelihood >= {min_likelihood:g}")
    judged = (likelihood >= min_likelihood) & np.isfinite(points2d).all(axis=-1)
    print(f"{'method':26s} " + " ".join(f"{n:>7s}" for n in names)
          + f" {'median':>7s} {'p95':>7s} {'held est':>8s} {'coverage':>8s} {'s':>6s}")
    rows = {}
    for name, estimate in methods.items():
        try:
            estimate(points2d[:, :30], rig, likelihood[:, :30])  # warm-up: numba compiles on first use
            t0 = time.perf_counter()
            full = estimate(points2d, rig, likelihood)
            seconds = time.perf_counter() - t0
            errors = held_out_errors(points2d, rig, likelihood, estimate, min_likelihood=min_likelihood)
        except Exception as exc:  # a method that fails on this data is a result, not the end of the run
            print(f"{name:26s} FAILED: {type(exc).__name__}: {exc}")
            continue
        per_cam = []
        for c in range(len(names)):
            parts = [np.median(e[np.isfinite(e)]) for e in errors[c].T if np.isfinite(e).any()]
            per_cam.append(float(np.median(parts)) if parts else float("nan"))
        finite = errors[np.isfinite(errors)]
        med, p95 = (np.median(finite), np.percentile(finite, 95)) if finite.size else (np.nan, np.nan)
        estimated = np.isfinite(errors)[judged].mean()
        coverage = np.isfinite(full).all(axis=-1).mean()
        rows[name] = per_cam
        print(f"{name:26s} " + " ".join(px(v) for v in per_cam)
              + f" {px(med)} {px(p95)} {estimated:8.1%} {coverage:8.1%} {seconds:6.2f}")
    for optim in ("aniposelib optim", "aniposelib optim, all 2D"):
        if optim in rows and "ratpose default" in rows:
            ratio = np.array(rows["ratpose default"]) / np.array(rows[optim])
            holds = bool(np.all(ratio <= 1.0))
            print(f"ratpose default / {optim}: " + ", ".join(f"{n} {r:.3g}" for n, r in zip(names, ratio))
                  + f"; default <= optim on every camera: {'yes' if holds else 'NO'}")


def px(v: float) -> str:
    return f"{v:7.2f}" if abs(v) < 1e4 else f"{v:7.1e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"session folder (default {DEFAULT_DATA})")
    ap.add_argument("--min-likelihood", type=float, default=0.5,
                    help="held-out camera's 2D judged where its likelihood is at least this (default 0.5)")
    ap.add_argument("--broken-px", type=float, default=10.0,
                    help="a camera whose board reprojection error exceeds this is dropped in the second run")
    args = ap.parse_args()
    calibration = args.data / "calibration.toml"
    if not calibration.is_file():
        sys.exit(f"no sleap-anipose session at {args.data} (no calibration.toml): give --data DIR")

    try:
        rig = load_rig(calibration)
    except CalibrationError as exc:
        print(f"ratpose's reader refuses it: {exc}; read anyway")
        rig = load_rig(calibration, refuse_identical=False)
    points2d, likelihood, parts, fps = load_session(args.data, rig.names)
    print(f"{points2d.shape[1]} frames x {len(parts)} parts x {len(rig)} cameras at {fps:g} fps; "
          f"2D present {np.isfinite(points2d).all(axis=-1).mean():.1%}, "
          f"likelihood >= {args.min_likelihood:g} {np.mean(likelihood >= args.min_likelihood):.1%}")

    default = Pose3DSettings()
    print(f"ratpose default = {default}")
    methods = {"ratpose default": ratpose_method(default, fps, parts),
               "ratpose linear": ratpose_method(LINEAR, fps, parts)}
    try:
        from aniposelib.cameras import CameraGroup

        group = CameraGroup.load(str(calibration))
        methods["aniposelib triangulate"] = aniposelib_method(group, optim=False)
        methods["aniposelib optim"] = aniposelib_method(group, optim=True)
        methods["aniposelib optim, all 2D"] = aniposelib_method(group, optim=True, score_threshold=-np.inf)
        print(f"aniposelib: score_threshold {ANIPOSE_SCORE_THRESHOLD}, constraints none, {ANIPOSE}")
    except ImportError:
        print("aniposelib not installed: not compared")

    board = board_errors(args.data, rig)
    if board is not None:
        print("board reprojection error of the calibration, median px: "
              + ", ".join(f"{n} {e:.2f}" for n, e in board.items()))
    run("all calibrated cameras", rig, points2d, likelihood, methods, args.min_likelihood)
    broken = [n for n, e in (board or {}).items() if not e <= args.broken_px]
    if broken:
        keep = [i for i, n in enumerate(rig.names) if n not in broken]
        run(f"without {', '.join(broken)} (board error > {args.broken_px:g} px)",
            rig.subset([rig.names[i] for i in keep]), points2d[keep], likelihood[keep], methods, args.min_likelihood)


if __name__ == "__main__":
    main()
