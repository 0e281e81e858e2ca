"""Fisheye (cv2.fisheye, equidistant k1..k4) cameras: projection, calibration ladder, Anipose interop."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from ratpose.calibration import CharucoBoard, calibrate_from_detections, detect_views, load_rig, save_rig
from ratpose.pose3d.triangulation import triangulate
from ratpose.rig import CameraModel, Rig
from ratpose.sim.boards import scale_rig, simulate_calibration_views

SIZE = (640, 480)
RENDER_SIZE = (1280, 960)  # calibration views at twice SIZE: markers far off axis stay large enough to decode
LENS = np.array([0.03, -0.02, 0.01, -0.002])  # k1..k4 of theta
# 112 x 80 mm ChArUco board, 24 inner corners, for a wide view at 150 mm
BOARD = CharucoBoard(7, 5, 16.0, 12.0, "DICT_4X4_50")


def fisheye_rig(f_px: float = 270.0, angle_deg: float = 30.0, working_mm: float = 150.0) -> Rig:
    """Two 640x480 fisheye cameras (~170 deg diagonal) converging on a point ``working_mm`` away."""
    cam0 = CameraModel("cam0", SIZE, [[f_px, 0, 322.0], [0, f_px * 1.0005, 238.5], [0, 0, 1]], LENS, model="fisheye")
    a = np.radians(angle_deg)
    z, x = np.array([-np.sin(a), 0, np.cos(a)]), np.array([np.cos(a), 0, np.sin(a)])
    R1 = np.vstack([x, np.cross(z, x), z])
    centre1 = np.array([0, 0, working_mm]) - working_mm * z
    cam1 = CameraModel("cam1", SIZE, [[f_px * 1.01, 0, 317.0], [0, f_px * 1.01, 243.0], [0, 0, 1]],
                  LENS * [1.2, 0.8, 1.0, 1.0], R1, -R1 @ centre1, model="fisheye")
    return Rig((cam0, cam1))


def test_project_and_undistort_equal_cv2_fisheye():
    cam = fisheye_rig()[1]
    rng = np.random.default_rng(0)
    world = rng.uniform([-400, -300, 100], [400, 300, 600], (500, 3))
    ours = cam.project(world)
    theirs = cv2.fisheye.projectPoints(world.reshape(-1, 1, 3), cam.rvec, cam.t, cam.K, cam.dist)[0].reshape(-1, 2)
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    in_cam = world @ cam.R.T + cam.t
    theta = np.degrees(np.arctan2(np.hypot(in_cam[:, 0], in_cam[:, 1]), in_cam[:, 2]))
    inside = (theta < 80) & np.all((ours > 0) & (ours < SIZE), axis=1)  # in the picture
    assert inside.sum() > 100
    np.testing.assert_allclose(cam.undistort(ours[inside]), in_cam[inside, :2] / in_cam[inside, 2:], atol=1e-9)
    theirs_und = cv2.fisheye.undistortPoints(ours[inside].reshape(-1, 1, 2), cam.K, cam.dist).reshape(-1, 2)
    np.testing.assert_allclose(cam.undistort(ours[inside]), theirs_und, atol=1e-6)
    assert (np.isnan(cam.project(np.full((1, 3), np.nan))).all()
            and np.isnan(cam.undistort(np.full((1, 2), np.nan))).all())
    assert CameraModel.from_dict(cam.to_dict()).model == "fisheye"
    assert cam.scaled((320, 240)).model == "fisheye"
    with pytest.raises(ValueError, match="4 distortion coefficients"):
        CameraModel("bad", SIZE, cam.K, np.zeros(5), model="fisheye")


def test_aniposelib_fisheye_group_imported_triangulates_like_aniposelib(tmp_path):
    from aniposelib.cameras import CameraGroup, FisheyeCamera

    rig = fisheye_rig()
    group = CameraGroup([FisheyeCamera(name=c.name, size=list(c.size), matrix=c.K, dist=c.dist, rvec=c.rvec, tvec=c.t)
                         for c in rig])
    group.dump(str(tmp_path / "calibration.toml"))
    imported = load_rig(tmp_path / "calibration.toml")
    assert [c.model for c in imported] == ["fisheye", "fisheye"]
    np.testing.assert_allclose(imported[1].dist, rig[1].dist)
    rng = np.random.default_rng(1)
    world = rng.uniform([-100, -80, 250], [100, 80, 350], (200, 3))
    points2d = rig.project(world)
    theirs = group.triangulate(points2d, undistort=True)
    ours = triangulate(points2d[:, :, None], imported).points3d[:, 0]
    assert np.abs(ours - theirs).max() < 1e-6
    assert np.abs(ours - world).max() < 1e-6
    # and back out: aniposelib reads ratpose's file as FisheyeCameras
    save_rig(imported, tmp_path / "ours.toml")
    again = CameraGroup.load(str(tmp_path / "ours.toml"))
    assert all(isinstance(c, FisheyeCamera) for c in again.cameras)
    assert np.abs(again.triangulate(points2d, undistort=True) - world).max() < 1e-6


def test_simulated_fisheye_rig_auto_selects_fisheye_and_meets_the_accuracy_bars():
    rig_true = fisheye_rig(220.0)  # ~190 deg across the diagonal; views reach 70 deg off axis
    truth = scale_rig(rig_true, RENDER_SIZE)
    frames, singles = simulate_calibration_views(rig_true, BOARD, 10, 24, seed=5, image_size=RENDER_SIZE)
    views = detect_views(frames, BOARD, singles)
    rig, report = calibrate_from_detections(views, BOARD, lens_model="auto")
    print({c: (q.lens_model, round(q.rms_px, 3), {m: round(e, 3) for m, e in q.heldout_px.items()})
           for c, q in report.cameras.items()})
    for est, true in zip(rig, truth):
        quality = report.cameras[est.name]
        assert quality.lens_model == "fisheye" and est.model == "fisheye" and len(est.dist) == 4
        assert quality.heldout_px["fisheye"] == min(quality.heldout_px.values())
        np.testing.assert_allclose(np.diag(est.K)[:2], np.diag(true.K)[:2], rtol=0.005)
        np.testing.assert_allclose(est.K[:2, 2], true.K[:2, 2], atol=2.0)
    baseline_true = np.linalg.norm(truth[1].center - truth[0].center)
    print("focal %:", [np.round(100 * (np.diag(e.K)[:2] / np.diag(t.K)[:2] - 1), 3).tolist()
                       for e, t in zip(rig, truth)],
          "principal point px:", [np.round(e.K[:2, 2] - t.K[:2, 2], 2).tolist() for e, t in zip(rig, truth)],
          "baseline %:", round(100 * (np.linalg.norm(rig[1].center) / baseline_true - 1), 4))
    assert abs(np.linalg.norm(rig[1].center) / baseline_true - 1) < 0.005


def test_fisheye_calibration_row_keeps_the_projection(clean_db, tmp_path):
    """An imported fisheye rig becomes Calibration rows with projection 'fisheye' and comes back the same."""
    calib = clean_db["calib"]
    rig = fisheye_rig()
    save_rig(rig, tmp_path / "calibration.toml")
    key, inserted = calib.import_anipose_calibration(tmp_path / "calibration.toml", "rig1", "2026-11-23T09:00:00")
    calib.Calibration.populate(key)
    assert (calib.Calibration.Camera & key).to_dicts(order_by="camera_order")[0]["projection"] == "fisheye"
    back = calib.fetch_rig(key)
    world = np.random.default_rng(2).uniform([-100, -80, 250], [100, 80, 350], (50, 3))
    assert [c.model for c in back] == ["fisheye", "fisheye"]
    assert np.abs(back.project(world) - rig.project(world)).max() < 1e-9
