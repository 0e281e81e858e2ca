"""Running the pipeline: populate every pending key and report per-table status from the jobs tables."""
from __future__ import annotations

from tqdm import tqdm


def populate(tables: dict[str, type], *, reserve_jobs: bool = True, processes: int = 1) -> dict[str, dict]:
    """Populate tables in dependency order; a failing key is recorded and the rest go on.

    Returns {table name: {"success_count": int, "error_list": [(key, message), ...]}}.
    """
    results = {}
    for name, table in tqdm(tables.items(), desc="pipeline", unit="table", leave=False):
        results[name] = table.populate(reserve_jobs=reserve_jobs, suppress_errors=True,
                                       display_progress=True, processes=processes)
    return results


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
