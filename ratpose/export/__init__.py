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

from ratpose.poses import check_points, per_frame_values, per_point_values, pose_dataset
from ratpose.rig import Rig

from ..errors import InputError

REFERENCE_FRAME = ("world frame of the calibrated rig (camera 0's camera frame: x right, y down, z along its "
                   "optical axis), millimetres")


def pose_table(points3d, bodyparts, *, errors=None, n_cameras=None, scores=None, frame_numbers=None) -> pd.DataFrame:
    """The table anipose's ``triangulate`` writes: <part>_x, _y, _z, _error, _ncams, _score per body part.

    Also M_ij (identity) and center_i (zero): the points stay in the rig's frame, then fnum, the frame number
    (default 0..n-1; ratpose's exports: the trigger pulse counted from the first). As anipose does, _ncams,
    _error and _score are NaN where fewer than two cameras saw the point; scores are the lowest 2D score of
    the cameras used. No other column: movement's reader refuses any.

    Parameters
    ----------
    points3d : array_like, (n_frames, n_parts, 3), mm
    bodyparts : sequence of str
        One unique name per part.
    errors : array_like, (n_frames, n_parts), optional, px
        Reprojection errors; NaN when None.
    n_cameras : array_like, (n_frames, n_parts), optional
        Cameras that saw each point; None: unknown (every point counts as unseen).
    scores : array_like, (n_frames, n_parts), optional
        Lowest 2D score of the cameras used; NaN when None.
    frame_numbers : array_like, (n_frames,), optional
        The fnum column; default 0..n-1.

    Returns
    -------
    pandas.DataFrame
        One row per frame.

    Raises
    ------
    InputError
        If an array's shape does not fit ``points3d`` or the names are not one unique name per part.
    """
    pts, names = check_points(points3d, bodyparts)
    shape = pts.shape[:2]
    ncams = per_point_values(n_cameras, shape, "n_cameras")
    unseen = ~(ncams >= 2)  # NaN counts (unknown) also count as unseen
    per_point = {field: np.where(unseen, np.nan, values) for field, values in
                 (("error", per_point_values(errors, shape, "errors")), ("ncams", ncams),
                  ("score", per_point_values(scores, shape, "scores")))}
    columns = {}
    for j, part in enumerate(names):
        for k, axis in enumerate("xyz"):
            columns[f"{part}_{axis}"] = pts[:, j, k]
        for field, values in per_point.items():
            columns[f"{part}_{field}"] = values[:, j]
    columns.update({f"M_{i}{j}": np.full(shape[0], float(i == j)) for i in range(3) for j in range(3)})
    columns.update({f"center_{i}": np.zeros(shape[0]) for i in range(3)})
    fnum = np.arange(shape[0]) if frame_numbers is None else per_frame_values(frame_numbers, shape[0], "frame_numbers")
    columns["fnum"] = fnum.astype(np.int64)
    return pd.DataFrame(columns)


def to_csv(path, points3d, bodyparts, **columns) -> Path:
    """Write pose_table(points3d, bodyparts, **columns) as CSV, as anipose does; returns the path.

    Parameters
    ----------
    path : str or Path
    points3d : array_like, (n_frames, n_parts, 3), mm
    bodyparts : sequence of str
    **columns
        ``errors``, ``n_cameras``, ``scores``, ``frame_numbers``: see ``pose_table``.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        As ``pose_table``.
    """
    path = Path(path)
    pose_table(points3d, bodyparts, **columns).to_csv(path, index=False)
    return path


