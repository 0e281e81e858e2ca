"""``ratpose export``: one session from the database to NWB, anipose CSV, DeepLabCut .h5 or movement."""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..behaviour import touch_intervals, turn_intervals
from ..pose3d.reconstruct import Pose3DParams
from ..rig import time_zone
from ..sync import pulse_rows, pulse_slots, unwrap_ticks
from . import to_csv, to_dlc_h5, to_movement, to_nwb

PARTS = ("pose2d", "units", "knob", "cameras")
FORMATS = ("nwb", "csv", "dlc", "movement")
ROWS = ("pulses", "reconstructed")


def on_pulses(row_pulses, pulses, *arrays, fill=np.nan) -> list[np.ndarray]:
    """``arrays`` whose rows belong to ``row_pulses`` (a camera's frames, Pose3D's rows), placed on ``pulses``:
    each pulse gets its row, ``fill`` where there is none."""
    rows, found = pulse_rows(row_pulses, pulses)
    placed = []
    for values in arrays:
        values = np.asarray(values, dtype=np.float64)
        placed.append(np.where(found.reshape(-1, *[1] * (values.ndim - 1)), values[rows], fill))
    return placed


def lowest_used_likelihood(likelihoods, min_likelihood: float):
    """Per point the lowest 2D likelihood among cameras at or above min_likelihood (those triangulated); NaN if none.
    likelihoods (n_cameras, n_frames, n_parts)."""
    lik = np.asarray(likelihoods, dtype=np.float64)
    used = lik >= min_likelihood
    lowest = np.where(used, lik, np.inf).min(axis=0)
    return np.where(used.any(axis=0), lowest, np.nan)


def _session_data(modules, key: dict, rows: str) -> dict:
    """The session's pose on its rows: ``rows`` "pulses", every slot of the trigger rate from the first to the last
    frame any camera delivered (``sync.pulse_slots``; pulse_index -1 and NaN where no pulse or nothing was
    reconstructed), or "reconstructed", Pose3D's rows only."""
    raw, pose, sync, calibration = (modules[m] for m in ("raw", "pose", "sync", "calib"))
    session = raw.find_session(subject=key["subject"], session_datetime=key["session_datetime"])
    key = {**key, **session}
    data = pose.fetch_pose3d(key)
    cameras = list((pose.Pose3D & data["key"]).fetch1("cameras"))
    pulse_time = unwrap_ticks((raw.TriggerLog & session).fetch1("tick_us"))
    frames = {}
    for camera in cameras:
        camera_key = {**session, "camera": camera, "training_set": key["training_set"], "pose_params": key["pose_params"]}
        x, y, likelihood = pose.pose2d_arrays(camera_key, data["bodyparts"])
        pulses = np.asarray((sync.SyncedFrames & camera_key).fetch1("pulse_index"))
        frames[camera] = {"pulses": pulses, "time_s": pulse_time[pulses], "xy": np.stack([x, y], axis=-1),
                          "likelihood": np.asarray(likelihood, dtype=np.float64)}
    if rows == "pulses":  # a row per slot of the trigger rate: a pulse's, or none (NaN)
        first, last = min(f["pulses"][0] for f in frames.values()), max(f["pulses"][-1] for f in frames.values())
        span = np.arange(first, last + 1)
        slots, kept, start, period = pulse_slots(pulse_time[span], (raw.Session & session).fetch1("trigger_rate_hz"))
        grid = np.full(slots[-1] + 1, -1, np.int64)
        grid[slots] = span[kept]
        times = np.where(grid >= 0, pulse_time[grid], start + np.arange(len(grid)) * period)
    else:
        grid = np.asarray(data["pulse_index"])
        times = pulse_time[grid]
    data["points3d"], data["reprojection_error"] = on_pulses(data["pulse_index"], grid, data["points3d"],
                                                             data["reprojection_error"])
    data["n_cameras"], = on_pulses(data["pulse_index"], grid, data["n_cameras"], fill=0)
    data["pulse_index"], data["time_s"] = grid, times
    min_likelihood = (pose.Pose3DParams & key).fetch1("min_likelihood")
    likelihoods = [on_pulses(f["pulses"], grid, f["likelihood"])[0] for f in frames.values()]
    data["scores"] = np.where(data["n_cameras"] >= 2, lowest_used_likelihood(likelihoods, min_likelihood), np.nan)
    data["frames"] = frames
    data["edges"] = skeleton_edges(data["bodyparts"], (pose.Pose3DParams & key).fetch1("limbs"),
                                   (pose.TrainingSet & key).fetch1("labeled_dir"))
    data["rig"] = calibration.session_rig(session)
    data["videos"] = dict(zip(*(raw.Recording & session).fetch("camera", "video_file")))
    data["subject"] = (raw.Subject & session).fetch1()
    data["timezone"] = (raw.Session & session).fetch1("timezone")
    data["units"] = (raw.Unit & session).to_dicts(order_by="unit_id")
    knob = (raw.KnobLog & session).to_dicts()
    data["knob"] = knob[0] if knob else None
    return data


