"""``ratpose populate``, ``status``, ``worker`` and ``jobs retry``: computing the pending work."""
from __future__ import annotations

import os
import sys

from ..errors import RatposeError


def pipeline_tables(names):
    """The pipeline's computed tables (all, or those named), activated, in dependency order."""
    from ..schema.recovery import pipeline_tables as activated

    return activated(names)


def _selected_tables(names: list[str]):
    try:
        return pipeline_tables(names)
    except RatposeError as err:
        raise SystemExit(str(err)) from err


def _cmd_populate(args) -> int:
    from ..schema.jobs import error_report, print_errors
    from ..schema.recovery import populate_recovering

    tables = _selected_tables(args.tables)
    results = populate_recovering(tables, reserve_jobs=not args.direct)
    for name, result in results.items():
        print(f"{name:<20} {result['success_count']:>5} computed, {len(result['error_list']):>3} in error")
    # errors the jobs tables do not hold: all of them with --direct, a lost connection outside any key
    unlisted = [(n, k, m) for n, r in results.items() for k, m in r["error_list"] if args.direct or not k]
    for name, key, message in unlisted:
        print(error_report(name, ", ".join(f"{k}={v}" for k, v in key.items()), message,
                           rerun=f"ratpose populate {'--direct ' if args.direct else ''}{name}"))
    # --direct tried the keys in error in the jobs tables again: what is left of them is in its own list
    return 1 if (0 if args.direct else print_errors(tables)) + len(unlisted) else 0


def _cmd_status(args) -> int:
    from ..schema.jobs import print_errors, status

    tables = _selected_tables(args.tables)
    rows = status(tables)
    print(f"{'table':<20} {'done':>6} {'pending':>8} {'reserved':>9} {'error':>6}")
    for name, row in rows.items():
        print(f"{name:<20} {row['done']:>6} {row['pending']:>8} {row['reserved']:>9} {row['error']:>6}")
    return 1 if print_errors(tables) else 0


def worker_command(args, loader=pipeline_tables) -> int:
    """``ratpose worker``: run the workers, then report the errors left in the jobs tables. ``loader``
    (names -> tables, ``schema.workers.TableLoader``) is what each worker process activates."""
    from ..schema.jobs import status
    from ..schema.recovery import retry_errors
    from ..schema.workers import WorkerSettings, run_workers

    args.tables = [*args.tables, *(args.table_names or [])]
    try:
        tables = loader(args.tables)
        if args.device != "auto":  # checked here, once: a GPU worker without a GPU says so before taking work
            from ..pose2d.dlc import resolve_device
            from ..schema.pose import DEVICE_VARIABLE

            os.environ[DEVICE_VARIABLE] = resolve_device(args.device)
    except RatposeError as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    except ImportError as err:
        print(f"ERROR --device {args.device} needs DeepLabCut's torch ({err}; pip install -e '.[dlc]')",
              file=sys.stderr)
        return 1
    if args.retry_errors:
        print(f"retrying {retry_errors(tables)} failed job(s)")
    options = WorkerSettings(watch=args.watch, poll_s=args.poll, max_idle_s=args.max_idle,
                            orphan_timeout_s=args.orphan_timeout)
    codes = run_workers(loader, args.tables, options, args.processes)
    crashed = [c for c in codes if c != 0]
    errors = 0
    for name, row in status(tables).items():
        errors += row["error"]
        for message in row["error_messages"]:
            print(f"ERROR {name}: {message}", file=sys.stderr)
    if crashed:
        print(f"{len(crashed)} worker process(es) failed (exit codes {crashed})", file=sys.stderr)
    if errors:
        print(f"{errors} job(s) in error; fix the cause, then: ratpose worker --retry-errors", file=sys.stderr)
    return 1 if errors or crashed else 0


def jobs_retry_command(args, loader=pipeline_tables) -> int:
    """``ratpose jobs retry``: forget failed jobs so the next worker tries them again."""
    from ..schema.recovery import retry_errors

    print(f"{retry_errors(loader(args.tables))} failed job(s) will be tried again")
    return 0


def add_commands(subparsers) -> None:
    """Add ``populate``, ``status``, ``worker`` and ``jobs retry``."""
    populate = subparsers.add_parser("populate", help="compute all pending work of the given tables (default all)")
    populate.add_argument("tables", nargs="*")
    populate.add_argument("--direct", action="store_true", help="skip the jobs table (single user debugging)")
    populate.set_defaults(func=_cmd_populate)

    status = subparsers.add_parser("status", help="done/pending/reserved/error per table")
    status.add_argument("tables", nargs="*")
    status.set_defaults(func=_cmd_status)

    worker = subparsers.add_parser("worker", help="compute pending work with reserved jobs (many may run at once)")
    worker.add_argument("tables", nargs="*", help="computed tables (default all, in dependency order)")
    worker.add_argument("--tables", dest="table_names", nargs="+", metavar="TABLE",
                        help="the same as the positional tables: only these (e.g. Pose2D on a GPU node)")
    worker.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where this worker runs DeepLabCut for Pose2D tasks whose device is 'auto' "
                             "(cuda: refuse to start without a CUDA GPU)")
    worker.add_argument("--processes", type=int, default=1, help="worker processes on this machine")
    worker.add_argument("--watch", action="store_true", help="keep polling for new work instead of exiting")
    worker.add_argument("--poll", type=float, default=10.0, help="seconds between polls when idle")
    worker.add_argument("--max-idle", type=float, help="exit after this many seconds without work")
    worker.add_argument("--orphan-timeout", type=float,
                        help="also reclaim reservations older than this many seconds, alive or not")
    worker.add_argument("--retry-errors", action="store_true", help="try failed jobs again (after a fix)")
    worker.set_defaults(func=worker_command)

    jobs = subparsers.add_parser("jobs", help="manage the jobs tables")
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    retry = jobs_sub.add_parser("retry", help="delete error jobs so they are tried again")
    retry.add_argument("tables", nargs="*", help="computed tables (default all)")
    retry.set_defaults(func=jobs_retry_command)
