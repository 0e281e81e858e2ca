"""Database connection, schema naming and the external store.

Connection settings are DataJoint's own (``datajoint.json`` or ``DJ_HOST``, ``DJ_USER``,
``DJ_PASS``, ``DJ_PORT``); ratpose adds two environment variables:

- ``RATPOSE_DB_PREFIX`` (default ``ratpose``): every schema is ``<prefix>_<stage>``, so users,
  tests and workers can share one server without colliding.
- ``RATPOSE_STORE`` (default ``~/ratpose-data/store``): the ``ratpose`` object store holding large
  arrays (``<blob@ratpose>``) and the copies of videos and models (``<object@ratpose>``), unless
  ``datajoint.json`` configures that store: a folder, or an S3-compatible bucket given as its endpoint
  URL and bucket path, ``https://HOST[:PORT]/BUCKET[/PREFIX]`` (credentials from AWS's usual chain:
  ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws/credentials``, or DataJoint's
  ``.secrets/stores.ratpose.access_key`` and ``secret_key``). docs/deployment.md: which a lab uses.
- ``RATPOSE_MODELS`` (default ``~/ratpose-data/models``): where PoseModel trains DeepLabCut projects;
  each model's files are also copied to the store, so a machine that cannot see this folder fetches them.
- ``RATPOSE_CACHE`` (default ``~/.cache/ratpose``): where a machine keeps the videos and models it fetched
  from the store (checksums verified).
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import datajoint as dj
from datajoint import heading as _dj_heading
from datajoint.codecs import resolve_dtype

from .errors import ConfigurationError

STORE = "ratpose"
DEFAULT_PREFIX = "ratpose"
STAGES = ("raw", "sync", "calib", "pose", "analysis")


def prefix() -> str:
    """The schema prefix in force (``RATPOSE_DB_PREFIX``), validated."""
    value = os.environ.get("RATPOSE_DB_PREFIX", DEFAULT_PREFIX)
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", value):
        raise ConfigurationError(f"RATPOSE_DB_PREFIX={value!r}: use lower-case letters, digits and '_' (max 41)")
    return value


def schema_name(stage: str, db_prefix: str | None = None) -> str:
    """Full schema name of a pipeline stage, e.g. ``ratpose_raw``."""
    if stage not in STAGES:
        raise ConfigurationError(f"unknown stage {stage!r}; stages are {STAGES}")
    return f"{db_prefix or prefix()}_{stage}"


DEFAULT_STORE = "~/ratpose-data/store"


def store_spec(value: str) -> dict:
    """DataJoint's spec of the ``ratpose`` store from a folder or an S3 URL (``RATPOSE_STORE``, ``--store``).

    Parameters
    ----------
    value : str
        A folder, or ``http(s)://HOST[:PORT]/BUCKET[/PREFIX]``: an S3-compatible server's endpoint and the
        bucket (and key prefix) in it.

    Returns
    -------
    dict
        ``{"protocol": "file", "location": ...}`` or ``{"protocol": "s3", "endpoint", "bucket", "location",
        "secure"}`` (no credentials: they stay in AWS's chain or DataJoint's secrets folder).

    Raises
    ------
    ConfigurationError
        If the URL names no bucket, has another scheme or carries credentials.
    """
    if "://" not in value:
        return {"protocol": "file", "location": str(Path(value).expanduser().resolve())}
    url = urlsplit(value)
    bucket, _, location = url.path.strip("/").partition("/")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ConfigurationError(f"store {value!r}: an S3 store is http(s)://HOST[:PORT]/BUCKET[/PREFIX]")
    if url.username or url.password or url.query:
        raise ConfigurationError(f"store {url.scheme}://{url.hostname}: keep credentials out of the URL (use "
                                 "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or .secrets/stores.ratpose.*)")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ConfigurationError(f"store {value!r}: {bucket!r} is not an S3 bucket name (3-63 lower-case letters, "
                                 "digits, '.', '-')")
    return {"protocol": "s3", "endpoint": url.netloc, "bucket": bucket, "location": location,
            "secure": url.scheme == "https"}


def configure_store() -> Path | None:
    """Make sure the ``ratpose`` object store is configured (datajoint.json, else ``RATPOSE_STORE``);
    create a local store's folder. Returns that folder, or None for a store on a server."""
    if STORE not in dj.config.stores:
        dj.config.stores[STORE] = store_spec(os.environ.get("RATPOSE_STORE", DEFAULT_STORE))
    spec = dj.config.stores[STORE]
    if spec.get("protocol", "file") != "file":
        return None
    Path(spec["location"]).mkdir(parents=True, exist_ok=True)
    return Path(spec["location"])


def cache_root() -> Path:
    """Folder of this machine's copies fetched from the store (``RATPOSE_CACHE``), per prefix."""
    root = Path(os.environ.get("RATPOSE_CACHE", "~/.cache/ratpose")).expanduser().resolve() / prefix()
    root.mkdir(parents=True, exist_ok=True)
    return root


def models_root() -> Path:
    """Folder under which PoseModel writes DeepLabCut projects (``RATPOSE_MODELS``), per prefix."""
    root = Path(os.environ.get("RATPOSE_MODELS", "~/ratpose-data/models")).expanduser().resolve() / prefix()
    root.mkdir(parents=True, exist_ok=True)
    return root


