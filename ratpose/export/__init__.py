"""Export a session to open formats: NWB (ndx-pose), anipose CSV, DeepLabCut .h5, movement.

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


def pose_table(points3d, bodyparts, *, errors=None, n_cameras=None, scores=None, frame_numbers=None) -> pd.DataFrame:
    """The table anipose's ``triangulate`` writes: <part>_x, _y, _z, _error, _ncams, _score per body part,
    M_ij (identity) and center_i (zero): the points stay in the rig's frame, then fnum, the frame number
    (default 0..n-1; ratpose's exports: the trigger pulse counted from the first). As anipose does, _ncams,
    _error and _score are NaN where fewer than two cameras saw the point; scores are the lowest 2D score of
    the cameras used. No other column: movement's reader refuses any."""
    pts, names = _check_pose(points3d, bodyparts)
    shape = pts.shape[:2]
    ncams = _per_point(n_cameras, shape, "n_cameras")
    unseen = ~(ncams >= 2)  # NaN counts (unknown) also count as unseen
    per_point = {field: np.where(unseen, np.nan, values) for field, values in
                 (("error", _per_point(errors, shape, "errors")), ("ncams", ncams),
                  ("score", _per_point(scores, shape, "scores")))}
    columns = {}
    for j, part in enumerate(names):
        for k, axis in enumerate("xyz"):
            columns[f"{part}_{axis}"] = pts[:, j, k]
        for field, values in per_point.items():
            columns[f"{part}_{field}"] = values[:, j]
    columns.update({f"M_{i}{j}": np.full(shape[0], float(i == j)) for i in range(3) for j in range(3)})
    columns.update({f"center_{i}": np.zeros(shape[0]) for i in range(3)})
    fnum = np.arange(shape[0]) if frame_numbers is None else _per_frame(frame_numbers, shape[0], "frame_numbers")
    columns["fnum"] = fnum.astype(np.int64)
    return pd.DataFrame(columns)


def to_csv(path, points3d, bodyparts, **columns) -> Path:
    """Write pose_table(points3d, bodyparts, **columns) as CSV, as anipose does; returns the path."""
    path = Path(path)
    pose_table(points3d, bodyparts, **columns).to_csv(path, index=False)
    return path


def dlc_table(points, bodyparts, *, scorer: str, likelihood=None, index=None) -> pd.DataFrame:
    """DeepLabCut's table: columns (scorer, bodyparts, coords), one row per frame (``index``: the frame numbers,
    default 0..n-1). points (n, parts, 2) gives DLC's 2D layout (x, y, likelihood), (n, parts, 3) its 3D one."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[-1] not in (2, 3):
        raise ValueError(f"points must have shape (n_frames, n_parts, 2 or 3), got {pts.shape}")
    names = _check_pose(np.zeros(pts.shape[:2] + (3,)), bodyparts)[1]
    coords = ["x", "y", "z"][:pts.shape[-1]]
    if pts.shape[-1] == 2:
        pts = np.concatenate([pts, _per_point(likelihood, pts.shape[:2], "likelihood")[..., None]], axis=-1)
        coords.append("likelihood")
    header = pd.MultiIndex.from_product([[scorer], names, coords], names=["scorer", "bodyparts", "coords"])
    rows = None if index is None else _per_frame(index, len(pts), "index").astype(np.int64)
    return pd.DataFrame(pts.reshape(len(pts), -1), columns=header, index=rows)


def to_dlc_h5(path, points, bodyparts, *, scorer: str, likelihood=None, index=None) -> Path:
    """Write dlc_table(...) as DeepLabCut does: HDF5 key 'df_with_missing', PyTables table format."""
    path = Path(path)
    dlc_table(points, bodyparts, scorer=scorer, likelihood=likelihood, index=index).to_hdf(
        path, key="df_with_missing", format="table", mode="w")
    return path


def _calibrated_cameras(rig: Rig):
    from ndx_pose import CalibratedCamera

    return [CalibratedCamera(name=cam.name, intrinsic_matrix=cam.K, rotation_matrix=cam.R,
                             translation_vector=cam.t, distortion_coefficients=cam.dist,
                             description=f"{cam.size[0]}x{cam.size[1]} px; x_cam = R X + t (mm); "
                                         + ("dist = (k1, k2, k3, k4), OpenCV fisheye (equidistant) model" if cam.fisheye
                                            else "dist = (k1, k2, p1, p2, k3[, k4, k5, k6]), OpenCV model"))
            for cam in rig]


REGULAR_TOLERANCE_S = 1e-4  # frames this close to a fixed-rate grid are written as starting_time + rate


def _timing(times: np.ndarray) -> dict:
    """NWB timing of frames: starting_time and rate when every frame lies within REGULAR_TOLERANCE_S of a
    fixed-rate grid (trigger pulses, with the Pi's microsecond jitter: readers that build time from the rate,
    as movement does, then get every frame's time), else the timestamps."""
    if len(times) > 1 and times[-1] > times[0]:
        rate = (len(times) - 1) / (times[-1] - times[0])
        if np.abs(times - (times[0] + np.arange(len(times)) / rate)).max() <= REGULAR_TOLERANCE_S:
            return {"starting_time": float(times[0]), "rate": float(rate)}
    return {"timestamps": times}


def _pose_series(points, timing, names, *, unit, reference_frame, description, confidence, confidence_definition):
    """One PoseEstimationSeries per body part; timing is _timing's dict or a series whose timestamps to link."""
    from ndx_pose import PoseEstimationSeries

    series = []
    for j, part in enumerate(names):
        when = _linked(series[0]) if series else timing if isinstance(timing, dict) else _linked(timing)
        series.append(PoseEstimationSeries(name=part, description=f"{description}: {part}", data=points[:, j],
                                           unit=unit, reference_frame=reference_frame, **when,
                                           confidence=None if confidence is None else confidence[:, j],
                                           confidence_definition=confidence_definition))
    return series


def _linked(series) -> dict:
    """Timing of another series: a link to its timestamps, or its starting_time and rate."""
    if series.timestamps is not None:
        return {"timestamps": series}
    return {"starting_time": series.starting_time, "rate": series.rate}


def to_nwb(path, points3d, times_s, bodyparts, *, session_start_time: datetime, clock_offset_s: float | None = None,
           scores=None, errors=None, n_cameras=None, rig: Rig | None = None, pose2d: dict | None = None,
           edges=None, pulse_index=None, subject: dict | None = None, units=None,
           spike_resolution_s: float | None = None,
           touches=None, turns=None,
           session_description: str = "3D pose of a rat (ratpose)", identifier: str | None = None,
           scorer: str | None = None, source_software_version: str | None = None) -> Path:
    """Write one session to NWB (ndx-pose 0.4).

    All times are seconds on the neural clock; the file holds t - clock_offset_s (the neural-clock time
    of session_start_time, default the earliest frame, spike or interval), recorded in the file's notes. Written:
    processing/behavior/PoseEstimation (3D, millimetres, confidence = scores), one PoseEstimation_<cam>
    per camera in pose2d ({camera: (xy (m, parts, 2) px, likelihood (m, parts), times_s (m,))}: every frame the
    camera delivered, on its own times) linked to the rig's cameras as CalibratedCamera devices,
    reprojection_error / n_cameras TimeSeries, trigger_pulses (``pulse_index`` of the rows, -1 for none, on
    their exact times: the pose may be written with a rate, within REGULAR_TOLERANCE_S), a Skeleton with
    edges (index pairs);
    subject (dict of pynwb Subject fields, species defaulting to Rattus norvegicus),
    units ([(unit_id, spike_times, {column: value})], with spike_resolution_s, the
    sorter's time resolution), touches and turns ((n, 2) start/stop) as
    TimeIntervals. Leave any part out by passing None. session_start_time must be timezone-aware.
    """
    from ndx_pose import MultiCameraPoseEstimation, PoseEstimation, Skeleton, Skeletons
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject
    from pynwb.misc import Units

    pts, names = _check_pose(points3d, bodyparts)
    n_frames = pts.shape[0]
    times = _per_frame(times_s, n_frames, "times_s")
    if not np.isfinite(times).all() or (np.diff(times) < 0).any():
        raise ValueError("times_s must be finite and non-decreasing (seconds on the neural clock)")
    if session_start_time.tzinfo is None:
        raise ValueError("session_start_time must be timezone-aware (e.g. datetime(..., tzinfo=...))")
    starts = [times[0], *(np.min(u[1], initial=np.inf) for u in units or ()),
              *(np.min(view[2], initial=np.inf) for view in (pose2d or {}).values()),
              *(np.min(i, initial=np.inf) for i in (touches, turns) if i is not None)]
    offset = float(min(starts)) if clock_offset_s is None else float(clock_offset_s)
    if min(starts) < offset:
        raise ValueError(f"clock_offset_s {offset} is after the first event ({min(starts)} s): NWB times must be >= 0")
    shape = pts.shape[:2]
    score = None if scores is None else _per_point(scores, shape, "scores")
    edge_array = np.asarray(edges if edges is not None and len(edges) else np.zeros((0, 2), dtype=np.uint8))
    if edge_array.ndim != 2 or edge_array.shape[1] != 2 or ((edge_array < 0) | (edge_array >= len(names))).any():
        raise ValueError(f"edges must be pairs of body-part indices in [0, {len(names)}), got {edge_array.tolist()}")

    subject_fields = {"species": "Rattus norvegicus", **(subject or {})}
    nwb = NWBFile(session_description=session_description, identifier=identifier or str(uuid.uuid4()),
                  session_start_time=session_start_time,
                  notes=f"neural clock offset: NWB time = neural clock time - {offset!r} s",
                  subject=Subject(**subject_fields) if subject is not None else None)
    behavior = nwb.create_processing_module("behavior", "pose and knob behaviour (ratpose)")
    skeleton = Skeleton(name="subject", nodes=names, edges=edge_array.astype(np.uint8))
    behavior.add(Skeletons(skeletons=[skeleton]))
    cameras = {}
    for device in _calibrated_cameras(rig) if rig is not None else ():
        nwb.add_device(device)
        cameras[device.name] = device
    common = dict(skeleton=skeleton, scorer=scorer, source_software="ratpose",
                  source_software_version=source_software_version)
    series3d = _pose_series(pts, _timing(times - offset), names, unit="millimeters", reference_frame=REFERENCE_FRAME,
                            description="triangulated 3D pose", confidence=score,
                            confidence_definition="lowest 2D likelihood of the cameras used")
    first = series3d[0]
    views = []
    for camera, (xy, likelihood, camera_times) in (pose2d or {}).items():
        if camera not in cameras:
            raise ValueError(f"pose2d camera {camera!r} is not in the rig ({', '.join(cameras) or 'no rig given'})")
        xy = np.asarray(xy, dtype=np.float64)
        if xy.ndim != 3 or xy.shape[1:] != (len(names), 2):
            raise ValueError(f"pose2d[{camera!r}] must have shape (n_frames, {len(names)}, 2), got {xy.shape}")
        camera_times = _per_frame(camera_times, len(xy), f"pose2d[{camera!r}] times")
        series2d = _pose_series(
            xy, _timing(camera_times - offset), names, unit="pixels", description=f"2D pose in camera {camera}",
            reference_frame=f"image of camera {camera}: (0, 0) the top-left pixel's centre, x right, y down",
            confidence=_per_point(likelihood, xy.shape[:2], "likelihood"),
            confidence_definition="DeepLabCut likelihood")
        views.append(PoseEstimation(name=f"PoseEstimation_{camera}", pose_estimation_series=series2d,
                                    description=f"2D pose in camera {camera}", device=cameras[camera], **common))
    behavior.add(MultiCameraPoseEstimation(name="PoseEstimation", pose_estimation_series=series3d,
                                           pose_estimations=views or None,
                                           description="3D pose triangulated from the 2D pose of each camera",
                                           **common))
    for name, values, unit, description in (
            ("reprojection_error", errors, "px", "mean reprojection error over the cameras used, per body part"),
            ("n_cameras", n_cameras, "cameras", "number of cameras used, per body part")):
        if values is not None:
            behavior.add(TimeSeries(name=name, data=_per_point(values, shape, name), unit=unit,
                                    **_linked(first), description=f"{description}; columns: {', '.join(names)}"))
    if pulse_index is not None:
        pulse = _per_frame(pulse_index, n_frames, "pulse_index").astype(np.int64)
        behavior.add(TimeSeries(name="trigger_pulses", data=pulse[pulse >= 0], unit="pulse",
                                timestamps=times[pulse >= 0] - offset,
                                description="the trigger pulse of each pose row (index into the Pi's trigger log) "
                                            "at its exact time on the neural clock"))
    if units:
        if spike_resolution_s is None:
            raise ValueError("units need spike_resolution_s (the spike sorter's time resolution, seconds)")
        nwb.units = Units(name="units", description="sorted units (ratpose)", resolution=spike_resolution_s)
    for column in units[0][2] if units else ():
        nwb.add_unit_column(name=column, description=column)
    for unit_id, spike_times, columns in units or ():
        nwb.add_unit(id=int(unit_id), spike_times=np.asarray(spike_times, dtype=np.float64) - offset, **columns)
    for name, intervals, description in (("knob_touches", touches, "the rat touching the knob"),
                                         ("knob_turns", turns, "the knob turning")):
        if intervals is not None:
            table = TimeIntervals(name=name, description=description)
            for start, stop in np.asarray(intervals, dtype=np.float64).reshape(-1, 2) - offset:
                table.add_interval(start_time=start, stop_time=stop)
            nwb.add_time_intervals(table)
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
