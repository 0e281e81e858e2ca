"""Operations: long-running workers, job retries, dead reservations, database users and config.

Workers
    ``ratpose worker`` loops ``populate(reserve_jobs=True)`` over the computed tables in dependency
    order. Any number of workers on any number of machines share the work through DataJoint's jobs
    tables (``~~table``): ``Job.reserve()`` is one conditional UPDATE, so each key is made once, and
    make() runs in a transaction, so a key gets all its rows or none.

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

Signals
    SIGTERM and SIGINT raise SystemExit; inside make() DataJoint rolls the transaction back and
    marks the job 'error' ("SystemExit: ..."). The worker then deletes its own such jobs and any
    reservation it still holds, so the key is pending again for the next worker.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing as mp
import os
import platform
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import datajoint as dj

from .. import db
from .jobs import TRANSIENT_ERRORS, is_transient

_OWN_ABANDONED = "status='reserved' OR (status='error' AND error_message LIKE 'SystemExit:%')"


@dataclass
class WorkerOptions:
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


# ---------------------------------------------------------------------------------------------
# tables and jobs

def pipeline_tables(names: list[str] | tuple[str, ...] = ()) -> dict[str, type]:
    """The pipeline's computed tables (all, or those named), activated, in dependency order."""
    from . import activate, computed_tables

    return select_tables(computed_tables(activate()), names)


def select_tables(tables: dict[str, type], names) -> dict[str, type]:
    """The named tables in dependency order (all when no names); unknown names raise ValueError."""
    unknown = [n for n in names if n not in tables]
    if unknown:
        raise ValueError(f"unknown table(s) {unknown}; choose from {list(tables)}")
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


# ---------------------------------------------------------------------------------------------
# populate with recovery (``ratpose populate``)

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
    if hasattr(table, "schedule"):  # Manual rows a table's keys need, made from standing defaults
        table.schedule()
    attempts, failed, restriction, before = Counter(), {}, [], len(table())
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


# ---------------------------------------------------------------------------------------------
# workers

def _raise_exit(signum, frame):
    raise SystemExit(f"{signal.Signals(signum).name} received")


def run_worker(tables: dict[str, type], options: WorkerOptions | None = None) -> WorkerRun:
    """Populate the tables (reserving jobs) until no work is left, or forever with ``options.watch``.

    SIGTERM/SIGINT abandon the key in progress (its transaction is rolled back) and release its job.
    """
    options = options or WorkerOptions()
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


def _work(tables: dict[str, type], options: WorkerOptions, run: WorkerRun) -> None:
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
            count = table.populate(reserve_jobs=True, suppress_errors=True)["success_count"]
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


def _worker_process(loader: TableLoader, names: list[str], options: WorkerOptions) -> None:
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


def run_workers(loader: TableLoader, names: list[str], options: WorkerOptions, processes: int) -> list[int]:
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


def worker_command(args, loader: TableLoader = pipeline_tables) -> int:
    """``ratpose worker``: run the workers, then report the errors left in the jobs tables."""
    from .jobs import status

    try:
        tables = loader(args.tables)
    except ValueError as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 2
    if args.retry_errors:
        print(f"retrying {retry_errors(tables)} failed job(s)")
    options = WorkerOptions(watch=args.watch, poll_s=args.poll, max_idle_s=args.max_idle,
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


def jobs_retry_command(args, loader: TableLoader = pipeline_tables) -> int:
    """``ratpose jobs retry``: forget failed jobs so the next worker tries them again."""
    print(f"{retry_errors(loader(args.tables))} failed job(s) will be tried again")
    return 0


# ---------------------------------------------------------------------------------------------
# database users and configuration

ROLES = {"readonly": ("SELECT",),
         "worker": ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "REFERENCES", "INDEX", "ALTER")}
_USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
_HOST_NAME = re.compile(r"[A-Za-z0-9%_][A-Za-z0-9%_.:-]{0,59}")  # host name, IP or wildcard pattern


def _check_name(value: str, pattern: re.Pattern, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"invalid {what} {value!r}: allowed are {pattern.pattern}")
    return value


def schema_pattern() -> str:
    """GRANT pattern matching every ``<prefix>_...`` schema (``_`` escaped: it is a wildcard)."""
    return db.prefix().replace("_", r"\_") + r"\_%"


