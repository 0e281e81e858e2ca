"""``ratpose demo``: a simulated session through every stage, PASS/FAIL against the simulator's truth."""
from __future__ import annotations

from pathlib import Path


def _cmd_demo(args) -> int:
    from ..demo import DemoSettings, run_demo

    given = {name: getattr(args, name) for name in ("seconds", "epochs", "seed") if getattr(args, name) is not None}
    settings = DemoSettings(**given, swap_cameras=args.swap_cameras, db_prefix=args.db_prefix,
                            model=str(args.model or ""))
    summary = run_demo(args.out, settings)
    print(summary.text())
    return 1 if summary.failed else 0


def add_commands(subparsers) -> None:
    """Add ``demo``."""
    demo = subparsers.add_parser("demo", help="simulate a session, run every stage on it, PASS/FAIL against the truth "
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
