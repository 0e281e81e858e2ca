"""The lab's daily loop with commands only (subprocesses, no Python API), on a simulated rig."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pymysql
import pytest

from ratpose.sim import write_labeled_frames


def _run(env, *args, ok=True, stdin=None):
    # from the test's own folder: a datajoint.json in the checkout (the install writes one) would name another store
    done = subprocess.run([sys.executable, "-W", "ignore", "-m", "ratpose.cli", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600, input=stdin,
                          cwd=Path(env["RATPOSE_STORE"]).parent)
    assert (done.returncode == 0) == ok, f"{args}: rc {done.returncode}\n{done.stdout}\n{done.stderr[-3000:]}"
    return done


def _status_rows(text: str) -> dict[str, list[int]]:
    """table -> [done, pending, reserved, error] from `ratpose status` output."""
    rows = [line.split() for line in text.splitlines()]
    return {r[0]: [int(v) for v in r[1:]] for r in rows if len(r) == 5 and r[1].isdigit()}


def _connect():
    return pymysql.connect(host=os.environ["DJ_HOST"], user=os.environ["DJ_USER"], password=os.environ["DJ_PASS"],
                           autocommit=True)


def _row_counts(prefix: str) -> dict[str, int]:
    """Rows of every table of the pipeline's schemas (jobs tables left out)."""
    counts = {}
    with _connect().cursor() as cursor:
        cursor.execute("SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema LIKE %s",
                       (f"{prefix}\\_%",))
        for schema, table in cursor.fetchall():
            if not table.startswith("~"):
                cursor.execute(f"SELECT COUNT(*) FROM `{schema}`.`{table}`")
                counts[f"{schema}.{table}"] = cursor.fetchone()[0]
    return counts


def _bad(env, prefix, *args, expect):
    """A command given bad input: one line naming it, exit 1, nothing inserted."""
    before = _row_counts(prefix)
    done = _run(env, *args, ok=False)
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("[")]  # DataJoint's banner
    assert len(lines) == 1 and expect in lines[0], done.stderr
    assert _row_counts(prefix) == before, args


#: video frames of cam0 where the test corrupts the DLC output (a confident 57 px error in 4 body parts)
INJECTED = (60, 140, 220, 300)


def _inject_errors(h5) -> None:
    table = pd.read_hdf(h5)
    for part in ("wrist", "paw", "digit1", "digit2"):
        for coord, shift in (("x", 40.0), ("y", -40.0)):
            column = [c for c in table.columns if c[1:] == (part, coord)][0]
            table.loc[list(INJECTED), column] += shift
    table.to_hdf(h5, key="df_with_missing", mode="w")


def _picked_frames(folder) -> list[int]:
    return sorted(int(p.stem[3:]) for p in folder.glob("img*.png"))


@pytest.fixture
def loop_env(tmp_path):
    """(environment, prefix) of a fresh database prefix, store and models folder; dropped afterwards."""
    prefix = f"rploop_{uuid.uuid4().hex[:8]}"
    yield {**os.environ, "RATPOSE_DB_PREFIX": prefix, "RATPOSE_STORE": str(tmp_path / "store"),
           "RATPOSE_MODELS": str(tmp_path / "models")}, prefix
    with _connect().cursor() as cursor:
        cursor.execute("SET FOREIGN_KEY_CHECKS=0")
        cursor.execute("SHOW DATABASES LIKE %s", (f"{prefix}\\_%",))
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP DATABASE `{name}`")


