"""Fetch what a session's export holds and write it (``ratpose.export.session`` arranges and writes;
no database there)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..export.session import check_format, place_on_rows, skeleton_edges, write_session
from ..poses import keypoint_names
from ..sync import unwrap_ticks


def fetch_export(modules, key: dict, rows: str) -> dict:
    """The session's pose on the export's rows (``poses``, ``export.session.place_on_rows``) with each camera's
    2D (``frames``), skeleton edges, rig, videos, subject, time zone, units and knob log."""
    raw, pose, sync, calibration = (modules[m] for m in ("raw", "pose", "sync", "calib"))
    session = raw.find_session(subject=key["subject"], session_datetime=key["session_datetime"])
    key = {**key, **session}
    poses = pose.fetch_pose3d(key)
    cameras = list((pose.Pose3D & poses.attrs["source_key"]).fetch1("cameras"))
    bodyparts = keypoint_names(poses)
    pulse_time = unwrap_ticks((raw.TriggerLog & session).fetch1("tick_us"))
    frames = {}
    for camera in cameras:
        camera_key = {**session, "camera": camera, "training_set": key["training_set"],
                      "pose_params": key["pose_params"]}
        x, y, likelihood = pose.pose2d_arrays(camera_key, bodyparts)
        pulses = np.asarray((sync.SyncedFrames & camera_key).fetch1("pulse_index"))
        frames[camera] = {"pulses": pulses, "time_s": pulse_time[pulses], "xy": np.stack([x, y], axis=-1),
                          "likelihood": np.asarray(likelihood, dtype=np.float64)}
    params = (pose.Pose3DParams & key).fetch1()
    data = {"poses": place_on_rows(poses, frames, pulse_time, (raw.Session & session).fetch1("trigger_rate_hz"), rows,
                                   params["min_likelihood"]), "frames": frames}
    data["edges"] = skeleton_edges(bodyparts, params["limbs"], (pose.TrainingSet & key).fetch1("labeled_dir"))
    data["rig"] = calibration.session_rig(session)
    data["videos"] = dict(zip(*(raw.Recording & session).fetch("camera", "video_file")))
    data["subject"] = (raw.Subject & session).fetch1()
    data["timezone"] = (raw.Session & session).fetch1("timezone")
    data["units"] = (raw.Unit & session).to_dicts(order_by="unit_id")
    knob = (raw.KnobLog & session).to_dicts()
    data["knob"] = knob[0] if knob else None
    analysis, pose_key = modules["analysis"], poses.attrs["source_key"]
    chosen = {**pose_key, "analysis_params": "default"}
    encoding = (analysis.UnitEncoding & chosen).to_dicts()
    decoding = (analysis.PopulationDecoding & chosen).to_dicts()
    data["analysis"] = {"encoding": (analysis.UnitEncoding.Unit & chosen).to_dicts(order_by="unit_id"),
                        "lags_s": encoding[0]["lags_s"] if encoding else None,
                        "decoding": decoding[0] if decoding else None}
    return data


def export_session(modules, key: dict, fmt: str, out: Path, *, without=(), timezone: str | None = None,
                   spike_resolution_s: float = 1 / 30000, incomplete_subject: bool = False,
                   rows: str = "pulses") -> Path:
    """Write one session's pose (key: subject, session_datetime, training_set, pose_params, pose3d_params) as
    ``fmt`` (``export.session.FORMATS``) to ``out``; returns the path written.

    session_datetime is local time in ``timezone``, default the rig's (raw.Session.timezone, from session.toml).
    ``rows`` (``export.session.ROWS``): "pulses", a row per slot of the trigger rate (frame-rate readers get
    exact times), or "reconstructed". ``without``, ``incomplete_subject``: as ``export.session.write_session``.
    """
    check_format(fmt, rows, timezone)
    return write_session(fetch_export(modules, key, rows), key, fmt, out, without=without, timezone=timezone,
                         spike_resolution_s=spike_resolution_s, incomplete_subject=incomplete_subject)
