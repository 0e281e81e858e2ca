"""Synthetic calibration material: board images rendered through known ``ratpose.rig`` cameras.

Rendering is an exact inverse mapping: every (super-sampled) output pixel is undistorted to a ray,
the ray is intersected with the board plane and the board texture is sampled there; the samples are
averaged (antialiasing), blurred and given sensor noise. Poses are ``X_world = R @ X_board + t`` in
mm (board frame of ``ratpose.calibration.boards``: its printed side faces -z).
"""
from __future__ import annotations

import datetime as _dt
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import tomli_w
from scipy.interpolate import RectBivariateSpline

from ..calibration.boards import Board, Checkerboard, render_board
from ..errors import InputError
from ..rig import CameraModel, Rig

DARK, LIGHT, BACKGROUND = 35.0, 215.0, 90.0  # grey levels of black ink, white paper, surroundings


def scale_rig(rig: Rig, image_size: tuple[int, int]) -> Rig:
    """Every camera of ``rig`` scaled to ``image_size`` (see ``CameraModel.scaled``)."""
    return Rig(tuple(cam.scaled(image_size) for cam in rig))


@lru_cache(maxsize=8)
def _rays(K_bytes: bytes, dist_bytes: bytes, model: str, size: tuple[int, int], supersample: int):
    """Undistorted normalised ray coordinates x, y (each H*s x W*s, float32) of a camera's sub-pixel samples.

    Exact iterative undistortion on a 4-px grid, bicubic spline in between (the map is smooth: the
    interpolation error is far below 1e-3 px).
    """
    K = np.frombuffer(K_bytes).reshape(3, 3)
    dist = np.frombuffer(dist_bytes)
    width, height = size
    step = 4.0
    knots_x = np.arange(-2 * step, width + 2 * step, step)
    knots_y = np.arange(-2 * step, height + 2 * step, step)
    grid = np.stack(np.meshgrid(knots_x, knots_y), axis=-1).reshape(-1, 1, 2)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    lib = cv2.fisheye if model == "fisheye" else cv2
    coarse = lib.undistortPoints(grid, K, dist, None, None, None, criteria).reshape(len(knots_y), len(knots_x), 2)
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    xs = (np.arange(width)[:, None] + offsets).ravel()
    ys = (np.arange(height)[:, None] + offsets).ravel()
    return tuple(RectBivariateSpline(knots_y, knots_x, coarse[..., k])(ys, xs).astype(np.float32) for k in (0, 1))


@lru_cache(maxsize=8)
def _texture(board: Board, px_per_mm: float) -> tuple[np.ndarray, float]:
    image, margin_px = render_board(board, px_per_mm, margin_mm=board.square_mm)
    return (DARK + image.astype(np.float32) * ((LIGHT - DARK) / 255.0)), margin_px


