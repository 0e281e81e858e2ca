"""Intrinsic and multi-camera extrinsic calibration from board views, refined by bundle adjustment.

Model (``ratpose.rig``): pinhole K with (fx, fy, cx, cy), distortion (k1, k2, p1, p2, k3[, k4, k5, k6]) or cv2.fisheye's
(k1, k2, k3, k4); per camera the
lens model (which distortion terms are free, ``LENS_MODELS``) is the one with the lowest error on views
left out (k-fold over views) unless ``CalibrationSettings.lens_model`` forces one; camera 0 (the first key of
``frames``) defines the world frame;
millimetres throughout.

Steps: per-camera ``cv2.calibrateCamera`` (initial intrinsics and board poses), camera poses chained
over cameras that share instants (chordal-mean rotations), then one bundle adjustment over all
intrinsics, camera poses and board poses (one world pose per shared instant, one camera-frame pose
per single view) with a Huber loss and a block-structured Jacobian.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from ..rig import CameraModel, Rig
from .boards import Board
from .coverage import choose_instants, keep_instants
from .detect import BoardDetection, CalibrationError, detect_board, to_gray
from .qc import CalibrationReport, CameraQuality, corner_coverage

DENSE_JACOBIAN_MAX = 20_000_000  # entries; larger problems use a sparse Jacobian (iterative solver)
MIN_TILT_DEG = 10.0  # a view tilted less than this adds (almost) nothing to focal length estimation
INTRINSIC_NAMES = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")  # OpenCV's order
# free distortion terms per lens model, simplest first; "opencv" is cv2.calibrateCamera's default,
# "rational" its CALIB_RATIONAL_MODEL (radial (1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + k5 r^4 + k6 r^6)),
# "fisheye" cv2.fisheye's equidistant model for wide lenses (its k1..k4 of theta, in the k1, k2, k3, k4 slots)
LENS_MODELS = {"k1k2": ("k1", "k2"), "k1k2k3": ("k1", "k2", "k3"), "k1k2p": ("k1", "k2", "p1", "p2"),
               "opencv": ("k1", "k2", "p1", "p2", "k3"), "rational": ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
               "fisheye": ("k1", "k2", "k3", "k4")}
FISHEYE_SLOTS = [INTRINSIC_NAMES.index(k) - 4 for k in LENS_MODELS["fisheye"]]  # fisheye (k1..k4) in dist slots
N_DIST = 8  # distortion coefficients the solver carries (k1, k2, p1, p2, k3, k4, k5, k6)
WIDE_LENS_DEG = 60.0  # "auto" offers "fisheye" only to lenses whose half-diagonal field of view is wider
FEW_VIEWS_LENS_MODEL = "k1k2p"  # "auto" on a camera with too few views for k-fold comparison


@dataclass(frozen=True)
class CalibrationSettings:
    """Every calibration setting, one set of defaults for the library and the database path.

    ``lens_model``: "auto" (per camera, lowest k-fold held-out error over views; FEW_VIEWS_LENS_MODEL
    below ``folds`` + 2 views) or a LENS_MODELS key.
    ``f_scale_px``: the bundle adjustment's Huber threshold.
    ``max_instants``: shared instants kept (``coverage.choose_instants``: those covering the images and
    board tilts best) when there are more, as board videos give.

    Attributes
    ----------
    lens_model : str
    folds : int
        Folds of the held-out comparison of lens models (>= 2).
    min_views : int
        Fewest views with the board per camera.
    min_corners : int, optional
        Fewest corners for a view to count (None: see ``detect_board``).
    f_scale_px : float, px
    max_instants : int
        Must be >= 2.

    Raises
    ------
    CalibrationError
        On construction, if ``lens_model`` is unknown, ``folds`` < 2 or ``max_instants`` < 2.
    """

    lens_model: str = "auto"
    folds: int = 5
    min_views: int = 4
    min_corners: int | None = None
    f_scale_px: float = 1.0
    max_instants: int = 60

    def __post_init__(self):
        if self.lens_model != "auto" and self.lens_model not in LENS_MODELS:
            raise CalibrationError(f"lens_model {self.lens_model!r}: expected 'auto' or one of {list(LENS_MODELS)}")
        if self.folds < 2:
            raise CalibrationError(f"folds must be >= 2, got {self.folds}")
        if self.max_instants < 2:
            raise CalibrationError(f"max_instants must be >= 2, got {self.max_instants}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "CalibrationSettings":
        """Settings from ``to_dict()`` output (or a subset of its keys; None: the defaults).

        Parameters
        ----------
        data : dict, optional

        Returns
        -------
        CalibrationSettings

        Raises
        ------
        CalibrationError
            On an unknown key or an invalid value.
        """
        unknown = set(data or {}) - set(cls.__dataclass_fields__)
        if unknown:
            raise CalibrationError(f"unknown calibration settings {sorted(unknown)}")
        return cls(**(data or {}))


def _model_flags(model: str) -> int:
    free = LENS_MODELS[model]
    return ((0 if "k3" in free else cv2.CALIB_FIX_K3) | (0 if "p1" in free else cv2.CALIB_ZERO_TANGENT_DIST)
            | (cv2.CALIB_RATIONAL_MODEL if "k4" in free else 0))


def _calibrate_camera(model: str, obj: list, img: list, size) -> tuple[np.ndarray, np.ndarray, list, list]:
    """K, distortion, rvecs, tvecs of one camera's views under a LENS_MODELS model (cv2.fisheye for "fisheye")."""
    if model != "fisheye":
        _, K, dist, rvecs, tvecs = cv2.calibrateCamera(obj, img, size, None, None, flags=_model_flags(model))
        return K, dist, rvecs, tvecs
    flags = cv2.fisheye.CALIB_RECOMPUTE_EXTRINSIC | cv2.fisheye.CALIB_FIX_SKEW
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-12)
    _, K, dist, rvecs, tvecs = cv2.fisheye.calibrate([o.reshape(-1, 1, 3).astype(np.float64) for o in obj],
                                                     [i.reshape(-1, 1, 2).astype(np.float64) for i in img],
                                                     size, None, None, flags=flags, criteria=criteria)
    return K, dist, rvecs, tvecs


