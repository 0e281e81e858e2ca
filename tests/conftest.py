"""Shared fixtures: a real database under a private schema prefix, dropped after the run."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CHROMIUM = Path("/usr/bin/chromium")

# Before anything imports datajoint (it reads the environment once): the local test server.
os.environ.setdefault("DJ_HOST", "127.0.0.1")
os.environ.setdefault("DJ_USER", "root")
os.environ.setdefault("DJ_PASS", "")
os.environ["RATPOSE_DB_PREFIX"] = f"rptest_{uuid.uuid4().hex[:8]}"


def chromium() -> Path:
    """Debian's chromium for the browser tests; without it they fail in CI (CI=true) and skip elsewhere."""
    if not CHROMIUM.exists():
        message = "Debian's chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + ": CI must run the browser tests")
        pytest.skip(message)
    return CHROMIUM


def pytest_collection_modifyitems(config, items):
    """Mark every test that uses the database (the ``db`` fixture, directly or through ``clean_db``) ``db``,
    so ``-m "not db"`` runs the tests that need no server."""
    for item in items:
        if "db" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


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


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3 server (moto's, tests/s3_server.py) on a free local port for the whole run, with a bucket."""
    from s3_server import start_s3_server

    process, server = start_s3_server(tmp_path_factory.mktemp("s3") / "moto.log")
    try:
        server.filesystem().mkdir("ratpose-test")
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


MANUAL_ROOTS = ("Subject", "Camera", "CalibrationRecording", "TrainingSet", "PoseModelParams")


PARAMETER_LOOKUPS = ("SyncQCParams", "Pose3DParams", "AnalysisParams")


def wipe(modules) -> None:
    """Remove every row (deleting the manual roots cascades to everything computed from them) and the
    parameter sets tests added to the lookups (their declared contents stay)."""
    for module in modules.values():
        for name in MANUAL_ROOTS:
            table = getattr(module, name, None)
            if table is not None and len(table()):
                table.delete(prompt=False, part_integrity="cascade")
        for name in PARAMETER_LOOKUPS:
            table = getattr(module, name, None)
            if table is not None:
                declared = [{table.primary_key[0]: row[0]} for row in table.contents]
                if len(table - declared):
                    (table - declared).delete(prompt=False, part_integrity="cascade")


@pytest.fixture
def clean_db(db):
    """The database with every row removed."""
    wipe(db)
    return db


def build_simulated_pipeline(db, root: Path, config, extra_outputs=None, *, exact_2d: bool = False,
                             register_calibration=None):
    """Simulate a rig dataset under ``root``, ingest it into a wiped database and populate every stage.

    2D pose is the simulator's truth seen through its DeepLabCut-like errors (ratpose.sim.pose2d.DlcErrors; the
    exact projections with ``exact_2d``) in DLC format, loaded as PoseModelParams 'external';
    ``extra_outputs`` maps more pose_params names to functions (truth, folder) -> {camera: DLC .h5 path}.
    ``register_calibration(truth, root)`` registers the rig's calibration instead of the rendered folder.
    Returns (truth, session key, populate results).
    """
    from ratpose import schema
    from ratpose.ingest.session_folder import read_session_folder
    from ratpose.schema.jobs import populate
    from ratpose.sim import BODYPARTS, write_dlc_outputs, write_rig_dataset
    from ratpose.sim.pose2d import DlcErrors

    truth = write_rig_dataset(root, config, n_labeled=4)
    errors = None if exact_2d else DlcErrors()
    outputs = {"external": write_dlc_outputs(truth, root / "dlc", errors=errors, seed=1)}
    for params, write_outputs in (extra_outputs or {}).items():
        outputs[params] = write_outputs(truth, root / params)
    raw, calib, pose, analysis = (db[s] for s in ("raw", "calib", "pose", "analysis"))
    wipe(db)
    session, _ = raw.insert_session(read_session_folder(root / "session"))
    if register_calibration is None:
        calib.register_calibration(root / "calibration")
    else:
        register_calibration(truth, root)
    pose.register_training_set("sim", str(root / "labeled"), list(BODYPARTS), "sim")
    pose.PoseModelParams.insert([{"pose_params": params, "mode": "external"} for params in outputs],
                                skip_duplicates=True)
    for params in outputs:
        pose.request_model("sim", params)
    tables = schema.computed_tables(db)
    populate({n: tables[n] for n in ("SyncedFrames", "SessionSync", "Calibration", "SessionCalibration",
                                     "PoseModel")})
    for params, files in outputs.items():
        pose.schedule_pose2d(session, {"training_set": "sim", "pose_params": params}, mode="load",
                             dlc_h5={c: str(p) for c, p in files.items()})
    analysis.set_knob(calib.session_calibration_key(session), truth.scene.knob(), up=truth.scene.up)
    return truth, session, populate(tables)
