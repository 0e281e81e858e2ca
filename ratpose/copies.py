"""Copies of files kept in the object store, fetched to the machines that need them, checksums verified.

A lab without a shared filesystem still runs every stage: the acquisition PC uploads a session's
videos (``ratpose ingest --upload``), PoseModel uploads each model's files, and a GPU node that does
not see the raw folders fetches what one job needs into its cache (``RATPOSE_CACHE``). A copy is
used only once every file's sha256 matches the one recorded when it was ingested or trained; a
copy that does not match is deleted and the job fails naming the file. The functions here are pure:
how the bytes travel (DataJoint's object store) is the ``fetch`` callable the caller passes.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from .errors import DataError


class CopyMismatch(DataError):
    """A file fetched from the store differs from its recorded sha256 (or is missing from the copy)."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inside_name(relative: str) -> str:
    """A relative POSIX path with each ``..`` spelled ``_up``: where a file kept beside a folder (a model's
    config one level up) lies inside that folder's copy."""
    return "/".join("_up" if part == ".." else part for part in Path(relative).as_posix().split("/"))


def stage_files(files: Mapping[str, Path], folder: Path) -> Path:
    """Lay out ``files`` (relative path -> local file) in ``folder`` as symbolic links, for one upload.

    Parameters
    ----------
    files : mapping of str to Path
        Relative POSIX paths inside the copy, each to an existing file.
    folder : Path
        An empty folder (e.g. a temporary one).

    Returns
    -------
    Path
        ``folder``, holding a link per file (uploading it reads the files, nothing is copied here).
    """
    for relative, source in files.items():
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise DataError(f"{relative}: a copy's file must lie inside its folder")
        link = folder / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(Path(source).resolve(), link)
    return folder


def mismatches(folder: Path, checksums: Mapping[str, str]) -> list[str]:
    """The relative paths under ``folder`` that are missing or whose sha256 differs from ``checksums``."""
    return [rel for rel, digest in checksums.items()
            if not (folder / rel).is_file() or sha256_file(folder / rel) != digest]


def verified_folder(cache: Path, checksums: Mapping[str, str], fetch: Callable[[Path], None]) -> Path:
    """A local folder holding every file of ``checksums`` with those digests, fetched once into ``cache``.

    Parameters
    ----------
    cache : Path
        This machine's cache folder for such copies.
    checksums : mapping of str to str
        Relative path -> hex sha256: what the folder must hold.
    fetch : callable
        ``fetch(destination)`` writes the copy's files under the (new, empty) folder ``destination``.

    Returns
    -------
    Path
        ``cache/<digest of checksums>``; a later call with the same checksums reuses it.

    Raises
    ------
    CopyMismatch
        If the fetched files miss one or differ from their digests (the partial copy is removed).
    """
    if not checksums:
        raise DataError("a copy without checksums cannot be verified")
    manifest = "\n".join(f"{rel}\t{digest}" for rel, digest in sorted(checksums.items()))
    target = cache / hashlib.sha256(manifest.encode()).hexdigest()[:32]
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    incoming = Path(tempfile.mkdtemp(prefix=".incoming-", dir=cache))
    try:
        fetch(incoming)
        bad = mismatches(incoming, checksums)
        if bad:
            raise CopyMismatch(f"the store's copy differs from the recorded sha256 of {', '.join(sorted(bad))} "
                               "(a damaged or replaced upload: upload it again from the original)")
        try:
            incoming.rename(target)
        except OSError:  # another process on this machine finished the same copy first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(incoming, ignore_errors=True)
    return target