def _camera_of(model: str, K, dist, size, name: str = "") -> CameraModel:
    """The CameraModel of one LENS_MODELS fit (pose identity)."""
    fisheye = model == "fisheye"
    return CameraModel(name, size, K, np.asarray(dist).ravel()[:4] if fisheye else np.asarray(dist).ravel(),
                  model="fisheye" if fisheye else "pinhole")


@dataclass(frozen=True)
class ViewSet:
    """Detections of one calibration: shared[cam][i] is instant i (None: not seen), single[cam] extra views.

    Attributes
    ----------
    shared : dict of str to list of BoardDetection or None
        Per camera, its detection at each shared instant.
    single : dict of str to list of BoardDetection or None
        Per camera, single-camera views for the intrinsics.
    image_sizes : dict of str to tuple of int, (width, height), px
    """

    shared: dict[str, list[BoardDetection | None]]
    single: dict[str, list[BoardDetection | None]]
    image_sizes: dict[str, tuple[int, int]]


def detect_views(frames: dict, board: Board, intrinsics_frames: dict | None = None,
                 min_corners: int | None = None) -> ViewSet:
    """Detect the board in every image; checks that all images of a camera have one size.

    Parameters
    ----------
    frames : dict of str to list of numpy.ndarray or None
        Per camera (the first is camera 0, the world frame), its images at the shared instants, the same
        number for every camera; None where a camera has no frame. Images are grey (H, W) or colour
        (H, W, 3|4, BGR), integer pixels.
    board : CharucoBoard or Checkerboard
    intrinsics_frames : dict of str to list of numpy.ndarray, optional
        Per camera, extra single-camera images for the intrinsics.
    min_corners : int, optional
        See ``detect_board``.

    Returns
    -------
    ViewSet

    Raises
    ------
    CalibrationError
        If ``frames`` is empty or uneven, ``intrinsics_frames`` names unknown cameras, an image is not an image,
        or a camera's images differ in size.
    """
    intrinsics_frames = intrinsics_frames or {}
    _check_frame_layout(frames, intrinsics_frames)
    shared, single, sizes = {}, {}, {}
    for cam, shared_images in frames.items():
        for kind, images, out in (("frame", shared_images, shared),
                                  ("intrinsics frame", intrinsics_frames.get(cam, []), single)):
            out[cam] = []
            for i, image in enumerate(images):
                if image is None:
                    out[cam].append(None)
                    continue
                what = f"camera {cam!r} {kind} {i}"
                gray = to_gray(image, what)
                size = (gray.shape[1], gray.shape[0])
                if sizes.setdefault(cam, size) != size:
                    raise CalibrationError(f"{what}: image size {size} differs from the camera's other "
                                           f"images {sizes[cam]}")
                out[cam].append(detect_board(gray, board, min_corners, what))
    return ViewSet(shared, single, sizes)


