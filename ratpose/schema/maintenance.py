"""Maintenance: delete a session with everything computed from it, then free its files in the object store."""
from __future__ import annotations

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


def _cmd_delete(args) -> int:
    from . import activate

    modules = activate()
    try:
        key = modules["raw"].find_session(subject=args.subject, session_datetime=args.datetime)
        deleted = delete_session(modules, key, prompt=not args.yes)
    except (LookupError, ValueError) as err:
        print(f"ERROR {err}")
        return 1
    if not deleted:
        print("nothing deleted")
        return 1
    stats = collect_garbage(modules)
    print(f"deleted session {args.subject} {args.datetime}; freed {stats['deleted']} stored files "
          f"({stats['bytes_freed']} bytes)")
    return 0


def add_commands(subparsers) -> None:
    """Add ``ratpose delete`` to the command line."""
    parser = subparsers.add_parser("delete", help="delete a session and everything computed from it, then "
                                                  "free its stored files (asks for confirmation)")
    parser.add_argument("--subject", required=True)
    parser.add_argument("--datetime", required=True, help="session_datetime, ISO 8601 (e.g. 2026-11-24T10:00:00)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(func=_cmd_delete)
