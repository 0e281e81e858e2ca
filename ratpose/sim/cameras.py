"""The simulated rig's cameras: FLIR Blackfly S (3.45 um pixels, 1440x1080) with 12.5 mm lenses.

Cameras are placed in a *lab frame* (origin at the knob centre, x lateral, y towards the rat, z up),
then the whole rig is re-expressed in camera 0's frame, as a stereo calibration would report it.
"""
from __future__ import annotations

import numpy as np

from ratpose.rig import CameraModel, Rig

from ..errors import InputError

SENSOR_SIZE_PX = (1440, 1080)
PIXEL_SIZE_UM = 3.45
LENS_MM = 12.5
WORKING_DISTANCE_MM = 150.0
#: Lab point the cameras aim at: between the knob and the paw's rest position.
AIM_POINT_LAB = np.array([0.0, 10.0, -4.0])
#: Viewing directions (lab frame, from the aim point towards each camera): above the knob, on either
#: side, ~53 degrees apart for two cameras.
_VIEW_DIRECTIONS = np.array([[-0.40, 0.35, 0.72], [0.40, 0.35, 0.72], [0.0, 0.55, 0.75], [0.0, -0.2, 0.9]])
_DISTORTIONS = np.array([[-0.12, 0.15, 1.0e-4, -2.0e-4, 0.0], [-0.10, 0.12, -1.5e-4, 1.0e-4, 0.0],
                         [-0.11, 0.13, 0.5e-4, 0.5e-4, 0.0], [-0.13, 0.16, -0.5e-4, 1.5e-4, 0.0]])
_PRINCIPAL_OFFSETS = np.array([[0.006, -0.004], [-0.005, 0.007], [0.003, 0.003], [-0.004, -0.006]])


def focal_length_px(image_width: int) -> float:
    """Focal length in pixels of the 12.5 mm lens on 3.45 um pixels, scaled to ``image_width``.

    Parameters
    ----------
    image_width : int, px

    Returns
    -------
    float, px
    """
    return LENS_MM / (PIXEL_SIZE_UM * 1e-3) * image_width / SENSOR_SIZE_PX[0]


def _look_at(position: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation (x_cam = R X + t) of a camera at ``position`` looking at ``target``,
    image 'down' as close to lab -z as possible."""
    forward = target - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, -1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    return R, -R @ position


def _lab_cameras(image_size: tuple[int, int], n_cameras: int) -> list[CameraModel]:
    if not 1 <= n_cameras <= len(_VIEW_DIRECTIONS):
        raise InputError(f"n_cameras must be 1..{len(_VIEW_DIRECTIONS)}, got {n_cameras}")
    w, h = (int(v) for v in image_size)
    if w < 16 or h < 16:
        raise InputError(f"image_size must be at least 16x16 pixels, got {image_size}")
    f = focal_length_px(w)
    cams = []
    for i in range(n_cameras):
        direction = _VIEW_DIRECTIONS[i] / np.linalg.norm(_VIEW_DIRECTIONS[i])
        R, t = _look_at(AIM_POINT_LAB + WORKING_DISTANCE_MM * direction, AIM_POINT_LAB)
        cx = (w - 1) / 2 + _PRINCIPAL_OFFSETS[i, 0] * w
        cy = (h - 1) / 2 + _PRINCIPAL_OFFSETS[i, 1] * h
        K = np.array([[f, 0.0, cx], [0.0, f, cy], [0.0, 0.0, 1.0]])
        cams.append(CameraModel(f"cam{i}", (w, h), K, _DISTORTIONS[i], R, t))
    return cams


def rig_and_lab_frame(image_size: tuple[int, int] = (160, 128), n_cameras: int = 2
                      ) -> tuple[Rig, np.ndarray, np.ndarray]:
    """The simulated rig in camera 0's frame, plus the lab-to-world transform (X_w = R X_lab + t).

    Parameters
    ----------
    image_size : tuple of int, (width, height), px
        At least 16x16.
    n_cameras : int
        1..4.

    Returns
    -------
    rig : Rig
    R : numpy.ndarray, (3, 3)
    t : numpy.ndarray, (3,), mm

    Raises
    ------
    InputError
        If ``n_cameras`` or ``image_size`` is out of range.
    """
    lab = _lab_cameras(image_size, n_cameras)
    R0, t0 = lab[0].R, lab[0].t
    cams = (CameraModel(lab[0].name, lab[0].size, lab[0].K, lab[0].dist),)  # exactly R = I, t = 0
    cams += tuple(CameraModel(c.name, c.size, c.K, c.dist, c.R @ R0.T, c.t - c.R @ R0.T @ t0) for c in lab[1:])
    return Rig(cams), R0.copy(), t0.copy()


def default_rig(image_size: tuple[int, int] = (160, 128), n_cameras: int = 2) -> Rig:
    """The simulated rig (camera 0 at the world origin, R=I, t=0), images of ``image_size`` (w, h).

    Parameters
    ----------
    image_size : tuple of int, (width, height), px
    n_cameras : int
        1..4.

    Returns
    -------
    Rig

    Raises
    ------
    InputError
        If ``n_cameras`` or ``image_size`` is out of range.
    """
    return rig_and_lab_frame(image_size, n_cameras)[0]