def dlc_table(points, bodyparts, *, scorer: str, likelihood=None, index=None) -> pd.DataFrame:
    """DeepLabCut's table: columns (scorer, bodyparts, coords), one row per frame.

    ``index``: the frame numbers, default 0..n-1. points (n, parts, 2) gives DLC's 2D layout (x, y,
    likelihood), (n, parts, 3) its 3D one.

    Parameters
    ----------
    points : array_like, (n_frames, n_parts, 2), px, or (n_frames, n_parts, 3), mm
    bodyparts : sequence of str
        One unique name per part.
    scorer : str
        The scorer level of the columns.
    likelihood : array_like, (n_frames, n_parts), optional
        The likelihood column of a 2D table (NaN when None); not used in 3D.
    index : array_like, (n_frames,), optional
        The frame numbers (int).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    InputError
        If ``points`` is not (n_frames, n_parts, 2 or 3), or the names, ``likelihood`` or ``index`` do not fit it.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 3 or pts.shape[-1] not in (2, 3):
        raise InputError(f"points must have shape (n_frames, n_parts, 2 or 3), got {pts.shape}")
    names = check_points(np.zeros(pts.shape[:2] + (3,)), bodyparts)[1]
    coords = ["x", "y", "z"][:pts.shape[-1]]
    if pts.shape[-1] == 2:
        pts = np.concatenate([pts, per_point_values(likelihood, pts.shape[:2], "likelihood")[..., None]], axis=-1)
        coords.append("likelihood")
    header = pd.MultiIndex.from_product([[scorer], names, coords], names=["scorer", "bodyparts", "coords"])
    rows = None if index is None else per_frame_values(index, len(pts), "index").astype(np.int64)
    return pd.DataFrame(pts.reshape(len(pts), -1), columns=header, index=rows)


def to_dlc_h5(path, points, bodyparts, *, scorer: str, likelihood=None, index=None) -> Path:
    """Write dlc_table(...) as DeepLabCut does: HDF5 key 'df_with_missing', PyTables table format.

    Parameters
    ----------
    path : str or Path
    points : array_like, (n_frames, n_parts, 2), px, or (n_frames, n_parts, 3), mm
    bodyparts : sequence of str
    scorer : str
    likelihood : array_like, (n_frames, n_parts), optional
    index : array_like, (n_frames,), optional
        As ``dlc_table``.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        As ``dlc_table``.
    """
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
           touches=None, turns=None, analysis: dict | None = None,
           session_description: str = "3D pose of a rat (ratpose)", identifier: str | None = None,
           scorer: str | None = None, source_software_version: str | None = None) -> Path:
    """Write one session to NWB (ndx-pose 0.4).

    All times are seconds on the neural clock; the file holds t - clock_offset_s (the neural-clock time
    of session_start_time, default the earliest frame, spike or interval), recorded in the file's notes. Written:
    processing/behavior/PoseEstimation (3D, millimetres, confidence = scores), one PoseEstimation_<cam>
    per camera in pose2d (every frame the camera delivered, on its own times) linked to the rig's cameras as
    CalibratedCamera devices, reprojection_error / n_cameras TimeSeries, trigger_pulses (on their exact times:
    the pose may be written with a rate, within REGULAR_TOLERANCE_S), a Skeleton with edges, the subject,
    units, touches and turns as TimeIntervals, and the analysis results (``analysis_tables``: processing/analysis
    with the DynamicTables ``unit_encoding`` and ``population_decoding``; ndx has no type for either). Leave any
    part out by passing None.

    Parameters
    ----------
    path : str or Path
    points3d : array_like, (n_frames, n_parts, 3), mm
    times_s : array_like, (n_frames,), s
        Neural-clock times of the rows, finite and non-decreasing.
    bodyparts : sequence of str
    session_start_time : datetime.datetime
        Must be timezone-aware.
    clock_offset_s : float, optional, s
        The neural-clock time of session_start_time; default the earliest frame, spike or interval. No time
        may lie before it.
    scores : array_like, (n_frames, n_parts), optional
        The 3D pose's confidence (lowest 2D likelihood of the cameras used).
    errors : array_like, (n_frames, n_parts), optional, px
        Reprojection errors.
    n_cameras : array_like, (n_frames, n_parts), optional
        Cameras used per point.
    rig : Rig, optional
        Its cameras become CalibratedCamera devices (needed for ``pose2d``).
    pose2d : dict, optional
        ``{camera: (xy (m, parts, 2) px, likelihood (m, parts), times_s (m,) s)}``.
    edges : array_like, (n_edges, 2) int, optional
        The skeleton's edges as body-part index pairs.
    pulse_index : array_like, (n_frames,) int, optional
        The trigger pulse of each row (-1 for none).
    subject : dict, optional
        pynwb Subject fields, species defaulting to Rattus norvegicus.
    units : list of tuple, optional
        ``[(unit_id, spike_times (s), {column: value})]``; needs ``spike_resolution_s``.
    spike_resolution_s : float, optional, s
        The spike sorter's time resolution.
    touches, turns : array_like, (n, 2), optional, s
        (start, stop) intervals of the knob's touches and turns.
    analysis : dict, optional
        ``{"encoding": [UnitEncoding.Unit rows], "lags_s": filters' lags, "decoding": PopulationDecoding row}``
        (either may be missing); see ``analysis_tables``.
    session_description : str
    identifier : str, optional
        Default a random UUID.
    scorer : str, optional
    source_software_version : str, optional

    Returns
    -------
    Path

    Raises
    ------
    InputError
        If times are not finite and non-decreasing, session_start_time is naive, ``clock_offset_s`` is after the
        first event, edges are not body-part index pairs, a pose2d camera is not in the rig or has the wrong
        shape, units come without ``spike_resolution_s``, or an array does not fit ``points3d``.
    """
    from ndx_pose import MultiCameraPoseEstimation, PoseEstimation, Skeleton, Skeletons
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject
    from pynwb.misc import Units

    pts, names = check_points(points3d, bodyparts)
    n_frames = pts.shape[0]
    times = per_frame_values(times_s, n_frames, "times_s")
    if not np.isfinite(times).all() or (np.diff(times) < 0).any():
        raise InputError("times_s must be finite and non-decreasing (seconds on the neural clock)")
    if session_start_time.tzinfo is None:
        raise InputError("session_start_time must be timezone-aware (e.g. datetime(..., tzinfo=...))")
    starts = [times[0], *(np.min(u[1], initial=np.inf) for u in units or ()),
              *(np.min(view[2], initial=np.inf) for view in (pose2d or {}).values()),
              *(np.min(i, initial=np.inf) for i in (touches, turns) if i is not None)]
    offset = float(min(starts)) if clock_offset_s is None else float(clock_offset_s)
    if min(starts) < offset:
        raise InputError(f"clock_offset_s {offset} is after the first event ({min(starts)} s): NWB times must be >= 0")
    shape = pts.shape[:2]
    score = None if scores is None else per_point_values(scores, shape, "scores")
    edge_array = np.asarray(edges if edges is not None and len(edges) else np.zeros((0, 2), dtype=np.uint8))
    if edge_array.ndim != 2 or edge_array.shape[1] != 2 or ((edge_array < 0) | (edge_array >= len(names))).any():
        raise InputError(f"edges must be pairs of body-part indices in [0, {len(names)}), got {edge_array.tolist()}")

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
            raise InputError(f"pose2d camera {camera!r} is not in the rig ({', '.join(cameras) or 'no rig given'})")
        xy = np.asarray(xy, dtype=np.float64)
        if xy.ndim != 3 or xy.shape[1:] != (len(names), 2):
            raise InputError(f"pose2d[{camera!r}] must have shape (n_frames, {len(names)}, 2), got {xy.shape}")
        camera_times = per_frame_values(camera_times, len(xy), f"pose2d[{camera!r}] times")
        series2d = _pose_series(
            xy, _timing(camera_times - offset), names, unit="pixels", description=f"2D pose in camera {camera}",
            reference_frame=f"image of camera {camera}: (0, 0) the top-left pixel's centre, x right, y down",
            confidence=per_point_values(likelihood, xy.shape[:2], "likelihood"),
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
            behavior.add(TimeSeries(name=name, data=per_point_values(values, shape, name), unit=unit,
                                    **_linked(first), description=f"{description}; columns: {', '.join(names)}"))
    if pulse_index is not None:
        pulse = per_frame_values(pulse_index, n_frames, "pulse_index").astype(np.int64)
        behavior.add(TimeSeries(name="trigger_pulses", data=pulse[pulse >= 0], unit="pulse",
                                timestamps=times[pulse >= 0] - offset,
                                description="the trigger pulse of each pose row (index into the Pi's trigger log) "
                                            "at its exact time on the neural clock"))
    if units:
        if spike_resolution_s is None:
            raise InputError("units need spike_resolution_s (the spike sorter's time resolution, seconds)")
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
    if analysis:
        module = nwb.create_processing_module("analysis", "encoding models and population decoding (ratpose)")
        for table in analysis_tables(analysis):
            module.add(table)
    path = Path(path)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


#: the analysis tables' columns: name -> description (the NWB file carries the same text)
ENCODING_COLUMNS = {
    "tuned": "the kinematics predict the unit: likelihood-ratio p < alpha and a held-out gain over its spike history",
    "p_value": "likelihood-ratio test of the full Poisson GLM against the unit's spike history alone (NaN: not fitted)",
    "pseudo_r2": "held-out McFadden pseudo-R2, cross-validated by contiguous time blocks (NaN: not fitted)",
    "r2_velocity": "unique held-out pseudo-R2 of the paw velocity history",
    "r2_position": "unique held-out pseudo-R2 of the paw position",
    "r2_supination": "unique held-out pseudo-R2 of the supination history",
    "velocity_filter": "(n_lags, 3) weights on paw velocity x/y/z per 100 mm/s, log rate, lags in lags_s",
    "supination_filter": "(n_lags,) weights on supination per 30 deg, log rate, lags in lags_s",
    "note": "why the unit was not fitted ('' when it was)",
}
DECODING_COLUMNS = {
    "variable": "decoded variable: paw_vx/vy/vz (mm/s), supination_deg (deg), knob_angle_during_turns (the sensor)",
    "linear_r2": "held-out R2 of the linear (Wiener) decoder, cross-validated by contiguous time blocks",
    "kalman_r2": "held-out R2 of the Kalman-filter decoder (NaN: not run for this variable)",
    "bayesian_r2": "held-out R2 of pynapple's Bayesian decoder (NaN: not run for this variable)",
}


def analysis_tables(analysis: dict) -> list:
    """The analysis results as hdmf DynamicTables: ``unit_encoding`` (a row per unit, ENCODING_COLUMNS) and
    ``population_decoding`` (a row per variable, DECODING_COLUMNS); NaN where a value is missing."""
    from hdmf.common import DynamicTable, VectorData

    tables = []
    rows, lags = analysis.get("encoding") or [], analysis.get("lags_s")
    if rows and lags is not None:
        n_lags = len(lags)

        def filter_of(row, group, width):
            found = np.asarray(row["filters"].get(group, np.full((n_lags, width), np.nan)), dtype=np.float64)
            return found.reshape(n_lags, width) if width > 1 else found.reshape(n_lags)

        values = {"tuned": [bool(r["tuned"]) for r in rows],
                  "p_value": [_nan_for_none(r["p_value"]) for r in rows],
                  "pseudo_r2": [_nan_for_none(r["pseudo_r2"]) for r in rows],
                  **{f"r2_{g}": [float(r["group_r2"].get(g, np.nan)) for r in rows]
                     for g in ("velocity", "position", "supination")},
                  "velocity_filter": np.stack([filter_of(r, "velocity", 3) for r in rows]),
                  "supination_filter": np.stack([filter_of(r, "supination", 1) for r in rows]),
                  "note": [r["note"] or "" for r in rows]}
        columns = [VectorData(name=n, description=ENCODING_COLUMNS[n], data=values[n]) for n in ENCODING_COLUMNS]
        table = DynamicTable(name="unit_encoding", id=[int(r["unit_id"]) for r in rows], columns=columns,
                             description="Poisson GLM of each unit (id = unit_id) on the forelimb's kinematics "
                                         f"(ratpose.behaviour.encoding); filter lags (s): "
                                         f"{', '.join(f'{lag:.3f}' for lag in lags)}")
        tables.append(table)
    decoding = analysis.get("decoding")
    if decoding:
        names = [*decoding["linear_r2"], "knob_angle_during_turns"]
        linear = [*map(float, decoding["linear_r2"].values()), _nan_for_none(decoding["knob_turns_r2"])]
        kalman = [float(decoding.get("kalman_r2", {}).get(n, np.nan)) for n in names]
        bayesian = [float(decoding["bayesian_r2"].get(n, np.nan)) for n in names]
        columns = [VectorData(name=n, description=DECODING_COLUMNS[n], data=v)
                   for n, v in zip(DECODING_COLUMNS, (names, linear, kalman, bayesian))]
        tables.append(DynamicTable(name="population_decoding", id=list(range(len(names))), columns=columns,
                                   description="the paw's velocity and supination decoded from all units "
                                               "(ratpose.behaviour.decoding)"))
    return tables


def _nan_for_none(value) -> float:
    return np.nan if value is None else float(value)


def to_movement(points3d, bodyparts, *, times_s=None, scores=None, individual: str = "rat", fps: float | None = None):
    """3D pose as a `movement` poses xarray Dataset (time x space x keypoints x individuals).

    That is ``ratpose.poses``' form with ``scores`` as its confidence. Time is ``times_s`` (neural clock,
    seconds) when given, else frame / ``fps`` (frame numbers without fps).

    Parameters
    ----------
    points3d : array_like, (n_frames, n_parts, 3), mm
    bodyparts : sequence of str
    times_s : array_like, (n_frames,), optional, s
    scores : array_like, (n_frames, n_parts), optional
    individual : str
        The animal's name in the ``individuals`` dimension.
    fps : float, optional, frames/s

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    InputError
        If the arrays or names do not fit ``points3d``.
    """
    points, names = check_points(points3d, bodyparts)
    n_frames = len(points)
    times = times_s if times_s is not None else np.arange(n_frames) / (fps or 1.0)
    return pose_dataset(points, names, times, confidence=scores, individual=individual)