def times_file(csv: Path) -> Path:
    """Where the CSV export's times go: ``<name>_times.csv`` beside it (fnum, pulse_index (-1: no pulse in that
    slot), time_s: the pulse's neural-clock time, else the slot's)."""
    return csv.with_name(f"{csv.stem}_times.csv")


def skeleton_edges(bodyparts: list[str], limbs: str, labeled_dir: str | None) -> list[tuple[int, int]]:
    """Skeleton edges (body-part index pairs): Pose3DParams' limbs ('a-b,c-d', ``Pose3DParams.limb_indices``),
    else the ``skeleton`` of the DeepLabCut project holding the training set (its config.yaml above
    labeled-data/; pairs naming other parts left out), else none."""
    edges = Pose3DParams(limbs=limbs).limb_indices(list(bodyparts))
    if edges or not labeled_dir:
        return edges
    try:
        config = yaml.safe_load((Path(labeled_dir).parent / "config.yaml").read_text()) or {}
        pairs = [tuple(p) for p in config.get("skeleton") or []]
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        return []
    index = {name: i for i, name in enumerate(bodyparts)}
    return [(index[a], index[b]) for a, b in (p for p in pairs if len(p) == 2) if a in index and b in index]


def dandi_subject_gaps(row: dict) -> list[str]:
    """What DANDI requires of a subject (nwbinspector's dandi config: CRITICAL) that ``row`` (raw.Subject) lacks."""
    gaps = [] if row.get("species") else ["species"]
    if row.get("sex") not in ("M", "F", "O", "U"):
        gaps.append("sex")
    if not row.get("date_of_birth") and not row.get("age"):
        gaps.append("age or date of birth")
    return gaps


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
                   spike_resolution_s: float = 1 / 30000, incomplete_subject: bool = False,
                   rows: str = "pulses") -> Path:
    """Write one session's pose (key: subject, session_datetime, training_set, pose_params, pose3d_params) as
    ``fmt`` (one of FORMATS) to ``out``, leaving out the parts named in ``without``; returns the path written.
    session_datetime is local time in ``timezone``, default the rig's (raw.Session.timezone, from session.toml).
    NWB refuses a subject lacking what DANDI requires (``dandi_subject_gaps``) unless ``incomplete_subject``.
    ``rows`` (ROWS): "pulses", a row per slot of the trigger rate (frame-rate readers get exact times), or
    "reconstructed"."""
    if timezone is not None:
        time_zone(timezone)
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    if rows not in ROWS:
        raise ValueError(f"unknown rows {rows!r}: use one of {', '.join(ROWS)}")
    data = _session_data(modules, key, rows)
    skip, out = set(without), Path(out)
    names, points, scorer = data["bodyparts"], data["points3d"], f"ratpose_{key['training_set']}_{key['pose_params']}"
    columns = dict(errors=data["reprojection_error"], n_cameras=data["n_cameras"], scores=data["scores"])
    grid_index = np.arange(len(data["pulse_index"]))
    if fmt == "csv":  # the exact times beside it: movement refuses a CSV with any column anipose does not write
        pd.DataFrame({"fnum": grid_index, "pulse_index": data["pulse_index"], "time_s": data["time_s"]}).to_csv(
            times_file(out), index=False)
        return to_csv(out, points, names, frame_numbers=grid_index, **columns)
    if fmt == "dlc":
        out.mkdir(parents=True, exist_ok=True)
        scorer = f"DLC_{scorer}"  # DeepLabCut finds <video stem><scorer>.h5 next to the video
        to_dlc_h5(out / "pose3d.h5", points, names, scorer=scorer, index=grid_index)
        for camera, view in data["frames"].items() if "pose2d" not in skip else ():
            to_dlc_h5(out / f"{Path(data['videos'][camera]).stem}{scorer}.h5", view["xy"], names, scorer=scorer,
                      likelihood=view["likelihood"])  # a row per video frame, as DeepLabCut's own
        return out
    if fmt == "movement":
        to_movement(points, names, times_s=data["time_s"], scores=data["scores"]).to_netcdf(out)
        return out
    gaps = dandi_subject_gaps(data["subject"])
    if gaps and not incomplete_subject:
        raise ValueError(f"subject {key['subject']!r} has no {' and no '.join(gaps)}, which DANDI requires: set it "
                         f"with ratpose subject set {key['subject']} --date-of-birth YYYY-MM-DD (or --age P90D, "
                         "--sex, --species), or export anyway with --incomplete-subject")
    knob = data["knob"] if "knob" not in skip else None
    units = [(u["unit_id"], u["spike_times"], {"tetrode": int(u["tetrode"])}) for u in data["units"]]
    zone = time_zone(timezone or data["timezone"])
    start = data["session_datetime"].replace(tzinfo=zone)  # local time in the rig's zone
    return to_nwb(out, points, data["time_s"], names, session_start_time=start,
                  rig=data["rig"] if "cameras" not in skip else None,
                  pose2d=None if skip & {"pose2d", "cameras"} or data["rig"] is None else
                  {c: (v["xy"], v["likelihood"], v["time_s"]) for c, v in data["frames"].items()},
                  edges=data["edges"], pulse_index=data["pulse_index"],
                  subject=_nwb_subject(data["subject"], zone),
                  units=units if units and "units" not in skip else None, spike_resolution_s=spike_resolution_s,
                  **_knob_intervals(knob, end_s=float(data["time_s"][-1])),
                  scorer=scorer, **columns)


