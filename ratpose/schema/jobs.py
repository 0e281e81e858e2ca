"""Running the pipeline: populate every pending key and report per-table status from the jobs tables."""
from __future__ import annotations

from collections import Counter

import datajoint as dj
from tqdm import tqdm

TRANSIENT_RETRIES = 3  # times a key whose make() lost its connection is tried again in one populate


def populate(tables: dict[str, type], *, reserve_jobs: bool = True, processes: int = 1) -> dict[str, dict]:
    """Populate tables in dependency order; a failing key is recorded and the rest go on.

    Returns {table name: {"success_count": int, "error_list": [(key, message), ...]}}.
    """
    if reserve_jobs:
        reclaim(tables)
    results = {}
    for name, table in tqdm(tables.items(), desc="pipeline", unit="table", leave=False):
        results[name] = _populate_with_retries(name, table, reserve_jobs, processes)
    return results


def reclaim(tables: dict[str, type]) -> int:
    """Make keys reserved by dead connections (a killed worker or populate) pending again."""
    from .ops import _refresh_connection_id, reclaim_dead_reservations

    if tables:
        _refresh_connection_id(next(iter(tables.values())).connection)
    return reclaim_dead_reservations(tables)


def _populate_with_retries(name: str, table, reserve_jobs: bool, processes: int) -> dict:
    """populate() one table; keys failing on a lost connection (also at COMMIT) are tried again, bounded."""
    from .ops import _refresh_connection_id, _retry_transient

    attempts, done, errors = Counter(), 0, []
    for _ in range(TRANSIENT_RETRIES + 1):
        try:
            result = table.populate(reserve_jobs=reserve_jobs, suppress_errors=True,
                                    display_progress=True, processes=processes)
            done, errors = done + result["success_count"], result["error_list"]
        except (dj.errors.LostConnectionError, dj.errors.QueryError, ConnectionError) as err:
            errors = [({}, f"{type(err).__name__}: {err}")]
        if not table.connection.is_connected:
            table.connection.connect()
        _refresh_connection_id(table.connection)
        if not reserve_jobs or not (reclaim({name: table}) + _retry_transient({name: table}, attempts,
                                                                              TRANSIENT_RETRIES)):
            break
    if reserve_jobs:
        errors = [({k: e[k] for k in table.primary_key}, e["error_message"]) for e in table.jobs.errors.to_dicts()]
    return {"success_count": done, "error_list": errors}


def status(tables: dict[str, type]) -> dict[str, dict]:
    """Per table: rows done, keys pending, jobs reserved and in error (with their messages)."""
    rows = {}
    for name, table in tables.items():
        jobs = table.jobs
        errors = jobs.errors.to_dicts() if len(jobs.errors) else []
        rows[name] = {"done": len(table()),
                      "pending": len(table.key_source - table.proj()),
                      "reserved": len(jobs.reserved),
                      "error": len(errors),
                      "error_messages": [f"{_key_text(e, table.primary_key)}: {e['error_message']}" for e in errors]}
    return rows


def _key_text(job: dict, primary_key: list[str]) -> str:
    return ", ".join(f"{k}={job[k]}" for k in primary_key)
