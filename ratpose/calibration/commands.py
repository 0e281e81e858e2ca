"""`ratpose calibrate` and `ratpose board`: wired into ratpose.cli with ``add_commands(subparsers)``."""
from __future__ import annotations

import argparse
from pathlib import Path

from .boards import CharucoBoard, Checkerboard, board_label, save_printable_board
from .solve import LENS_MODELS


def _cmd_calibrate(args) -> int:
    from .. import schema

    calib = schema.activate()["calib"]
    if args.import_anipose is not None:
        if args.calib_dir is not None or not (args.rig and args.date):
            raise ValueError("--import-anipose TOML needs --rig and --date, and no CALIB_DIR")
        key, inserted = calib.import_anipose_calibration(args.import_anipose, args.rig, args.date, args.notes)
    elif args.calib_dir is None:
        raise ValueError("give a calibration folder CALIB_DIR, or --import-anipose TOML --rig R --date ISO")
    else:
        overrides = {"lens_model": args.lens_model} if args.lens_model else {}
        key, inserted = calib.register_calibration(args.calib_dir, args.notes, **overrides)
    summary = calib.compute_calibration(key, discard_on_failure=inserted)
    print(format_summary(summary))
    return 0


def format_summary(summary: dict) -> str:
    """Lines for ``ratpose calibrate``: the calibration, then per camera its quality and drift."""
    key = summary["key"]
    head = f"calibration of rig {key['rig']!r} on {key['calibration_date']:%Y-%m-%d %H:%M}"
    if summary["rms_px"] is None:
        lines = [f"{head}: imported from {summary['source']} ({summary['calib_dir']}); no images, no reprojection QC"]
    else:
        lines = [f"{head}: RMS {summary['rms_px']:.3f} px, {summary['n_joint_instants']} joint instants"]
    lines.append(f"{'camera':<12} {'model':<8} {'RMS px':>7} {'p95 px':>7} {'held-out px':>12} {'opencv px':>10} "
                 f"{'drift mm':>9} {'drift deg':>9} {'focal %':>8}")
    number = lambda value, fmt: "-" if value is None else format(value, fmt)  # noqa: E731
    for cam in summary["cameras"]:
        heldout, drift = cam["heldout_px"], cam["drift"] or {}
        lines.append(f"{cam['camera']:<12} {cam['lens_model']:<8} {number(cam['rms_px'], '.3f'):>7} "
                     f"{number(cam['p95_px'], '.3f'):>7} {number(heldout.get(cam['lens_model']), '.3f'):>12} "
                     f"{number(heldout.get('opencv'), '.3f'):>10} {number(drift.get('baseline_mm'), '.2f'):>9} "
                     f"{number(drift.get('rotation_deg'), '.3f'):>9} {number(drift.get('focal_pct'), '.2f'):>8}")
    if summary["previous"] is None:
        lines.append("drift: first calibration of this rig")
    else:
        lines.append(f"drift: since the calibration of {summary['previous']['calibration_date']:%Y-%m-%d %H:%M}")
    return "\n".join(lines)


def _cmd_board(args) -> int:
    nx, ny = args.squares
    if args.type == "charuco":
        board = CharucoBoard(nx, ny, args.square_mm, args.marker_mm, args.dictionary, legacy=args.legacy)
    else:
        board = Checkerboard(nx - 1, ny - 1, args.square_mm)
    path = save_printable_board(board, args.out, dpi=args.dpi)
    print(f"wrote {path}: {board_label(board)}; print at 100 % and check the 50 mm bar with a ruler")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    calibrate = sub.add_parser("calibrate", help="register a calibration folder (or import an Anipose "
                                                 "calibration.toml), compute it, print its quality and drift")
    calibrate.add_argument("calib_dir", nargs="?", type=Path, help="a calibration folder (docs/calibration-format.md)")
    calibrate.add_argument("--import-anipose", type=Path, metavar="TOML", help="an Anipose/aniposelib calibration.toml")
    calibrate.add_argument("--rig", help="with --import-anipose: the rig it calibrates")
    calibrate.add_argument("--date", help="with --import-anipose: when it was calibrated (ISO 8601)")
    calibrate.add_argument("--lens-model", choices=["auto", *LENS_MODELS],
                           help="force a lens model (default: per camera, lowest held-out error)")
    calibrate.add_argument("--notes", default="")
    calibrate.set_defaults(func=_cmd_calibrate)

    board = sub.add_parser("board", help="write a printable calibration board (true scale, dimensions printed on it)")
    board.add_argument("--out", type=Path, required=True, help=".pdf or .png")
    board.add_argument("--type", choices=["charuco", "checkerboard"], default="charuco")
    board.add_argument("--squares", type=int, nargs=2, default=(5, 7), metavar=("X", "Y"), help="squares across, down")
    board.add_argument("--square-mm", type=float, default=24.0)
    board.add_argument("--marker-mm", type=float, default=18.0, help="ChArUco marker side")
    board.add_argument("--dictionary", default="DICT_4X4_50", help="ArUco dictionary")
    board.add_argument("--legacy", action="store_true", help="pre-OpenCV-4.6 ChArUco layout (Anipose, calib.io)")
    board.add_argument("--dpi", type=float, default=300.0)
    board.set_defaults(func=_cmd_board)
