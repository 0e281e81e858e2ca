"""Populate with recovery: dead reservations reclaimed, keys that lost their connection tried again.

Reservations of dead workers
    DataJoint stores the reserving ``connection_id`` with each reserved job. A worker that dies
    (SIGKILL, out of memory, node lost) loses its connection; the server rolls back its open
    transaction and drops the connection from its process list. Before every pass a worker deletes
    reserved jobs whose connection is no longer in ``information_schema.PROCESSLIST``, and
    ``Job.refresh()`` (run by populate) adds those keys back as pending. The process list shows
    other accounts' connections only with the PROCESS privilege, so without it only reservations
    made by the worker's own account are judged. ``--orphan-timeout S`` adds DataJoint's own
    ``refresh(orphan_timeout=S)``: any reservation older than S seconds is made pending again
    (for machines that vanished without closing their socket, which the server notices only
    after ``wait_timeout``). DataJoint does not update ``connection_id`` when it reconnects, so
    the worker re-reads it before every pass.
"""
from __future__ import annotations

import contextlib
import logging
import os
import platform
from collections import Counter

import datajoint as dj

from ..errors import InputError
from .jobs import TRANSIENT_ERRORS, is_transient, prepare

_OWN_ABANDONED = "status='reserved' OR (status='error' AND error_message LIKE 'SystemExit:%')"


def pipeline_tables(names: list[str] | tuple[str, ...] = ()) -> dict[str, type]:
    """The pipeline's computed tables (all, or those named), activated, in dependency order."""
    from . import activate, computed_tables

    return select_tables(computed_tables(activate()), names)


def select_tables(tables: dict[str, type], names) -> dict[str, type]:
    """The named tables in dependency order (all when no names); unknown names raise ValueError."""
    unknown = [n for n in names if n not in tables]
    if unknown:
        raise InputError(f"unknown table(s) {unknown}; choose from {list(tables)}")
    return {n: t for n, t in tables.items() if not names or n in names}


def retry_errors(tables: dict[str, type]) -> int:
    """Delete the error jobs of the tables so their keys are tried again; returns how many."""
    return sum(table.jobs.errors.delete_quick(get_count=True) for table in tables.values())


def reclaim_dead_reservations(tables: dict[str, type]) -> int:
    """Delete reserved jobs whose reserving connection no longer exists; returns how many.

    Only on MySQL/MariaDB. Without the PROCESS privilege only the own account's reservations are
    judged (others' connections are invisible, not dead).
    """
    if not tables:
        return 0
    connection = next(iter(tables.values())).connection
    if connection.adapter.backend != "mysql":
        return 0
    live = {row[0] for row in connection.query("SELECT ID FROM information_schema.PROCESSLIST")}
    sees_all = connection.query("SELECT 1 FROM information_schema.USER_PRIVILEGES "
                                "WHERE PRIVILEGE_TYPE='PROCESS'").fetchone() is not None
    account = connection.get_user().split("@")[0]
    reclaimed = 0
    for table in tables.values():
        jobs = table.jobs
        for job in jobs.reserved.proj("connection_id", "user").to_dicts():
            if job["connection_id"] in live or not (sees_all or job["user"].split("@")[0] == account):
                continue
            # condition on status and connection: a key re-reserved meanwhile by a live worker stays
            reclaimed += (jobs & {k: job[k] for k in jobs.primary_key}
                          & {"status": "reserved", "connection_id": job["connection_id"]}).delete_quick(get_count=True)
    return reclaimed


def _own_jobs(table):
    return table.jobs & {"host": platform.node(), "pid": os.getpid()}


def _release_own_jobs(tables: dict[str, type]) -> int:
    """Make the keys this process reserved or abandoned on a signal pending again."""
    return sum((_own_jobs(t) & _OWN_ABANDONED).delete_quick(get_count=True) for t in tables.values())


def _retry_transient(tables: dict[str, type], attempts: Counter, limit: int) -> int:
    """Delete this process's errors caused by a lost connection, at most ``limit`` times per key."""
    lost_connection = "(" + " OR ".join(f"error_message LIKE '{p}'" for p in TRANSIENT_ERRORS) + ")"
    retried = 0
    for name, table in tables.items():
        for key in (_own_jobs(table).errors & lost_connection).keys():
            attempts[name, tuple(sorted(key.items()))] += 1
            if attempts[name, tuple(sorted(key.items()))] <= limit:
                retried += (table.jobs & key).delete_quick(get_count=True)
    return retried