def grant(user: str, role: str, *, host: str = "%", password: str | None = None) -> str:
    """Create ``user@host`` if a password is given and grant the role on the prefix's schemas.

    Returns the pattern granted on. Names are checked against strict patterns and passed as query
    parameters; the schema pattern comes from the validated prefix.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {list(ROLES)}")
    _check_name(user, _USER_NAME, "user name")
    _check_name(host, _HOST_NAME, "host")
    pattern = schema_pattern()
    connection = db.connect()
    if password is not None:
        connection.query("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", args=(user, host, password))
    elif not connection.query("SELECT 1 FROM mysql.user WHERE User=%s AND Host=%s", args=(user, host)).fetchone():
        # GRANT would create the account without a password on servers without NO_AUTO_CREATE_USER
        raise ValueError(f"user {user}@{host} does not exist; to create it give a password (--password-env)")
    escaped = pattern.replace("%", "%%")  # the query is %-formatted with its parameters
    connection.query(f"GRANT {', '.join(ROLES[role])} ON `{escaped}`.* TO %s@%s", args=(user, host))
    return pattern


# privileges that neither change data nor tables: anything else granted counts as writing
READ_PRIVILEGES = frozenset({"USAGE", "SELECT", "SHOW VIEW", "SHOW DATABASES", "PROCESS", "REPLICATION CLIENT",
                             "BINLOG MONITOR", "SLAVE MONITOR", "REPLICA MONITOR"})
_GRANT_LINE = re.compile(r"GRANT (?P<privileges>.+?) ON (?:(?:PROCEDURE|FUNCTION|PACKAGE(?: BODY)?) )?"
                         r"(?P<db>\*|`(?:[^`]|``)*`)\.\S+ TO ", re.S)
_ROLE_LINE = re.compile(r"GRANT (?P<roles>(?:`(?:[^`]|``)*`(?:@`[^`]*`)?(?:, *)?)+) TO ")


def _like(pattern: str, name: str) -> bool:
    """Whether a GRANT database pattern (``%`` / ``_`` wildcards, ``\\`` escapes) matches a schema name."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c[-1])
                    for c in re.findall(r"\\.|.", pattern, re.S))
    return re.fullmatch(regex, name, re.S) is not None


def write_privileges(connection=None) -> list[str]:
    """The current account's grants that could change the prefix's schemas ('INSERT on *.*', ...), also
    through roles it holds; empty for a read-only account."""
    connection = connection or db.connect()
    schemas = [db.schema_name(stage) for stage in db.STAGES]
    lines = [row[0] for row in connection.query("SHOW GRANTS").fetchall()]
    seen, found = set(), []
    while lines:
        line = lines.pop()
        roles = _ROLE_LINE.match(line)
        grant_ = _GRANT_LINE.match(line)
        if grant_ is None and roles:  # a role held: its own grants count too
            for role in re.findall(r"`((?:[^`]|``)*)`(?:@`[^`]*`)?", roles["roles"]):
                if role not in seen:
                    seen.add(role)
                    try:
                        lines += [row[0] for row in connection.query("SHOW GRANTS FOR %s", args=(role,)).fetchall()]
                    except Exception:  # a role whose grants cannot be read: count it as writing
                        found.append(f"role {role}")
            continue
        if grant_ is None:
            continue
        target = grant_["db"]
        applies = target == "*" or any(_like(target[1:-1].replace("``", "`"), s) for s in schemas)
        privileges = [p.strip() for p in re.sub(r"\([^)]*\)", "", grant_["privileges"]).split(",")]
        found += [f"{p} on {target}.*" for p in privileges if applies and p.upper() not in READ_PRIVILEGES]
    return found


