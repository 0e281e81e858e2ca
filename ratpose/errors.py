"""Errors a user can fix, as opposed to bugs.

Everything ratpose raises because of what it was given (a file, an argument, a setting, the data of a
session, a key not in the database) is a ``RatposeError``: its message names the file or key and what
is wrong, and the command line prints it as one line (exit 1). Anything else is a bug: the command
line prints the traceback and asks for a report. Each subclass also derives from the built-in error
it refines, so ``except ValueError`` keeps catching ``InputError``.
"""
from __future__ import annotations


class RatposeError(Exception):
    """An error the user can fix; the message says where (file, key) and what is wrong."""


class InputError(RatposeError, ValueError):
    """A file, folder or argument that cannot be used as given."""


class ConfigurationError(RatposeError, ValueError):
    """A setting (rig.toml, a parameter row, the database or store configuration) that cannot work."""


class DataError(RatposeError, ValueError):
    """Data that do not support the computation asked of them (too few frames, cameras that disagree)."""


class NotFoundError(RatposeError, LookupError):
    """A session, model, calibration or other row that is not in the database."""