def render_board_view(camera: CameraModel, board: Board, R_board: np.ndarray, t_board: np.ndarray, *,
                      noise_sigma: float = 2.0, blur_sigma: float = 0.6, supersample: int = 3,
                      rng: np.random.Generator | None = None) -> np.ndarray:
    """Grey uint8 image (H, W) of ``board`` at world pose (R_board, t_board) seen by ``camera``.

    ``noise_sigma`` is Gaussian sensor noise in grey levels, ``blur_sigma`` a Gaussian optical blur in px.
    """
    rng = np.random.default_rng() if rng is None else rng
    ray_x, ray_y = _rays(camera.K.tobytes(), camera.dist.tobytes(), camera.model, camera.size, supersample)
    R = (camera.R @ np.asarray(R_board, dtype=np.float64)).astype(np.float32)  # board -> camera
    origin = (camera.R @ np.asarray(t_board, dtype=np.float64).reshape(3) + camera.t).astype(np.float32)
    normal = R[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = (normal @ origin) / (ray_x * normal[0] + ray_y * normal[1] + normal[2])
    # board coordinates of the hit point: R^T (depth * ray - origin)
    bx = depth * (R[0, 0] * ray_x + R[1, 0] * ray_y + R[2, 0]) - R[:, 0] @ origin
    by = depth * (R[0, 1] * ray_x + R[1, 1] * ray_y + R[2, 1]) - R[:, 1] @ origin
    # texture fine enough that bilinear sampling does not alias at the super-sampled resolution
    closest = max(float(np.linalg.norm(origin.astype(np.float64))) - max(board.size_mm), 1.0)
    needed = camera.K[0, 0] * supersample / closest
    px_per_mm = float(2.0 ** np.ceil(np.log2(needed)))
    texture, margin_px = _texture(board, px_per_mm)
    map_x = bx * np.float32(px_per_mm) + np.float32(margin_px - 0.5)
    map_y = by * np.float32(px_per_mm) + np.float32(margin_px - 0.5)
    map_x[~(depth > 0)] = -1e6  # behind the camera: background
    samples = cv2.remap(texture, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                        borderValue=BACKGROUND)
    image = cv2.resize(samples, camera.size, interpolation=cv2.INTER_AREA)  # box average of the sub-samples
    if blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), blur_sigma)
    image = image + rng.normal(0.0, noise_sigma, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _look_rotation(direction: np.ndarray, up_hint: np.ndarray) -> np.ndarray:
    """Rotation whose z axis is ``direction`` and whose x axis is as close as possible to ``up_hint``."""
    z = direction / np.linalg.norm(direction)
    x = up_hint - (up_hint @ z) * z
    x /= np.linalg.norm(x)
    return np.column_stack([x, np.cross(z, x), z])


def working_point(rig: Rig, working_distance_mm: float = 150.0) -> np.ndarray:
    """The point closest to all optical axes (for one camera: on its axis at ``working_distance_mm``)."""
    centres = np.array([cam.center for cam in rig])
    axes = np.array([cam.R[2] for cam in rig])  # optical axes in world coordinates
    if len(rig) == 1:
        return centres[0] + working_distance_mm * axes[0]
    projectors = np.eye(3) - axes[:, :, None] * axes[:, None, :]
    return np.linalg.solve(projectors.sum(axis=0), np.einsum("nij,nj->i", projectors, centres))


def random_board_pose(rig: Rig, board: Board, target: np.ndarray, lateral_mm: float, rng: np.random.Generator,
                      *, seen_by: list[int], min_visible: float, max_tilt_deg: float = 45.0,
                      max_tries: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """A random board pose (R, t) near ``target`` that every camera in ``seen_by`` sees from the front.

    The board centre lies within ``lateral_mm`` of ``target`` across the view and +-10 % along it; the
    board is tilted 10..``max_tilt_deg`` degrees about a random in-plane axis, rotated up to 30 deg in
    its plane, and shows at least ``min_visible`` of its corners inside each image.
    """
    cams = [rig[i] for i in seen_by]
    view_dir = sum(target - cam.center for cam in cams)
    base = _look_rotation(view_dir, cams[0].R[0])
    centre_local = np.r_[np.asarray(board.size_mm) / 2, 0.0]
    distance = float(np.linalg.norm(target - cams[0].center))
    for _ in range(max_tries):
        axis_angle = rng.uniform(0, 2 * np.pi)
        tilt = np.radians(rng.uniform(10.0, max_tilt_deg))
        tilt_vec = tilt * np.array([np.cos(axis_angle), np.sin(axis_angle), 0.0])
        spin = np.array([0.0, 0.0, np.radians(rng.uniform(-30.0, 30.0))])
        R = base @ cv2.Rodrigues(tilt_vec)[0] @ cv2.Rodrigues(spin)[0]
        depth_jitter = rng.uniform(-0.1, 0.1) * distance
        centre = target + base @ np.r_[rng.uniform(-lateral_mm, lateral_mm, 2), depth_jitter]
        t = centre - R @ centre_local
        if all(_visible(cam, board, R, t, centre, min_visible) for cam in cams):
            return R, t
    raise InputError(f"no board pose found that cameras {[c.name for c in cams]} all see "
                     f"(board {board.size_mm} mm too large for the field of view?)")


def _visible(cam: CameraModel, board: Board, R: np.ndarray, t: np.ndarray, centre: np.ndarray,
             min_visible: float) -> bool:
    to_camera = cam.center - centre
    if to_camera @ R[:, 2] > -0.35 * np.linalg.norm(to_camera):  # back side, or seen at > ~70 deg
        return False
    pixels = cam.project(board.object_points @ R.T + t)
    margin = 4.0
    inside = ((pixels[:, 0] > margin) & (pixels[:, 0] < cam.size[0] - 1 - margin)
              & (pixels[:, 1] > margin) & (pixels[:, 1] < cam.size[1] - 1 - margin))
    return inside.mean() >= min_visible


def _half_view(cam: CameraModel) -> float:
    """Tangent of the half field of view across the image's short side (distortion ignored)."""
    half = min(cam.size) / 2 / cam.K[0, 0]
    return float(np.tan(half)) if cam.fisheye else half  # fisheye: the radius in px is f * theta


def simulate_calibration_views(rig: Rig, board: Board, n_shared: int, n_single: int, seed: int,
                               image_size: tuple[int, int] | None = None, *, noise_sigma: float = 2.0,
                               blur_sigma: float = 0.6, supersample: int = 3, max_tilt_deg: float = 45.0,
                               return_poses: bool = False):
    """Render calibration views as ``calibrate_rig`` takes them: (frames, intrinsics_frames).

    ``n_shared`` instants where every camera sees the whole board, and ``n_single`` views per camera
    spread over its image (partly outside it for ChArUco boards). With ``image_size`` the cameras are
    first rescaled by ``scale_rig`` (that rescaled rig is the ground truth). ``return_poses=True`` adds a
    third element {"shared": [(R, t)], "single": {camera: [(R, t)]}} of world board poses.
    """
    rng = np.random.default_rng(seed)
    rig = scale_rig(rig, image_size) if image_size is not None else rig
    target = working_point(rig)
    distance = float(np.mean([np.linalg.norm(cam.center - target) for cam in rig]))
    half_fov = distance * min(_half_view(cam) for cam in rig)
    partial_ok = 0.5 if not isinstance(board, Checkerboard) else 1.0

    def render(cam: CameraModel, pose):
        return render_board_view(cam, board, *pose, noise_sigma=noise_sigma, blur_sigma=blur_sigma,
                                 supersample=supersample, rng=rng)

    shared = [random_board_pose(rig, board, target, 0.25 * half_fov, rng, seen_by=list(range(len(rig))),
                                min_visible=1.0, max_tilt_deg=max_tilt_deg) for _ in range(n_shared)]
    frames = {cam.name: [render(cam, pose) for pose in shared] for cam in rig}
    single, intrinsics_frames = {}, {}
    for i, cam in enumerate(rig):
        axis_point = cam.center + distance * cam.R[2]
        single[cam.name] = [random_board_pose(rig, board, axis_point, 0.8 * half_fov, rng, seen_by=[i],
                                              min_visible=partial_ok, max_tilt_deg=max_tilt_deg)
                            for _ in range(n_single)]
        intrinsics_frames[cam.name] = [render(cam, pose) for pose in single[cam.name]]
    if return_poses:
        return frames, intrinsics_frames, {"shared": shared, "single": single}
    return frames, intrinsics_frames


def write_calibration_folder(path, rig_name: str, board: Board, frames: dict, intrinsics_frames: dict | None = None,
                             date: str | None = None) -> Path:
    """Write a calibration folder (docs/calibration-format.md): calibration.toml and per-camera PNGs."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": 1, "rig": rig_name, "date": date or _dt.date.today().isoformat(),
            "board": board.to_dict()}
    (path / "calibration.toml").write_text(tomli_w.dumps(meta))
    for prefix, images_by_cam in (("sync", frames), ("single", intrinsics_frames or {})):
        for cam, images in images_by_cam.items():
            (path / cam).mkdir(exist_ok=True)
            for i, image in enumerate(images):
                if image is not None:
                    cv2.imwrite(str(path / cam / f"{prefix}_{i:04d}.png"), image)
    return path
