"""The lab across machines: the object store on a real S3 server, copies of videos and models fetched with
their checksums verified, worker roles, and three "machines" (processes with their own HOME, TMPDIR and
data-root mappings) that share nothing but the database and the S3 server."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pymysql
import pytest

from ratpose import db
from ratpose.copies import CopyMismatch, inside_name, sha256_file, stage_files, verified_folder
from ratpose.errors import ConfigurationError, DataError, NotFoundError
from ratpose.pose2d.estimate import relocate_model_row


def test_the_store_is_a_folder_or_an_s3_bucket_given_by_its_endpoint(tmp_path):
    assert db.store_spec(str(tmp_path / "store")) == {"protocol": "file", "location": str(tmp_path / "store")}
    assert db.store_spec("http://127.0.0.1:9000/lab-data/ratpose") == {
        "protocol": "s3", "endpoint": "127.0.0.1:9000", "bucket": "lab-data", "location": "ratpose", "secure": False}
    assert db.store_spec("https://s3.example.org/lab")["secure"] is True
    for bad, why in (("http://127.0.0.1:9000/", "not an S3 bucket name"), ("ftp://host/bucket", "http(s)://"),
                     ("http://key:secret@host/bucket", "credentials out of the URL"),
                     ("http://host/Bad_Bucket", "not an S3 bucket name")):
        with pytest.raises(ConfigurationError, match=why.replace("(", r"\(").replace(")", r"\)")):
            db.store_spec(bad)


def test_db_config_keeps_s3_credentials_in_secrets_not_in_datajoint_json(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s" * 20)
    written = db.write_config(tmp_path, host="db.lab", user="worker", store="http://s3.lab:8333/ratpose")
    config = json.loads((tmp_path / "datajoint.json").read_text())
    assert config["stores"]["ratpose"] == {"protocol": "s3", "endpoint": "s3.lab:8333", "bucket": "ratpose",
                                           "location": "", "secure": False}
    assert "s" * 20 not in (tmp_path / "datajoint.json").read_text()
    secrets = tmp_path / ".secrets"
    assert (secrets / "stores.ratpose.secret_key").read_text() == "s" * 20
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in written)


def _fetcher(source: Path, calls: list):
    def fetch(destination: Path):
        calls.append(destination)
        for path in source.rglob("*"):
            if path.is_file():
                target = destination / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    return fetch


def test_a_copy_is_fetched_once_and_used_only_when_every_checksum_matches(tmp_path):
    source = tmp_path / "model"
    (source / "train").mkdir(parents=True)
    (source / "train" / "snapshot.pt").write_bytes(b"weights" * 1000)
    (source / "pose_cfg.yaml").write_text("a: 1\n")
    checksums = {"train/snapshot.pt": sha256_file(source / "train" / "snapshot.pt"),
                 "pose_cfg.yaml": hashlib.sha256(b"a: 1\n").hexdigest()}
    calls = []
    copy = verified_folder(tmp_path / "cache", checksums, _fetcher(source, calls))
    assert (copy / "train" / "snapshot.pt").read_bytes() == b"weights" * 1000
    assert verified_folder(tmp_path / "cache", checksums, _fetcher(source, calls)) == copy and len(calls) == 1
    # a damaged upload: the fetch is refused naming the file, and nothing half-fetched stays in the cache
    (source / "pose_cfg.yaml").write_text("a: 2\n")
    damaged = {**checksums, "pose_cfg.yaml": hashlib.sha256(b"a: 3\n").hexdigest()}
    with pytest.raises(CopyMismatch, match="pose_cfg.yaml"):
        verified_folder(tmp_path / "cache", damaged, _fetcher(source, calls))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [copy.name]
    with pytest.raises(CopyMismatch, match="missing.bin"):
        verified_folder(tmp_path / "cache", {**checksums, "missing.bin": "0" * 64}, _fetcher(source, calls))
    with pytest.raises(DataError, match="inside its folder"):
        stage_files({"../escape": source / "pose_cfg.yaml"}, tmp_path / "stage")


def test_a_model_copied_elsewhere_points_into_its_copy(tmp_path):
    row = {"model_dir": "/gpu/models/m1/dlc-models", "snapshot": "/gpu/models/m1/dlc-models/train/snapshot-25.pt",
           "pytorch_config": "/gpu/models/m1/pytorch_config.yaml", "project_config": "/gpu/models/config.yaml",
           "checksums": {"train/snapshot-25.pt": "a" * 64, "../pytorch_config.yaml": "b" * 64}}
    moved = relocate_model_row(row, tmp_path / "copy")
    assert moved["snapshot"] == str(tmp_path / "copy" / "train" / "snapshot-25.pt")
    assert moved["pytorch_config"] == str(tmp_path / "copy" / "_up" / "pytorch_config.yaml")
    assert moved["checksums"] == {"train/snapshot-25.pt": "a" * 64, "_up/pytorch_config.yaml": "b" * 64}
    assert moved["project_config"] == "" and inside_name("../../x") == "_up/_up/x"


def test_a_session_uploaded_to_the_store_is_read_by_a_machine_without_its_root(clean_db, tmp_path, monkeypatch):
    from ratpose.ingest.session_folder import read_session_folder
    from ratpose.sim import SessionSettings, write_session

    raw = clean_db["raw"]
    acquisition = tmp_path / "acquisition-pc" / "raw"
    folder = acquisition / "rat_copy" / "s1"
    write_session(folder, SessionSettings(seconds=1.0, fps=50.0, seed=6, subject="rat_copy", n_units=0))
    (folder / "cam0DLC_sim.h5").write_bytes(b"pretend output")
    monkeypatch.setenv("RATPOSE_ROOT_RAW", str(acquisition))
    monkeypatch.setenv("RATPOSE_CACHE", str(tmp_path / "gpu-cache"))
    key, _ = raw.insert_session(read_session_folder(folder))
    assert raw.upload_session(key) == 3 and raw.upload_session(key) == 0  # two videos, one .h5; then nothing
    assert sorted((raw.SessionCopy & key).fetch1("checksums")) == ["cam0.avi", "cam0DLC_sim.h5", "cam1.avi"]
    monkeypatch.delenv("RATPOSE_ROOT_RAW")
    video = Path(raw.video_path({**key, "camera": "cam0"}))
    assert video.is_relative_to(tmp_path / "gpu-cache")
    assert sha256_file(video) == sha256_file(folder / "cam0.avi")
    assert key in raw.reachable_sessions()
    assert raw.session_file_names(key) == ["cam0.avi", "cam0DLC_sim.h5", "cam1.avi"]
    with pytest.raises(NotFoundError, match="not mapped on this machine.*the store holds no copy"):
        raw.session_file(key, "trigger.csv")


def test_a_changed_file_is_not_uploaded(clean_db, tmp_path, monkeypatch):
    from ratpose.ingest.session_folder import read_session_folder
    from ratpose.sim import SessionSettings, write_session

    raw = clean_db["raw"]
    folder = tmp_path / "raw" / "rat_changed" / "s1"
    write_session(folder, SessionSettings(seconds=1.0, fps=50.0, seed=7, subject="rat_changed", n_units=0))
    key, _ = raw.insert_session(read_session_folder(folder))
    with open(folder / "cam1.avi", "ab") as video:
        video.write(b"\0")
    with pytest.raises(CopyMismatch, match="cam1.avi changed since the session was ingested"):
        raw.upload_session(key)
    assert not raw.SessionCopy & key


# ---- three machines ------------------------------------------------------------------------------------------


def _connect():
    return pymysql.connect(host=os.environ["DJ_HOST"], user=os.environ["DJ_USER"], password=os.environ["DJ_PASS"],
                           autocommit=True)


class Machine:
    """A 'machine': its own HOME, TMPDIR, cache, models folder and data-root mapping; the database and the S3
    store are the only things it shares with the others."""

    def __init__(self, base: Path, name: str, prefix: str, store: str, s3_env: dict, roots: dict[str, Path]):
        self.home = base / name
        for sub in ("home", "tmp", "work"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        keep = {k: v for k, v in os.environ.items()
                if not k.startswith(("RATPOSE_", "AWS_")) and k not in ("HOME", "TMPDIR")}
        self.env = {**keep, **s3_env, "HOME": str(self.home / "home"), "TMPDIR": str(self.home / "tmp"),
                    "RATPOSE_DB_PREFIX": prefix, "RATPOSE_STORE": store,
                    "RATPOSE_MODELS": str(self.home / "home" / "models"),
                    **{f"RATPOSE_ROOT_{name.upper()}": str(path) for name, path in roots.items()}}

    def command(self, *args) -> list[str]:
        return [sys.executable, "-W", "ignore", "-m", "ratpose.cli", *map(str, args)]

    def run(self, *args, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(self.command(*args), env=self.env, cwd=self.home / "work", capture_output=True,
                              text=True, timeout=600)
        assert (done.returncode == 0) == ok, f"{self.home.name} {args}: rc {done.returncode}\n{done.stdout}\n" \
                                             f"{done.stderr[-3000:]}"
        return done

    def start(self, *args) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args), env=self.env, cwd=self.home / "work", stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


@pytest.fixture
def lab_prefix():
    prefix = f"rplab_{uuid.uuid4().hex[:8]}"
    yield prefix
    with _connect().cursor() as cursor:
        cursor.execute("SET FOREIGN_KEY_CHECKS=0")
        cursor.execute("SHOW DATABASES LIKE %s", (f"{prefix}\\_%",))
        for (name,) in cursor.fetchall():
            cursor.execute(f"DROP DATABASE `{name}`")


def _reserved(prefix: str, table: str) -> int:
    with _connect().cursor() as cursor:
        cursor.execute("SELECT table_schema FROM information_schema.tables WHERE table_name=%s AND table_schema "
                       "LIKE %s", (table, f"{prefix}\\_%"))
        found = cursor.fetchone()
        if not found:
            return 0
        cursor.execute(f"SELECT COUNT(*) FROM `{found[0]}`.`{table}` WHERE status='reserved'")
        return cursor.fetchone()[0]


def _wait(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


CPU_TABLES = ("SyncedFrames", "SessionSync", "Calibration", "SessionCalibration", "PoseModel", "Pose3D",
              "KnobValidation", "MovementEvents", "UnitTuning", "UnitEncoding", "PopulationDecoding")


def _pose3d(prefix: str, env: dict) -> dict:
    """Pose3D's points of every session, read by a fresh process on ``env``."""
    script = ("import json, sys, numpy as np; from ratpose import schema; m = schema.activate(); "
              "rows = m['pose'].Pose3D.BodyPart.to_dicts(order_by='bodypart'); "
              "print(json.dumps({r['bodypart']: np.nan_to_num(np.asarray(r['xyz'], float), nan=1e9).round(6).tolist()"
              " for r in rows}))")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", script], env={**env, "RATPOSE_DB_PREFIX": prefix},
                          capture_output=True, text=True, timeout=300, cwd=env["HOME"])
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_three_machines_share_the_work_through_the_database_and_s3(tmp_path, s3_server, lab_prefix):
    """The acquisition PC ingests and uploads; a 'GPU' node without the raw data computes Pose2D from the
    store's copies; a CPU node that mounts the raw data at another path computes the rest. A GPU worker killed
    mid-job leaves its key to the next one. The results equal a single-machine run's."""
    disk = tmp_path / "acquisition-disk" / "raw"
    rig = disk / "rig"
    prefix_store = s3_server.store_url("ratpose-test", lab_prefix)
    s3_env = s3_server.environment()
    acquisition = Machine(tmp_path, "acquisition", lab_prefix, prefix_store, s3_env, {"raw": disk})
    mount = tmp_path / "cpu-node" / "mnt"
    mount.mkdir(parents=True)
    (mount / "labshare").symlink_to(disk, target_is_directory=True)   # the same files through another path
    cpu = Machine(tmp_path, "cpu-node", lab_prefix, prefix_store, s3_env, {"raw": mount / "labshare"})
    gpu = Machine(tmp_path, "gpu-node", lab_prefix, prefix_store, s3_env, {})  # no raw data at all

    acquisition.run("sim", rig, "--seconds", 6, "--fps", 30, "--labeled", 4, "--dlc-outputs")
    acquisition.run("ingest", rig / "calibration", rig / "session", "--upload")
    acquisition.run("model", "register", "sim", rig / "labeled", "--external")
    acquisition.run("defaults", "--rig", "sim-rig-1", "--model", "sim")
    cpu.run("worker", *CPU_TABLES, "--poll", "0.3")          # sync, calibration, the (external) model
    acquisition.run("knob", "set", "--rig", "sim-rig-1", "--centre", 0, 0, 150, "--radius", 5, "--axis", 0, 0, 1,
                    "--up", 0, -1, 0)

    # a GPU worker dies mid-job: with the S3 server frozen its first fetch hangs; then it is killed
    moto = _moto_pid(s3_server)
    os.kill(moto, signal.SIGSTOP)
    try:
        victim = gpu.start("worker", "--tables", "Pose2D", "--poll", "0.3")
        _wait(lambda: _reserved(lab_prefix, "~~pose2_d") >= 1, 120, "the GPU worker to reserve a Pose2D job")
        victim.kill()
        victim.wait(timeout=30)
    finally:
        os.kill(moto, signal.SIGCONT)
    finished = gpu.run("worker", "--tables", "Pose2D", "--device", "cpu", "--poll", "0.3")
    assert "reclaimed 1 job(s) of dead workers" in finished.stdout and "Pose2D 2" in finished.stdout
    cpu.run("worker", *CPU_TABLES, "--poll", "0.3")          # 3D, knob validation, events, tuning

    status = cpu.run("status").stdout
    rows = {r[0]: [int(v) for v in r[1:]] for r in (line.split() for line in status.splitlines())
            if len(r) == 5 and r[1].isdigit()}
    assert all(r[0] > 0 and r[1:] == [0, 0, 0] for r in rows.values()), status
    # nothing of the session reached the GPU node's disk but the store's copies, in its cache
    files = [p for p in gpu.home.rglob("*") if p.is_file() and p.suffix in (".h5", ".avi", ".mkv", ".csv", ".toml")]
    assert {p.name for p in files} == {"cam0DLC_sim.h5", "cam1DLC_sim.h5"}, files
    assert all(p.is_relative_to(gpu.home / "home" / ".cache" / "ratpose") for p in files), files
    # the blobs are on the S3 server
    assert s3_server.filesystem().find(f"ratpose-test/{lab_prefix}")

    # the same session on one machine with a local store: the same 3D, point for point
    single_prefix = f"{lab_prefix}_one"
    single = Machine(tmp_path, "single", single_prefix, str(tmp_path / "single-store"), {}, {})
    try:
        single.run("ingest", rig / "calibration", rig / "session")
        single.run("model", "register", "sim", rig / "labeled", "--external")
        single.run("defaults", "--rig", "sim-rig-1", "--model", "sim")
        single.run("populate", "Calibration")
        single.run("knob", "set", "--rig", "sim-rig-1", "--centre", 0, 0, 150, "--radius", 5, "--axis", 0, 0, 1,
                   "--up", 0, -1, 0)
        single.run("populate")
        multi = _pose3d(lab_prefix, cpu.env)
        one = _pose3d(single_prefix, single.env)
        assert multi.keys() == one.keys() and len(multi) > 3
        for part in multi:
            np.testing.assert_allclose(np.asarray(multi[part]), np.asarray(one[part]), atol=1e-6)
    finally:
        with _connect().cursor() as cursor:
            cursor.execute("SET FOREIGN_KEY_CHECKS=0")
            cursor.execute("SHOW DATABASES LIKE %s", (f"{single_prefix}\\_%",))
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP DATABASE `{name}`")


def _moto_pid(server) -> int:
    port = server.endpoint.rsplit(":", 1)[1]
    found = subprocess.run(["pgrep", "-f", f"moto_server -H 127.0.0.1 -p {port}"], capture_output=True, text=True)
    pids = [int(p) for p in found.stdout.split()]
    assert len(pids) == 1, found
    return pids[0]


def test_a_gpu_worker_without_a_gpu_says_so_and_takes_no_work(tmp_path, lab_prefix):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    machine = Machine(tmp_path, "no-gpu", lab_prefix, str(tmp_path / "store"), {}, {})
    done = machine.run("worker", "--tables", "Pose2D", "--device", "cuda", ok=False)
    lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("[")]
    assert len(lines) == 1 and "torch sees no CUDA GPU" in lines[0], done.stderr
