"""`ratpose knob set`: the knob geometry of a rig's latest calibration, by hand or from the knob marker."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ..behaviour.knob import KnobModel
from ..errors import InputError, RatposeError
from ..poses import keypoint_names, position_of


def _fail(message: str) -> int:
    print(f"ERROR {message}", file=sys.stderr)
    return 1


def _estimate(session_dir: Path, marker: str) -> KnobModel:
    """The knob fitted to the marker's 3D arc in the session's (single) Pose3D."""
    from ..schema import pose, raw

    session = raw.find_session(session_dir=session_dir)
    poses = pose.fetch_pose3d(session)
    if marker not in keypoint_names(poses):
        raise InputError(f"{session_dir}: the model has no body part {marker!r} ({keypoint_names(poses)})")
    return KnobModel.from_keypoint(position_of(poses, marker))


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
            knob = KnobModel(np.array(args.centre), args.radius, None if args.axis is None else np.array(args.axis))
    except RatposeError as err:
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


def _cmd_knob_send(args) -> int:
    from ..acquisition.knob_network import send_event

    send_event(args.to, args.event, args.time_s, args.angle_deg)
    print(f"sent {args.event} at {args.time_s:.6f} s to {args.to}")
    return 0


def add_commands(subparsers) -> None:
    """Add ``knob set`` and ``knob send``."""
    knob = subparsers.add_parser("knob", help="the knob's geometry (once per rig calibration); test events")
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
    send = knob_sub.add_parser("send", help="send one knob event to a recorder listening for them ([knob] source "
                                            "= \"network\"; the message format: ratpose.acquisition.knob_network)")
    send.add_argument("event", choices=("touch_on", "touch_off", "angle"))
    send.add_argument("--time-s", type=float, required=True, help="the event's time on the neural clock (s)")
    send.add_argument("--angle-deg", type=float, help="the knob's angle (event angle)")
    send.add_argument("--to", required=True, metavar="HOST:PORT", help="the recorder's [knob] listen address")
    send.set_defaults(func=_cmd_knob_send)
