"""Shared fixtures: a real database under a private schema prefix, dropped after the run."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Before anything imports datajoint (it reads the environment once): the local test server.
os.environ.setdefault("DJ_HOST", "127.0.0.1")
os.environ.setdefault("DJ_USER", "root")
os.environ.setdefault("DJ_PASS", "")
os.environ["RATPOSE_DB_PREFIX"] = f"rptest_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def db(tmp_path_factory):
    """Activate every schema under a fresh prefix on the real server; drop them afterwards."""
    os.environ["RATPOSE_STORE"] = str(tmp_path_factory.mktemp("store"))
    import datajoint as dj

    from ratpose import schema

    dj.config.safemode = False
    modules = schema.activate()
    yield modules
    for module in reversed(list(modules.values())):
        module.schema.drop(prompt=False)


MANUAL_ROOTS = ("Subject", "Camera", "CalibrationRecording", "TrainingSet")


def wipe(modules) -> None:
    """Remove every row (deleting the manual roots cascades to everything computed from them)."""
    for module in modules.values():
        for name in MANUAL_ROOTS:
            table = getattr(module, name, None)
            if table is not None and len(table()):
                table.delete(prompt=False, part_integrity="cascade")


@pytest.fixture
def clean_db(db):
    """The database with every row removed."""
    wipe(db)
    return db
