"""Calibration on real images nobody here made (skipped when ../shared/data is absent)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io
from calibration_helpers import opencv_heldout_px

from ratpose.calibration import (
    CalibrationError,
    CharucoBoard,
    Checkerboard,
    calibrate_from_detections,
    detect_views,
    heldout_errors,
    load_anipose_board,
    load_rig,
    save_rig,
)
from ratpose.pose3d.triangulation import triangulate

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
STEREO = DATA / "stereo-checkerboard"
SLEAP = DATA / "sleap-anipose-minimal"


def angle_deg(R: np.ndarray) -> float:
    return float(np.degrees(np.linalg.norm(cv2.Rodrigues(R)[0])))


@pytest.fixture(scope="module")
def stereo():
    if not STEREO.is_dir():
        pytest.skip(f"{STEREO} absent")
    board = Checkerboard(9, 6, 30.0)
    frames = {cam: [cv2.imread(str(STEREO / f"{cam}{i:02d}.jpg"), cv2.IMREAD_GRAYSCALE) for i in range(1, 15)]
              for cam in ("left", "right")}
    views = detect_views(frames, board)
    # OpenCV's stereoCalibrate with CALIB_FIX_K3 and Bouguet's toolbox (est_dist [1 1 1 1 0]): k1k2p
    rig, report = calibrate_from_detections(views, board, lens_model="k1k2p")
    return board, views, rig, report


def test_stereo_checkerboard_agrees_with_opencv_stereo_calibrate(stereo):
    board, views, rig, report = stereo
    assert all(d is not None for cam in views.shared for d in views.shared[cam])  # all 14 pairs detected
    obj = [board.object_points.astype(np.float32)] * 14
    img = {cam: [d.image_points.astype(np.float32) for d in views.shared[cam]] for cam in ("left", "right")}
    flags = cv2.CALIB_FIX_K3
    init = {cam: cv2.calibrateCamera(obj, img[cam], (640, 480), None, None, flags=flags)[1:3] for cam in img}
    criteria = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 200, 1e-12)
    rms, K1, d1, K2, d2, R, T, _, _ = cv2.stereoCalibrate(
        obj, img["left"], img["right"], *init["left"], *init["right"], (640, 480),
        flags=flags | cv2.CALIB_USE_INTRINSIC_GUESS, criteria=criteria)
    # Same model, same detections, same joint least-squares objective (the Huber loss is inactive at
    # ~0.2 px residuals), so both optimisers must land on the same minimum: tolerances are ~100x below
    # the parameters' own standard deviations (fx ~0.3 px, cx ~0.4 px).
    for cam, K, dist in ((rig["left"], K1, d1), (rig["right"], K2, d2)):
        np.testing.assert_allclose(cam.K, K, atol=0.005)
        np.testing.assert_allclose(cam.dist, dist.ravel(), atol=1e-5)
    np.testing.assert_allclose(rig["right"].t, T.ravel(), atol=0.002)  # mm, of a ~100 mm baseline
    assert angle_deg(rig["right"].R @ R.T) < 1e-3
    assert abs(report.rms_px - rms) < 1e-4


def test_stereo_checkerboard_focal_lengths_within_bouguet_uncertainty(stereo):
    _, _, rig, report = stereo
    for cam in rig:
        ref = scipy.io.loadmat(STEREO / f"Calib_Results_{cam.name}.mat")
        fc, fc_error = ref["fc"].ravel(), ref["fc_error"].ravel()  # fc_error: the toolbox's 3-sigma
        assert np.all(np.abs(np.diag(cam.K)[:2] - fc) < fc_error), (cam.name, np.diag(cam.K)[:2], fc, fc_error)
        # and our own 1-sigma agrees in size with the toolbox's (joint fit of 28 views: somewhat smaller)
        assert 0.3 < report.cameras[cam.name].intrinsics_std["fx"] / (fc_error[0] / 3) < 1.2
        assert report.cameras[cam.name].rms_px < 0.25  # the toolbox's err_std is ~0.13 px per axis


@pytest.mark.skipif(not SLEAP.is_dir(), reason="sleap-anipose data absent")
def test_sleap_anipose_charuco_rig_agrees_with_anipose():
    board = CharucoBoard(8, 11, 24.0, 18.75, "DICT_4X4_1000")  # board.toml; 11 rows: legacy irrelevant
    # instants 0-8 show the same static board, so 0 stands for them; 'top' sees the board tilted
    # >= 10 deg only in 18-20 (with fewer than 2 such views calibrate_rig rightly refuses it)
    instants = [0, 9, 11, 13, 15, 17, 18, 19, 20]
    frames = {}
    for cam in ("back", "mid", "side", "top"):
        files = {int(p.stem.rsplit("-", 1)[1]): p for p in (SLEAP / cam / "calibration_images").glob("*.jpg")}
        frames[cam] = [cv2.imread(str(files[i]), cv2.IMREAD_GRAYSCALE) for i in instants]
    rig, report = calibrate_from_detections(detect_views(frames, board), board)
    assert report.converged and report.rms_px < 1.0
    with pytest.raises(CalibrationError, match="cameras 'side' and 'top' are identical"):
        load_rig(SLEAP / "calibration.toml")
    anipose = load_rig(SLEAP / "calibration.toml", refuse_identical=False)
    # Anipose fits one focal length, k1 only and a centred principal point, so its focal lengths and
    # distances differ from a full pinhole + (k1, k2, p1, p2) fit by ~1 % (the tolerance here), and
    # its orientations by up to ~atan(10 px / 760 px) = 0.75 deg (our principal points sit ~8-12 px
    # off centre): 1 deg.
    for name in ("back", "mid", "top"):
        assert abs(rig[name].K[0, 0] / anipose[name].K[0, 0] - 1) < 0.015
    for a, b in (("back", "mid"), ("back", "top"), ("mid", "top")):
        ours = np.linalg.norm(rig[a].center - rig[b].center)
        theirs = np.linalg.norm(anipose[a].center - anipose[b].center)
        assert abs(ours / theirs - 1) < 0.015, (a, b, ours, theirs)
        assert abs(angle_deg(rig[b].R @ rig[a].R.T) - angle_deg(anipose[b].R @ anipose[a].R.T)) < 1.0
    # Anipose's file repeats 'top' as 'side' (a known artefact); the images say side is another camera
    assert np.linalg.norm(rig["side"].center - rig["top"].center) > 100
    assert abs(rig["side"].K[0, 0] / rig["top"].K[0, 0] - 1) > 0.1


@pytest.mark.skipif(not SLEAP.is_dir(), reason="sleap-anipose data absent")
def test_sleap_anipose_lens_model_by_heldout_error_and_true_square_size():
    """Chosen lens model beats (or equals) OpenCV's own default calibration on held-out views; squares 24 mm."""
    board = load_anipose_board(SLEAP / "board.toml")
    assert (board.squares_x, board.squares_y, board.square_mm, board.marker_mm, board.dictionary) == (
        8, 11, 24.0, 18.75, "DICT_4X4_1000")
    instants = [0, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]  # 1-8: the same static board as 0
    frames = {}
    for cam in ("back", "mid", "side", "top"):
        files = {int(p.stem.rsplit("-", 1)[1]): p for p in (SLEAP / cam / "calibration_images").glob("*.jpg")}
        frames[cam] = [cv2.imread(str(files[i]), cv2.IMREAD_GRAYSCALE) for i in instants]
    views = detect_views(frames, board)
    rig, report = calibrate_from_detections(views, board)
    for cam, quality in report.cameras.items():
        print(cam, quality.lens_model, {m: round(e, 3) for m, e in quality.heldout_px.items()},
              f"BA RMS {quality.rms_px:.3f} px")
        assert quality.heldout_px == heldout_errors(cam, views, board)  # same views, same folds
        # OpenCV's own calibrateCamera on the same folds, run here: the chosen model must not lose to it
        opencv = opencv_heldout_px(views, cam, board)
        assert quality.heldout_px["opencv"] == pytest.approx(opencv, rel=1e-4)
        assert quality.heldout_px[quality.lens_model] <= opencv * (1 + 1e-4)
    # triangulate every corner seen by 2+ cameras; neighbouring corners are one square apart
    n_ids = len(board.object_points)
    points2d = np.full((len(rig), len(instants), n_ids, 2), np.nan)
    for c, cam in enumerate(rig.names):
        for i, det in enumerate(views.shared[cam]):
            if det is not None:
                points2d[c, i, det.ids] = det.image_points
    xyz = triangulate(points2d, rig, refine=True).points3d
    obj = board.object_points
    pairs = [(a, b) for a in range(n_ids) for b in range(a + 1, n_ids)
             if abs(np.linalg.norm(obj[a] - obj[b]) - 24.0) < 1e-9]
    lengths = np.concatenate([np.linalg.norm(xyz[:, a] - xyz[:, b], axis=1) for a, b in pairs])
    lengths = lengths[np.isfinite(lengths)]
    print(f"square {np.mean(lengths):.4f} mm over {len(lengths)} neighbour pairs (sd {np.std(lengths):.3f})")
    assert len(lengths) > 500 and abs(np.mean(lengths) / 24.0 - 1) < 0.001


