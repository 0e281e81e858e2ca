"""Maintenance: delete a session with everything computed from it, then free its files in the object store."""
from __future__ import annotations

from types import ModuleType

import datajoint as dj

from .. import db
from ..errors import InputError


def delete_session(modules: dict[str, ModuleType], key: dict, *, prompt: bool = True) -> int:
    """Delete one Session and, by cascade, every row computed from it.

    With ``prompt`` DataJoint lists what would go and asks for confirmation (answering no rolls
    everything back). Returns the number of Session rows deleted (0: nothing, or not confirmed).
    """
    session = modules["raw"].Session & key
    if len(session) != 1:
        raise InputError(f"no session {key}" if not len(session) else f"{key} matches {len(session)} sessions")
    return session.delete(prompt=prompt, part_integrity="cascade")


def collect_garbage(modules: dict[str, ModuleType], *, dry_run: bool = False) -> dict:
    """Remove files of the ``ratpose`` store that no row of these schemas references (DataJoint's gc)."""
    collector = dj.gc.GarbageCollector(*(m.schema for m in modules.values()), store=db.STORE)
    return collector.collect(dry_run=dry_run)


def delete_calibration(modules: dict[str, ModuleType], key: dict, *, prompt: bool = True) -> int:
    """Delete one CalibrationRecording and, by cascade, its Calibration and the sessions' choices of it."""
    recording = modules["calib"].CalibrationRecording & key
    if len(recording) != 1:
        raise InputError(f"no calibration of rig {key['rig']!r} dated {key['calibration_date']}")
    return recording.delete(prompt=prompt, part_integrity="cascade")