class DatabaseUnreachable(ConnectionError):
    """The database cannot be reached or refuses the login; the message says what to check."""


def connect() -> dj.Connection:
    """Configure the store, then return DataJoint's connection (one clear error if that fails)."""
    configure_store()
    held = _HeldRecords()
    logging.getLogger("datajoint").addFilter(held)  # its SSL-fallback warning, shown only on success
    try:
        connection = dj.conn()
    except Exception as err:  # pymysql and DataJoint raise several types; re-raise one clear message
        raise DatabaseUnreachable(unreachable_message(err)) from err
    finally:
        logging.getLogger("datajoint").removeFilter(held)
    for record in held.records:
        logging.getLogger("datajoint").handle(record)
    return connection


class _HeldRecords(logging.Filter):
    def __init__(self):
        super().__init__()
        self.records = []

    def filter(self, record):
        self.records.append(record)
        return False


def unreachable_message(err: BaseException) -> str:
    """What failed connecting (server, account) and what to check, in one line."""
    host, port, user = dj.config.database.host, dj.config.database.port, dj.config.database.user
    server = host if ":" in str(host) else f"{host}:{port}"
    code = err.args[0] if err.args and isinstance(err.args[0], int) else None
    reason = " ".join(str(err.args[1] if code is not None and len(err.args) > 1 else err).split())
    if code in (1044, 1045, 1698) or user is None or "password" in reason.lower():
        todo = "check DJ_USER and DJ_PASS (or datajoint.json and .secrets/database.password)"
    else:
        todo = ("start the server (README: scripts/local-db.sh or docker compose up -d) or fix DJ_HOST/DJ_PORT "
                "(or datajoint.json)")
    return f"cannot connect to the database at {server} as {user!r} ({reason.rstrip('.')}); {todo}, then run again"


def _patch_mariadb_json_codecs() -> None:
    """Let in-store codecs (``<blob@store>``) work on MariaDB.

    DataJoint 2.3 keeps the metadata of in-store blobs in a ``json`` column. MariaDB reports json
    columns as ``longtext``, and DataJoint recovers the json flag for plain json attributes but not
    for codec chains ending in json, so inserting ``<blob@store>`` fails on MariaDB. This marks
    such attributes as json after the heading is read; it changes nothing on MySQL or PostgreSQL.
    """
    original = _dj_heading.Heading._init_from_database
    if getattr(original, "_ratpose_patched", False):
        return

    def init_from_database(self):
        original(self)
        for name, attr in list(self._attributes.items()):
            if attr.json or attr.codec is None or isinstance(attr.codec, _dj_heading._MissingType):
                continue
            final_type, _, _ = resolve_dtype(f"<{attr.codec.name}>", store_name=attr.store)
            if final_type == "json":
                self._attributes[name] = attr._replace(json=True)

    init_from_database._ratpose_patched = True
    _dj_heading.Heading._init_from_database = init_from_database


_patch_mariadb_json_codecs()


USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
HOST_NAME = re.compile(r"[A-Za-z0-9%_][A-Za-z0-9%_.:-]{0,59}")  # host name, IP or wildcard pattern


def check_name(value: str, pattern: re.Pattern, what: str) -> str:
    """``value`` if it matches ``pattern`` in full, else ValueError naming ``what``."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ConfigurationError(f"invalid {what} {value!r}: allowed are {pattern.pattern}")
    return value


def _write_private(path: Path, text: str) -> None:
    """Write text to a file only its owner can read (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def write_config(folder: Path, *, host: str, port: int | None = None, user: str | None = None,
                 password: str | None = None, store: str | None = None, overwrite: bool = False) -> list[Path]:
    """Write ``datajoint.json`` (and ``.secrets/``) in folder, readable by the owner only.

    The password goes to DataJoint's secrets folder, never into datajoint.json; so do an S3 store's
    credentials when ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY`` are set. Returns the files written.
    """
    config_path = Path(folder) / "datajoint.json"
    if config_path.exists() and not overwrite:
        raise FileExistsError(f"{config_path} exists; pass --force to replace it")
    database = {"host": check_name(host, HOST_NAME, "host")}
    if port is not None:
        database["port"] = int(port)
    if user is not None:
        database["user"] = check_name(user, USER_NAME, "user name")
    # the store is always named, so a plain dj.VirtualModule (without ratpose's configure_store) reads its blobs
    spec = store_spec(store if store is not None else os.environ.get("RATPOSE_STORE", DEFAULT_STORE))
    config = {"database": database, "stores": {STORE: spec}}
    _write_private(config_path, json.dumps(config, indent=2) + "\n")
    secrets = {"database.password": password}
    if spec["protocol"] == "s3":
        secrets.update({f"stores.{STORE}.access_key": os.environ.get("AWS_ACCESS_KEY_ID"),
                        f"stores.{STORE}.secret_key": os.environ.get("AWS_SECRET_ACCESS_KEY")})
    written = [config_path]
    secrets = {name: value for name, value in secrets.items() if value}
    if secrets:
        folder_of_secrets = Path(folder) / ".secrets"
        folder_of_secrets.mkdir(mode=0o700, exist_ok=True)
        folder_of_secrets.chmod(0o700)
        for name, value in secrets.items():
            _write_private(folder_of_secrets / name, value)
            written.append(folder_of_secrets / name)
    return written
