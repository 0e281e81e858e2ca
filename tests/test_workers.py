"""Real worker processes against the test database: exactly-once, SIGKILL, SIGTERM, errors and retry."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
from ops_helpers import (  # noqa: F401 (fixture)
    Item,
    Slow,
    dirty_rows,
    make_log,
    slow_table,
    start_worker,
    wait_for,
)

from ratpose.ingest.session_folder import read_session_folder
from ratpose.sim import SessionSettings, write_session

FAST = ("--poll", "0.3")


def finish(worker: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = worker.communicate(timeout=timeout)
    return worker.returncode, out, err


def test_four_workers_make_each_key_exactly_once(slow_table, tmp_path):
    Item.insert({"item": i} for i in range(16))
    worker = start_worker("worker", "--processes", "4", *FAST,
                          env={"OPSTEST_LOG": str(tmp_path), "OPSTEST_SLEEP": "0.4"})
    code, out, err = finish(worker)
    assert code == 0, err
    calls = make_log(tmp_path)
    assert sorted(item for _, item in calls) == list(range(16))  # every key once, none twice
    assert len({pid for pid, _ in calls}) >= 2  # the work really was shared
    assert out.count("worker ") == 4
    rows = Slow.to_dicts()
    assert {r["item"]: r["square"] for r in rows} == {i: i * i for i in range(16)}
    assert len(Slow.Piece()) == 16 * 3
    assert len(Slow.jobs) == 0  # nothing reserved, nothing in error


def test_sigkilled_worker_leaves_no_rows_and_another_worker_makes_its_key(slow_table, tmp_path):
    Item.insert1({"item": 7})
    victim = start_worker("worker", *FAST, env={"OPSTEST_LOG": str(tmp_path), "OPSTEST_SLEEP": "60"})
    wait_for(lambda: make_log(tmp_path), 60, "the worker to enter make()")
    assert dirty_rows(Slow) == 1  # master inserted, transaction open
    assert len(Slow.jobs.reserved) == 1
    victim.kill()
    victim.wait()
    wait_for(lambda: dirty_rows(Slow) == 0, 30, "the server to roll back the dead worker's transaction")
    assert len(Slow.Piece()) == 0
    assert len(Slow.jobs.reserved) == 1  # still reserved by a connection that no longer exists

    code, out, err = finish(start_worker("worker", *FAST, env={"OPSTEST_LOG": str(tmp_path)}))
    assert code == 0, err
    assert "reclaimed 1 job(s) of dead workers" in out
    calls = make_log(tmp_path)
    assert [item for _, item in calls] == [7, 7] and calls[0][0] != calls[1][0]
    assert Slow.fetch1("square") == 49 and len(Slow.Piece()) == 3
    assert len(Slow.jobs) == 0


def test_sigterm_abandons_the_key_cleanly_and_releases_its_job(slow_table, tmp_path):
    Item.insert({"item": i} for i in (1, 2, 3))
    worker = start_worker("worker", *FAST, env={"OPSTEST_LOG": str(tmp_path), "OPSTEST_SLEEP": "60"})
    wait_for(lambda: make_log(tmp_path), 60, "the worker to enter make()")
    worker.send_signal(signal.SIGTERM)
    code, out, err = finish(worker, timeout=30)
    assert code == 0, err
    assert "stopped (SIGTERM received), released 1 job(s)" in out
    assert dirty_rows(Slow) == 0 and len(Slow.Piece()) == 0
    assert len(Slow.jobs.reserved) == 0 and len(Slow.jobs.errors) == 0

    code, _, err = finish(start_worker("worker", *FAST))
    assert code == 0, err
    assert sorted(Slow.to_arrays("square")) == [1, 4, 9]


def test_errors_are_reported_and_retried_after_the_fix(slow_table):
    Item.insert([{"item": 1, "fail": 0}, {"item": 2, "fail": 1}])
    code, out, err = finish(start_worker("worker", *FAST))
    assert code == 1
    assert "Slow: item=2: ValueError: item 2 is marked to fail" in err
    assert (out + err).count("item 2 is marked to fail") == 1, (out, err)  # not DataJoint's log line too
    assert list(Slow.to_arrays("item")) == [1]

    code, _, err = finish(start_worker("worker", *FAST))  # errors are not retried by themselves
    assert code == 1 and len(Slow()) == 1

    Item.update1({"item": 2, "fail": 0})
    code, out, err = finish(start_worker("worker", "--retry-errors", *FAST))
    assert code == 0, err
    assert "retrying 1 failed job(s)" in out
    assert sorted(Slow.to_arrays("square")) == [1, 4]
    assert len(Slow.jobs) == 0


CLI = ("import argparse, sys; from ratpose.cli import jobs; p = argparse.ArgumentParser(); "
       "jobs.add_commands(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")


def test_pipeline_workers_sync_several_sessions(clean_db, tmp_path):
    """`ratpose worker --processes 4` on the real SyncedFrames/SessionSync tables: right numbers, one job each."""
    sessions = []
    for i in range(3):
        config = SessionSettings(seconds=2.0, fps=100.0, seed=40 + i, subject=f"rat_w{i}", loss_rate=0.01)
        truth = write_session(tmp_path / f"s{i}", config)
        key, _ = clean_db["raw"].insert_session(read_session_folder(tmp_path / f"s{i}"))
        sessions.append((key, truth))
    worker = subprocess.run([sys.executable, "-c", CLI, "worker", "SyncedFrames", "SessionSync",
                             "--processes", "4", *FAST], env={**os.environ, "DJ_JOBS_KEEP_COMPLETED": "true"},
                            capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, worker.stderr
    sync = clean_db["sync"]
    assert len(sync.SyncedFrames.jobs.completed) == 6 and len(sync.SessionSync.jobs.completed) == 3
    assert len(sync.SyncedFrames.jobs) == 6 and len(sync.SessionSync.jobs) == 3  # no error, none reserved
    for key, truth in sessions:
        for camera, frames in truth.cameras.items():
            pulses = (sync.SyncedFrames & key & {"camera": camera}).fetch1("pulse_index")
            np.testing.assert_array_equal(pulses, frames.pulse_index)
        assert (sync.SessionSync & key).fetch1("n_cameras") == 2
    sync.SyncedFrames.jobs.delete()
    sync.SessionSync.jobs.delete()