def _check_frame_layout(frames: dict, intrinsics_frames: dict) -> None:
    if not isinstance(frames, dict) or not frames:
        raise CalibrationError("frames must be a non-empty dict camera name -> list of images")
    lengths = {cam: len(images) for cam, images in frames.items()}
    if len(set(lengths.values())) > 1:
        raise CalibrationError(f"frames must hold the same number of instants per camera "
                               f"(None where not captured), got {lengths}")
    unknown = set(intrinsics_frames) - set(frames)
    if unknown:
        raise CalibrationError(f"intrinsics_frames names cameras not in frames: {sorted(unknown)}")


def calibrate_rig(frames: dict, board: Board, intrinsics_frames: dict | None = None,
                  settings: CalibrationSettings | None = None, **overrides) -> tuple[Rig, CalibrationReport]:
    """Calibrate every camera of ``frames`` (camera -> images at shared instants, None = no frame).

    ``intrinsics_frames`` (camera -> images) adds single-camera views for the intrinsics; ``settings``
    (default ``CalibrationSettings()``), with ``overrides`` of its fields. Returns the rig (camera 0 =
    world frame, mm) and a quality report. Raises CalibrationError on unusable material.

    Parameters
    ----------
    frames : dict of str to list of numpy.ndarray or None
        Per camera (the first is camera 0, the world frame), its images at the shared instants, the same
        number for every camera; None where a camera has no frame. Images are grey (H, W) or colour
        (H, W, 3|4, BGR), integer pixels.
    board : CharucoBoard or Checkerboard
    intrinsics_frames : dict of str to list of numpy.ndarray, optional
    settings : CalibrationSettings, optional
    **overrides
        Fields of ``settings`` to replace, e.g. ``lens_model="k1k2"``.

    Returns
    -------
    rig : Rig
        Camera 0 = world frame, mm.
    report : CalibrationReport

    Raises
    ------
    CalibrationError
        On unusable material: no or too few board views, degenerate (untilted) views, cameras that never see
        the board together, a bundle adjustment that diverges.
    """
    settings = replace(settings or CalibrationSettings(), **overrides)
    views = detect_views(frames, board, intrinsics_frames, settings.min_corners)
    return calibrate_from_detections(views, board, settings)