def _cmd_export(args) -> int:
    from .. import schema

    key = {"subject": args.subject, "session_datetime": args.datetime, "training_set": args.training_set,
           "pose_params": args.pose_params, "pose3d_params": args.pose3d_params}
    try:
        modules = schema.activate()
        path = export_session(modules, key, args.format, args.out, without=args.without, timezone=args.timezone,
                              spike_resolution_s=args.spike_resolution, incomplete_subject=args.incomplete_subject,
                              rows=args.rows)
    except (LookupError, ValueError) as err:
        if args.debug:
            raise
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    if args.format == "nwb" and args.incomplete_subject:  # exported although DANDI would refuse it: say so
        gaps = dandi_subject_gaps((modules["raw"].Subject & {"subject": args.subject}).fetch1())
        if gaps:
            print(f"WARNING {path}: subject {args.subject!r} has no {' and no '.join(gaps)}: DANDI will refuse the "
                  "file", file=sys.stderr)
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
    exp.add_argument("--rows", choices=ROWS, default="pulses",
                     help="pulses: a row per slot of the trigger rate from the first to the last frame (NaN where "
                          "no 3D), so time = first time + row / rate; reconstructed: Pose3D's rows only")
    exp.add_argument("--incomplete-subject", action="store_true",
                     help="NWB: export a subject lacking what DANDI requires (age or date of birth, sex, species), "
                          "with a warning, instead of refusing")
    exp.add_argument("--spike-resolution", type=float, default=1 / 30000, help="spike time resolution, s")
    exp.add_argument("--out", type=Path, required=True)
    exp.set_defaults(func=_cmd_export)
