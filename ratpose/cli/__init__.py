"""The ``ratpose`` command line: one entry point for the lab's daily use.

Each module registers one stage's subcommands with ``add_commands(subparsers)``; a command parses its
arguments, calls the pure packages or the ``schema`` fetch helpers, and prints. What counts as an error
the user can fix (one line, exit 1) and what as a bug (a traceback) is ``errors.expected_error``.
"""
from __future__ import annotations

import argparse
import sys
import traceback
import warnings

# DataJoint warns on import when settings come from DJ_* variables only; a failed connection names them
warnings.filterwarnings("ignore", message="No datajoint.json found")

from . import (  # noqa: E402  (after the warning filter)
    acquisition,
    behaviour,
    calibration,
    db,
    demo,
    export,
    jobs,
    maintenance,
    pose2d,
    raw,
    report,
    sim,
    web,
)
from .errors import BUG_REPORT, expected_error  # noqa: E402

# the order of `ratpose --help`: the daily loop first
STAGES = (db, raw, demo, jobs, export, report, acquisition, maintenance, sim, pose2d, behaviour, calibration, web)


def build_parser() -> argparse.ArgumentParser:
    """The ``ratpose`` parser with every stage's subcommands."""
    parser = argparse.ArgumentParser(prog="ratpose", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        stage.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status: 1 with one line for an error the user can fix, 2 with the
    traceback for a bug (``--debug`` raises both)."""
    parser = build_parser()
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as err:
        message = expected_error(err)
        if args.debug:
            raise
        if message is None:
            traceback.print_exc()
            print(f"ERROR {type(err).__name__}: {err}\n{BUG_REPORT}", file=sys.stderr)
            return 2
        print(f"ERROR {message} (--debug shows the traceback)", file=sys.stderr)
        return 1

