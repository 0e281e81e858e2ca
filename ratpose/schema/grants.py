"""Database accounts: create a user and grant a role on the prefix's schemas; what the current account may write."""
from __future__ import annotations

import re

from .. import db
from ..db import HOST_NAME, USER_NAME, check_name
from ..errors import InputError

ROLES = {"readonly": ("SELECT",),
         "worker": ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "REFERENCES", "INDEX", "ALTER")}


def schema_pattern() -> str:
    """GRANT pattern matching every ``<prefix>_...`` schema (``_`` escaped: it is a wildcard)."""
    return db.prefix().replace("_", r"\_") + r"\_%"


def grant(user: str, role: str, *, host: str = "%", password: str | None = None) -> str:
    """Create ``user@host`` if a password is given and grant the role on the prefix's schemas.

    Returns the pattern granted on. Names are checked against strict patterns and passed as query
    parameters; the schema pattern comes from the validated prefix.
    """
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; roles are {list(ROLES)}")
    check_name(user, USER_NAME, "user name")
    check_name(host, HOST_NAME, "host")
    pattern = schema_pattern()
    connection = db.connect()
    if password is not None:
        connection.query("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", args=(user, host, password))
    elif not connection.query("SELECT 1 FROM mysql.user WHERE User=%s AND Host=%s", args=(user, host)).fetchone():
        # GRANT would create the account without a password on servers without NO_AUTO_CREATE_USER
        raise InputError(f"user {user}@{host} does not exist; to create it give a password (--password-env)")
    escaped = pattern.replace("%", "%%")  # the query is %-formatted with its parameters
    connection.query(f"GRANT {', '.join(ROLES[role])} ON `{escaped}`.* TO %s@%s", args=(user, host))
    return pattern


# privileges that neither change data nor tables: anything else granted counts as writing
READ_PRIVILEGES = frozenset({"USAGE", "SELECT", "SHOW VIEW", "SHOW DATABASES", "PROCESS", "REPLICATION CLIENT",
                             "BINLOG MONITOR", "SLAVE MONITOR", "REPLICA MONITOR"})
_GRANT_LINE = re.compile(r"GRANT (?P<privileges>.+?) ON (?:(?:PROCEDURE|FUNCTION|PACKAGE(?: BODY)?) )?"
                         r"(?P<db>\*|`(?:[^`]|``)*`)\.\S+ TO ", re.S)
_ROLE_LINE = re.compile(r"GRANT (?P<roles>(?:`(?:[^`]|``)*`(?:@`[^`]*`)?(?:, *)?)+) TO ")


def _like(pattern: str, name: str) -> bool:
    """Whether a GRANT database pattern (``%`` / ``_`` wildcards, ``\\`` escapes) matches a schema name."""
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c[-1])
                    for c in re.findall(r"\\.|.", pattern, re.S))
    return re.fullmatch(regex, name, re.S) is not None


def write_privileges(connection=None) -> list[str]:
    """The current account's grants that could change the prefix's schemas ('INSERT on *.*', ...), also
    through roles it holds; empty for a read-only account."""
    connection = connection or db.connect()
    schemas = [db.schema_name(stage) for stage in db.STAGES]
    lines = [row[0] for row in connection.query("SHOW GRANTS").fetchall()]
    seen, found = set(), []
    while lines:
        line = lines.pop()
        roles = _ROLE_LINE.match(line)
        grant_ = _GRANT_LINE.match(line)
        if grant_ is None and roles:  # a role held: its own grants count too
            for role in re.findall(r"`((?:[^`]|``)*)`(?:@`[^`]*`)?", roles["roles"]):
                if role not in seen:
                    seen.add(role)
                    try:
                        lines += [row[0] for row in connection.query("SHOW GRANTS FOR %s", args=(role,)).fetchall()]
                    except Exception:  # a role whose grants cannot be read: count it as writing
                        found.append(f"role {role}")
            continue
        if grant_ is None:
            continue
        target = grant_["db"]
        applies = target == "*" or any(_like(target[1:-1].replace("``", "`"), s) for s in schemas)
        privileges = [p.strip() for p in re.sub(r"\([^)]*\)", "", grant_["privileges"]).split(",")]
        found += [f"{p} on {target}.*" for p in privileges if applies and p.upper() not in READ_PRIVILEGES]
    return found
