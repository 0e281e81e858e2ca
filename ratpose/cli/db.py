"""``ratpose db``: check the connection, create accounts (``grant``), show or write the settings (``config``)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import RatposeError


def _cmd_db_check(args) -> int:
    import datajoint as dj

    from .. import db, schema

    modules = schema.activate()
    connection = dj.conn()
    version = connection.query("SELECT VERSION()").fetchone()[0]
    print(f"server   : {dj.config.database.host}:{dj.config.database.port} ({version})")
    print(f"user     : {dj.config.database.user}")
    print(f"prefix   : {db.prefix()}")
    spec = dj.config.stores[db.STORE]
    print(f"store    : {({k: v for k, v in spec.items() if k not in ('access_key', 'secret_key')})}")
    for module in modules.values():
        print(f"schema   : {module.schema.database} ({len(module.schema.list_tables())} tables)")
    return 0


def _password_from(variable: str | None) -> str | None:
    if variable is None:
        return None
    if not os.environ.get(variable):
        raise SystemExit(f"environment variable {variable} is empty or unset")
    return os.environ[variable]


def _cmd_grant(args) -> int:
    from ..schema.grants import ROLES, grant

    role, user = ("readonly", args.readonly) if args.readonly else ("worker", args.worker)
    try:
        pattern = grant(user, role, host=args.host, password=_password_from(args.password_env))
    except RatposeError as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    print(f"granted {role} ({', '.join(ROLES[role])}) on `{pattern}`.* to {user}@{args.host}")
    return 0


def _cmd_config(args) -> int:
    import datajoint as dj

    from .. import db

    if not args.write:
        print(json.dumps({"host": dj.config.database.host, "port": dj.config.database.port,
                          "user": dj.config.database.user, "prefix": db.prefix()}, indent=2))
        return 0
    try:
        written = db.write_config(args.dir, host=args.host or dj.config.database.host, port=args.port,
                               user=args.user, password=_password_from(args.password_env),
                               store=args.store, overwrite=args.force)
    except (FileExistsError, RatposeError) as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    print("wrote (mode 0600): " + ", ".join(str(p) for p in written))
    return 0


def add_commands(subparsers) -> None:
    """Add ``db check``, ``db grant`` and ``db config``."""
    db_parser = subparsers.add_parser("db", help="database administration")
    db_sub = db_parser.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("check", help="connect; print server, prefix and schemas").set_defaults(func=_cmd_db_check)
    grant_parser = db_sub.add_parser("grant", help="create a database user and grant a role on the prefix's schemas")
    role = grant_parser.add_mutually_exclusive_group(required=True)
    role.add_argument("--reader", "--readonly", dest="readonly", metavar="USER",
                      help="SELECT only: the account for `ratpose serve` and analysts")
    role.add_argument("--worker", metavar="USER", help="read, insert, update, delete, create/alter tables")
    grant_parser.add_argument("--host", default="%", help="client host the account is for (default %%: any)")
    grant_parser.add_argument("--password-env", metavar="VAR", help="environment variable holding the new password")
    grant_parser.set_defaults(func=_cmd_grant)

    config = db_sub.add_parser("config", help="show the connection settings, or write them (--write)")
    config.add_argument("--write", action="store_true", help="write datajoint.json (+ .secrets/) with mode 0600")
    config.add_argument("--dir", type=Path, default=Path("."), help="folder to write to (default: here)")
    config.add_argument("--host")
    config.add_argument("--port", type=int)
    config.add_argument("--user")
    config.add_argument("--password-env", metavar="VAR", help="environment variable holding the password")
    config.add_argument("--store", help="the ratpose object store: a folder, or an S3 bucket as "
                        "http(s)://HOST[:PORT]/BUCKET[/PREFIX] (credentials from AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY go to .secrets/); default $RATPOSE_STORE or ~/ratpose-data/store")
    config.add_argument("--force", action="store_true", help="replace an existing datajoint.json")
    config.set_defaults(func=_cmd_config)

