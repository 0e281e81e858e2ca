"""Triangulation against ground truth on hand-built rigs (ratpose.rig.CameraModel), cv2 and aniposelib."""
import cv2
import numpy as np
import pytest

from ratpose.pose3d.filtering import (
    interpolate_gaps,
    mask_by_cameras,
    mask_by_error,
    mask_spikes,
    median_filter,
    savgol_filter,
)
from ratpose.pose3d.triangulation import Triangulation, triangulate
from ratpose.rig import CameraModel, Rig

TARGET = np.array([0.0, 0.0, 150.0])  # working point, ~150 mm in front of camera 0
DIST = (-0.12, 0.05, 0.0008, -0.0005, 0.0)


def make_camera(name, azimuth_deg, elevation_deg=0.0, f=3600.0, dist=DIST, distance=150.0):
    """A 1440x1080 camera `distance` mm from TARGET, looking at it from the given direction."""
    az, el = np.deg2rad([azimuth_deg, elevation_deg])
    direction = np.array([np.sin(az) * np.cos(el), -np.sin(el), -np.cos(az) * np.cos(el)])
    center = TARGET + distance * direction
    z = (TARGET - center) / np.linalg.norm(TARGET - center)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    K = [[f, 0, 712.3], [0, f * 1.002, 547.8], [0, 0, 1]]
    return CameraModel(name, (1440, 1080), K, dist, R, -R @ center)


@pytest.fixture(scope="module")
def rig2():
    return Rig((make_camera("cam0", 0.0, f=3600.0), make_camera("cam1", 40.0, 5.0, f=2400.0, distance=160.0)))


@pytest.fixture(scope="module")
def rig3():
    return Rig((make_camera("cam0", -30.0, f=3600.0), make_camera("cam1", 10.0, 25.0, f=1200.0, distance=140.0),
                make_camera("cam2", 45.0, -10.0, f=900.0)))


def random_points(n_frames, n_parts, seed=0, half_width=8.0):
    """Points in a +-half_width mm box around TARGET: the rat's reach volume, inside every view."""
    return TARGET + np.random.default_rng(seed).uniform(-half_width, half_width, (n_frames, n_parts, 3))


def test_noise_free_points_recovered(rig2, rig3):
    truth = random_points(500, 10)
    for rig in (rig2, rig3):
        for refine in (False, True):
            result = triangulate(rig.project(truth), rig, refine=refine)
            assert isinstance(result, Triangulation)
            assert result.points3d.shape == truth.shape
            assert np.abs(result.points3d - truth).max() < 1e-6
            assert result.reprojection_error.max() < 1e-6
            assert (result.n_cameras == len(rig)).all() and result.camera_mask.all()
            assert np.isnan(result.score).all()  # no likelihood given


def test_agrees_with_cv2_triangulate_points(rig2):
    rig = Rig(tuple(CameraModel(c.name, c.size, c.K, np.zeros(5), c.R, c.t) for c in rig2))  # undistorted input
    truth = random_points(300, 4, seed=1)
    pixels = rig.project(truth)
    ours = triangulate(pixels, rig).points3d.reshape(-1, 3)
    proj = [c.K @ c.extrinsic_matrix for c in rig]
    hom = cv2.triangulatePoints(proj[0], proj[1], pixels[0].reshape(-1, 2).T, pixels[1].reshape(-1, 2).T)
    theirs = (hom[:3] / hom[3]).T
    assert np.abs(ours - theirs).max() < 1e-6
    assert np.abs(ours - truth.reshape(-1, 3)).max() < 1e-6


def test_agrees_with_aniposelib(rig2, rig3):
    cameras = pytest.importorskip("aniposelib.cameras")
    truth = random_points(200, 3, seed=2)
    for rig in (rig2, rig3):
        undistorted = Rig(tuple(CameraModel(c.name, c.size, c.K, np.zeros(5), c.R, c.t) for c in rig))
        group = cameras.CameraGroup([cameras.Camera(matrix=c.K, dist=c.dist, size=c.size, rvec=c.rvec, tvec=c.t,
                                                    name=c.name) for c in undistorted])
        pixels = undistorted.project(truth)
        theirs = group.triangulate(pixels.reshape(len(rig), -1, 2), progress=False)
        ours = triangulate(pixels, undistorted).points3d.reshape(-1, 3)
        assert np.abs(ours - theirs).max() < 1e-6


