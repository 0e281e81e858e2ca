"""A session's 3D pose in memory: movement's poses dataset, the one form the stages share.

Pose3D, the report, the query API, the analyses and the exports all pass a session's pose as an
``xarray.Dataset`` in `movement <https://movement.neuroinformatics.dev>`_'s layout, so a lab can hand
it to movement's own filters and plots unchanged:

- ``position`` (time, space, keypoints, individuals): mm in the calibrated rig's world frame;
- ``confidence`` (time, keypoints, individuals): movement's score, NaN where there is none;
- ratpose's extras, (time, keypoints, individuals) each, present when known: ``sigma_mm`` (the
  smoother's posterior standard deviation), ``reprojection_error_px``, ``n_cameras`` (cameras that
  saw the point) and ``outlier`` (some camera's 2D judged wrong);
- ``time``: seconds on the neural clock, with ``pulse_index`` (the trigger pulse of each row) as a
  coordinate along it. ``attrs`` may carry where the pose came from (``source_key``).

``pose_dataset`` builds and validates it (once, through movement's own validator);
``positions``/``position_of``/``per_point`` read arrays back out by keypoint name.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from .errors import InputError

EXTRAS = ("sigma_mm", "reprojection_error_px", "n_cameras", "outlier")
INDIVIDUAL = "rat"


def pose_dataset(points3d, keypoints: Sequence[str], time_s, *, pulse_index=None, confidence=None,
                 individual: str = INDIVIDUAL, **extras) -> xr.Dataset:
    """A movement poses dataset of one animal's 3D pose.

    Parameters
    ----------
    points3d : array (n_frames, n_keypoints, 3)
        Positions in mm; NaN where a point was not reconstructed.
    keypoints : sequence of str
        Keypoint (body-part) names, in the order of ``points3d``'s second axis.
    time_s : array (n_frames,)
        Neural-clock times of the rows, seconds.
    pulse_index : array (n_frames,), optional
        The trigger pulse of each row (-1 where a row has none).
    confidence : array (n_frames, n_keypoints), optional
        A score per point (NaN: none).
    individual : str
        The animal's name in movement's ``individuals`` dimension.
    **extras : arrays (n_frames, n_keypoints)
        Any of ``EXTRAS``; None leaves it out.

    Returns
    -------
    xarray.Dataset
        Validated by movement (``from_numpy``), with ``time`` on the neural clock.
    """
    from movement.io import load_poses

    points, names = check_points(points3d, keypoints)
    shape = points.shape[:2]
    times = per_frame_values(time_s, shape[0], "time_s")
    score = None if confidence is None else per_point_values(confidence, shape, "confidence")[:, :, None]
    dataset = load_poses.from_numpy(position_array=points.transpose(0, 2, 1)[..., None], confidence_array=score,
                                    individual_names=[individual], keypoint_names=names, source_software="ratpose")
    dataset = dataset.assign_coords(time=times)
    dataset.attrs.update(time_unit="seconds", time_reference="neural clock (the trigger log's ticks)")
    unknown = sorted(set(extras) - set(EXTRAS))
    if unknown:
        raise InputError(f"unknown per-point variable(s) {unknown}; known: {list(EXTRAS)}")
    for name, values in extras.items():
        if values is not None:
            dtype = np.bool_ if name == "outlier" else np.float64
            dataset[name] = (("time", "keypoints", "individuals"),
                             per_point_values(values, shape, name).astype(dtype)[:, :, None])
    if pulse_index is not None:
        pulses = per_frame_values(pulse_index, shape[0], "pulse_index").astype(np.int64)
        dataset = dataset.assign_coords(pulse_index=("time", pulses))
    return dataset


def keypoint_names(poses: xr.Dataset) -> list[str]:
    """The dataset's keypoint names, in order.

    Parameters
    ----------
    poses : xarray.Dataset
        A movement poses dataset (see ``pose_dataset``).

    Returns
    -------
    list of str
    """
    return [str(k) for k in poses.keypoints.values]


def positions(poses: xr.Dataset, keypoints: Sequence[str] | None = None) -> np.ndarray:
    """Positions (n_frames, n_keypoints, 3) mm of the named keypoints (default all), in the order given.

    Parameters
    ----------
    poses : xarray.Dataset
        A movement poses dataset (its first individual is read).
    keypoints : sequence of str, optional
        Keypoint names; None: all, in the dataset's order.

    Returns
    -------
    numpy.ndarray, (n_frames, n_keypoints, 3) float64, mm

    Raises
    ------
    InputError
        If a name is not a keypoint of the dataset.
    """
    position = poses.position.isel(individuals=0)
    if keypoints is not None:
        position = position.sel(keypoints=_known(poses, keypoints))
    return position.transpose("time", "keypoints", "space").values.astype(np.float64)


def position_of(poses: xr.Dataset, keypoint: str) -> np.ndarray:
    """One keypoint's positions (n_frames, 3) mm.

    Parameters
    ----------
    poses : xarray.Dataset
        A movement poses dataset (its first individual is read).
    keypoint : str
        A keypoint name.

    Returns
    -------
    numpy.ndarray, (n_frames, 3) float64, mm

    Raises
    ------
    InputError
        If ``keypoint`` is not a keypoint of the dataset.
    """
    return positions(poses, [keypoint])[:, 0]


def per_point(poses: xr.Dataset, name: str, keypoints: Sequence[str] | None = None) -> np.ndarray | None:
    """A per-point variable (``confidence`` or one of ``EXTRAS``) as (n_frames, n_keypoints); None if absent.

    Parameters
    ----------
    poses : xarray.Dataset
        A movement poses dataset (its first individual is read).
    name : str
        The variable's name, e.g. "confidence" or "reprojection_error_px".
    keypoints : sequence of str, optional
        Keypoint names; None: all, in the dataset's order.

    Returns
    -------
    numpy.ndarray, (n_frames, n_keypoints), or None
        The variable's values (its own dtype); None if the dataset has no such variable.

    Raises
    ------
    InputError
        If a name in ``keypoints`` is not a keypoint of the dataset.
    """
    if name not in poses:
        return None
    values = poses[name].isel(individuals=0)
    if keypoints is not None:
        values = values.sel(keypoints=_known(poses, keypoints))
    return values.transpose("time", "keypoints").values


def _known(poses: xr.Dataset, keypoints: Sequence[str]) -> list[str]:
    names = [str(k) for k in keypoints]
    unknown = sorted(set(names) - set(keypoint_names(poses)))
    if unknown:
        raise InputError(f"unknown body part(s) {unknown}; this pose has {keypoint_names(poses)}")
    return names


def check_points(points3d, keypoints: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """``points3d`` as float (n_frames, n_keypoints, 3) and the names as str; InputError if they do not fit.

    Parameters
    ----------
    points3d : array_like, (n_frames, n_keypoints, 3)
    keypoints : sequence of str
        One unique name per keypoint.

    Returns
    -------
    points : numpy.ndarray, (n_frames, n_keypoints, 3) float64
    names : list of str

    Raises
    ------
    InputError
        If ``points3d`` is not (n_frames, n_keypoints, 3), the number of names differs from n_keypoints, or the
        names are not unique.
    """
    points = np.asarray(points3d, dtype=np.float64)
    names = [str(k) for k in keypoints]
    if points.ndim != 3 or points.shape[2] != 3:
        raise InputError(f"points3d must have shape (n_frames, n_keypoints, 3), got {points.shape}")
    if points.shape[1] != len(names):
        raise InputError(f"{len(names)} names but points3d has {points.shape[1]} keypoints")
    if len(set(names)) != len(names):
        raise InputError(f"keypoint names must be unique, got {names}")
    return points, names


def per_point_values(values, shape: tuple[int, int], name: str, fill=np.nan) -> np.ndarray:
    """``values`` as float (n_frames, n_keypoints), ``fill`` everywhere when None; InputError on another shape.

    Parameters
    ----------
    values : array_like, (n_frames, n_keypoints), or None
    shape : tuple of int, (n_frames, n_keypoints)
        The shape ``values`` must have.
    name : str
        The argument's name, for the error message.
    fill : float
        The value of every point when ``values`` is None (default NaN).

    Returns
    -------
    numpy.ndarray, (n_frames, n_keypoints) float64

    Raises
    ------
    InputError
        If ``values`` has another shape.
    """
    if values is None:
        return np.full(shape, fill, dtype=np.float64)
    array = np.asarray(values, dtype=np.float64)
    if array.shape != shape:
        raise InputError(f"{name} must be (n_frames, n_keypoints) = {shape}, got {array.shape}")
    return array


def per_frame_values(values, n_frames: int, name: str) -> np.ndarray:
    """``values`` as float (n_frames,); InputError on another shape.

    Parameters
    ----------
    values : array_like, (n_frames,)
    n_frames : int
        The number of values required.
    name : str
        The argument's name, for the error message.

    Returns
    -------
    numpy.ndarray, (n_frames,) float64

    Raises
    ------
    InputError
        If ``values`` does not have shape (n_frames,).
    """
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n_frames,):
        raise InputError(f"{name} must have one value per frame ({n_frames}), got shape {array.shape}")
    return array
