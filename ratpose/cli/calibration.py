"""`ratpose calibrate` and `ratpose board`: wired into ratpose.cli with ``add_commands(subparsers)``."""
from __future__ import annotations

import argparse
import datetime as _dt
import re
from pathlib import Path

from ..calibration.boards import (
    Board,
    CharucoBoard,
    Checkerboard,
    board_label,
    save_printable_board,
)
from ..calibration.interop import load_anipose_board, save_rig
from ..calibration.solve import LENS_MODELS, calibrate_rig
from ..errors import InputError
from ..report.build import write_calibration_report


def _cmd_calibrate(args) -> int:
    if args.import_anipose is not None or args.import_dlc3d is not None:
        return _import(args)
    if args.calib_dir is None:
        raise InputError("give a calibration folder CALIB_DIR, or --import-anipose TOML / --import-dlc3d PROJECT "
                         "with --rig R --date ISO")
    from ..ingest.calibration_layouts import read_calibration

    offline = args.out is not None or args.report is not None
    rig, date = args.rig, args.date
    if offline:  # a lab trying ratpose: names only label the files
        rig, date = rig or args.calib_dir.resolve().name, date or _newest_file_date(args.calib_dir)
    material = read_calibration(args.calib_dir, rig, date, _given_board(args), args.media)
    print(describe_material(args.calib_dir, material))
    overrides = {"lens_model": args.lens_model} if args.lens_model else {}
    if offline:
        return _calibrate_offline(args, material, overrides)
    from .. import schema

    calib = schema.activate()["calib"]
    key, inserted = calib.register_calibration(args.calib_dir, args.notes, material=material, **overrides)
    summary = calib.compute_calibration(key, discard_on_failure=inserted)
    print(format_summary(summary))
    return 0


def _import(args) -> int:
    if args.calib_dir is not None or not (args.rig and args.date) or args.out or args.report:
        raise InputError("an import (--import-anipose TOML, --import-dlc3d PROJECT) needs --rig and --date, "
                         "and no CALIB_DIR, --out or --report")
    from .. import schema

    calib = schema.activate()["calib"]
    if args.import_anipose is not None:
        key, inserted = calib.import_anipose_calibration(args.import_anipose, args.rig, args.date, args.notes)
    else:
        if args.square_mm is None:
            raise InputError("--import-dlc3d: DeepLabCut 3D measures its board in squares; give --square-mm")
        key, inserted = calib.import_dlc3d_calibration(args.import_dlc3d, args.rig, args.date, args.square_mm,
                                                       args.notes)
    print(format_summary(calib.compute_calibration(key, discard_on_failure=inserted)))
    return 0


def _given_board(args) -> Board | None:
    """The board named on the command line (--board FILE or --checkerboard COLSxROWS --square-mm MM), or None."""
    if args.board is not None and args.checkerboard is not None:
        raise InputError("give --board or --checkerboard, not both")
    if args.board is not None:
        return load_anipose_board(args.board)
    if args.checkerboard is None:
        return None
    match = re.fullmatch(r"(\d+)x(\d+)", args.checkerboard)
    if match is None or args.square_mm is None:
        raise InputError(f"--checkerboard {args.checkerboard!r}: expected inner corners COLSxROWS (e.g. 9x6, as "
                         "DeepLabCut's cbrow/cbcol) with --square-mm MM")
    return Checkerboard(int(match.group(1)), int(match.group(2)), args.square_mm)


def _newest_file_date(folder: Path) -> str:
    """ISO date-time of the newest file under ``folder`` (what --out labels a calibration without --date)."""
    times = [f.stat().st_mtime for f in folder.rglob("*") if f.is_file()] or [folder.stat().st_mtime]
    return _dt.datetime.fromtimestamp(max(times)).replace(microsecond=0).isoformat()


def describe_material(path: Path, material) -> str:
    """One line: which layout was read, what, and for which cameras."""
    counts = ", ".join(f"{cam} {sum(f is not None for f in frames)}" for cam, frames in material.frames.items())
    kind = "frames sampled from board videos" if material.media == "videos" else "images"
    return f"read {path} (layout: {material.layout}): {kind} per camera: {counts}"


def _calibrate_offline(args, material, overrides: dict) -> int:
    """``--out``/``--report`` without a database: calibrate, write the Anipose calibration.toml and the QC page."""
    rig, report = calibrate_rig(material.frames, material.board, material.intrinsics_frames, **overrides)
    if args.out is not None:
        save_rig(rig, args.out, {"rig": material.rig_name, "date": str(material.date),
                                 "board": board_label(material.board), "made_by": "ratpose calibrate"})
        print(f"wrote {args.out} (Anipose format; aniposelib CameraGroup.load reads it)")
    if args.report is not None:
        path = write_calibration_report(report, args.report, f"Calibration of {material.rig_name}",
                                        f"{args.calib_dir} ({material.layout}, {material.media}); "
                                        f"{board_label(material.board)}")
        print(f"wrote {path}")
    cameras = [{"camera": name, "drift": None, **{f: getattr(q, f) for f in ("lens_model", "rms_px", "p95_px",
                                                                            "heldout_px")}}
               for name, q in report.cameras.items()]
    print(format_summary({"key": {"rig": material.rig_name, "calibration_date": _dt.datetime.fromisoformat(
        str(material.date))}, "rms_px": report.rms_px, "n_joint_instants": report.n_joint_instants,
        "previous": None, "cameras": cameras}, compared=False))
    return 0


def format_summary(summary: dict, compared: bool = True) -> str:
    """Lines for ``ratpose calibrate``: the calibration, then per camera its quality and (``compared``: with a
    database) its drift since the rig's previous calibration."""
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
    if not compared:
        lines.append("drift: not compared (no database)")
    elif summary["previous"] is None:
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
    calibrate = sub.add_parser("calibrate", help="calibrate from a calibration folder (ratpose, Anipose, "
                                                 "sleap-anipose, DeepLabCut 3D or images named by camera; images or "
                                                 "board videos) or import a calibration; print its quality and drift")
    calibrate.add_argument("calib_dir", nargs="?", type=Path,
                           help="a calibration folder (docs/calibration-format.md lists the layouts read)")
    calibrate.add_argument("--import-anipose", type=Path, metavar="TOML",
                           help="an Anipose/aniposelib calibration.toml")
    calibrate.add_argument("--import-dlc3d", type=Path, metavar="PROJECT",
                           help="a DeepLabCut 3D project's stereo calibration (needs --square-mm)")
    calibrate.add_argument("--rig", help="the rig it calibrates (a folder other than ratpose's, and imports)")
    calibrate.add_argument("--date", help="when it was calibrated, ISO 8601 (a folder other than ratpose's, "
                                          "and imports)")
    calibrate.add_argument("--board", type=Path, metavar="TOML",
                           help="the board, for a folder that does not say (Anipose board.toml keys)")
    calibrate.add_argument("--checkerboard", metavar="COLSxROWS", help="a checkerboard's inner corners, e.g. 9x6")
    calibrate.add_argument("--square-mm", type=float,
                           help="the board's square side in mm (with --checkerboard, --import-dlc3d)")
    calibrate.add_argument("--media", choices=["auto", "images", "videos"], default="auto",
                           help="images or board videos (default: images where every camera has some)")
    calibrate.add_argument("--out", type=Path, metavar="TOML",
                           help="no database: write the calibration as an Anipose calibration.toml")
    calibrate.add_argument("--report", type=Path, metavar="HTML", help="no database: write the QC page (and its .png)")
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