@pytest.mark.skipif(not SLEAP.is_dir(), reason="sleap-anipose data absent")
def test_imported_anipose_rig_triangulates_as_aniposelib(tmp_path):
    """Noise-free 2D of the real Anipose rig: ratpose's 3D is exact and agrees with aniposelib's."""
    from aniposelib.cameras import CameraGroup

    rig = load_rig(SLEAP / "calibration.toml", refuse_identical=False).subset(["back", "mid", "top"])
    rig = load_rig(save_rig(rig, tmp_path / "calibration.toml"))  # the duplicated 'side' left out
    rng = np.random.default_rng(0)
    rays = np.c_[rng.uniform(-0.4, 0.4, (2000, 2)), np.ones(2000)] * rng.uniform(150, 400, (2000, 1))
    X = (rays - rig[0].t) @ rig[0].R
    in_cam = np.stack([X @ cam.R.T + cam.t for cam in rig])
    radius = np.linalg.norm(in_cam[..., :2] / in_cam[..., 2:], axis=2)
    X = X[np.all((in_cam[..., 2] > 0) & (radius < 0.4), axis=0)]  # inside the lenses' monotonic range
    points2d = rig.project(X)
    ours = triangulate(points2d[:, None], rig, refine=True).points3d[0]
    theirs = CameraGroup.load(str(tmp_path / "calibration.toml")).triangulate(points2d, undistort=True)
    assert len(X) > 1000 and np.abs(ours - X).max() < 1e-6
    # aniposelib undistorts with cv2.undistortPoints' default 5 iterations: ~1e-4 mm off at r = 0.4
    assert np.abs(theirs - ours).max() < 2e-4
