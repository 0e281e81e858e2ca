"""`ratpose report` and `ratpose labeled-video`: wired into ratpose.cli with ``add_commands(subparsers)``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError, NotFoundError, RatposeError


def _add_session_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_dir", nargs="?", type=Path, help="an ingested session folder")
    parser.add_argument("--subject", help="instead of a folder: the subject ...")
    parser.add_argument("--datetime", dest="session_datetime",
                        help="... and session datetime, e.g. 2026-11-24T10:00:00")
    parser.add_argument("--training-set", help="the model's training set (when several models ran on the session)")
    parser.add_argument("--pose-params", help="the model's PoseModelParams (when several models ran on the session)")
    parser.add_argument("--pose3d-params", default="default")
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def _session_and_model(args):
    """(report_data module, session key, model key or None) for the parsed arguments."""
    from .. import schema
    from ..schema import raw, report_data

    if args.session_dir is None and not (args.subject and args.session_datetime):
        raise InputError("give a session folder, or --subject and --datetime")
    schema.activate()
    session = raw.find_session(session_dir=args.session_dir, subject=args.subject,
                               session_datetime=args.session_datetime)
    return report_data, session, report_data.choose_model(session, args.training_set, args.pose_params)


def _cmd_report(args) -> int:
    from ..report.build import write_report

    try:
        report_data, session, model = _session_and_model(args)
        report = report_data.fetch_report(session, model, pose3d_params=args.pose3d_params,
                                          analysis_params=args.analysis_params, n_examples=args.examples)
    except RatposeError as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    path = write_report(report, args.out)
    print(f"report: {path}")
    for section, reason in report.missing.items():
        print(f"    {section}: {reason}")
    return 0


def _cmd_labeled_video(args) -> int:
    from ..report.video import write_labeled_video

    try:
        report_data, session, model = _session_and_model(args)
        if model is None:
            raise NotFoundError(f"session {session} has no 2D pose yet")
        cameras = args.cameras or report_data.pose_cameras(session, model)
        inputs = {c: report_data.labeled_video_inputs(session, model, c, args.pose3d_params) for c in cameras}
    except RatposeError as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for camera, kwargs in inputs.items():
        path = args.out / f"{camera}_labeled.{args.format}"
        n = write_labeled_video(out_path=path, min_likelihood=args.min_likelihood, **kwargs)
        print(f"{camera}: {path} ({n} frames)")
    return 0


def add_commands(subparsers) -> None:
    """Add `report` and `labeled-video` to the ratpose command line."""
    report = subparsers.add_parser("report", help="an HTML page of one session's QC, pose and tuning")
    _add_session_arguments(report)
    report.add_argument("--analysis-params", default="default")
    report.add_argument("--examples", type=int, default=2, help="instants shown as example frames")
    report.set_defaults(func=_cmd_report)

    video = subparsers.add_parser("labeled-video", help="videos with the 2D detections and reprojected 3D points drawn")
    _add_session_arguments(video)
    video.add_argument("--cameras", nargs="+", help="default: every camera with 2D pose")
    video.add_argument("--min-likelihood", type=float, default=0.6)
    video.add_argument("--format", choices=("mp4", "mkv", "avi"), default="mp4",
                       help="mp4: H.264, plays in browsers; mkv/avi: lossless FFV1")
    video.set_defaults(func=_cmd_labeled_video)