def _refresh_connection_id(connection) -> None:
    """DataJoint keeps the id of its first connection after reconnecting: reservations need the live one."""
    if connection.adapter.backend == "mysql":
        connection.connection_id = connection.query("SELECT CONNECTION_ID()").fetchone()[0]


TRANSIENT_RETRIES = 3  # times a key whose make() lost its connection is tried again in one populate


def populate_recovering(tables: dict[str, type], *, reserve_jobs: bool = True, processes: int = 1) -> dict[str, dict]:
    """Like jobs.populate, after reclaiming dead reservations, retrying transient failures; error_list
    ends as every key of the table in error (also from earlier runs)."""
    if reserve_jobs:
        reclaim(tables)
    with _make_errors_unlogged():
        return {name: _populate_with_retries(name, table, reserve_jobs, processes) for name, table in tables.items()}


def _not_a_make_error(record: logging.LogRecord) -> bool:
    return not (record.levelno >= logging.ERROR and record.module == "autopopulate")


@contextlib.contextmanager
def _make_errors_unlogged():
    """Drop DataJoint's log line of each failed make(): ratpose reports every key in error once itself, with
    its table, key and cause (from the jobs tables or populate's error list)."""
    logger = logging.getLogger("datajoint")
    logger.addFilter(_not_a_make_error)
    try:
        yield
    finally:
        logger.removeFilter(_not_a_make_error)


def reclaim(tables: dict[str, type]) -> int:
    """Make keys reserved by dead connections (a killed worker or populate) pending again."""
    if tables:
        _refresh_connection_id(next(iter(tables.values())).connection)
    return reclaim_dead_reservations(tables)


def _populate_with_retries(name: str, table, reserve_jobs: bool, processes: int) -> dict:
    """populate() one table; keys failing on a transient error (also a lost connection at COMMIT, which
    DataJoint raises out of populate) are tried again, at most TRANSIENT_RETRIES times each."""
    attempts, failed, restriction, before = Counter(), {}, prepare(table), len(table())
    while True:
        crash = None
        try:
            result = table.populate(*restriction, reserve_jobs=reserve_jobs, suppress_errors=True,
                                    display_progress=True, processes=processes)
            failed.update((tuple(sorted(k.items())), m) for k, m in result["error_list"])
        except (dj.errors.LostConnectionError, dj.errors.QueryError, ConnectionError) as err:
            crash = f"{type(err).__name__}: {err}"
        if not table.connection.is_connected:
            table.connection.connect()
        _refresh_connection_id(table.connection)
        if reserve_jobs:
            # a lost COMMIT leaves its key reserved by the dead connection: made an error, retried as one
            if crash and not _fail_own_dead_reservations(table, crash):
                attempts[None] += 1  # lost outside any key: bounded as one
            again = reclaim({name: table}) + _retry_transient({name: table}, attempts, TRANSIENT_RETRIES)
            if again or (crash and attempts[None] <= TRANSIENT_RETRIES):
                continue  # a crash also ended populate() before the keys after it
            if crash:
                failed[()] = crash
            break
        if crash:  # without jobs the key is unknown: run the same keys again, a bounded number of times
            attempts[None] += 1
            if attempts[None] > TRANSIENT_RETRIES:
                failed[()] = crash
                break
            continue
        retry = [key for key, message in failed.items() if is_transient(message)]
        attempts.update(retry)
        retry = [key for key in retry if attempts[key] <= TRANSIENT_RETRIES]
        if not retry:
            break
        for key in retry:
            del failed[key]
        restriction = [[dict(key) for key in retry]]
    done = len(table()) - before  # also the keys made before a crash, whose count populate() lost
    if reserve_jobs:  # every key in error, also from earlier runs, and a crash outside any key
        return {"success_count": done, "error_list": [({k: e[k] for k in table.primary_key}, e["error_message"])
                                                      for e in table.jobs.errors.to_dicts()]
                + [({}, m) for k, m in failed.items() if k == ()]}
    return {"success_count": done, "error_list": [(dict(key), message) for key, message in failed.items()]}


def _fail_own_dead_reservations(table, message: str) -> int:
    """Mark this process's reservations whose connection died as errors with ``message``; how many."""
    if table.connection.adapter.backend != "mysql":
        return 0
    live = {row[0] for row in table.connection.query("SELECT ID FROM information_schema.PROCESSLIST")}
    dead = [job for job in (_own_jobs(table) & "status='reserved'").proj("connection_id").to_dicts()
            if job["connection_id"] not in live]
    for job in dead:
        table.jobs.error({k: job[k] for k in table.jobs.primary_key}, error_message=message)
    return len(dead)
