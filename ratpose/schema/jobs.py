"""Running the pipeline: populate every pending key and report per-table status from the jobs tables."""
from __future__ import annotations

from tqdm import tqdm


def populate(tables: dict[str, type], *, reserve_jobs: bool = True, processes: int = 1,
             restriction: dict | None = None) -> dict[str, dict]:
    """Populate tables in dependency order (only keys matching restriction, if given); a failing key is
    recorded and the rest go on.

    Returns {table name: {"success_count": int, "error_list": [(key, message), ...]}}.
    """
    results = {}
    for name, table in tqdm(tables.items(), desc="pipeline", unit="table", leave=False):
        if hasattr(table, "schedule"):  # Manual rows a table's keys need, made from standing defaults
            table.schedule()
        results[name] = table.populate(*([restriction] if restriction else []), reserve_jobs=reserve_jobs,
                                       suppress_errors=True, display_progress=True, processes=processes)
    return results


def status(tables: dict[str, type]) -> dict[str, dict]:
    """Per table: rows done, keys pending, jobs reserved and in error (with their messages)."""
    rows = {}
    for name, table in tables.items():
        jobs = table.jobs
        errors = jobs.errors.to_dicts() if len(jobs.errors) else []
        rows[name] = {"done": len(table()),
                      "pending": max(0, len(table.key_source - table.proj()) - len(errors)),  # not counted twice
                      "reserved": len(jobs.reserved),
                      "error": len(errors),
                      "error_messages": [f"{_key_text(e, table.primary_key)}: {e['error_message']}" for e in errors]}
    return rows


def errors_in(tables: dict[str, type]) -> list[tuple[str, str, str]]:
    """Every key in error, new or left from earlier runs: (table, key, message), once each."""
    return [(name, _key_text(e, table.primary_key), e["error_message"])
            for name, table in tables.items() for e in table.jobs.errors.to_dicts()]


def print_errors(tables: dict[str, type]) -> int:
    """Print each key in error once with its message and the command that retries it; returns how many."""
    found = errors_in(tables)
    for name, key, message in found:
        print(f"ERROR {name} {key}: {message}\n    retry after fixing: ratpose jobs retry {name}")
    return len(found)


def _key_text(job: dict, primary_key: list[str]) -> str:
    return ", ".join(f"{k}={job[k]}" for k in primary_key)