def predicted_covariance(rig, points, sigma_px):
    """First-order (Cramer-Rao) covariance of a 3D point from i.i.d. pixel noise: sigma^2 (J^T J)^-1,
    with J the Jacobian of the distorted projection into every camera (central differences)."""
    h = 1e-4
    jac = np.stack([(rig.project(points + h * e) - rig.project(points - h * e)) / (2 * h) for e in np.eye(3)],
                   axis=-1)  # (C, N, 2, 3)
    info = np.einsum("cnki,cnkj->nij", jac, jac)
    return sigma_px**2 * np.linalg.inv(info)


def test_noise_at_the_geometric_limit(rig2):
    """With 0.5 px noise the 3D error matches what the geometry allows.

    The prediction is a Monte-Carlo draw from the first-order covariance of each point (the Cramer-Rao
    bound for Gaussian pixel noise). With 20,000 points the medians of the two error samples carry
    ~1% sampling error each; the refined estimator minimises the undistorted-pixel error (weights
    differ from the ML ones by the local distortion scale, <1% here) and lands within 1% of the
    prediction; the linear one (algebraic error, cameras weighted by depth) within 3%; so +-4%
    (refined) and +-8% (linear) are tight yet safe.
    """
    sigma = 0.5
    truth = random_points(2000, 10, seed=3)
    rng = np.random.default_rng(4)
    noisy = rig2.project(truth) + rng.normal(0.0, sigma, (2,) + truth.shape[:2] + (2,))
    cov = predicted_covariance(rig2, truth.reshape(-1, 3), sigma)
    draws = np.einsum("nij,nj->ni", np.linalg.cholesky(cov), rng.standard_normal((len(cov), 3)))
    predicted_median = np.median(np.linalg.norm(draws, axis=1))
    # scale check: px * depth / f ~ 0.5 * 150 / 3000 = 0.025 mm per axis
    assert 0.01 < predicted_median < 0.1
    predicted_rms = np.sqrt(np.trace(cov, axis1=1, axis2=2).mean())  # exact under the first-order model
    for refine, tolerance in ((True, 0.04), (False, 0.08)):
        result = triangulate(noisy, rig2, refine=refine)
        error = np.linalg.norm(result.points3d - truth, axis=-1)
        assert abs(np.median(error) / predicted_median - 1) < tolerance, (refine, np.median(error), predicted_median)
        assert abs(np.sqrt(np.mean(error**2)) / predicted_rms - 1) < tolerance
        # mean reprojection error of 2 cameras with a 3-dof fit: 4 residuals, 1 dof left -> ~sigma/2..sigma
        assert 0.1 * sigma < np.median(result.reprojection_error) < sigma


def test_refinement_lowers_reprojection_error(rig3):
    truth = random_points(1000, 2, seed=5)
    noisy = rig3.project(truth) + np.random.default_rng(6).normal(0.0, 1.0, (3,) + truth.shape[:2] + (2,))
    linear = triangulate(noisy, rig3)
    refined = triangulate(noisy, rig3, refine=True)
    assert (refined.reprojection_error <= linear.reprojection_error + 1e-9).all()
    assert np.mean(refined.reprojection_error) < 0.99 * np.mean(linear.reprojection_error)


def test_untrusted_points_are_nan(rig2, rig3):
    truth = random_points(50, 5, seed=7)
    pixels = rig2.project(truth)
    likelihood = np.full(pixels.shape[:-1], 0.9)
    likelihood[1, 3, 2] = 0.59  # below the 0.6 cut-off
    likelihood[0, 4, 1] = 0.6  # exactly at the cut-off: trusted
    likelihood[0, 6, 0] = np.nan  # unknown likelihood: not trusted
    pixels[0, 10, 4] = np.nan  # occluded in one of two cameras
    result = triangulate(pixels, rig2, likelihood)
    lost = np.zeros(truth.shape[:2], dtype=bool)
    lost[3, 2] = lost[6, 0] = lost[10, 4] = True
    assert np.isnan(result.points3d[lost]).all() and np.isnan(result.reprojection_error[lost]).all()
    assert (result.n_cameras[lost] == 0).all() and not result.camera_mask[:, lost].any()
    assert np.abs(result.points3d[~lost] - truth[~lost]).max() < 1e-6
    assert result.score[4, 1] == pytest.approx(0.75) and result.score[0, 0] == pytest.approx(0.9)
    assert np.isnan(result.score[lost]).all()

    # a third camera keeps points that lost one view, from the two that remain
    pixels3 = rig3.project(truth)
    pixels3[2, 10, 4] = np.nan
    pixels3[:2, 11, 0] = np.nan
    result3 = triangulate(pixels3, rig3)
    assert result3.n_cameras[10, 4] == 2 and list(result3.camera_mask[:, 10, 4]) == [True, True, False]
    assert np.abs(result3.points3d[10, 4] - truth[10, 4]).max() < 1e-6
    assert np.isnan(result3.points3d[11, 0]).all() and result3.n_cameras[11, 0] == 0


