"""Running the pipeline: populate every pending key and report per-table status from the jobs tables."""
from __future__ import annotations

from tqdm import tqdm

# Error messages (as the jobs tables store them) of make() calls that failed for a passing reason: the connection
# went away (2013, 1927: killed), the statement was killed (1317: KILL QUERY), a deadlock or lock wait (1213, 1205).
TRANSIENT_ERRORS = ("LostConnectionError%", *(f"OperationalError: ({code}%" for code in (1927, 2013, 1317, 1213, 1205)))

_SESSION = "the session folder (`ratpose delete --subject S --datetime D`, `ratpose ingest FOLDER`)"
_CALIBRATION = "the calibration folder (`ratpose delete --rig R --calibration-date D`, `ratpose ingest FOLDER`)"
# The input a failing key of each table is made from, and the commands that replace it
REPLACED_BY = {
    "SyncedFrames": _SESSION, "SessionSync": _SESSION, "UnitTuning": _SESSION,
    "Calibration": _CALIBRATION,
    "SessionCalibration": "the rig's calibrations (`ratpose calibrate FOLDER`: one dated before the session)",
    "PoseModel": "the labels (`ratpose train NEW_NAME SOURCE`)",
    "Pose2D": f"{_SESSION} or the pose model (`ratpose model register`, `ratpose defaults`)",
    "Pose3D": f"the session's calibration: {_CALIBRATION}",
    "KnobValidation": f"the knob (`ratpose knob set`) or {_SESSION}",
    "MovementEvents": f"the knob (`ratpose knob set`) or {_SESSION}",
    "UnitEncoding": f"the knob (`ratpose knob set`) or {_SESSION}",
    "PopulationDecoding": f"the knob (`ratpose knob set`) or {_SESSION}",
}


def prepare(table) -> list:
    """Get one table ready to populate on this machine: make the Manual rows its keys need from standing
    defaults (a table's ``schedule()``), and return the restrictions that keep populate() to the keys this machine
    can make. A table whose key_source depends on the machine (data roots it maps, files it sees) says so with
    ``depends_on_machine = True``; without the restriction, DataJoint's reserved populate takes any pending job,
    also one queued by a machine that can make it."""
    if hasattr(table, "schedule"):
        table.schedule()
    return [table.key_source.proj()] if getattr(table, "depends_on_machine", False) else []


def populate(tables: dict[str, type], *, reserve_jobs: bool = True, processes: int = 1,
             restriction: dict | None = None) -> dict[str, dict]:
    """Populate tables in dependency order (only keys matching restriction, if given); a failing key is
    recorded and the rest go on.

    Returns {table name: {"success_count": int, "error_list": [(key, message), ...]}}.
    """
    results = {}
    for name, table in tqdm(tables.items(), desc="pipeline", unit="table", leave=False):
        restrictions = [*([restriction] if restriction else []), *prepare(table)]
        results[name] = table.populate(*restrictions, reserve_jobs=reserve_jobs,
                                       suppress_errors=True, display_progress=True, processes=processes)
    return results


def status(tables: dict[str, type]) -> dict[str, dict]:
    """Per table: rows done, keys pending, jobs reserved and in error (with their messages). Read only: a
    table never populated has no jobs table yet, and none is made (``table.jobs`` would declare one)."""
    from datajoint.jobs import Job

    rows = {}
    for name, table in tables.items():
        jobs = Job(table())
        declared = jobs.is_declared
        errors = jobs.errors.to_dicts() if declared and len(jobs.errors) else []
        rows[name] = {"done": len(table()),
                      "pending": max(0, len(table.key_source - table.proj()) - len(errors)),  # not counted twice
                      "reserved": len(jobs.reserved) if declared else 0,
                      "error": len(errors),
                      "error_messages": [f"{_key_text(e, table.primary_key)}: {e['error_message']}" for e in errors]}
    return rows


def errors_in(tables: dict[str, type]) -> list[tuple[str, str, str]]:
    """Every key in error, new or left from earlier runs: (table, key, message), once each."""
    return [(name, _key_text(e, table.primary_key), e["error_message"])
            for name, table in tables.items() for e in table.jobs.errors.to_dicts()]


def print_errors(tables: dict[str, type]) -> int:
    """Print each key in error once with its message and what to do about it; returns how many."""
    found = errors_in(tables)
    for name, key, message in found:
        print(error_report(name, key, message))
    return len(found)


def is_transient(message: str) -> bool:
    """Whether a stored error message is of a passing failure (connection, lock, deadlock, killed query)."""
    return message.startswith(tuple(pattern.rstrip("%") for pattern in TRANSIENT_ERRORS))


def error_report(name: str, key: str, message: str, *, rerun: str | None = None) -> str:
    """``ERROR <table> <key>: <message>`` and a line with what to do: retry a passing failure, else fix the
    cause (bad input: the commands that replace it), then retry. ``rerun``: the command that computes the
    key again when no job holds its error (default: the jobs table does)."""
    again = f"`{rerun}`" if rerun else f"`ratpose jobs retry {name}`, `ratpose populate {name}`"
    if is_transient(message):
        hint = f"a passing failure (connection, lock or killed query) that outlasted the retries: retry with {again}"
    else:
        hint = f"fix the cause (bad input: replace {REPLACED_BY.get(name, 'it')}), then {again}"
    return f"ERROR {name} {key or '(no key)'}: {message}\n    {hint}"


def _key_text(job: dict, primary_key: list[str]) -> str:
    return ", ".join(f"{k}={job[k]}" for k in primary_key)
