"""``ratpose export``: one session from the database to NWB, anipose CSV, DeepLabCut .h5 or movement."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..export.session import FORMATS, PARTS, ROWS, dandi_subject_gaps


def _cmd_export(args) -> int:
    from .. import schema
    from ..schema.export_data import export_session

    key = {"subject": args.subject, "session_datetime": args.datetime, "training_set": args.training_set,
           "pose_params": args.pose_params, "pose3d_params": args.pose3d_params}
    modules = schema.activate()
    path = export_session(modules, key, args.format, args.out, without=args.without, timezone=args.timezone,
                          spike_resolution_s=args.spike_resolution, incomplete_subject=args.incomplete_subject,
                          rows=args.rows)
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
                          "(pose3d.h5 and <video>DLC_<scorer>.h5 per camera); "
                          "movement: movement's netCDF, neural clock as time")
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