def _write_private(path: Path, text: str) -> None:
    """Write text to a file only its owner can read (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def write_config(folder: Path, *, host: str, port: int | None = None, user: str | None = None,
                 password: str | None = None, store: str | None = None, overwrite: bool = False) -> list[Path]:
    """Write ``datajoint.json`` (and ``.secrets/database.password``) in folder, readable by the owner only.

    The password goes to DataJoint's secrets folder, never into datajoint.json. Returns the files written.
    """
    config_path = Path(folder) / "datajoint.json"
    if config_path.exists() and not overwrite:
        raise FileExistsError(f"{config_path} exists; pass --force to replace it")
    database = {"host": _check_name(host, _HOST_NAME, "host")}
    if port is not None:
        database["port"] = int(port)
    if user is not None:
        database["user"] = _check_name(user, _USER_NAME, "user name")
    # the store is always named, so a plain dj.VirtualModule (without ratpose's configure_store) reads its blobs
    store = store if store is not None else os.environ.get("RATPOSE_STORE", "~/ratpose-data/store")
    config = {"database": database,
              "stores": {db.STORE: {"protocol": "file", "location": str(Path(store).expanduser().resolve())}}}
    _write_private(config_path, json.dumps(config, indent=2) + "\n")
    written = [config_path]
    if password is not None:
        secrets = Path(folder) / ".secrets"
        secrets.mkdir(mode=0o700, exist_ok=True)
        secrets.chmod(0o700)
        _write_private(secrets / "database.password", password)
        written.append(secrets / "database.password")
    return written


def _password_from(variable: str | None) -> str | None:
    if variable is None:
        return None
    if not os.environ.get(variable):
        raise SystemExit(f"environment variable {variable} is empty or unset")
    return os.environ[variable]


def _cmd_grant(args) -> int:
    role, user = ("readonly", args.readonly) if args.readonly else ("worker", args.worker)
    try:
        pattern = grant(user, role, host=args.host, password=_password_from(args.password_env))
    except ValueError as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    print(f"granted {role} ({', '.join(ROLES[role])}) on `{pattern}`.* to {user}@{args.host}")
    return 0


def _cmd_config(args) -> int:
    if not args.write:
        print(json.dumps({"host": dj.config.database.host, "port": dj.config.database.port,
                          "user": dj.config.database.user, "prefix": db.prefix()}, indent=2))
        return 0
    try:
        written = write_config(args.dir, host=args.host or dj.config.database.host, port=args.port,
                               user=args.user, password=_password_from(args.password_env),
                               store=args.store, overwrite=args.force)
    except (FileExistsError, ValueError) as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    print("wrote (mode 0600): " + ", ".join(str(p) for p in written))
    return 0


# ---------------------------------------------------------------------------------------------
# command line

def add_commands(subparsers) -> None:
    """Add ``worker``, ``jobs retry`` and ``db grant`` / ``db config`` (to an existing ``db`` parser)."""
    worker = subparsers.add_parser("worker", help="compute pending work with reserved jobs (many may run at once)")
    worker.add_argument("tables", nargs="*", help="computed tables (default all, in dependency order)")
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

    db_parser = subparsers.choices.get("db") or subparsers.add_parser("db", help="database administration")
    db_sub = next((a for a in db_parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    if db_sub is None:
        db_sub = db_parser.add_subparsers(dest="db_command", required=True)
    grant_parser = db_sub.add_parser("grant", help="create a database user and grant a role on the prefix's schemas")
    role = grant_parser.add_mutually_exclusive_group(required=True)
    role.add_argument("--reader", "--readonly", dest="readonly", metavar="USER",
                      help="SELECT only: the account for `ratpose serve` and analysts")
    role.add_argument("--worker", metavar="USER", help="read, insert, update, delete, create/alter tables")
    grant_parser.add_argument("--host", default="%", help="client host the account is for (default %%: any)")
    grant_parser.add_argument("--password-env", metavar="VAR", help="environment variable holding the new password")
    grant_parser.set_defaults(func=_cmd_grant)

    config = db_sub.add_parser("config", help="show the connection settings, or write them (--write)")
    config.add_argument("--write", action="store_true", help="write datajoint.json (+ .secrets/) with mode 0600")
    config.add_argument("--dir", type=Path, default=Path("."), help="folder to write to (default: here)")
    config.add_argument("--host")
    config.add_argument("--port", type=int)
    config.add_argument("--user")
    config.add_argument("--password-env", metavar="VAR", help="environment variable holding the password")
    config.add_argument("--store", help="folder of the ratpose object store (default: $RATPOSE_STORE or "
                        "~/ratpose-data/store)")
    config.add_argument("--force", action="store_true", help="replace an existing datajoint.json")
    config.set_defaults(func=_cmd_config)

