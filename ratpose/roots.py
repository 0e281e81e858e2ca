"""Data roots: named places a lab's files live, each machine mapping the names to its own paths.

The acquisition PC, the GPU node and a cluster mount the same raw data at different paths (or not at
all). So a session is stored in the database by its data root's name and its path relative to it
(``raw`` + ``rat01/2026-11-24_s1``), and every machine says where its roots are with environment
variables, one per root, several candidate paths separated by ``os.pathsep`` (``:``) tried in order::

    RATPOSE_ROOT_RAW=/data/raw:/mnt/labshare/raw

``ratpose ingest`` records the root whose path holds the folder (a folder under no root is stored by
its absolute path, as before roots existed); readers find the files with ``locate``, which names the
root, the relative path and the paths it tried when none holds them.
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from .errors import ConfigurationError, NotFoundError

ENV_PREFIX = "RATPOSE_ROOT_"
ROOT_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")


def configured_roots(environ: Mapping[str, str] | None = None) -> dict[str, tuple[Path, ...]]:
    """This machine's data roots: name -> candidate paths, from the ``RATPOSE_ROOT_<NAME>`` variables.

    Parameters
    ----------
    environ : mapping, optional
        Default ``os.environ``.

    Returns
    -------
    dict of str to tuple of Path
        Root names in lower case.

    Raises
    ------
    ConfigurationError
        If a variable's name is not a valid root name.
    """
    environ = os.environ if environ is None else environ
    roots = {}
    for variable, value in sorted(environ.items()):
        if not variable.startswith(ENV_PREFIX) or not value:
            continue
        name = variable[len(ENV_PREFIX):].lower()
        if not ROOT_NAME.fullmatch(name):
            raise ConfigurationError(f"{variable}: a data root's name must match {ROOT_NAME.pattern} (lower case)")
        roots[name] = tuple(Path(p).expanduser() for p in value.split(os.pathsep) if p)
    return roots


def relative_to_root(path: str | Path, roots: Mapping[str, tuple[Path, ...]]) -> tuple[str, str] | None:
    """(root name, POSIX path relative to it) of the first root with a path holding ``path``; None if none does.

    Parameters
    ----------
    path : str or Path
    roots : mapping
        As ``configured_roots`` returns.

    Returns
    -------
    tuple of str or None
    """
    path = Path(path).expanduser().resolve()
    for name, candidates in roots.items():
        for base in candidates:
            try:
                return name, path.relative_to(base.resolve()).as_posix()
            except ValueError:
                continue
    return None


def locate(root: str, relative: str, roots: Mapping[str, tuple[Path, ...]]) -> Path:
    """Where ``relative`` under data root ``root`` is on this machine: the first candidate path holding it.

    Parameters
    ----------
    root : str
    relative : str
        POSIX path relative to the root.
    roots : mapping
        As ``configured_roots`` returns.

    Returns
    -------
    Path

    Raises
    ------
    NotFoundError
        If this machine does not map the root, or none of its paths holds ``relative`` (the message names
        the root, the relative path and the paths tried).
    """
    candidates = roots.get(root)
    if not candidates:
        raise NotFoundError(f"data root {root!r} is not mapped on this machine, so {relative} cannot be found: "
                            f"set {ENV_PREFIX}{root.upper()}=PATH (several separated by {os.pathsep!r})")
    tried = [base / relative for base in candidates]
    for path in tried:
        if path.exists():
            return path
    raise NotFoundError(f"data root {root!r}: {relative} is under none of its paths on this machine "
                        f"(tried {', '.join(str(p) for p in tried)})")


def stored_location(path: str | Path, roots: Mapping[str, tuple[Path, ...]]) -> tuple[str, str]:
    """How the database stores a folder or file: ``relative_to_root``'s (root name, relative path) under the first
    of ``roots`` holding it, else ``("", absolute path)``, as before data roots."""
    return relative_to_root(path, roots) or ("", str(Path(path).expanduser().resolve()))


def local_path(root: str, path: str, roots: Mapping[str, tuple[Path, ...]]) -> Path:
    """Where a stored location (``stored_location``) is on this machine: an absolute path as it is, a root's
    relative path through ``locate`` (NotFoundError naming the root and the paths tried)."""
    return Path(path) if not root else locate(root, path, roots)


def reachable(root: str, roots: Mapping[str, tuple[Path, ...]]) -> bool:
    """Whether this machine may reach what is stored under ``root``: an absolute path ('' root), or a mapped
    root."""
    return not root or root in roots