def calibrate_from_detections(views: ViewSet, board: Board, settings: CalibrationSettings | None = None,
                              **overrides) -> tuple[Rig, CalibrationReport]:
    """The solver behind ``calibrate_rig``, on detections (see ``detect_views``).

    Parameters
    ----------
    views : ViewSet
    board : CharucoBoard or Checkerboard
    settings : CalibrationSettings, optional
    **overrides
        Fields of ``settings`` to replace.

    Returns
    -------
    rig : Rig
        Camera 0 (the first of ``views.shared``) = world frame, mm.
    report : CalibrationReport

    Raises
    ------
    CalibrationError
        As ``calibrate_rig``.
    """
    settings = replace(settings or CalibrationSettings(), **overrides)
    views = keep_instants(views, choose_instants(views.shared, board, settings.max_instants))
    cams = list(views.shared)
    heldout = {cam: heldout_errors(cam, views, board, settings.folds) if settings.lens_model == "auto" else {}
               for cam in cams}
    models = {cam: min(heldout[cam], key=heldout[cam].get) if heldout[cam]
              else FEW_VIEWS_LENS_MODEL if settings.lens_model == "auto" else settings.lens_model for cam in cams}
    init = {cam: _initial_intrinsics(cam, views, board, models[cam], settings.min_views)
            for cam in cams}
    rotations, translations = _initial_extrinsics(cams, views, init)
    problem = _Problem.build(cams, views, board, init, rotations, translations, models)
    with threadpool_limits(limits=1, user_api="blas"):  # small dense solves: BLAS threads only cost time
        result = least_squares(problem.residuals, problem.x0, jac=problem.jacobian, loss="huber",
                               f_scale=settings.f_scale_px, x_scale="jac", method="trf", ftol=1e-12, xtol=1e-12,
                               gtol=1e-12, max_nfev=100)
    if not np.all(np.isfinite(result.x)):
        raise CalibrationError("bundle adjustment diverged (non-finite parameters)")
    rig = problem.rig(result.x, views.image_sizes)
    residuals = problem.residuals(result.x)
    std = problem.intrinsics_std(result.x, residuals)
    return rig, _report(cams, views, problem, residuals.reshape(-1, 2), result, std, models, heldout)


def _camera_views(cam: str, views: ViewSet, board: Board):
    dets = [d for d in [*views.shared[cam], *views.single.get(cam, [])] if d is not None]
    return ([d.object_points(board).astype(np.float32) for d in dets],
            [d.image_points.astype(np.float32) for d in dets])


def heldout_errors(cam: str, views: ViewSet, board: Board, folds: int = 5) -> dict[str, float]:
    """RMS px on views left out (k-fold over views) of each LENS_MODELS model.

    The models are fitted by cv2.calibrateCamera, or cv2.fisheye.calibrate for "fisheye".
    A held-out view's board pose is fitted (solvePnP) with the training intrinsics fixed. A model whose
    fit fails on some fold scores inf. "fisheye" (cv2.fisheye.calibrate) is left out for a lens narrower than
    WIDE_LENS_DEG. Empty when the camera has fewer than ``folds`` + 2 views.

    Parameters
    ----------
    cam : str
        The camera's name in ``views``.
    views : ViewSet
    board : CharucoBoard or Checkerboard
    folds : int

    Returns
    -------
    dict of str to float, px
        Held-out RMS per lens model.
    """
    obj, img = _camera_views(cam, views, board)
    if len(obj) < folds + 2:
        return {}
    fold_of = np.arange(len(obj)) % folds
    errors = {}
    for model in LENS_MODELS:
        try:
            rms = _heldout_rms(model, obj, img, views.image_sizes[cam], fold_of, cam)
        except cv2.error:
            rms = float("inf")
        if rms is not None:
            errors[model] = rms
    return errors


def _heldout_rms(model: str, obj: list, img: list, size, fold_of: np.ndarray, cam: str) -> float | None:
    """Held-out RMS px of one model over the folds; None for "fisheye" on a lens narrower than WIDE_LENS_DEG."""
    sq, n = 0.0, 0
    for f in range(int(fold_of.max()) + 1):
        train = np.flatnonzero(fold_of != f)
        K, dist, _, _ = _calibrate_camera(model, [obj[i] for i in train], [img[i] for i in train], size)
        lens = _camera_of(model, K, dist, size, cam)
        if lens.fisheye and np.degrees(np.hypot(size[0] / 2, size[1] / 2) / K[0, 0]) < WIDE_LENS_DEG:
            return None  # equidistant estimate of the half-diagonal field of view: a narrow lens
        pnp = cv2.fisheye.solvePnP if lens.fisheye else cv2.solvePnP
        for i in np.flatnonzero(fold_of == f):
            ok, rvec, tvec = pnp(obj[i].reshape(-1, 1, 3), img[i].reshape(-1, 1, 2), lens.K, lens.dist)[:3]
            proj = replace(lens, R=cv2.Rodrigues(rvec)[0], t=tvec).project(obj[i].astype(np.float64))
            sq += float(np.sum((proj - img[i]) ** 2))
            n += len(proj)
    return float(np.sqrt(sq / n)) if np.isfinite(sq) else float("inf")


