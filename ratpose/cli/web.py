"""`ratpose serve`: wired into ratpose.cli with ``add_commands(subparsers)``."""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import RatposeError


class WritableAccount(RatposeError, PermissionError):
    """The account `ratpose serve` would use can change the database."""


def connect_read_only():
    """The web app's Backend over the existing schemas; activates without creating anything (LookupError
    while a schema or table is missing)."""
    from ..schema import activate, browse, computed_tables, report_data
    from ..schema.export_data import export_session
    from ..schema.jobs import status
    from ..web.app import Backend

    modules = activate(create=False)
    return Backend(browse, report_data, lambda key, fmt, out: export_session(modules, key, fmt, out),
                   lambda: status(computed_tables(modules)))


def build_app(cache_dir: Path | None = None, *, allow_write: bool = False, fresh_s: float = 2.0):
    """The web app (cache in a temporary folder by default); raises WritableAccount if the database account
    can write, unless ``allow_write``."""
    from .. import db
    from ..schema.grants import write_privileges
    from ..web.app import create_app

    if not allow_write:
        connection = db.connect()
        found = write_privileges(connection)
        if found:
            user = connection.query("SELECT CURRENT_USER()").fetchone()[0]
            raise WritableAccount(
                f"ratpose serve: the database account {user} can write ({', '.join(found[:4])}"
                f"{', ...' if len(found) > 4 else ''}); serve with a read-only one: `ratpose db grant --reader NAME "
                f"--password-env VAR` once as an admin, then DJ_USER=NAME DJ_PASS=... ratpose serve "
                "(or pass --allow-write to serve with this account anyway)")
    return create_app(connect_read_only, cache_dir, fresh_s)


def _cmd_serve(args) -> int:
    import uvicorn

    try:
        app = build_app(args.cache_dir, allow_write=args.allow_write, fresh_s=args.list_max_age)
    except WritableAccount as err:
        print(err, file=sys.stderr)
        return 1
    print(f"ratpose serve: http://{args.host}:{args.port}{args.root_path}/ (read-only; Ctrl-C stops)")
    uvicorn.run(app, host=args.host, port=args.port, root_path=args.root_path, log_level="warning")
    return 0


def add_commands(subparsers) -> None:
    """Add `serve` to the ratpose command line."""
    serve = subparsers.add_parser("serve", help="browse the database in a web browser (read-only)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    serve.add_argument("--port", type=int, default=8050)
    serve.add_argument("--root-path", default="", help="URL prefix when behind a reverse proxy, e.g. /ratpose")
    serve.add_argument("--cache-dir", type=Path,
                       help="where drawn reports and videos are kept (default: a temp folder)")
    serve.add_argument("--allow-write", action="store_true",
                       help="serve even though the database account can write (default: refuse to start)")
    serve.add_argument("--list-max-age", type=float, default=2.0, metavar="S",
                       help="lists of the whole database (sessions, units, pipeline) are read at most every S "
                            "seconds, shared by all browsers (default 2; 0: every request reads)")
    serve.set_defaults(func=_cmd_serve)
