"""The ``ratpose`` command line: one entry point for the lab's daily use."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .report.commands import add_commands as add_report_commands
from .schema.maintenance import add_commands as add_maintenance_commands
from .schema.ops import add_commands as add_ops_commands
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

    raw = schema.activate()["raw"]
    failures = 0
    for folder in args.session_dirs:
        try:
            key, inserted = raw.insert_session(read_session_folder(folder))
        except (SessionFormatError, ValueError) as err:
            print(f"ERROR {err}", file=sys.stderr)
            failures += 1
            continue
        print(f"{'ingested' if inserted else 'already ingested'}: {folder} -> {key}")
    return 1 if failures else 0


def _selected_tables(names: list[str]):
    from .schema.ops import pipeline_tables

    try:
        return pipeline_tables(names)
    except ValueError as err:
        raise SystemExit(str(err)) from err


def _cmd_populate(args) -> int:
    from .schema.jobs import populate

    results = populate(_selected_tables(args.tables), reserve_jobs=not args.direct)
    errors = sum(len(r["error_list"]) for r in results.values())
    for name, result in results.items():
        print(f"{name:<20} {result['success_count']:>5} computed, {len(result['error_list']):>3} errors")
        for key, message in result["error_list"]:
            print(f"    {key}: {message}")
    return 1 if errors else 0


def _cmd_status(args) -> int:
    from .schema.jobs import status

    rows = status(_selected_tables(args.tables))
    print(f"{'table':<20} {'done':>6} {'pending':>8} {'reserved':>9} {'error':>6}")
    for name, row in rows.items():
        print(f"{name:<20} {row['done']:>6} {row['pending']:>8} {row['reserved']:>9} {row['error']:>6}")
        for message in row["error_messages"]:
            print(f"    {message}")
    return 0


def _cmd_sim(args) -> int:
    from .sim import SessionConfig, write_session

    base = SessionConfig.full_size() if args.full_size else SessionConfig()
    overrides = {k: v for k, v in (("seconds", args.seconds), ("fps", args.fps), ("seed", args.seed),
                                   ("n_cameras", args.cameras), ("subject", args.subject)) if v is not None}
    if args.size:
        overrides["size"] = tuple(int(v) for v in args.size.lower().split("x"))
    if args.wrap:
        overrides["wrap"] = True
    config = SessionConfig(**{**base.__dict__, **overrides, "progress": True})
    truth = write_session(args.session_dir, config)
    print(f"wrote {args.session_dir}: {len(truth.tick_us)} pulses, cameras {list(truth.cameras)}, "
          f"{len(truth.touch_intervals)} knob touches, {len(truth.units)} units (truth in ground_truth/)")
    return 0


def _cmd_demo(args) -> int:
    from .demo import DemoSettings, run_demo

    settings = DemoSettings(seconds=args.seconds, epochs=args.epochs, seed=args.seed)
    summary = run_demo(args.workdir, settings)
    print(summary.text())
    return 1 if any(row[1] == "ERROR" for row in summary.rows) else 0


def _cmd_record(args) -> int:
    from .acquisition import record

    result = record(args.config, args.session_dir, duration_s=args.duration)
    print(f"{result.status}: {result.message} ({result.n_pulses} pulses, {result.wall_s:.1f} s) -> "
          f"{result.session_dir}")
    if result.ok and args.ingest:
        return _cmd_ingest(argparse.Namespace(session_dirs=[result.session_dir]))
    return 0 if result.ok else 1


def _cmd_export(args) -> int:
    from . import export, schema

    modules = schema.activate()
    try:
        session = modules["raw"].find_session(subject=args.subject, session_datetime=args.datetime)
        data = modules["pose"].fetch_pose3d({**session, "training_set": args.training_set,
                                             "pose_params": args.pose_params, "pose3d_params": args.pose3d_params})
    except (LookupError, ValueError) as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    path = export.write_pose3d(args.out, data, args.format, subject_id=args.subject)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ratpose", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    db_parser = sub.add_parser("db", help="database administration")
    db_sub = db_parser.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("check", help="connect; print server, prefix and schemas").set_defaults(func=_cmd_db_check)

    ingest = sub.add_parser("ingest", help="validate session folders and insert them (atomic, idempotent)")
    ingest.add_argument("session_dirs", nargs="+", type=Path)
    ingest.set_defaults(func=_cmd_ingest)

    demo = sub.add_parser("demo", help="simulate a session and run every stage on it (a few minutes, CPU)")
    demo.add_argument("--workdir", type=Path, default=Path("ratpose-demo"))
    demo.add_argument("--seconds", type=float, default=24.0)
    demo.add_argument("--epochs", type=int, default=25, help="DeepLabCut training epochs")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_cmd_demo)

    sim = sub.add_parser("sim", help="write a synthetic session folder with its ground truth")
    sim.add_argument("session_dir", type=Path)
    sim.add_argument("--seconds", type=float)
    sim.add_argument("--fps", type=float)
    sim.add_argument("--size", help="WxH, e.g. 160x128")
    sim.add_argument("--seed", type=int)
    sim.add_argument("--cameras", type=int)
    sim.add_argument("--subject")
    sim.add_argument("--wrap", action="store_true", help="start the Pi tick counter so it wraps mid-session")
    sim.add_argument("--full-size", action="store_true", help="1440x1080 at 226 fps (benchmarks)")
    sim.set_defaults(func=_cmd_sim)

    rec = sub.add_parser("record", help="record a session from the rig (or its simulation) into a folder")
    rec.add_argument("--config", type=Path, required=True, help="rig TOML (see docs/rig-config.md)")
    rec.add_argument("session_dir", type=Path)
    rec.add_argument("--duration", type=float, help="seconds on the trigger clock (default: until Ctrl-C)")
    rec.add_argument("--ingest", action="store_true", help="ingest the folder when the recording is done")
    rec.set_defaults(func=_cmd_record)

    exp = sub.add_parser("export", help="export a session's 3D pose (NWB with ndx-pose, Anipose CSV, HDF5)")
    exp.add_argument("--subject", required=True)
    exp.add_argument("--datetime", required=True, help="session datetime, ISO 8601")
    exp.add_argument("--training-set", required=True)
    exp.add_argument("--pose-params", required=True)
    exp.add_argument("--pose3d-params", default="default")
    exp.add_argument("--format", choices=("nwb", "csv", "hdf"), default="nwb")
    exp.add_argument("--out", type=Path, required=True)
    exp.set_defaults(func=_cmd_export)

    populate = sub.add_parser("populate", help="compute all pending work of the given tables (default all)")
    populate.add_argument("tables", nargs="*")
    populate.add_argument("--direct", action="store_true", help="skip the jobs table (single user debugging)")
    populate.set_defaults(func=_cmd_populate)

    status = sub.add_parser("status", help="done/pending/reserved/error per table")
    status.add_argument("tables", nargs="*")
    status.set_defaults(func=_cmd_status)
    add_report_commands(sub)
    add_ops_commands(sub)
    add_maintenance_commands(sub)
    add_web_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