def test_points_behind_a_camera_are_rejected(rig2):
    # consistent rays whose intersection lies behind both cameras (e.g. swapped detections)
    behind = np.mean([c.center for c in rig2], axis=0) - 60.0 * (TARGET - rig2[0].center) / 150.0
    assert all((c.R @ behind + c.t)[2] < 0 for c in rig2)
    truth = random_points(3, 2, seed=13)
    truth[1, 0] = behind
    result = triangulate(rig2.project(truth), rig2)
    assert np.isnan(result.points3d[1, 0]).all() and result.n_cameras[1, 0] == 0
    assert np.isfinite(result.points3d).all(-1).sum() == 5


def test_outlier_camera_is_dropped(rig3):
    truth = random_points(400, 5, seed=8)
    rng = np.random.default_rng(9)
    pixels = rig3.project(truth) + rng.normal(0.0, 0.5, (3,) + truth.shape[:2] + (2,))
    bad_camera = rng.integers(0, 3, truth.shape[:2])
    corrupted = rng.random(truth.shape[:2]) < 0.2
    offsets = rng.uniform(30.0, 80.0, truth.shape[:2] + (2,)) * rng.choice([-1, 1], truth.shape[:2] + (2,))
    for cam in range(3):
        sel = corrupted & (bad_camera == cam)
        pixels[cam][sel] += offsets[sel]
    result = triangulate(pixels, rig3, outlier_px=5.0)
    # clean points keep all three cameras (0.5 px noise is far below 5 px) ...
    assert result.camera_mask[:, ~corrupted].all()
    # ... corrupted ones lose one camera: the corrupted one, unless the corruption runs along an
    # epipolar line so that two camera pairs are consistent (no 3-camera method can tell them apart)
    assert (result.n_cameras[corrupted] == 2).all()
    right = corrupted & (result.camera_mask == (np.arange(3)[:, None, None] != bad_camera)).all(axis=0)
    assert right.sum() > 0.9 * corrupted.sum()
    without_bad = pixels.copy()
    without_bad[bad_camera[None] == np.arange(3)[:, None, None]] = np.nan
    consistent_after_drop = triangulate(without_bad, rig3).reprojection_error < 5.0
    ambiguous = corrupted & ~right
    assert (consistent_after_drop[ambiguous] & (result.reprojection_error[ambiguous] < 5.0)).all()
    assert np.percentile(np.linalg.norm(result.points3d - truth, axis=-1)[right], 99) < 0.5
    assert result.reprojection_error[corrupted].max() < 3.0
    # without the outlier step (threshold above every error) the 3D error would be tens of times larger
    kept = triangulate(pixels, rig3, outlier_px=1e9)
    assert (kept.n_cameras == 3).all()
    assert np.median(np.linalg.norm(kept.points3d - truth, axis=-1)[corrupted]) > 1.0


def test_max_reprojection_rejects_inconsistent_points(rig2):
    truth = random_points(100, 3, seed=10)
    pixels = rig2.project(truth)
    pixels[1, 20, 1] += (25.0, -10.0)
    result = triangulate(pixels, rig2, max_reprojection_px=3.0)
    assert np.isnan(result.points3d[20, 1]).all() and result.n_cameras[20, 1] == 0
    assert result.reprojection_error[20, 1] > 3.0  # kept for QC
    ok = np.ones(truth.shape[:2], dtype=bool)
    ok[20, 1] = False
    assert np.abs(result.points3d[ok] - truth[ok]).max() < 1e-6


