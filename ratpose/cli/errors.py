"""Which errors the command line reports as one line (the user can fix them) and which as a traceback."""
from __future__ import annotations

BUG_REPORT = ("this is a bug in ratpose, not in your input: please report it with the traceback above and the "
              "command you ran")


def expected_error(err: BaseException) -> str | None:
    """One line for an error the user can fix (a ``RatposeError``, permissions, a missing file, the database);
    None for anything else (a bug: the caller shows the traceback)."""
    import datajoint as dj

    from ..db import DatabaseUnreachable
    from ..errors import RatposeError

    if isinstance(err, (RatposeError, DatabaseUnreachable)):  # names the file/key (or server) and what to do
        return str(err)
    if isinstance(err, PermissionError):
        return f"{err.filename or err}: permission denied ({err.strerror}); fix the permissions and run again"
    if isinstance(err, OSError) and err.filename:
        return f"{err.filename}: {err.strerror}; check the path (or the object store, RATPOSE_STORE) and run again"
    if isinstance(err, (ConnectionError, dj.errors.LostConnectionError)):
        return f"lost the database connection ({err}); check that the server is running, then run again"
    return None
