"""``ratpose delete``: a session or a calibration with everything computed from it, then its stored files."""
from __future__ import annotations

import sys

from ..errors import InputError, RatposeError


def _cmd_delete(args) -> int:
    import datetime as _dt

    from ..schema import activate
    from ..schema.maintenance import collect_garbage, delete_calibration, delete_session

    if not (args.calibration_date if args.rig else args.datetime):
        print("ERROR --rig needs --calibration-date" if args.rig else "ERROR --subject needs --datetime",
              file=sys.stderr)
        return 1
    modules = activate()
    try:
        if args.rig:
            what = f"calibration of {args.rig} dated {args.calibration_date}"
            try:
                key = {"rig": args.rig, "calibration_date": _dt.datetime.fromisoformat(args.calibration_date)}
            except ValueError as err:
                raise InputError(f"--calibration-date {args.calibration_date!r}: {err}") from None
            deleted = delete_calibration(modules, key, prompt=not args.yes)
        else:
            what = f"session {args.subject} {args.datetime}"
            key = modules["raw"].find_session(subject=args.subject, session_datetime=args.datetime)
            deleted = delete_session(modules, key, prompt=not args.yes)
    except RatposeError as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    if not deleted:
        print("nothing deleted")
        return 1
    stats = collect_garbage(modules)
    print(f"deleted {what}; freed {stats['deleted']} stored files ({stats['bytes_freed']} bytes)")
    return 0


def add_commands(subparsers) -> None:
    """Add ``ratpose delete`` to the command line."""
    parser = subparsers.add_parser("delete", help="delete a session (or a calibration) and everything computed "
                                                  "from it, then free its stored files (asks for confirmation)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--subject", help="with --datetime: a session")
    which.add_argument("--rig", help="with --calibration-date: a calibration recording")
    parser.add_argument("--datetime", help="session_datetime, ISO 8601 (e.g. 2026-11-24T10:00:00)")
    parser.add_argument("--calibration-date", help="ISO 8601, as in calibration.toml (e.g. 2026-11-24)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(func=_cmd_delete)