def test_chunks_threads_and_dtype_do_not_change_results(rig3):
    truth = random_points(97, 3, seed=11)
    pixels = rig3.project(truth) + np.random.default_rng(12).normal(0, 2.0, (3, 97, 3, 2))
    pixels[2, ::4, 1] += 60.0
    pixels[0, ::7, 0] = np.nan
    reference = triangulate(pixels, rig3, refine=True, workers=1)
    for chunk_points, workers in ((7, 1), (13, 3), (10_000, 2)):
        other = triangulate(pixels, rig3, refine=True, chunk_points=chunk_points, workers=workers)
        np.testing.assert_allclose(other.points3d, reference.points3d, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(other.camera_mask, reference.camera_mask)
    as32 = triangulate(pixels.astype(np.float32), rig3, refine=True)
    assert np.nanmax(np.abs(as32.points3d - reference.points3d)) < 1e-2  # float32 pixels: ~1e-4 px rounding


@pytest.mark.parametrize("points, message", [
    (np.zeros((2, 5, 2)), "shape"),
    (np.zeros((3, 5, 1, 2)), "3 cameras but the rig has 2"),
    (np.zeros((2, 5, 1, 3)), "shape"),
    (np.full((2, 5, 1, 2), "x"), "numeric"),
])
def test_bad_points_rejected(rig2, points, message):
    with pytest.raises(ValueError, match=message):
        triangulate(points, rig2)


def test_bad_arguments_rejected(rig2):
    pixels = np.zeros((2, 5, 1, 2))
    with pytest.raises(ValueError, match="likelihood"):
        triangulate(pixels, rig2, likelihood=np.ones((2, 5)))
    with pytest.raises(ValueError, match="at least 2 cameras"):
        triangulate(pixels[:1], Rig((rig2[0],)))
    with pytest.raises(ValueError, match="chunk_points"):
        triangulate(pixels, rig2, chunk_points=0)
    with pytest.raises(TypeError, match="Rig"):
        triangulate(pixels, list(rig2))


# --- filtering -----------------------------------------------------------------------------------

def gappy_trajectory(n_frames=400, n_parts=3, seed=20):
    """Random walk (n_frames, n_parts, 3) with random NaN gaps (single frames and longer)."""
    rng = np.random.default_rng(seed)
    traj = np.cumsum(rng.normal(0, 1, (n_frames, n_parts, 3)), axis=0)
    for part in range(n_parts):
        for start in rng.integers(0, n_frames, 12):
            traj[start:start + rng.integers(1, 6), part] = np.nan
    return traj


def runs_of(valid):
    edges = np.flatnonzero(np.diff(np.concatenate([[0], valid.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def test_median_filter_matches_per_run_reference():
    traj = gappy_trajectory()
    window = 7
    out = median_filter(traj, window)
    valid = np.isfinite(traj).all(-1)
    np.testing.assert_array_equal(np.isnan(out).any(-1), ~valid)  # gaps stay gaps, nothing else lost
    for part in range(traj.shape[1]):
        for start, stop in runs_of(valid[:, part]):
            for frame in range(start, stop):  # small reference loop: window truncated to the run
                lo, hi = max(start, frame - window // 2), min(stop, frame + window // 2 + 1)
                np.testing.assert_allclose(out[frame, part], np.median(traj[lo:hi, part], axis=0), rtol=0, atol=0)


def test_median_filter_removes_spikes_without_crossing_gaps():
    traj = np.zeros((40, 1, 2))
    traj[20:] = 1000.0
    traj[19] = np.nan  # 1-frame gap between two plateaus
    traj[10] = 50.0  # spike
    out = median_filter(traj, 9)
    assert np.isnan(out[19]).all()
    assert (out[:19] == 0).all() and (out[20:] == 1000).all()


def test_savgol_matches_scipy_within_runs_and_keeps_polynomials():
    from scipy.signal import savgol_filter as scipy_savgol

    traj = gappy_trajectory(seed=21)
    out = savgol_filter(traj, 11, 3)
    valid = np.isfinite(traj).all(-1)
    np.testing.assert_array_equal(np.isnan(out).any(-1), ~valid)
    checked = 0
    for part in range(traj.shape[1]):
        for start, stop in runs_of(valid[:, part]):
            if stop - start >= 11:  # scipy's 'interp' mode fits the edge windows like ours
                np.testing.assert_allclose(out[start:stop, part], scipy_savgol(traj[start:stop, part], 11, 3, axis=0,
                                                                               mode="interp"), atol=1e-9)
                checked += 1
    assert checked > 10
    # every run of a polynomial of degree <= polyorder is reproduced, short runs included, and a
    # different polynomial on each side of a gap proves nothing leaks across it
    t = np.arange(60.0)
    poly = np.stack([0.01 * t**2 - t + 3, 5 - 0.2 * t, 0.001 * t**3], axis=-1)[:, None, :]
    poly[20:40] = 100 - 3 * poly[20:40]
    poly[[19, 40, 45, 46]] = np.nan  # runs of 19, 20, 4 and 13 frames
    np.testing.assert_allclose(savgol_filter(poly, 11, 3), poly, atol=1e-8, equal_nan=True)


def test_savgol_smooths_noise():
    t = np.linspace(0, 4 * np.pi, 2000)
    truth = np.stack([np.sin(t), np.cos(t), 0.1 * t], axis=-1)[:, None, :] * 10
    noisy = truth + np.random.default_rng(22).normal(0, 0.5, truth.shape)
    noisy[500:503] = np.nan
    smoothed = savgol_filter(noisy, 21, 2)
    ok = np.isfinite(smoothed).all(-1)
    raw_rms = np.sqrt(np.nanmean((noisy - truth) ** 2))
    # a quadratic fit over 21 samples keeps ~0.33 (sqrt of the centre coefficient 0.108) of white
    # noise at its centre frame, more near the run ends
    assert np.sqrt(np.mean((smoothed[ok] - truth[ok]) ** 2)) < 0.45 * raw_rms


def test_interpolate_gaps_fills_short_interior_gaps_only():
    line = np.arange(30.0)[:, None, None] * [1.0, -2.0, 0.5]
    traj = line.copy()
    traj[:2] = np.nan  # leading gap: stays
    traj[5:7] = np.nan  # 2 frames: filled
    traj[10:15] = np.nan  # 5 frames: too long for max_gap=3
    traj[28:] = np.nan  # trailing: stays
    out = interpolate_gaps(traj, 3)
    np.testing.assert_allclose(out[5:7], line[5:7], atol=1e-12)
    assert np.isnan(out[:2]).all() and np.isnan(out[10:15]).all() and np.isnan(out[28:]).all()
    assert np.isnan(interpolate_gaps(traj, 0)[5:7]).all()
    filled = median_filter(traj, 3, max_gap=3)
    assert np.isfinite(filled[5:7]).all() and np.isnan(filled[10:15]).all()


def test_qc_masks():
    traj = np.zeros((6, 2, 3))
    traj[3, 0] = 40.0  # isolated spike
    error = np.array([[0.5, 4.0]] * 6)
    error[2, 0] = np.nan
    ncams = np.full((6, 2), 3)
    ncams[1, 1] = 2
    by_error = mask_by_error(traj, error, 2.0)
    assert np.isnan(by_error[:, 1]).all() and np.isnan(by_error[2, 0]).all()
    assert np.isfinite(by_error[[0, 1, 3, 4, 5], 0]).all()
    by_cams = mask_by_cameras(traj, ncams, 3)
    assert np.isnan(by_cams[1, 1]).all() and np.isfinite(by_cams).all(-1).sum() == 11
    spikes = mask_spikes(traj, 10.0)
    assert np.isnan(spikes[3, 0]).all() and np.isfinite(spikes).all(-1).sum() == 11


def test_filter_arguments_checked():
    traj = np.zeros((10, 1, 3))
    with pytest.raises(ValueError, match="window"):
        median_filter(traj, 4)
    with pytest.raises(ValueError, match="polyorder"):
        savgol_filter(traj, 5, 5)
    with pytest.raises(ValueError, match="n_frames, n_parts, D"):
        savgol_filter(traj[:, 0], 5)
    with pytest.raises(ValueError, match="error must have shape"):
        mask_by_error(traj, np.zeros(10), 1.0)
    with pytest.raises(ValueError, match="max_gap"):
        interpolate_gaps(traj, -1)


def test_qc_error_is_raw_pixels_over_every_camera_that_saw_the_point(rig3):
    """Dropped outlier cameras count in the QC error; it is the distorted-pixel distance, exactly."""
    truth = random_points(200, 2, seed=12)
    rng = np.random.default_rng(13)
    pixels = rig3.project(truth) + rng.normal(0.0, 0.5, (3,) + truth.shape[:2] + (2,))
    pixels[2, :50] += (40.0, -30.0)  # camera 2 wrong on the first 50 frames: dropped there
    result = triangulate(pixels, rig3, refine=True, outlier_px=5.0)
    assert (result.n_cameras[:50] == 2).all() and result.reprojection_error[:50].max() < 3.0
    expected = np.linalg.norm(rig3.project(result.points3d) - pixels, axis=-1).mean(axis=0)
    np.testing.assert_allclose(result.qc_error, expected, rtol=1e-9)
    assert result.qc_error[:50].min() > 10.0 and np.median(result.qc_error[50:]) < 1.0
