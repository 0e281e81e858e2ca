"""Maintenance: delete a session with everything computed from it, then free its files in the object store."""
from __future__ import annotations

import sys
from types import ModuleType

import datajoint as dj

from .. import db


def delete_session(modules: dict[str, ModuleType], key: dict, *, prompt: bool = True) -> int:
    """Delete one Session and, by cascade, every row computed from it.

    With ``prompt`` DataJoint lists what would go and asks for confirmation (answering no rolls
    everything back). Returns the number of Session rows deleted (0: nothing, or not confirmed).
    """
    session = modules["raw"].Session & key
    if len(session) != 1:
        raise ValueError(f"no session {key}" if not len(session) else f"{key} matches {len(session)} sessions")
    return session.delete(prompt=prompt, part_integrity="cascade")


def collect_garbage(modules: dict[str, ModuleType], *, dry_run: bool = False) -> dict:
    """Remove files of the ``ratpose`` store that no row of these schemas references (DataJoint's gc)."""
    collector = dj.gc.GarbageCollector(*(m.schema for m in modules.values()), store=db.STORE)
    return collector.collect(dry_run=dry_run)


def delete_calibration(modules: dict[str, ModuleType], key: dict, *, prompt: bool = True) -> int:
    """Delete one CalibrationRecording and, by cascade, its Calibration and the sessions' choices of it."""
    recording = modules["calib"].CalibrationRecording & key
    if len(recording) != 1:
        raise ValueError(f"no calibration of rig {key['rig']!r} dated {key['calibration_date']}")
    return recording.delete(prompt=prompt, part_integrity="cascade")


def _cmd_delete(args) -> int:
    import datetime as _dt

    from . import activate

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
                raise ValueError(f"--calibration-date {args.calibration_date!r}: {err}") from None
            deleted = delete_calibration(modules, key, prompt=not args.yes)
        else:
            what = f"session {args.subject} {args.datetime}"
            key = modules["raw"].find_session(subject=args.subject, session_datetime=args.datetime)
            deleted = delete_session(modules, key, prompt=not args.yes)
    except (LookupError, ValueError) as err:
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
