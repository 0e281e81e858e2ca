"""Calibration accuracy and speed: simulated ground truth vs number of views, and the real stereo set.

Run: python benchmarks/bench_calibration.py   (the real-data part needs ../shared/data)
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from ratpose.calibration import (
    CharucoBoard,
    Checkerboard,
    calibrate_from_detections,
    detect_views,
)
from ratpose.rig import CameraModel, Rig
from ratpose.sim.boards import scale_rig, simulate_calibration_views

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SIZE = (640, 480)
BOARD = CharucoBoard(9, 7, 4.0, 3.0)


def rot_deg(R):
    return float(np.degrees(np.linalg.norm(cv2.Rodrigues(R)[0])))


def lab_rig() -> Rig:
    """Two 1440x1080 Blackfly S, 12.5 mm lenses, 30 deg apart, converging 150 mm away."""
    f = 12.5 / 3.45e-3
    dist = np.array([-0.12, 0.15, 0.0, 0.0, 0.0])
    a = np.radians(30.0)
    z, x = np.array([-np.sin(a), 0, np.cos(a)]), np.array([np.cos(a), 0, np.sin(a)])
    R1 = np.vstack([x, np.cross(z, x), z])
    return Rig((CameraModel("cam0", (1440, 1080), [[f, 0, 725], [0, f, 532], [0, 0, 1]], dist),
                CameraModel("cam1", (1440, 1080), [[f, 0, 712], [0, f, 545], [0, 0, 1]], dist, R1,
                       -R1 @ (np.array([0, 0, 150.0]) - 150.0 * z))))


def simulated():
    truth = scale_rig(lab_rig(), SIZE)
    print(f"simulated 2-camera rig at {SIZE}, ChArUco 9x7 x 4 mm; 10 joint instants + n single views per camera")
    print(f"{'n_single':>8} {'tangential':>10} {'render s':>8} {'detect s':>8} {'solve s':>7} {'|df|/f %':>8} "
          f"{'|dc| px':>7} {'sd(cx) px':>9} {'baseline %':>10} {'rot deg':>7} {'rms px':>6}")
    for n_single in (8, 16, 32):
        t0 = time.perf_counter()
        frames, singles = simulate_calibration_views(lab_rig(), BOARD, 10, n_single, seed=1, image_size=SIZE)
        t1 = time.perf_counter()
        views = detect_views(frames, BOARD, singles)
        t2 = time.perf_counter()
        for lens_model in ("k1k2", "k1k2p", "auto"):
            t3 = time.perf_counter()
            rig, report = calibrate_from_detections(views, BOARD, lens_model=lens_model)
            t4 = time.perf_counter()
            df = max(abs(e.K[0, 0] / c.K[0, 0] - 1) for e, c in zip(rig, truth)) * 100
            dc = max(np.abs(e.K[:2, 2] - c.K[:2, 2]).max() for e, c in zip(rig, truth))
            sd = max(q.intrinsics_std["cx"] for q in report.cameras.values())
            db = abs(np.linalg.norm(rig[1].center) / np.linalg.norm(truth[1].center) - 1) * 100
            print(f"{n_single:>8} {lens_model:>10} {t1 - t0:>8.2f} {t2 - t1:>8.2f} "
                  f"{t4 - t3:>7.2f} {df:>8.3f} {dc:>7.2f} {sd:>9.2f} {db:>10.3f} "
                  f"{rot_deg(rig[1].R @ truth[1].R.T):>7.3f} {report.rms_px:>6.3f}")


def real_stereo():
    folder = DATA / "stereo-checkerboard"
    if not folder.is_dir():
        print(f"{folder} absent: real-data part skipped")
        return
    board = Checkerboard(9, 6, 30.0)
    frames = {cam: [cv2.imread(str(folder / f"{cam}{i:02d}.jpg"), cv2.IMREAD_GRAYSCALE) for i in range(1, 15)]
              for cam in ("left", "right")}
    t0 = time.perf_counter()
    views = detect_views(frames, board)
    t1 = time.perf_counter()
    rig, report = calibrate_from_detections(views, board)
    t2 = time.perf_counter()
    obj = [board.object_points.astype(np.float32)] * 14
    img = {c: [d.image_points.astype(np.float32) for d in views.shared[c]] for c in ("left", "right")}
    init = {c: cv2.calibrateCamera(obj, img[c], SIZE, None, None, flags=cv2.CALIB_FIX_K3)[1:3] for c in img}
    t3 = time.perf_counter()
    rms, K1, _, K2, _, R, T, _, _ = cv2.stereoCalibrate(
        obj, img["left"], img["right"], *init["left"], *init["right"], SIZE,
        flags=cv2.CALIB_FIX_K3 | cv2.CALIB_USE_INTRINSIC_GUESS,
        criteria=(cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 200, 1e-12))
    t4 = time.perf_counter()
    print("\nreal stereo checkerboard (14 pairs, 640x480, 9x6 x 30 mm)")
    print(f"detection {t1 - t0:.2f} s; ratpose bundle adjustment {t2 - t1:.2f} s; cv2.stereoCalibrate {t4 - t3:.2f} s")
    print(f"rms: ratpose {report.rms_px:.4f} px, stereoCalibrate {rms:.4f} px")
    print(f"max |K difference| {max(np.abs(rig[0].K - K1).max(), np.abs(rig[1].K - K2).max()):.2e} px, "
          f"|T difference| {np.linalg.norm(rig[1].t - T.ravel()):.2e} mm, "
          f"rotation difference {rot_deg(rig[1].R @ R.T):.2e} deg, baseline {np.linalg.norm(T):.2f} mm")
    for cam in rig:
        ref = scipy.io.loadmat(folder / f"Calib_Results_{cam.name}.mat")
        diff = np.diag(cam.K)[:2] - ref["fc"].ravel()
        ratio = np.abs(diff) / ref["fc_error"].ravel()
        print(f"{cam.name}: focal {np.diag(cam.K)[:2].round(2)} vs Bouguet {ref['fc'].ravel().round(2)}: "
              f"difference / Bouguet 3-sigma = {ratio.round(2)}; our 1-sigma fx "
              f"{report.cameras[cam.name].intrinsics_std['fx']:.2f} px vs Bouguet {ref['fc_error'].ravel()[0] / 3:.2f}")


if __name__ == "__main__":
    simulated()
    real_stereo()
