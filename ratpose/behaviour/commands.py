"""`ratpose knob set`: the knob geometry of a rig's latest calibration, by hand or from the knob marker."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .knob import Knob


def _fail(message: str) -> int:
    print(f"ERROR {message}", file=sys.stderr)
    return 1


def _estimate(session_dir: Path, marker: str) -> Knob:
    """The knob fitted to the marker's 3D arc in the session's (single) Pose3D."""
    from ..schema import pose, raw

    session = raw.find_session(session_dir=session_dir)
    data = pose.fetch_pose3d(session)
    if marker not in data["bodyparts"]:
        raise ValueError(f"{session_dir}: the model has no body part {marker!r} ({list(data['bodyparts'])})")
    return Knob.from_keypoint(data["points3d"][:, data["bodyparts"].index(marker)].astype(np.float64))


def _cmd_knob_set(args) -> int:
    from .. import schema

    modules = schema.activate()
    calib, analysis = modules["calib"], modules["analysis"]
    calibrations = (calib.Calibration & {"rig": args.rig}).proj().to_dicts(order_by="calibration_date DESC")
    if not calibrations:
        registered = calib.CalibrationRecording & {"rig": args.rig}
        return _fail(f"rig {args.rig!r}: " + ("calibration not computed yet; run `ratpose populate Calibration`"
                                             if registered else "unknown rig (no calibration registered)"))
    try:
        if args.estimate:
            knob = _estimate(args.estimate, args.marker)
        else:
            if args.centre is None or args.radius is None:
                return _fail("give --centre and --radius (and --axis), or --estimate SESSION")
            knob = Knob(np.array(args.centre), args.radius, None if args.axis is None else np.array(args.axis))
    except (LookupError, ValueError) as err:
        return _fail(str(err))
    up = np.asarray(args.up, float)
    print(f"knob of {args.rig} ({calibrations[0]['calibration_date']}): centre "
          f"{np.round(knob.centre, 2).tolist()} mm, radius {knob.radius_mm:.2f} mm, axis "
          f"{None if knob.axis is None else np.round(knob.axis, 3).tolist()}, up {np.round(up, 3).tolist()}")
    if args.estimate and not args.yes and input("store it? [y/N] ").strip().lower() != "y":
        print("not stored")
        return 1
    if analysis.set_knob(calibrations[0], knob, up=up, source="keypoint" if args.estimate else "hand"):
        print("replaced the previous knob; the results computed with it are deleted (`ratpose populate` "
              "recomputes them)")
    return 0


def add_commands(subparsers) -> None:
    """Add ``knob set``."""
    knob = subparsers.add_parser("knob", help="the knob's geometry (once per rig calibration)")
    knob_sub = knob.add_subparsers(dest="knob_command", required=True)
    parser = knob_sub.add_parser("set", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                 help="store the knob of a rig's latest calibration (mm, calibration frame)")
    parser.add_argument("--rig", required=True, help="rig name")
    parser.add_argument("--centre", type=float, nargs=3, metavar=("X", "Y", "Z"), help="knob centre (mm)")
    parser.add_argument("--radius", type=float, metavar="MM", help="rim radius (mm)")
    parser.add_argument("--axis", type=float, nargs=3, metavar=("X", "Y", "Z"), help="rotation axis")
    parser.add_argument("--up", type=float, nargs=3, metavar=("X", "Y", "Z"), default=(0.0, 0.0, 1.0),
                        help="world vertical (not parallel to the knob axis)")
    parser.add_argument("--estimate", type=Path, metavar="SESSION",
                        help="instead: fit the knob to the marker's arc in this ingested session's 3D pose")
    parser.add_argument("--marker", default="knob_marker", help="body part on the knob rim (--estimate)")
    parser.add_argument("--yes", action="store_true", help="store an estimate without asking")
    parser.set_defaults(func=_cmd_knob_set)
