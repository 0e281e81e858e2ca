"""`ratpose sim`: a simulated rig's data set (session, calibration, labeled frames, optional DLC outputs)."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from ..errors import InputError
from ..sim.session import SessionSettings

_DEFAULT = SessionSettings()


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown, except None (those options explain theirs)."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def _size(text: str) -> tuple[int, int]:
    """--size WIDTHxHEIGHT as (width, height)."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise InputError(f"--size {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 640x480")
    return int(match.group(1)), int(match.group(2))


def _cmd_sim(args) -> int:
    from ..sim import write_rig_dataset, write_session
    from ..sim.pose2d import write_dlc_outputs

    base = SessionSettings.full_size() if args.full_size else _DEFAULT
    size = _size(args.size) if args.size else base.size
    config = SessionSettings(**{**base.__dict__, "seconds": args.seconds, "fps": args.fps or base.fps, "size": size,
                              "seed": args.seed, "n_cameras": args.cameras, "subject": args.subject,
                              "rig": args.rig, "session_datetime": args.datetime, "wrap": args.wrap,
                              "progress": True})
    if args.session_only:
        truth = write_session(args.dir / "session", config)
    else:
        scale = args.calibration_scale
        truth = write_rig_dataset(args.dir, config, n_labeled=args.labeled,
                                  calibration_size=(size[0] * scale, size[1] * scale))
    written = ["session/"] + ([] if args.session_only else ["calibration/", "labeled/"])
    if args.dlc_outputs:
        write_dlc_outputs(truth, args.dir / "session", seed=args.seed)
        written.append("DLC .h5 next to each video")
    print(f"wrote {args.dir}: {', '.join(written)}; {len(truth.tick_us)} pulses, cameras {list(truth.cameras)}, "
          f"{len(truth.touch_intervals)} knob touches, {len(truth.units)} units (truth in session/ground_truth/)")
    return 0


def add_commands(subparsers) -> None:
    """Add ``sim``."""
    sim = subparsers.add_parser("sim", formatter_class=_Formatter,
                                help="write a simulated rig's data: DIR/session, DIR/calibration, DIR/labeled")
    sim.add_argument("dir", type=Path, help="output folder")
    sim.add_argument("--seconds", type=float, default=_DEFAULT.seconds, help="session length")
    sim.add_argument("--fps", type=float, help="trigger rate (default: 100, or 226 with --full-size)")
    sim.add_argument("--size", help="video WxH, e.g. 160x128 (default: 160x128, or 1440x1080 with --full-size)")
    sim.add_argument("--seed", type=int, default=_DEFAULT.seed, help="random seed")
    sim.add_argument("--cameras", type=int, default=_DEFAULT.n_cameras, help="number of cameras")
    sim.add_argument("--subject", default=_DEFAULT.subject, help="subject name")
    sim.add_argument("--rig", default=_DEFAULT.rig, help="rig name")
    sim.add_argument("--datetime", default=_DEFAULT.session_datetime, help="session start, ISO 8601")
    sim.add_argument("--labeled", type=int, default=100, help="DLC labeled frames written to DIR/labeled")
    sim.add_argument("--calibration-scale", type=int, default=4,
                     help="calibration images at this multiple of the video size (video = binned recording)")
    sim.add_argument("--dlc-outputs", action="store_true",
                     help="also write DLC .h5 outputs next to the videos (the true pose through "
                          "DeepLabCut-like errors: jitter, outliers, swaps, occlusions; no training needed)")
    sim.add_argument("--session-only", action="store_true", help="write only DIR/session")
    sim.add_argument("--wrap", action="store_true", help="start the Pi tick counter so it wraps mid-session")
    sim.add_argument("--full-size", action="store_true", help="1440x1080 at 226 fps (benchmarks)")
    sim.set_defaults(func=_cmd_sim)
