"""`ratpose serve`: wired into ratpose.cli with ``add_commands(subparsers)``."""
from __future__ import annotations

from pathlib import Path


def build_app(cache_dir: Path | None = None):
    """The web app over the activated schemas (cache in a temporary folder by default)."""
    from ..export.commands import export_session
    from ..schema import activate, browse, report_data
    from ..schema.jobs import status
    from ..schema.ops import pipeline_tables
    from .app import create_app

    modules = activate()
    return create_app(browse, report_data, lambda key, fmt, out: export_session(modules, key, fmt, out),
                      lambda: status(pipeline_tables()), cache_dir)


def _cmd_serve(args) -> int:
    import uvicorn

    print(f"ratpose serve: http://{args.host}:{args.port}{args.root_path}/ (read-only; Ctrl-C stops)")
    uvicorn.run(build_app(args.cache_dir), host=args.host, port=args.port, root_path=args.root_path,
                log_level="warning")
    return 0


def add_commands(subparsers) -> None:
    """Add `serve` to the ratpose command line."""
    serve = subparsers.add_parser("serve", help="browse the database in a web browser (read-only)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    serve.add_argument("--port", type=int, default=8050)
    serve.add_argument("--root-path", default="", help="URL prefix when behind a reverse proxy, e.g. /ratpose")
    serve.add_argument("--cache-dir", type=Path, help="where drawn reports and videos are kept (default: a temp folder)")
    serve.set_defaults(func=_cmd_serve)
