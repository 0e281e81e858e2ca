"""``ratpose record``, ``ratpose rig check`` and ``ratpose compress``."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import tomllib

from ..acquisition.compress import LOSSLESS
from ..errors import RatposeError


def _status_printer(folder: Path):
    def show(line: str) -> None:
        free = shutil.disk_usage(folder if folder.exists() else folder.parent).free / 1e9
        print(f"\r{line} | disk {free:.0f} GB free", end="", file=sys.stderr, flush=True)
    return show


def _cmd_record(args) -> int:
    from ..acquisition.config import RigConfigError, load_rig_config
    from ..acquisition.recorder import record

    try:
        cfg = load_rig_config(args.config)
    except RigConfigError as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    if cfg.ring.enabled and cfg.knob.source == "none" and not {"manual", "motion"} & set(cfg.ring.policy):
        print(f"WARNING {args.config}: the ring buffer is on with policy {list(cfg.ring.policy)} but [knob] source "
              "is \"none\": no segment will be kept, nothing will be written (`ratpose rig check` fails it)",
              file=sys.stderr)
    result = record(cfg, args.session_dir, duration_s=args.duration, on_status=_status_printer(args.session_dir),
                    save_user_set=args.save_user_set)
    print(file=sys.stderr)
    for name, r in result.cameras.items():
        print(f"{name}: {r.written} frames written to {result.session_dir / (name + '.' + cfg.storage.container)}"
              f" ({r.transfer_lost} lost in transfer, {r.incomplete} incomplete, {r.queue_dropped} dropped by the "
              f"queue, {r.ring_dropped} outside ring segments, {r.missed_triggers} missed triggers)")
    if cfg.ring.enabled:
        kept_s = float(np.sum(np.diff(result.segments, axis=1))) if len(result.segments) else 0.0
        print(f"ring buffer: {len(result.segments)} segment(s) kept ({kept_s:.1f} s around "
              f"{len(result.events)} event(s)), listed in {result.session_dir / 'segments.csv'}"
              + ("" if len(result.segments) else ": no event came, so no frame was written"))
    print(f"{result.status}{': ' + result.message if result.message else ''} ({result.n_pulses} pulses, "
          f"{result.wall_s:.1f} s) -> {result.session_dir}")
    if result.ok and args.ingest:
        from .. import schema
        from ..ingest.session_folder import read_session_folder

        key, _ = schema.activate()["raw"].insert_session(read_session_folder(result.session_dir))
        print(f"ingested: {result.session_dir} -> {key}")
    return 0 if result.ok else 1


def _cmd_rig_check(args) -> int:
    from ..acquisition.rig_check import rig_check

    try:
        lines, ok = rig_check(args.config, disk_dir=args.dir, events_per_min=args.events_per_min,
                              knob_s=args.knob_seconds, on_status=_live_line if sys.stderr.isatty() else None)
        if sys.stderr.isatty():
            print(file=sys.stderr)
    except RatposeError as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0 if ok else 1


def _live_line(line: str) -> None:
    print(f"\r{line}", end="", file=sys.stderr, flush=True)


def _cmd_compress(args) -> int:
    from ..acquisition.compress import compress_session

    try:
        done = compress_session(args.session_dir, args.codec, progress=sys.stderr.isatty())
    except (OSError, RatposeError, KeyError, tomllib.TOMLDecodeError) as err:
        print(f"ERROR {args.session_dir}: {err}", file=sys.stderr)
        return 1
    print("\n".join(done) or f"{args.session_dir}: no raw video to compress")
    return 0


def add_commands(sub) -> None:
    rec = sub.add_parser("record", help="record a session from the rig (or its simulation) into a folder")
    rec.add_argument("--config", type=Path, required=True, help="rig TOML (see docs/rig-config.md)")
    rec.add_argument("session_dir", type=Path)
    rec.add_argument("--duration", type=float, help="seconds on the trigger clock (default: until Ctrl-C)")
    rec.add_argument("--ingest", action="store_true", help="ingest the folder when the recording is done")
    rec.add_argument("--save-user-set", action="store_true", help="save the applied settings to UserSet1")
    rec.set_defaults(func=_cmd_record)
    rig = sub.add_parser("rig", help="rig tools")
    rig_sub = rig.add_subparsers(dest="rig_command", required=True)
    check = rig_sub.add_parser("check", help="preflight: cameras, config, a 2 s trigger train, pass/fail")
    check.add_argument("--config", type=Path, required=True)
    check.add_argument("--dir", type=Path, default=None,
                       help="where sessions will be recorded: its disk's speed is measured (default: here)")
    check.add_argument("--events-per-min", type=float, default=2.0,
                       help="expected ring-buffer events per minute, for the average write rate (default 2)")
    check.add_argument("--knob-seconds", type=float, default=5.0,
                       help="with a [knob] source, how long the check runs (a live line shows its inputs: touch "
                            "and turn the knob meanwhile; default 5)")
    check.set_defaults(func=_cmd_rig_check)
    comp = sub.add_parser("compress", help="re-encode a session's raw videos losslessly, verified frame by frame")
    comp.add_argument("session_dir", type=Path)
    comp.add_argument("--codec", choices=list(LOSSLESS), default="magicyuv",
                      help="magicyuv (default: the fastest), ffv1 (8 %% smaller, 4x slower), h264_lossless; "
                           "see the README's codec figures")
    comp.set_defaults(func=_cmd_compress)