@dataclass
class _Intrinsics:
    K: np.ndarray
    dist: np.ndarray
    shared_poses: dict[int, tuple[np.ndarray, np.ndarray]]  # instant -> (R, t) of board in camera
    single_poses: dict[int, tuple[np.ndarray, np.ndarray]]


def _initial_intrinsics(cam: str, views: ViewSet, board: Board, model: str, min_views: int) -> _Intrinsics:
    entries = [("shared", i, d) for i, d in enumerate(views.shared[cam]) if d is not None]
    entries += [("single", i, d) for i, d in enumerate(views.single.get(cam, [])) if d is not None]
    n_images = len(views.shared[cam]) + len(views.single.get(cam, []))
    if not entries:
        raise CalibrationError(f"no board found in camera {cam!r} ({n_images} images searched)")
    if len(entries) < min_views:
        raise CalibrationError(f"camera {cam!r}: board found in only {len(entries)} of {n_images} images, "
                               f"need at least {min_views} views")
    obj = [d.object_points(board).astype(np.float32) for _, _, d in entries]
    img = [d.image_points.astype(np.float32) for _, _, d in entries]
    try:
        K, dist, rvecs, tvecs = _calibrate_camera(model, obj, img, views.image_sizes[cam])
    except cv2.error as exc:
        raise CalibrationError(f"camera {cam!r}: initial calibration failed: {exc.err}") from None
    rotations = [cv2.Rodrigues(r)[0] for r in rvecs]
    tilts = np.degrees(np.arccos(np.clip([abs(R[2, 2]) for R in rotations], 0, 1)))
    if np.sum(tilts >= MIN_TILT_DEG) < 2:
        raise CalibrationError(
            f"camera {cam!r}: degenerate views, {np.sum(tilts >= MIN_TILT_DEG)} of {len(tilts)} views tilted "
            f">= {MIN_TILT_DEG:g} deg (max {tilts.max():.1f} deg); the focal length is unobservable from "
            "fronto-parallel views: tilt the board 20-45 deg in several directions")
    poses = {"shared": {}, "single": {}}
    for (kind, i, _), R, t in zip(entries, rotations, tvecs):
        poses[kind][i] = (R, np.asarray(t, dtype=np.float64).reshape(3))
    coeffs = np.zeros(N_DIST)
    if model == "fisheye":
        coeffs[FISHEYE_SLOTS] = np.asarray(dist).ravel()[:4]
    else:
        coeffs[: min(N_DIST, np.size(dist))] = np.asarray(dist).ravel()[:N_DIST]
    return _Intrinsics(K, coeffs, poses["shared"], poses["single"])


def _initial_extrinsics(cams: list[str], views: ViewSet, init: dict[str, _Intrinsics]):
    """Camera poses in camera 0's frame, chained over a spanning tree of cameras sharing views."""
    rotations, translations = {cams[0]: np.eye(3)}, {cams[0]: np.zeros(3)}
    frontier = [cams[0]]
    while frontier:
        a = frontier.pop(0)
        for b in cams:
            if b in rotations:
                continue
            common = sorted(set(init[a].shared_poses) & set(init[b].shared_poses))
            if not common:
                continue
            R_ab, t_ab = _average_relative_pose(init[a].shared_poses, init[b].shared_poses, common)
            rotations[b] = R_ab @ rotations[a]
            translations[b] = R_ab @ translations[a] + t_ab
            frontier.append(b)
    missing = [c for c in cams if c not in rotations]
    if missing:
        counts = {c: len(init[c].shared_poses) for c in cams}
        raise CalibrationError(
            f"camera(s) {missing} never see the board at the same instant as camera {cams[0]!r}'s group "
            f"(views with the board per camera: {counts}); record views seen by several cameras at once")
    return rotations, translations


def _average_relative_pose(poses_a: dict, poses_b: dict, instants: list[int]):
    """Chordal mean rotation and median translation of b relative to a over common instants."""
    rel = [(poses_b[i][0] @ poses_a[i][0].T, poses_a[i], poses_b[i]) for i in instants]
    u, _, vt = np.linalg.svd(sum(r for r, _, _ in rel))
    R_ab = u @ np.diag([1, 1, np.linalg.det(u @ vt)]) @ vt
    t_ab = np.median([pb[1] - R_ab @ pa[1] for _, pa, pb in rel], axis=0)
    return R_ab, t_ab


