"""A session as pynapple's objects: pose on the neural clock, spikes, knob touches and turns, movement events.

pynapple is the field's library for spikes x behaviour (time series with time supports, interval sets,
tuning curves, Bayesian decoding); these objects go straight into its functions::

    >>> s = query.session_timeseries(key)
    >>> paw_x = s.pose["paw_x"]                                   # a Tsd, mm, NaN where not reconstructed
    >>> nap.compute_tuning_curves(s.spikes, paw_x.dropna(), bins=10)
    >>> s.spikes.restrict(s.touches)                              # spikes during knob contact

Every time is on the neural clock (s). The pose's time support is the recorded span; the spikes' is
the same span, so a unit's silence at the end counts as silence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pynapple as nap
import xarray as xr

from .behaviour.forelimb import PHASE_NAMES, ForelimbParts, forelimb_kinematics
from .behaviour.kinematics import EVENT_NAMES, frame_gap_limit
from .poses import keypoint_names, per_point, position_of, positions


@dataclass
class SessionTimeseries:
    """One session's pose, spikes and behaviour as pynapple objects (``ratpose.query.session_timeseries``).

    Attributes
    ----------
    pose : pynapple.TsdFrame
        Columns ``<part>_x``, ``_y``, ``_z`` (mm, calibration frame; NaN where not reconstructed) and
        ``<part>_sigma`` (mm, the Pose3D posterior std; NaN where the method gives none), one row per frame.
    spikes : pynapple.TsGroup
        One Ts per unit (index = unit_id) with the units' metadata (tetrode, snr, peak_amplitude_uv).
    touches : pynapple.IntervalSet
        Knob contact, from the knob sensor.
    turns : pynapple.IntervalSet
        Knob turns within touches (MovementEvents' turn_start to turn_end).
    events : dict of str to pynapple.Ts
        Movement events by name (``reach_onset``, ``paw_arrival``, ``touch``, ``turn_start``, ``turn_end``,
        ``release``).
    epoch : pynapple.IntervalSet
        The recorded span: the time support of ``pose`` and ``spikes``.
    kinematics : pynapple.TsdFrame or None
        ``behaviour.forelimb.forelimb_kinematics`` per frame (paw position, velocity and speed, grasp aperture,
        supination, phase); None when the lab's up direction is not known (no knob set for the session).
    phases : dict of str to pynapple.IntervalSet
        The frames of each reach phase (``forelimb.PHASE_NAMES``), to restrict analyses to.
    tracked : pynapple.IntervalSet
        Where the paw is reconstructed (gaps of more than 2.5 frames split it): "every period where the paw
        is tracked", knob trial or not.
    """
    pose: nap.TsdFrame
    spikes: nap.TsGroup
    touches: nap.IntervalSet
    turns: nap.IntervalSet
    events: dict[str, nap.Ts]
    epoch: nap.IntervalSet
    kinematics: nap.TsdFrame | None = None
    phases: dict[str, nap.IntervalSet] | None = None
    tracked: nap.IntervalSet | None = None


def recorded_epoch(poses: xr.Dataset) -> nap.IntervalSet:
    """The span of a pose dataset's frames (first to last frame time, s) as one interval."""
    times = np.asarray(poses.time.values, float)
    return nap.IntervalSet(start=float(times[0]), end=float(times[-1]))


def pose_tsdframe(poses: xr.Dataset, epoch: nap.IntervalSet | None = None) -> nap.TsdFrame:
    """The pose dataset (``ratpose.poses``) as a TsdFrame: ``<part>_x/_y/_z`` mm and ``<part>_sigma`` mm.

    Parameters
    ----------
    poses : xarray.Dataset
        A session's 3D pose, times on the neural clock.
    epoch : pynapple.IntervalSet, optional
        Time support (default: ``recorded_epoch``).

    Returns
    -------
    pynapple.TsdFrame
    """
    names = keypoint_names(poses)
    xyz = positions(poses, names)                                       # (frames, parts, 3)
    sigma = per_point(poses, "sigma_mm", names)
    sigma = np.full(xyz.shape[:2], np.nan) if sigma is None else np.asarray(sigma, float)
    columns, values = [], []
    for p, part in enumerate(names):
        columns += [f"{part}_x", f"{part}_y", f"{part}_z", f"{part}_sigma"]
        values += [xyz[:, p, 0], xyz[:, p, 1], xyz[:, p, 2], sigma[:, p]]
    return nap.TsdFrame(t=np.asarray(poses.time.values, float), d=np.column_stack(values), columns=columns,
                        time_support=epoch if epoch is not None else recorded_epoch(poses))


def spikes_tsgroup(spike_times: dict[int, np.ndarray], units: pd.DataFrame, epoch: nap.IntervalSet) -> nap.TsGroup:
    """Spike times by unit_id as a TsGroup on ``epoch``, with ``units``' columns (indexed by unit_id) as metadata."""
    group = nap.TsGroup({int(u): nap.Ts(t=np.sort(np.asarray(t, float))) for u, t in spike_times.items()},
                        time_support=epoch)
    if len(units):
        group.set_info(units.loc[list(group.keys())])
    return group


def interval_set(intervals: np.ndarray) -> nap.IntervalSet:
    """(n, 2) start/end seconds (NaN rows dropped, overlapping ones merged) as an IntervalSet."""
    intervals = np.asarray(intervals, float).reshape(-1, 2)
    intervals = intervals[np.isfinite(intervals).all(axis=1)]
    return nap.IntervalSet(start=intervals[:, 0], end=intervals[:, 1])


def events_ts(events: pd.DataFrame) -> dict[str, nap.Ts]:
    """Movement events (columns event, time_s) as one Ts per event name (every name, empty when none)."""
    return {name: nap.Ts(t=np.sort(events.loc[events.event == name, "time_s"].to_numpy(float)))
            for name in EVENT_NAMES}


def turn_intervals_from_events(events: pd.DataFrame) -> np.ndarray:
    """(n, 2) turn_start/turn_end pairs per trial of a MovementEvents table (columns trial, event, time_s)."""
    starts = events[events.event == "turn_start"].set_index("trial").time_s
    ends = events[events.event == "turn_end"].set_index("trial").time_s
    both = pd.concat([starts.rename("start"), ends.rename("end")], axis=1, join="inner").sort_values("start")
    return both.to_numpy(float)


def runs(times_s: np.ndarray, mask: np.ndarray, max_gap_s: float | None = None) -> nap.IntervalSet:
    """The runs of consecutive frames where ``mask`` holds, each from half a frame interval before its first
    frame to half one after its last (within the recorded span); frames more than ``max_gap_s`` apart (default
    2.5 median frame intervals) do not join."""
    times_s, mask = np.asarray(times_s, float), np.asarray(mask, bool)
    step = float(np.median(np.diff(times_s))) if len(times_s) > 1 else 0.0
    gap = frame_gap_limit(times_s, max_gap_s)
    joined = np.zeros(len(mask), bool)
    joined[1:] = mask[1:] & mask[:-1] & (np.diff(times_s) <= gap)
    first = np.flatnonzero(mask & ~joined)
    last = np.flatnonzero(mask & ~np.append(joined[1:], False))
    return nap.IntervalSet(start=np.maximum(times_s[first] - step / 2, times_s[0]),
                           end=np.minimum(times_s[last] + step / 2, times_s[-1]))


def kinematics_tsdframe(table: pd.DataFrame, epoch: nap.IntervalSet) -> nap.TsdFrame:
    """``forelimb_kinematics``' table as a TsdFrame on ``epoch``."""
    return nap.TsdFrame(t=table.index.to_numpy(float), d=table.to_numpy(float), columns=list(table.columns),
                        time_support=epoch)


def session_timeseries(poses: xr.Dataset, spike_times: dict[int, np.ndarray], units: pd.DataFrame,
                       touch_intervals: np.ndarray, events: pd.DataFrame, up=None,
                       parts: ForelimbParts = ForelimbParts()) -> SessionTimeseries:
    """Everything of one session as pynapple objects on the pose's recorded span.

    Parameters
    ----------
    poses : xarray.Dataset
        The session's 3D pose (``ratpose.poses``' form).
    spike_times : dict of int to numpy.ndarray
        unit_id -> spike times (s).
    units : pandas.DataFrame
        Unit metadata indexed by unit_id (tetrode, snr, peak_amplitude_uv).
    touch_intervals : numpy.ndarray, (n, 2), s
        Knob contacts (``behaviour.analyses.touch_intervals``).
    events : pandas.DataFrame
        Movement events (columns trial, event, time_s).
    up : array_like, (3,), optional
        The lab's up direction in the pose's frame; without it no forelimb kinematics.
    parts : ForelimbParts
        The forelimb's keypoints.

    Returns
    -------
    SessionTimeseries
    """
    epoch = recorded_epoch(poses)
    times = np.asarray(poses.time.values, float)
    kinematics = phases = tracked = None
    if parts.paw in keypoint_names(poses):
        tracked = runs(times, np.isfinite(position_of(poses, parts.paw)).all(axis=1))
    if up is not None:
        names = [n for n in (parts.paw, parts.wrist, *parts.digits) if n in keypoint_names(poses)]
        table = forelimb_kinematics(times, dict(zip(names, positions(poses, names).transpose(1, 0, 2))), up, events,
                                    parts=parts)
        kinematics = kinematics_tsdframe(table, epoch)
        phases = {name: runs(times, table.phase.to_numpy() == code) for code, name in enumerate(PHASE_NAMES)}
    return SessionTimeseries(pose=pose_tsdframe(poses, epoch), spikes=spikes_tsgroup(spike_times, units, epoch),
                             touches=interval_set(touch_intervals),
                             turns=interval_set(turn_intervals_from_events(events)), events=events_ts(events),
                             epoch=epoch, kinematics=kinematics, phases=phases, tracked=tracked)
