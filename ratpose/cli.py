"""The ``ratpose`` command line: one entry point for the lab's daily use."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

# DataJoint warns on import when settings come from DJ_* variables only; a failed connection names them
warnings.filterwarnings("ignore", message="No datajoint.json found")

from .acquisition.commands import add_commands as add_acquisition_commands
from .export.commands import add_commands as add_export_commands
from .behaviour.commands import add_commands as add_knob_commands
from .calibration.commands import add_commands as add_calibration_commands
from .pose2d.commands import add_commands as add_pose_commands
from .report.commands import add_commands as add_report_commands
from .schema.maintenance import add_commands as add_maintenance_commands
from .schema.ops import add_commands as add_ops_commands
from .sim.commands import add_commands as add_sim_commands
from .web.commands import add_commands as add_web_commands


def _cmd_db_check(args) -> int:
    import datajoint as dj

    from . import db, schema

    modules = schema.activate()
    connection = dj.conn()
    version = connection.query("SELECT VERSION()").fetchone()[0]
    print(f"server   : {dj.config.database.host}:{dj.config.database.port} ({version})")
    print(f"user     : {dj.config.database.user}")
    print(f"prefix   : {db.prefix()}")
    print(f"store    : {dj.config.stores[db.STORE]}")
    for module in modules.values():
        print(f"schema   : {module.schema.database} ({len(module.schema.list_tables())} tables)")
    return 0


def _cmd_ingest(args) -> int:
    from . import schema
    from .ingest.session_folder import SessionFormatError, read_session_folder

    modules = schema.activate()
    failures = 0
    for folder in args.session_dirs:
        try:
            if (Path(folder) / "calibration.toml").is_file():  # a calibration folder
                key, inserted = modules["calib"].register_calibration(folder)
            elif Path(folder).is_dir() and not (Path(folder) / "session.toml").exists():
                raise SessionFormatError(folder, "has neither session.toml (a session folder) nor "
                                                 "calibration.toml (a calibration folder)")
            else:
                key, inserted = modules["raw"].insert_session(read_session_folder(folder))
        except (SessionFormatError, ValueError, OSError) as err:
            print(f"ERROR {_expected_error(err)}", file=sys.stderr)
            failures += 1
            continue
        print(f"{'ingested' if inserted else 'already ingested'}: {folder} -> {key}")
    return 1 if failures else 0


def _cmd_subject(args) -> int:
    from . import schema
    from .ingest.session_folder import check_subject_info

    given = {"species": args.species, "sex": args.sex, "date_of_birth": args.date_of_birth, "age": args.age}
    values = check_subject_info({k: v for k, v in given.items() if v is not None}, Path("ratpose subject set"))
    if not values:
        raise ValueError("ratpose subject set: give at least one of --species, --sex, --date-of-birth, --age")
    subject = schema.activate()["raw"].Subject
    if not subject & {"subject": args.subject}:
        raise LookupError(f"no subject {args.subject!r} in the database (ingest one of its sessions first)")
    subject.update1({"subject": args.subject, **values})
    print(f"subject {args.subject}: " + ", ".join(f"{k} {v}" for k, v in values.items()))
    return 0


def _selected_tables(names: list[str]):
    from .schema.ops import pipeline_tables

    try:
        return pipeline_tables(names)
    except ValueError as err:
        raise SystemExit(str(err)) from err


def _cmd_populate(args) -> int:
    from .schema.jobs import error_report, print_errors
    from .schema.ops import populate_recovering

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
    from .schema.jobs import print_errors, status

    tables = _selected_tables(args.tables)
    rows = status(tables)
    print(f"{'table':<20} {'done':>6} {'pending':>8} {'reserved':>9} {'error':>6}")
    for name, row in rows.items():
        print(f"{name:<20} {row['done']:>6} {row['pending']:>8} {row['reserved']:>9} {row['error']:>6}")
    return 1 if print_errors(tables) else 0


def _cmd_demo(args) -> int:
    from .demo import DemoSettings, run_demo

    given = {name: getattr(args, name) for name in ("seconds", "epochs", "seed") if getattr(args, name) is not None}
    settings = DemoSettings(**given, swap_cameras=args.swap_cameras, db_prefix=args.db_prefix,
                            model=str(args.model or ""))
    summary = run_demo(args.out, settings)
    print(summary.text())
    return 1 if summary.failed else 0




def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ratpose", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db_parser = sub.add_parser("db", help="database administration")
    db_sub = db_parser.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("check", help="connect; print server, prefix and schemas").set_defaults(func=_cmd_db_check)

    ingest = sub.add_parser("ingest", help="validate session (or calibration) folders and insert them (atomic, "
                                           "idempotent)")
    ingest.add_argument("session_dirs", nargs="+", type=Path)
    ingest.set_defaults(func=_cmd_ingest)

    subject = sub.add_parser("subject", help="a subject's details (what NWB and DANDI need)")
    subject_sub = subject.add_subparsers(dest="subject_command", required=True)
    subject_set = subject_sub.add_parser("set", help="set species, sex, date of birth or age of a subject")
    subject_set.add_argument("subject")
    subject_set.add_argument("--species", help="Latin binomial (default of a new subject: Rattus norvegicus)")
    subject_set.add_argument("--sex", choices=["M", "F", "U", "O"])
    subject_set.add_argument("--date-of-birth", help="YYYY-MM-DD")
    subject_set.add_argument("--age", help="ISO 8601 duration at the sessions, e.g. P90D (without a date of birth)")
    subject_set.set_defaults(func=_cmd_subject)

    demo = sub.add_parser("demo", help="simulate a session, run every stage on it, PASS/FAIL against the truth "
                                       "(exit 1 on a FAIL; a few minutes, CPU)")
    demo.add_argument("--out", type=Path, default=Path("~/ratpose-data/demo"),
                      help="folder for the simulated data, the report and demo.log (default ~/ratpose-data/demo)")
    demo.add_argument("--seconds", type=float, help="simulated session length (default 24)")
    demo.add_argument("--epochs", type=int, help="DeepLabCut training epochs (default 20)")
    demo.add_argument("--seed", type=int)
    demo.add_argument("--model", type=Path, help="a trained DLC model folder or snapshot to use instead of "
                      "training one (an earlier demo's is printed in its summary: 'model folder')")
    demo.add_argument("--swap-cameras", action="store_true",
                      help="swap the calibration's two cameras: Pose3D and the knob check must FAIL (exit 1)")
    demo.add_argument("--db-prefix", help="schema prefix of the demo (default <RATPOSE_DB_PREFIX>_demo; a prefix "
                      "ending in _demo is emptied first, any other is kept)")
    demo.set_defaults(func=_cmd_demo)


    populate = sub.add_parser("populate", help="compute all pending work of the given tables (default all)")
    populate.add_argument("tables", nargs="*")
    populate.add_argument("--direct", action="store_true", help="skip the jobs table (single user debugging)")
    populate.set_defaults(func=_cmd_populate)

    status = sub.add_parser("status", help="done/pending/reserved/error per table")
    status.add_argument("tables", nargs="*")
    status.set_defaults(func=_cmd_status)
    add_export_commands(sub)
    add_report_commands(sub)
    add_acquisition_commands(sub)
    add_ops_commands(sub)
    add_maintenance_commands(sub)
    add_sim_commands(sub)
    add_pose_commands(sub)
    add_knob_commands(sub)
    add_calibration_commands(sub)
    add_web_commands(sub)
    return parser


def _expected_error(err: BaseException) -> str | None:
    """One line for an error the user can fix (bad input, permissions, database, store); None otherwise."""
    import datajoint as dj

    from .db import DatabaseUnreachable

    if isinstance(err, DatabaseUnreachable):  # names the server, the account and what to check
        return str(err)
    if isinstance(err, PermissionError):
        return f"{err.filename or ''}: permission denied ({err.strerror}); fix the permissions and run again"
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror}; check the path (or the object store, RATPOSE_STORE) and run again"
    if isinstance(err, (ConnectionError, dj.errors.LostConnectionError)):
        return f"lost the database connection ({err}); check that the server is running, then run again"
    if isinstance(err, (ValueError, LookupError)):
        return str(err)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (1 with one line for an expected error)."""
    parser = build_parser()
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as err:
        message = _expected_error(err)
        if args.debug or message is None:
            raise
        print(f"ERROR {message} (--debug shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
