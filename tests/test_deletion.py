"""Deleting a session: cascade through every computed stage, confirmation, object-store clean-up."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import datajoint as dj
import pytest
from conftest import wipe

from ratpose import schema
from ratpose.cli.maintenance import add_commands
from ratpose.ingest.session_folder import read_session_folder
from ratpose.schema.jobs import populate
from ratpose.schema.maintenance import collect_garbage, delete_session
from ratpose.sim import BODYPARTS, SessionSettings, write_dlc_outputs, write_rig_dataset, write_session

PER_SESSION = ("raw.Recording", "raw.TriggerLog", "raw.KnobLog", "raw.Unit", "sync.SyncedFrames",
               "sync.SessionSync", "calib.SessionCalibration", "pose.Pose2DTask", "pose.Pose2D",
               "pose.Pose2D.BodyPart", "pose.Pose3D", "pose.Pose3D.BodyPart", "analysis.KnobValidation",
               "analysis.MovementEvents", "analysis.MovementEvents.Event", "analysis.UnitTuning",
               "analysis.UnitTuning.PETH")


def _table(db, name):
    stage, *path = name.split(".")
    table = db[stage]
    for attr in path:
        table = getattr(table, attr)
    return table


def _counts(db, session) -> dict[str, int]:
    return {name: len(_table(db, name) & session) for name in PER_SESSION}


def _store_files(store: Path, db) -> set[str]:
    """Files in the object store under this test run's schemas."""
    names = {m.schema.database for m in db.values()}
    return {str(p.relative_to(store)) for p in store.rglob("*") if p.is_file() and names & set(p.parts)}


def _add_session(db, folder: Path, truth, model: dict) -> dict:
    raw, pose = db["raw"], db["pose"]
    session, _ = raw.insert_session(read_session_folder(folder))
    populate({n: t for n, t in schema.computed_tables(db).items() if n in ("SyncedFrames", "PoseModel")})
    h5 = write_dlc_outputs(truth, folder / "dlc", seed=1)
    pose.schedule_pose2d(session, model, mode="load", dlc_h5={c: str(p) for c, p in h5.items()})
    results = populate(schema.computed_tables(db))
    errors = {n: r["error_list"] for n, r in results.items() if r["error_list"]}
    assert not errors, errors
    return session


@pytest.fixture(scope="module")
def two_sessions(db, tmp_path_factory):
    """Session 'keep' fully populated (store snapshot taken), then session 'drop' on top of it."""
    root = tmp_path_factory.mktemp("deletion")
    config = SessionSettings(seconds=30.0, fps=30.0, size=(640, 480), seed=4, subject="rat_drop", n_units=2)
    truth_drop = write_rig_dataset(root, config, n_labeled=2)
    truth_keep = write_session(root / "keep", replace(config, seed=5, subject="rat_keep"))
    wipe(db)
    calib, pose, analysis = db["calib"], db["pose"], db["analysis"]
    calibration_key, _ = calib.register_calibration(root / "calibration")
    pose.register_training_set("sim", str(root / "labeled"), list(BODYPARTS), "sim")
    pose.PoseModelParams.insert1({"pose_params": "external", "mode": "external"}, skip_duplicates=True)
    model = pose.request_model("sim", "external")
    populate({n: t for n, t in schema.computed_tables(db).items() if n == "Calibration"})
    analysis.set_knob(calibration_key, truth_drop.scene.knob(), up=truth_drop.scene.up)
    keep = _add_session(db, root / "keep", truth_keep, model)
    collect_garbage(db)  # files orphaned by earlier tests' deletions must not count below
    store = Path(dj.config.stores["ratpose"]["location"])
    files_keep = _store_files(store, db)
    drop = _add_session(db, root / "session", truth_drop, model)
    return keep, drop, store, files_keep


def test_declined_confirmation_deletes_nothing(db, two_sessions, monkeypatch):
    keep, drop, _, _ = two_sessions
    before = _counts(db, drop)
    questions = []
    monkeypatch.setattr("datajoint.table.user_choice", lambda prompt, **kw: questions.append(prompt) or "no")
    assert delete_session(db, drop, prompt=True) == 0
    assert questions == ["Commit deletes?"]
    assert _counts(db, drop) == before
    assert all(before.values()), before  # every stage had rows for the session


def test_delete_cascades_then_gc_frees_exactly_the_session_files(db, two_sessions):
    keep, drop, store, files_keep = two_sessions
    kept = _counts(db, keep)
    assert all(kept.values()), kept
    assert _store_files(store, db) > files_keep  # the second session added files
    assert delete_session(db, drop, prompt=False) == 1
    assert not any(_counts(db, drop).values()), _counts(db, drop)
    assert _counts(db, keep) == kept
    assert len(db["calib"].Calibration()) == 1 and len(db["pose"].PoseModel()) == 1  # shared inputs stay
    stats = collect_garbage(db)
    assert stats["deleted"] > 0 and not stats["errors"]
    assert _store_files(store, db) == files_keep
    assert collect_garbage(db, dry_run=True)["deleted"] == 0
    # the kept session's arrays still load from the store
    assert (db["pose"].Pose3D.BodyPart & keep).to_dicts()[0]["xyz"].shape[1] == 3


def test_delete_command_asks_and_reports_unknown_sessions(db, two_sessions, monkeypatch, capsys):
    keep, _, _, _ = two_sessions
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    when = keep["session_datetime"].isoformat()
    monkeypatch.setattr("datajoint.table.user_choice", lambda prompt, **kw: "no")
    args = parser.parse_args(["delete", "--subject", keep["subject"], "--datetime", when])
    assert args.func(args) == 1 and len(db["raw"].Session & keep) == 1
    args = parser.parse_args(["delete", "--subject", "nobody", "--datetime", when, "--yes"])
    assert args.func(args) == 1
    assert "no session" in capsys.readouterr().err
