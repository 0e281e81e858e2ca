"""The lab's daily loop with commands only (subprocesses, no Python API), on a simulated rig."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pymysql


def _run(env, *args, ok=True):
    done = subprocess.run([sys.executable, "-W", "ignore", "-m", "ratpose.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert (done.returncode == 0) == ok, f"{args}: rc {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    return done


def _status_rows(text: str) -> dict[str, list[int]]:
    """table -> [done, pending, reserved, error] from `ratpose status` output."""
    rows = [line.split() for line in text.splitlines()]
    return {r[0]: [int(v) for v in r[1:]] for r in rows if len(r) == 5 and r[1].isdigit()}


def test_daily_loop_from_the_command_line(tmp_path):
    prefix = f"rploop_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "RATPOSE_DB_PREFIX": prefix, "RATPOSE_STORE": str(tmp_path / "store"),
           "RATPOSE_MODELS": str(tmp_path / "models")}
    rig = tmp_path / "rig"
    try:
        _run(env, "sim", rig, "--seconds", 12, "--fps", 30, "--labeled", 6, "--dlc-outputs")
        _run(env, "ingest", rig / "calibration", rig / "session")
        _run(env, "model", "register", "sim", rig / "labeled", "--external")
        bad = _run(env, "defaults", "--rig", "no-such-rig", "--model", "sim", ok=False)
        assert "unknown rig 'no-such-rig'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
        bad = _run(env, "train", "again", rig / "labeled", "--base", "no-such-set", ok=False)
        assert "unknown training set 'no-such-set'" in bad.stderr
        (tmp_path / "config.yaml").write_text("just: yaml\n")
        bad = _run(env, "model", "register", "x", tmp_path / "config.yaml", ok=False)
        assert "not a DeepLabCut project" in bad.stderr
        _run(env, "defaults", "--rig", "sim-rig-1", "--model", "sim")
        _run(env, "populate", "Calibration")
        _run(env, "knob", "set", "--rig", "sim-rig-1", "--centre", 0, 0, 150, "--radius", 5, "--axis", 0, 0, 1,
             "--up", 0, -1, 0)
        _run(env, "populate")
        status = _run(env, "status").stdout
        rows = _status_rows(status)
        assert len(rows) == 10 and all(r[1:] == [0, 0, 0] and r[0] > 0 for r in rows.values()), status
        _run(env, "report", rig / "session", "--out", tmp_path / "report")
        assert (tmp_path / "report").is_dir() and any((tmp_path / "report").iterdir())
        _run(env, "export", "--subject", "rat01", "--datetime", "2026-11-24T10:00:00", "--training-set", "sim",
             "--pose-params", "sim", "--format", "csv", "--out", tmp_path / "pose.csv")
        assert (tmp_path / "pose.csv").stat().st_size > 0
        # a later session of the same rig: a plain populate computes it
        later = tmp_path / "later"
        _run(env, "sim", later, "--seconds", 12, "--fps", 30, "--seed", 3, "--datetime", "2026-11-25T10:00:00",
             "--session-only", "--dlc-outputs")
        _run(env, "ingest", later / "session")
        _run(env, "populate")
        after = _run(env, "status").stdout
        counts = _status_rows(after)
        assert counts["Pose3D"][0] == 2 and counts["KnobValidation"][0] == 2, after
    finally:
        connection = pymysql.connect(host=os.environ["DJ_HOST"], user=os.environ["DJ_USER"],
                                     password=os.environ["DJ_PASS"], autocommit=True)
        with connection.cursor() as cursor:
            cursor.execute("SET FOREIGN_KEY_CHECKS=0")
            cursor.execute("SHOW DATABASES LIKE %s", (f"{prefix}\\_%",))
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP DATABASE `{name}`")
