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

from .behaviour.kinematics import EVENT_NAMES
from .poses import keypoint_names, per_point, positions


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
    """
    pose: nap.TsdFrame
    spikes: nap.TsGroup
    touches: nap.IntervalSet
    turns: nap.IntervalSet
    events: dict[str, nap.Ts]
    epoch: nap.IntervalSet


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


def session_timeseries(poses: xr.Dataset, spike_times: dict[int, np.ndarray], units: pd.DataFrame,
                       touch_intervals: np.ndarray, events: pd.DataFrame) -> SessionTimeseries:
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

    Returns
    -------
    SessionTimeseries
    """
    epoch = recorded_epoch(poses)
    return SessionTimeseries(pose=pose_tsdframe(poses, epoch), spikes=spikes_tsgroup(spike_times, units, epoch),
                             touches=interval_set(touch_intervals),
                             turns=interval_set(turn_intervals_from_events(events)), events=events_ts(events),
                             epoch=epoch)
