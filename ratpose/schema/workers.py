"""Workers: ``ratpose worker`` loops ``populate(reserve_jobs=True)`` over the computed tables.

Any number of workers on any number of machines share the work through DataJoint's jobs tables
(``~~table``): ``Job.reserve()`` is one conditional UPDATE, so each key is made once, and make()
runs in a transaction, so a key gets all its rows or none. Dead workers' reservations are reclaimed
before every pass (``schema/recovery.py``).

Signals
    SIGTERM and SIGINT raise SystemExit; inside make() DataJoint rolls the transaction back and
    marks the job 'error' ("SystemExit: ..."). The worker then deletes its own such jobs and any
    reservation it still holds, so the key is pending again for the next worker.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import platform
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .jobs import prepare
from .recovery import (
    _make_errors_unlogged,
    _refresh_connection_id,
    _release_own_jobs,
    _retry_transient,
    reclaim_dead_reservations,
)


@dataclass
class WorkerSettings:
    """How one worker loops: see ``ratpose worker --help``."""
    watch: bool = False
    poll_s: float = 10.0
    max_idle_s: float | None = None
    orphan_timeout_s: float | None = None
    transient_retries: int = 3


@dataclass
class WorkerRun:
    """What one worker process did."""
    computed: Counter = field(default_factory=Counter)
    reclaimed: int = 0
    interrupted_by: str | None = None
    released: int = 0


def _raise_exit(signum, frame):
    raise SystemExit(f"{signal.Signals(signum).name} received")


def run_worker(tables: dict[str, type], options: WorkerSettings | None = None) -> WorkerRun:
    """Populate the tables (reserving jobs) until no work is left, or forever with ``options.watch``.

    SIGTERM/SIGINT abandon the key in progress (its transaction is rolled back) and release its job.
    """
    options = options or WorkerSettings()
    run = WorkerRun()
    previous = {s: signal.signal(s, _raise_exit) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with _make_errors_unlogged():
            _work(tables, options, run)
    except SystemExit as stop:
        for s in previous:
            signal.signal(s, signal.SIG_IGN)  # a second signal must not interrupt the clean-up
        run.interrupted_by = str(stop)
        connection = next(iter(tables.values())).connection
        with contextlib.suppress(Exception):  # the interrupted query may have left the socket mid-reply
            connection.close()
        connection.connect()
        run.released = _release_own_jobs(tables)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return run


def _work(tables: dict[str, type], options: WorkerSettings, run: WorkerRun) -> None:
    connection = next(iter(tables.values())).connection
    attempts = Counter()
    idle_since = time.monotonic()
    while True:
        _refresh_connection_id(connection)
        reclaimed = reclaim_dead_reservations(tables)
        if options.orphan_timeout_s:
            for table in tables.values():
                reclaimed += table.jobs.refresh(orphan_timeout=options.orphan_timeout_s, delay=-1)["orphaned"]
        run.reclaimed += reclaimed
        made = 0
        for name, table in tables.items():
            count = table.populate(*prepare(table), reserve_jobs=True, suppress_errors=True)["success_count"]
            run.computed[name] += count
            made += count
        retried = _retry_transient(tables, attempts, options.transient_retries)
        if made or retried or reclaimed:
            idle_since = time.monotonic()
            continue
        others_busy = any(len(table.jobs.reserved) for table in tables.values())
        if not (options.watch or others_busy):
            return
        if options.max_idle_s is not None and time.monotonic() - idle_since >= options.max_idle_s:
            return
        time.sleep(options.poll_s)


TableLoader = Callable[[list[str]], dict[str, type]]


def _worker_process(loader: TableLoader, names: list[str], options: WorkerSettings) -> None:
    """Entry point of one worker process (spawned: its own interpreter and connection)."""
    run = run_worker(loader(names), options)
    _print_run(run)


def _print_run(run: WorkerRun) -> None:
    made = ", ".join(f"{n} {c}" for n, c in run.computed.items() if c) or "nothing"
    line = f"worker {platform.node()}:{os.getpid()}: computed {made}"
    if run.reclaimed:
        line += f"; reclaimed {run.reclaimed} job(s) of dead workers"
    if run.interrupted_by:
        line += f"; stopped ({run.interrupted_by}), released {run.released} job(s)"
    print(line, flush=True)


def run_workers(loader: TableLoader, names: list[str], options: WorkerSettings, processes: int) -> list[int]:
    """Run ``processes`` worker processes to the end; SIGTERM/SIGINT are passed on. Returns exit codes."""
    if processes == 1:
        _worker_process(loader, names, options)
        return [0]
    context = mp.get_context("spawn")
    workers = [context.Process(target=_worker_process, args=(loader, names, options)) for _ in range(processes)]
    for worker in workers:
        worker.start()

    def forward(signum, frame):
        for worker in workers:
            if worker.is_alive():
                os.kill(worker.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker in workers:
            worker.join()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return [worker.exitcode for worker in workers]
