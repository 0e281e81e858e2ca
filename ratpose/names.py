"""Identifiers that come from files and become database keys: one check each, used by every entry point.

The checks raise ValueError saying what is wrong with the value; callers add the file and field.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from .errors import InputError

SUBJECT_MAX_LEN = 32  # raw.Subject.subject is varchar(32)
SUBJECT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # also a safe file and folder name


def check_subject(name) -> None:
    """ValueError, showing the name (repr) and the rule, unless ``name`` is a plain subject identifier.

    Letters, digits, '_', '-' and '.' only, at most SUBJECT_MAX_LEN, not starting with '.' or '-': no path
    separators, spaces, control or bidi characters, and never '.' or '..'.
    """
    if not isinstance(name, str) or len(name) > SUBJECT_MAX_LEN or not SUBJECT_NAME.fullmatch(name):
        raise InputError(f"{name!r} is not a plain name: use 1 to {SUBJECT_MAX_LEN} ASCII letters, digits, '_', '-' "
                         "or '.', not starting with '.' or '-'")


def check_unique_serials(cameras: Iterable[tuple[str, str]]) -> None:
    """ValueError when one (non-empty) serial is given to two camera names; ``cameras`` is (name, serial) pairs."""
    owner: dict[str, str] = {}
    for name, serial in cameras:
        if serial and owner.setdefault(serial, name) != name:
            raise InputError(f"{serial!r} is given to cameras {owner[serial]!r} and {name!r} "
                             "(one camera under two names?)")


CAMERA_NAME = re.compile(r"[a-z][a-z0-9_]*")  # raw.Camera.camera: also a folder and column-prefix name


def camera_name_from(name: str) -> str:
    """The ratpose camera name for another tool's (``camera-1`` -> ``camera_1``, ``Cam A`` -> ``cam_a``,
    ``1`` -> ``cam_1``): lower case, other characters as '_'. ValueError when nothing usable is left."""
    clean = re.sub(r"[^a-z0-9_]+", "_", str(name).lower()).strip("_")
    clean = clean if clean[:1].isalpha() else f"cam_{clean}"
    if not CAMERA_NAME.fullmatch(clean) or clean == "cam_":
        raise InputError(f"camera {name!r} has no usable name ({CAMERA_NAME.pattern})")
    return clean
