"""`ratpose serve`: wired into ratpose.cli with ``add_commands(subparsers)``."""
from __future__ import annotations

from pathlib import Path


def _cmd_serve(args) -> int:
    import uvicorn

    from .app import create_app

    print(f"ratpose serve: http://{args.host}:{args.port}{args.root_path}/ (read-only; Ctrl-C stops)")
    uvicorn.run(create_app(args.cache_dir), host=args.host, port=args.port, root_path=args.root_path,
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