def rodrigues(rvecs: np.ndarray) -> np.ndarray:
    """Rotation matrices (n, 3, 3) from Rodrigues vectors (n, 3), vectorised."""
    rvecs = np.asarray(rvecs, dtype=np.float64).reshape(-1, 3)
    theta = np.linalg.norm(rvecs, axis=1)
    small = theta < 1e-8
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1.0 - theta**2 / 6, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta**2 / 24, (1 - np.cos(safe)) / safe**2)
    x, y, z = rvecs.T
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=1).reshape(-1, 3, 3)
    return np.eye(3) + a[:, None, None] * k + b[:, None, None] * (k @ k)


def distort_project(points_cam: np.ndarray, intrinsics: np.ndarray, fisheye: np.ndarray | None = None) -> np.ndarray:
    """Pixels (n, 2) of camera-frame points (n, 3) with per-point intrinsics (n, 12) of INTRINSIC_NAMES.

    ``fisheye`` (n,) bool marks points of cv2.fisheye cameras (their k1..k4 of theta in the k1, k2, k3, k4 slots).
    """
    x = points_cam[:, 0] / points_cam[:, 2]
    y = points_cam[:, 1] / points_cam[:, 2]
    fx, fy, cx, cy, k1, k2, p1, p2, k3, k4, k5, k6 = intrinsics.T
    r2 = x * x + y * y
    wide = fisheye is not None and fisheye.any()
    if wide:
        r = np.sqrt(r2)
        theta = np.arctan(r)
        t2 = theta * theta
        theta_d = theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))
        fisheye_radial = np.divide(theta_d, r, out=np.ones_like(r), where=r > 1e-12)
        p1, p2, k4 = (np.where(fisheye, 0.0, v) for v in (p1, p2, k4))  # no tangential or rational terms
    radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    if wide:
        radial = np.where(fisheye, fisheye_radial, radial)
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([fx * xd + cx, fy * yd + cy], axis=1)


