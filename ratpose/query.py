"""A small query API joining pose, movement events and spikes: pandas tables, or pynapple objects.

    >>> from ratpose import query
    >>> key = {"subject": "rat01", "session_datetime": "2026-11-24 10:00:00"}
    >>> ev = query.events(key)                               # reach onsets, touches, turns, releases
    >>> ep = query.epochs_around(ev, "touch", before_s=0.5, after_s=1.0)
    >>> sp = query.spikes_in(ep)                             # every spike in those epochs, by unit
    >>> query.pose_at(sp.time_s.to_numpy(), key, ["paw"])    # where the paw was at each spike

    >>> s = query.session_timeseries(key)                   # pynapple: pose TsdFrame, spikes TsGroup, ...
    >>> nap.compute_tuning_curves(s.spikes, s.pose["paw_x"].dropna(), bins=10)

Sessions with several models or parameter sets need ``model={"training_set": ..., "pose_params": ...}``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import schema
from .behaviour import kinematics
from .errors import InputError
from .poses import keypoint_names, positions
from .timeseries import SessionTimeseries
from .timeseries import session_timeseries as _as_timeseries


def _modules():
    return schema.activate()


def _one_pose3d(session_key: dict, model: dict | None, pose3d_params: str) -> dict:
    pose = _modules()["pose"]
    rows = (pose.Pose3D & session_key & (model or {}) & {"pose3d_params": pose3d_params}).proj().to_dicts()
    if len(rows) != 1:
        raise InputError(f"{len(rows)} Pose3D rows match {session_key} {model or ''} ({pose3d_params}); "
                         "give model={'training_set': ..., 'pose_params': ...}")
    return rows[0]


def pose_at(times_s, session_key: dict, bodyparts=None, *, model: dict | None = None,
            pose3d_params: str = "default", max_gap_s: float | None = None) -> pd.DataFrame:
    """3D position (mm) of body parts at arbitrary neural-clock times, linearly interpolated.

    Columns time_s and <part>_x/_y/_z; NaN where the pose is unknown (outside it, over gaps).
    """
    key = _one_pose3d(session_key, model, pose3d_params)
    poses = _modules()["pose"].fetch_pose3d(key)
    names = keypoint_names(poses) if bodyparts is None else list(bodyparts)
    times = np.asarray(times_s, dtype=np.float64)
    xyz = kinematics.pose_at(times, poses.time.values, positions(poses, names), max_gap_s=max_gap_s)
    table = {"time_s": times}
    for i, part in enumerate(names):
        table.update({f"{part}_{axis}": xyz[:, i, a] for a, axis in enumerate("xyz")})
    return pd.DataFrame(table)


def events(session_key: dict, *, model: dict | None = None, pose3d_params: str = "default",
           analysis_params: str = "default") -> pd.DataFrame:
    """Movement events of a session (trial, event, time_s), sorted by time."""
    key = _one_pose3d(session_key, model, pose3d_params)
    rows = (_modules()["analysis"].MovementEvents.Event & key & {"analysis_params": analysis_params}).to_dicts()
    return pd.DataFrame(rows, columns=[*key, "analysis_params", "event_index", "trial", "event", "time_s"]
                        ).sort_values("time_s", ignore_index=True)


def epochs_around(event_table: pd.DataFrame, event: str, before_s: float, after_s: float) -> pd.DataFrame:
    """Epochs [time - before_s, time + after_s] around every event of one kind (keeps the key columns)."""
    chosen = event_table[event_table.event == event].copy()
    chosen["start_s"], chosen["end_s"] = chosen.time_s - before_s, chosen.time_s + after_s
    return chosen.reset_index(drop=True)


def spikes_in(epochs: pd.DataFrame, unit_ids=None) -> pd.DataFrame:
    """Every spike inside the epochs (rows with subject, session_datetime, start_s, end_s).

    Returns unit_id, epoch (row of ``epochs``), time_s and time relative to the epoch start.
    """
    raw = _modules()["raw"]
    out = []
    for session, group in epochs.groupby(["subject", "session_datetime"], sort=False):
        key = dict(zip(("subject", "session_datetime"), session))
        units = raw.Unit & key & ([{"unit_id": u} for u in unit_ids] if unit_ids is not None else {})
        for unit in units.proj("spike_times").to_dicts():
            times = unit["spike_times"]
            lo = np.searchsorted(times, group.start_s.to_numpy())
            hi = np.searchsorted(times, group.end_s.to_numpy(), side="right")
            counts = hi - lo
            index = np.repeat(group.index.to_numpy(), counts)
            picked = np.concatenate([times[a:b] for a, b in zip(lo, hi)]) if counts.sum() else np.empty(0)
            out.append(pd.DataFrame({**key, "unit_id": unit["unit_id"], "epoch": index, "time_s": picked,
                                     "relative_s": picked - epochs.loc[index, "start_s"].to_numpy()}))
    columns = ["subject", "session_datetime", "unit_id", "epoch", "time_s", "relative_s"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=columns)


def session_timeseries(session_key: dict, *, model: dict | None = None, pose3d_params: str = "default",
                       analysis_params: str = "default") -> SessionTimeseries:
    """Everything of one session as pynapple objects (``ratpose.timeseries.SessionTimeseries``): the pose
    TsdFrame, the units' TsGroup with their metadata, the knob's touches and turns as IntervalSets, the
    movement events as Ts, the forelimb's kinematics (paw position and velocity, grasp aperture, supination,
    reach phase; needs the session's knob for the lab's up direction) with an IntervalSet per reach phase and
    where the paw is tracked, all on the neural clock. Events and turns are empty before MovementEvents ran."""
    key = _one_pose3d(session_key, model, pose3d_params)
    return _as_timeseries(**_modules()["analysis"].timeseries_inputs(key, analysis_params))
