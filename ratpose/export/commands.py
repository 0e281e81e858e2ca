"""``ratpose export``: one session from the database to NWB, anipose CSV, DeepLabCut .h5 or movement."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import numpy as np

from ..behaviour import touch_intervals, turn_intervals
from ..rig import time_zone
from ..sync import pulse_rows
from . import to_csv, to_dlc_h5, to_movement, to_nwb

PARTS = ("pose2d", "units", "knob", "cameras")
FORMATS = ("nwb", "csv", "dlc", "movement")


def views_on_pose3d(pose3d_pulses, camera_pulses, x, y, likelihood):
    """One camera's 2D pose (rows = its video frames) on the Pose3D rows: (frame index (n,), xy (n, parts, 2),
    likelihood (n, parts)); a pulse the camera has no frame for gets frame -1 and NaN."""
    frame, found = pulse_rows(camera_pulses, pose3d_pulses)
    pick = lambda a: np.where(found[:, None], np.asarray(a, dtype=np.float64)[frame], np.nan)  # noqa: E731
    return frame, np.stack([pick(x), pick(y)], axis=-1), pick(likelihood)


def lowest_used_likelihood(likelihoods, min_likelihood: float):
    """Per point the lowest 2D likelihood among cameras at or above min_likelihood (those triangulated); NaN if none.
    likelihoods (n_cameras, n_frames, n_parts)."""
    lik = np.asarray(likelihoods, dtype=np.float64)
    used = lik >= min_likelihood
    lowest = np.where(used, lik, np.inf).min(axis=0)
    return np.where(used.any(axis=0), lowest, np.nan)


def _session_data(modules, key: dict) -> dict:
    raw, pose, sync, calibration = (modules[m] for m in ("raw", "pose", "sync", "calib"))
    session = raw.find_session(subject=key["subject"], session_datetime=key["session_datetime"])
    key = {**key, **session}
    data = pose.fetch_pose3d(key)
    cameras = list((pose.Pose3D & data["key"]).fetch1("cameras"))
    views = {}
    for camera in cameras:
        camera_key = {**session, "camera": camera, "training_set": key["training_set"], "pose_params": key["pose_params"]}
        x, y, likelihood = pose.pose2d_arrays(camera_key, data["bodyparts"])
        pulses = (sync.SyncedFrames & camera_key).fetch1("pulse_index")
        views[camera] = views_on_pose3d(np.asarray(data["pulse_index"]), np.asarray(pulses), x, y, likelihood)
    min_likelihood = (pose.Pose3DParams & key).fetch1("min_likelihood")
    data["scores"] = lowest_used_likelihood([v[2] for v in views.values()], min_likelihood)
    data["views"] = views
    data["rig"] = calibration.session_rig(session)
    data["videos"] = dict(zip(*(raw.Recording & session).fetch("camera", "video_file")))
    data["subject"] = (raw.Subject & session).fetch1()
    data["timezone"] = (raw.Session & session).fetch1("timezone")
    data["units"] = (raw.Unit & session).to_dicts(order_by="unit_id")
    knob = (raw.KnobLog & session).to_dicts()
    data["knob"] = knob[0] if knob else None
    return data


def _nwb_subject(row: dict, zone) -> dict:
    subject = {"subject_id": row["subject"], "species": row["species"], "sex": row["sex"]}
    if row.get("date_of_birth"):
        dob = row["date_of_birth"]
        subject["date_of_birth"] = datetime(dob.year, dob.month, dob.day, tzinfo=zone)
    if row.get("age"):
        subject["age"] = row["age"]
    return subject


def _knob_intervals(knob: dict | None, end_s: float) -> dict:
    """touches and turns (n, 2) from a KnobLog row (behaviour's definitions; touches without a turn left out)."""
    if knob is None:
        return {}
    touches = touch_intervals(knob["touch_on_s"], knob["touch_off_s"], end_s)
    turns = turn_intervals(knob["angle_time_s"], knob["angle_deg"], touches)
    return {"touches": touches, "turns": turns[np.isfinite(turns).all(axis=1)]}


def export_session(modules, key: dict, fmt: str, out: Path, *, without=(), timezone: str | None = None,
                   spike_resolution_s: float = 1 / 30000) -> Path:
    """Write one session's pose (key: subject, session_datetime, training_set, pose_params, pose3d_params) as
    ``fmt`` (one of FORMATS) to ``out``, leaving out the parts named in ``without``; returns the path written.
    session_datetime is local time in ``timezone``, default the rig's (raw.Session.timezone, from session.toml)."""
    if timezone is not None:
        time_zone(timezone)
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    data = _session_data(modules, key)
    skip, out = set(without), Path(out)
    names, points, scorer = data["bodyparts"], data["points3d"], f"ratpose_{key['training_set']}_{key['pose_params']}"
    columns = dict(errors=data["reprojection_error"], n_cameras=data["n_cameras"], scores=data["scores"])
    if fmt == "csv":
        reference = next(iter(data["views"].values()))[0] if data["views"] else None
        return to_csv(out, points, names, frame_numbers=reference, **columns)
    if fmt == "dlc":
        out.mkdir(parents=True, exist_ok=True)
        scorer = f"DLC_{scorer}"  # DeepLabCut finds <video stem><scorer>.h5 next to the video
        to_dlc_h5(out / "pose3d.h5", points, names, scorer=scorer)
        for camera, (_, xy, likelihood) in data["views"].items() if "pose2d" not in skip else ():
            to_dlc_h5(out / f"{Path(data['videos'][camera]).stem}{scorer}.h5", xy, names, scorer=scorer,
                      likelihood=likelihood)
        return out
    if fmt == "movement":
        to_movement(points, names, times_s=data["time_s"], scores=data["scores"]).to_netcdf(out)
        return out
    knob = data["knob"] if "knob" not in skip else None
    units = [(u["unit_id"], u["spike_times"], {"tetrode": int(u["tetrode"])}) for u in data["units"]]
    zone = time_zone(timezone or data["timezone"])
    start = data["session_datetime"].replace(tzinfo=zone)  # local time in the rig's zone
    return to_nwb(out, points, data["time_s"], names, session_start_time=start,
                  rig=data["rig"] if "cameras" not in skip else None,
                  pose2d=None if skip & {"pose2d", "cameras"} or data["rig"] is None else
                  {c: (v[1], v[2]) for c, v in data["views"].items()},
                  subject=_nwb_subject(data["subject"], zone),
                  units=units if units and "units" not in skip else None, spike_resolution_s=spike_resolution_s,
                  **_knob_intervals(knob, end_s=float(data["time_s"][-1])),
                  scorer=scorer, **columns)


def _cmd_export(args) -> int:
    from .. import schema

    key = {"subject": args.subject, "session_datetime": args.datetime, "training_set": args.training_set,
           "pose_params": args.pose_params, "pose3d_params": args.pose3d_params}
    try:
        path = export_session(schema.activate(), key, args.format, args.out, without=args.without,
                              timezone=args.timezone, spike_resolution_s=args.spike_resolution)
    except (LookupError, ValueError) as err:
        if args.debug:
            raise
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def add_commands(subparsers) -> None:
    """Register ``ratpose export``."""
    exp = subparsers.add_parser("export", help="export a session (NWB, anipose CSV, DeepLabCut .h5, movement)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    exp.add_argument("--subject", required=True)
    exp.add_argument("--datetime", required=True, help="session datetime, ISO 8601")
    exp.add_argument("--training-set", required=True)
    exp.add_argument("--pose-params", required=True)
    exp.add_argument("--pose3d-params", default="default")
    exp.add_argument("--format", choices=FORMATS, default="nwb",
                     help="nwb: one file per session; csv: anipose's pose-3d CSV; dlc: a folder of DeepLabCut .h5 "
                          "(pose3d.h5 and <video>DLC_<scorer>.h5 per camera); movement: movement's netCDF, neural clock as time")
    exp.add_argument("--without", nargs="*", choices=PARTS, default=[], help="parts to leave out (NWB, dlc)")
    exp.add_argument("--timezone", help="IANA time zone the session's datetime is local time in; None: the rig's "
                                         "(session.toml's timezone, recorded at ingest)")
    exp.add_argument("--spike-resolution", type=float, default=1 / 30000, help="spike time resolution, s")
    exp.add_argument("--out", type=Path, required=True)
    exp.set_defaults(func=_cmd_export)