@dataclass
class _Problem:
    """Parameter layout and residuals of the joint bundle adjustment."""

    cams: list[str]
    free: np.ndarray      # (n_cam, 12) bool: which of INTRINSIC_NAMES each camera fits
    n_shared_poses: int
    n_single_poses: int
    obs_cam: np.ndarray   # camera index per observed corner
    obs_ext: np.ndarray   # extrinsics index (0 = identity: camera 0 or a single-camera view)
    obs_pose: np.ndarray  # board pose index (shared instants first, then single views)
    obs_obj: np.ndarray   # board-frame corner (mm)
    obs_img: np.ndarray   # detected pixel
    obs_shared: np.ndarray
    x0: np.ndarray
    fisheye: np.ndarray   # (n_cam,) bool: cv2.fisheye camera

    @classmethod
    def build(cls, cams, views: ViewSet, board: Board, init, rotations, translations, models: dict[str, str]):
        free = np.array([[name in ("fx", "fy", "cx", "cy") + LENS_MODELS[models[c]] for name in INTRINSIC_NAMES]
                         for c in cams])
        intr = [np.r_[i.K[0, 0], i.K[1, 1], i.K[0, 2], i.K[1, 2], i.dist][m] for i, m in
                zip((init[c] for c in cams), free)]
        extr = [np.r_[cv2.Rodrigues(rotations[c])[0].ravel(), translations[c]] for c in cams[1:]]
        n_instants = len(next(iter(views.shared.values())))
        shared_pose, single_index, single_pose = {}, {}, []
        for i in range(n_instants):
            for c in cams:  # board pose in the world from the first camera that saw it
                if i in init[c].shared_poses:
                    R, t = init[c].shared_poses[i]
                    Rw = rotations[c].T @ R
                    tw = rotations[c].T @ (t - translations[c])
                    shared_pose[i] = np.r_[cv2.Rodrigues(Rw)[0].ravel(), tw]
                    break
        shared_index = {inst: k for k, inst in enumerate(sorted(shared_pose))}
        for c in cams:
            for i, (R, t) in sorted(init[c].single_poses.items()):
                single_index[(c, i)] = len(shared_index) + len(single_pose)
                single_pose.append(np.r_[cv2.Rodrigues(R)[0].ravel(), t])
        cols = {k: [] for k in ("cam", "ext", "pose", "obj", "img", "shared")}
        for ci, c in enumerate(cams):
            for kind, dets in (("shared", views.shared[c]), ("single", views.single.get(c, []))):
                for i, det in enumerate(dets):
                    if det is None:
                        continue
                    n = len(det.ids)
                    shared = kind == "shared"
                    cols["cam"].append(np.full(n, ci))
                    cols["ext"].append(np.full(n, ci if shared else 0))
                    cols["pose"].append(np.full(n, shared_index[i] if shared else single_index[(c, i)]))
                    cols["obj"].append(det.object_points(board))
                    cols["img"].append(det.image_points)
                    cols["shared"].append(np.full(n, shared))
        arr = {k: np.concatenate(v) for k, v in cols.items()}
        poses = [shared_pose[i] for i in sorted(shared_pose)] + single_pose
        x0 = np.concatenate([np.concatenate(intr), np.ravel(extr) if extr else [], np.ravel(poses)])
        return cls(cams, free, len(shared_index), len(single_pose), arr["cam"], arr["ext"], arr["pose"],
                   arr["obj"], arr["img"], arr["shared"], x0, np.array([models[c] == "fisheye" for c in cams]))

    @property
    def n_intr(self) -> int:
        """Number of fitted intrinsics over all cameras."""
        return int(self.free.sum())

    def unpack(self, x):
        """Full intrinsics (n_cam, 12) of INTRINSIC_NAMES, extrinsics (n_cam, 6), board poses (n, 6)."""
        n_cam = len(self.cams)
        a = self.n_intr
        b = a + 6 * (n_cam - 1)
        intr = np.zeros((n_cam, len(INTRINSIC_NAMES)))
        intr[self.free] = x[:a]
        extr = np.vstack([np.zeros((1, 6)), x[a:b].reshape(n_cam - 1, 6)])
        poses = x[b:].reshape(-1, 6)
        return intr, extr, poses

    def project(self, x) -> np.ndarray:
        intr, extr, poses = self.unpack(x)
        R_pose, R_ext = rodrigues(poses[:, :3]), rodrigues(extr[:, :3])
        on_board = np.einsum("nij,nj->ni", R_pose[self.obs_pose], self.obs_obj) + poses[self.obs_pose, 3:]
        in_cam = np.einsum("nij,nj->ni", R_ext[self.obs_ext], on_board) + extr[self.obs_ext, 3:]
        return distort_project(in_cam, intr[self.obs_cam], self.fisheye[self.obs_cam])

    def residuals(self, x) -> np.ndarray:
        return (self.project(x) - self.obs_img).ravel()

    def jacobian(self, x) -> np.ndarray | csr_matrix:
        """Central-difference Jacobian, one residual evaluation pair per parameter *kind*.

        Each residual depends on one camera's intrinsics, one extrinsics block and one board pose, so
        parameter j of every camera (or every pose) can be perturbed at once: 2 * (9 + 12) evaluations
        at most. Dense when small (exact trust-region solver), sparse otherwise.
        """
        n_cam, n_obs = len(self.cams), len(self.obs_cam)
        ext_start = self.n_intr
        pose_start = ext_start + 6 * (n_cam - 1)
        index = np.full(self.free.shape, -1)
        index[self.free] = np.arange(self.n_intr)  # x index of camera c's intrinsic j
        everywhere = np.ones(n_obs, bool)
        blocks = [(index[:, j], self.obs_cam, self.free[self.obs_cam, j]) for j in range(len(INTRINSIC_NAMES))]
        for start, count, owner, mask in ((ext_start, n_cam - 1, self.obs_ext - 1, self.obs_ext > 0),
                                          (pose_start, self.n_shared_poses + self.n_single_poses, self.obs_pose,
                                           everywhere)):
            blocks += [(start + np.arange(count) * 6 + j, owner, mask) for j in range(6) if count]
        rows, cols, vals = [], [], []
        for per_owner, owner, mask in blocks:
            obs = np.flatnonzero(mask)
            if len(obs):
                idx = per_owner[per_owner >= 0]
                step = 1e-6 * np.maximum(np.abs(x[idx]), 1.0)
                xp, xm = x.copy(), x.copy()
                xp[idx] += step
                xm[idx] -= step
                diff = (self.residuals(xp) - self.residuals(xm)).reshape(-1, 2)[obs]
                col = per_owner[owner[obs]]
                deriv = diff / (2 * 1e-6 * np.maximum(np.abs(x[col]), 1.0))[:, None]
                rows.append(np.r_[2 * obs, 2 * obs + 1])
                cols.append(np.r_[col, col])
                vals.append(np.r_[deriv[:, 0], deriv[:, 1]])
        jac = csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(2 * n_obs, len(x)))
        return jac.toarray() if jac.shape[0] * jac.shape[1] <= DENSE_JACOBIAN_MAX else jac

    def intrinsics_std(self, x, residuals) -> list[dict[str, float]]:
        """Per camera, standard deviations of the fitted intrinsics: sigma^2 (J^T J)^-1 at the solution."""
        jac = self.jacobian(x)
        normal = jac.T @ jac
        normal = normal.toarray() if hasattr(normal, "toarray") else normal
        dof = max(len(residuals) - len(x), 1)
        variance = np.diag(np.linalg.inv(normal)) * float(residuals @ residuals) / dof
        std = np.sqrt(variance[: self.n_intr])
        index = np.cumsum(self.free.ravel()).reshape(self.free.shape) - 1
        return [{INTRINSIC_NAMES[k]: float(std[index[c, k]]) for k in np.flatnonzero(self.free[c])}
                for c in range(len(self.cams))]

    def rig(self, x, sizes) -> Rig:
        intr, extr, _ = self.unpack(x)
        cameras = []
        for ci, c in enumerate(self.cams):
            fx, fy, cx, cy = intr[ci, :4]
            if self.fisheye[ci]:
                dist = intr[ci, 4:][FISHEYE_SLOTS]
            else:
                dist = intr[ci, 4:] if self.free[ci, INTRINSIC_NAMES.index("k4")] else intr[ci, 4:9]  # 8 or 5 terms
            cameras.append(CameraModel(name=c, size=sizes[c], K=[[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dist=dist,
                                  R=rodrigues(extr[ci, :3])[0], t=extr[ci, 3:],
                                  model="fisheye" if self.fisheye[ci] else "pinhole"))
        return Rig(tuple(cameras))


def _report(cams, views: ViewSet, problem: _Problem, residuals: np.ndarray, result, std, models,
            heldout) -> CalibrationReport:
    per_cam = {}
    for ci, c in enumerate(cams):
        mask = problem.obs_cam == ci
        err = np.linalg.norm(residuals[mask], axis=1)
        per_cam[c] = CameraQuality(
            name=c, image_size=views.image_sizes[c],
            n_shared_views=sum(d is not None for d in views.shared[c]),
            n_single_views=sum(d is not None for d in views.single.get(c, [])),
            n_points=int(mask.sum()), rms_px=float(np.sqrt(np.mean(err**2))),
            p95_px=float(np.percentile(err, 95)),
            coverage=corner_coverage(problem.obs_img[mask], views.image_sizes[c]),
            intrinsics_std=std[ci], lens_model=models[c], heldout_px=heldout[c],
            points=problem.obs_img[mask], residuals=residuals[mask])
    all_err = np.linalg.norm(residuals, axis=1)
    n_joint = sum(sum(views.shared[c][i] is not None for c in cams) >= 2
                  for i in range(len(views.shared[cams[0]])))
    return CalibrationReport(cameras=per_cam, rms_px=float(np.sqrt(np.mean(all_err**2))),
                             n_joint_instants=int(n_joint), n_evaluations=int(result.nfev),
                             converged=bool(result.status > 0))