def test_daily_loop_from_the_command_line(tmp_path, loop_env):
    env, prefix = loop_env
    rig = tmp_path / "rig"
    _run(env, "sim", rig, "--seconds", 12, "--fps", 30, "--labeled", 6, "--dlc-outputs")
    _inject_errors(rig / "session" / "cam0DLC_sim.h5")
    _run(env, "ingest", rig / "calibration", rig / "session")
    _run(env, "model", "register", "sim", rig / "labeled", "--external")
    _bad(env, prefix, "defaults", "--rig", "no-such-rig", "--model", "sim", expect="unknown rig 'no-such-rig'")
    _bad(env, prefix, "train", "again", rig / "labeled", "--base", "no-such-set", "--external",
         expect="unknown training set 'no-such-set'")
    (tmp_path / "config.yaml").write_text("just: yaml\n")
    _bad(env, prefix, "model", "register", "x", tmp_path / "config.yaml", expect="not a DeepLabCut project")
    _run(env, "defaults", "--rig", "sim-rig-1", "--model", "sim")
    _run(env, "populate", "Calibration")
    _run(env, "knob", "set", "--rig", "sim-rig-1", "--centre", 0, 0, 150, "--radius", 5, "--axis", 0, 0, 1,
         "--up", 0, -1, 0)
    _run(env, "populate")
    # the knob from the marker's arc: shown, stored only when confirmed; it replaces the one set by hand
    shown = _run(env, "knob", "set", "--rig", "sim-rig-1", "--estimate", rig / "session", "--up", 0, -1, 0,
                 stdin="n\n", ok=False).stdout
    assert "not stored" in shown
    centre = np.array(json.loads(shown.split("centre ")[1].split(" mm")[0]))
    radius = float(shown.split("radius ")[1].split(" mm")[0])
    truth = json.loads((rig / "session" / "ground_truth" / "truth.json").read_text())["knob"]
    assert np.linalg.norm(centre - truth["center_mm"]) < 2.0 and abs(radius - truth["radius_mm"]) < 1.0, shown
    stored = _run(env, "knob", "set", "--rig", "sim-rig-1", "--estimate", rig / "session", "--up", 0, -1, 0,
                  "--yes").stdout
    assert "replaced the previous knob" in stored
    _run(env, "populate")
    status = _run(env, "status").stdout
    rows = _status_rows(status)
    assert len(rows) == 12 and all(r[1:] == [0, 0, 0] and r[0] > 0 for r in rows.values()), status
    _run(env, "report", rig / "session", "--out", tmp_path / "report")
    assert (tmp_path / "report").is_dir() and any((tmp_path / "report").iterdir())
    _run(env, "export", "--subject", "rat01", "--datetime", "2026-11-24T10:00:00", "--training-set", "sim",
         "--pose-params", "sim", "--format", "csv", "--out", tmp_path / "pose.csv")
    assert (tmp_path / "pose.csv").stat().st_size > 0
    # the labeling loop: frames that look different, then the frames the network gets wrong
    _run(env, "label", "extract", rig / "session", "--n", 5, "--out", tmp_path / "looks")
    looks = sorted((tmp_path / "looks").iterdir())
    assert [p.name for p in looks] == ["rat01_20261124-100000_cam0", "rat01_20261124-100000_cam1"]
    assert len(_picked_frames(looks[0])) == 5
    _run(env, "label", "extract", rig / "session", "--n", len(INJECTED), "--outliers", "--out", tmp_path / "new")
    cam0 = tmp_path / "new" / "rat01_20261124-100000_cam0"
    assert _picked_frames(cam0) == list(INJECTED)
    labels = pd.read_hdf(cam0 / "CollectedData_sim.h5")
    assert labels.columns.names == ["scorer", "bodyparts", "coords"] and len(labels) == len(INJECTED)
    other = tmp_path / "other-parts" / "v"
    other.mkdir(parents=True)
    labels.rename(columns={"paw": "hand"}, level="bodyparts").to_hdf(other / "CollectedData_sim.h5", key="df")
    _bad(env, prefix, "train", "sim3", "--base", "sim", tmp_path / "other-parts", "--external",
         expect="body parts")
    _bad(env, prefix, "train", "sim3", "--base", "sim", tmp_path / "absent", "--external",
         expect="no such labeled-data folder")
    # train again: a new training set = the old labels + the new ones (--external: see the README)
    _run(env, "train", "sim2", "--base", "sim", tmp_path / "new", "--external")
    merged = sorted(p.name for p in (tmp_path / "models" / prefix / "training-sets" / "sim2").iterdir())
    assert merged == ["rat01_20261124-100000_cam0", "rat01_20261124-100000_cam1", "sim"]
    # a later session of the same rig: a plain populate computes it, with the new model from its date on
    _run(env, "defaults", "--rig", "sim-rig-1", "--model", "sim2", "--from", "2026-11-25")
    later = tmp_path / "later"
    _run(env, "sim", later, "--seconds", 12, "--fps", 30, "--seed", 3, "--datetime", "2026-11-25T10:00:00",
         "--session-only", "--dlc-outputs")
    _run(env, "ingest", later / "session")
    _run(env, "populate")
    after = _run(env, "status").stdout
    counts = _status_rows(after)
    assert counts["Pose3D"][0] == 2 and counts["KnobValidation"][0] == 2, after
    # browsing without ratpose's code: the datajoint.json the install writes names the store
    browse = tmp_path / "browse"
    browse.mkdir()
    _run(env, "db", "config", "--write", "--dir", browse, "--host", os.environ["DJ_HOST"], "--user",
         os.environ["DJ_USER"], "--store", tmp_path / "store")
    plain = {k: v for k, v in env.items() if not k.startswith("RATPOSE") and k != "PYTHONPATH"}
    script = ("import datajoint as dj; pose = dj.VirtualModule('pose', '%s_pose')\n"
              "for row in (pose.Pose3D.BodyPart & {'bodypart': 'paw'}).to_dicts(order_by='session_datetime'):\n"
              "    print(row['session_datetime'].date(), row['pose_params'], *row['xyz'].shape)" % prefix)
    read = subprocess.run([sys.executable, "-W", "ignore", "-c", script], cwd=browse, env=plain,
                          capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr[-2000:]
    rows = [line.split() for line in read.stdout.splitlines() if line.startswith("2026")]
    assert [r[:2] for r in rows] == [["2026-11-24", "sim"], ["2026-11-25", "sim2"]], read.stdout
    assert all(int(r[2]) > 300 and r[3] == "3" for r in rows), read.stdout  # 12 s at 30 fps, x y z


@pytest.mark.slow
def test_train_again_with_deeplabcut(tmp_path, loop_env):
    """`train NEW --base OLD DIR` trains DeepLabCut on the merged labels (1 epoch: it has to run, not learn)."""
    env, _ = loop_env
    write_labeled_frames(tmp_path / "old" / "v0", 8, seed=1)
    write_labeled_frames(tmp_path / "new" / "rat01_cam0", 4, seed=2)
    _run(env, "model", "register", "old", tmp_path / "old", "--external")
    done = _run(env, "train", "new", "--base", "old", tmp_path / "new", "--epochs", 1, "--init", "random",
                "--no-augmentation", "--device", "cpu")
    assert "model 'new' (training set 'new', train): train_error_px" in done.stdout
    merged = tmp_path / "models" / env["RATPOSE_DB_PREFIX"] / "training-sets" / "new"
    assert sorted(len(pd.read_hdf(h5)) for h5 in merged.glob("*/CollectedData_sim.h5")) == [4, 8]
