"""Export triangulated pose to open formats: NWB (ndx-pose), Anipose-style CSV / HDF5, movement.

Every function takes plain arrays: points3d (n_frames, n_parts, 3) mm, per-point arrays
(n_frames, n_parts) such as reprojection errors, camera counts and scores, times on the neural
clock (n_frames,) seconds, and body-part names. Heavy libraries (pynwb, ndx-pose, movement) are
imported only by the function that needs them.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ratpose.rig import Rig

REFERENCE_FRAME = ("world frame of the calibrated rig (camera 0's camera frame: x right, y down, z along its "
                   "optical axis), millimetres")


def _check_pose(points3d, bodyparts) -> tuple[np.ndarray, list[str]]:
    pts = np.asarray(points3d, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[-1] != 3:
        raise ValueError(f"points3d must have shape (n_frames, n_parts, 3), got {pts.shape}")
    names = [str(b) for b in bodyparts]
    if len(names) != pts.shape[1]:
        raise ValueError(f"bodyparts has {len(names)} names but points3d has {pts.shape[1]} parts")
    if len(set(names)) != len(names):
        raise ValueError(f"bodyparts must be unique, got {names}")
    return pts, names


def _per_point(values, shape: tuple[int, int], name: str, fill=np.nan) -> np.ndarray:
    if values is None:
        return np.full(shape, fill, dtype=np.float64)
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (n_frames, n_parts), got {arr.shape}")
    return arr


def _per_frame(values, n_frames: int, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n_frames,):
        raise ValueError(f"{name} must have shape ({n_frames},) (one value per frame), got {arr.shape}")
    return arr


def pose_table(points3d, bodyparts, *, errors=None, n_cameras=None, scores=None, frame_numbers=None,
               times_s=None) -> pd.DataFrame:
    """Anipose-style table: <part>_x, _y, _z, _error, _ncams, _score per body part, then fnum
    (frame numbers, default 0..n-1) and, when given, time_s (neural clock). Missing inputs are NaN."""
    pts, names = _check_pose(points3d, bodyparts)
    shape = pts.shape[:2]
    per_point = {"error": _per_point(errors, shape, "errors"), "ncams": _per_point(n_cameras, shape, "n_cameras"),
                 "score": _per_point(scores, shape, "scores")}
    columns = {}
    for j, part in enumerate(names):
        for k, axis in enumerate("xyz"):
            columns[f"{part}_{axis}"] = pts[:, j, k]
        for field, values in per_point.items():
            columns[f"{part}_{field}"] = values[:, j]
    fnum = np.arange(shape[0]) if frame_numbers is None else _per_frame(frame_numbers, shape[0], "frame_numbers")
    columns["fnum"] = fnum.astype(np.int64)
    if times_s is not None:
        columns["time_s"] = _per_frame(times_s, shape[0], "times_s")
    return pd.DataFrame(columns)


def to_csv(path, points3d, bodyparts, **columns) -> Path:
    """Write pose_table(points3d, bodyparts, **columns) as CSV; returns the path."""
    path = Path(path)
    pose_table(points3d, bodyparts, **columns).to_csv(path, index=False)
    return path


def to_hdf(path, points3d, bodyparts, *, key: str = "pose3d", **columns) -> Path:
    """Write pose_table(points3d, bodyparts, **columns) to HDF5 (pandas/PyTables) under `key`."""
    path = Path(path)
    pose_table(points3d, bodyparts, **columns).to_hdf(path, key=key, mode="w")
    return path


def _calibrated_cameras(rig: Rig):
    from ndx_pose import CalibratedCamera

    return [CalibratedCamera(name=cam.name, intrinsic_matrix=cam.K, rotation_matrix=cam.R,
                             translation_vector=cam.t, distortion_coefficients=cam.dist,
                             description=f"{cam.size[0]}x{cam.size[1]} px; x_cam = R X + t (mm); "
                                         "dist = (k1, k2, p1, p2, k3), OpenCV model")
            for cam in rig]


def to_nwb(path, points3d, times_s, bodyparts, *, session_start_time: datetime, scores=None,
           errors=None, n_cameras=None, rig: Rig | None = None, edges=None, subject_id: str | None = None,
           session_description: str = "3D pose of a rat (ratpose)", identifier: str | None = None,
           scorer: str | None = None, source_software_version: str | None = None) -> Path:
    """Write 3D pose to an NWB file with ndx-pose.

    One PoseEstimationSeries per body part (data (n_frames, 3) mm, timestamps = times_s on the
    neural clock, confidence = scores when given) in processing/behavior/PoseEstimation, with a
    Skeleton (nodes = bodyparts, optional edges as index pairs); when a rig is given its cameras
    are stored as ndx-pose CalibratedCamera devices of the file (not linked from PoseEstimation,
    which ndx-pose reserves for single-view 2D pose). errors and n_cameras (n_frames, n_parts), when
    given, become TimeSeries reprojection_error (px) and n_cameras in the same module.
    session_start_time must be timezone-aware.
    """
    from ndx_pose import PoseEstimation, PoseEstimationSeries, Skeleton, Skeletons
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.file import Subject

    pts, names = _check_pose(points3d, bodyparts)
    n_frames = pts.shape[0]
    times = _per_frame(times_s, n_frames, "times_s")
    if not np.isfinite(times).all() or (np.diff(times) < 0).any():
        raise ValueError("times_s must be finite and non-decreasing (seconds on the neural clock)")
    if session_start_time.tzinfo is None:
        raise ValueError("session_start_time must be timezone-aware (e.g. datetime(..., tzinfo=...))")
    shape = pts.shape[:2]
    score = None if scores is None else _per_point(scores, shape, "scores")
    edge_array = np.zeros((0, 2), dtype=np.uint8) if edges is None else np.asarray(edges)
    if edge_array.ndim != 2 or edge_array.shape[1] != 2 or ((edge_array < 0) | (edge_array >= len(names))).any():
        raise ValueError(f"edges must be pairs of body-part indices in [0, {len(names)}), got {edge_array.tolist()}")

    nwb = NWBFile(session_description=session_description, identifier=identifier or str(uuid.uuid4()),
                  session_start_time=session_start_time,
                  subject=Subject(subject_id=subject_id, species="Rattus norvegicus") if subject_id else None)
    behavior = nwb.create_processing_module("behavior", "3D pose (ratpose)")
    skeleton = Skeleton(name="subject", nodes=names, edges=edge_array.astype(np.uint8))
    behavior.add(Skeletons(skeletons=[skeleton]))
    for device in _calibrated_cameras(rig) if rig is not None else ():
        nwb.add_device(device)

    series = []
    for j, part in enumerate(names):
        timestamps = times if not series else series[0]  # later series link the first one's timestamps
        confidence = {} if score is None else {
            "confidence": score[:, j], "confidence_definition": "mean 2D likelihood of the cameras used"}
        series.append(PoseEstimationSeries(name=part, description=f"3D position of {part}", data=pts[:, j],
                                           unit="mm", reference_frame=REFERENCE_FRAME, timestamps=timestamps,
                                           **confidence))
    behavior.add(PoseEstimation(pose_estimation_series=series, description="triangulated 3D pose (ratpose)",
                                scorer=scorer, source_software="ratpose",
                                source_software_version=source_software_version, skeleton=skeleton))
    for name, values, unit, description in (
            ("reprojection_error", errors, "px", "mean reprojection error over the cameras used, per body part"),
            ("n_cameras", n_cameras, "cameras", "number of cameras used, per body part")):
        if values is not None:
            behavior.add(TimeSeries(name=name, data=_per_point(values, shape, name), unit=unit,
                                    timestamps=series[0], description=f"{description}; columns: {', '.join(names)}"))
    path = Path(path)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def to_movement(points3d, bodyparts, *, times_s=None, scores=None, individual: str = "rat", fps: float | None = None):
    """3D pose as a `movement` poses xarray Dataset (time x space x keypoints x individuals).

    Time coordinates are times_s (neural clock, seconds) when given, else from fps (or frame numbers).
    Requires the optional `movement` package.
    """
    try:
        from movement.io import load_poses
    except ImportError as err:
        raise ImportError("to_movement needs the optional 'movement' package (pip install movement)") from err
    pts, names = _check_pose(points3d, bodyparts)
    shape = pts.shape[:2]
    confidence = None if scores is None else _per_point(scores, shape, "scores")[:, :, None]
    dataset = load_poses.from_numpy(position_array=pts.transpose(0, 2, 1)[..., None], confidence_array=confidence,
                                    individual_names=[individual], keypoint_names=names, fps=fps,
                                    source_software="ratpose")
    if times_s is not None:
        dataset = dataset.assign_coords(time=_per_frame(times_s, shape[0], "times_s"))
        dataset.attrs["time_unit"] = "seconds"
    return dataset


def write_pose3d(path, data: dict, fmt: str, *, subject_id: str) -> Path:
    """Write a session's 3D pose (as ratpose.schema.pose.fetch_pose3d returns it) as nwb, csv or hdf."""
    columns = dict(errors=data["reprojection_error"], n_cameras=data["n_cameras"])
    if fmt == "nwb":
        # session datetimes are stored as the rig's local time; NWB needs a timezone
        return to_nwb(path, data["points3d"], data["time_s"], data["bodyparts"],
                      session_start_time=data["session_datetime"].astimezone(), subject_id=subject_id, **columns)
    if fmt == "csv":
        return to_csv(path, data["points3d"], data["bodyparts"], times_s=data["time_s"], **columns)
    if fmt == "hdf":
        return to_hdf(path, data["points3d"], data["bodyparts"], times_s=data["time_s"], **columns)
    raise ValueError(f"unknown export format {fmt!r}: use nwb, csv or hdf")
