"""Lost connections inside make(): the transaction is rolled back and the work is done again.

"Server gone" is simulated by KILL CONNECTION from a second connection (the shared server itself
is never restarted): for the worker's connection this is what a server restart or a network cut
looks like, and the server rolls back the open transaction in both cases.
"""
from __future__ import annotations

import threading
import time

import datajoint as dj
import ops_helpers
import pytest
from ops_helpers import Item, Slow, dirty_rows, root_query, slow_table  # noqa: F401 (fixture)

from ratpose.schema import ops


def _kill_own_connection_once():
    """A BEFORE_PARTS hook: the first call kills the calling connection, later calls do nothing."""
    connection_id = dj.conn().query("SELECT CONNECTION_ID()").fetchone()[0]
    ops_helpers.BEFORE_PARTS.clear()
    assert dirty_rows(Slow) == 1  # the master row is in the open transaction
    root_query(f"KILL CONNECTION {int(connection_id)}")


@pytest.fixture
def hooks():
    yield ops_helpers.BEFORE_PARTS
    ops_helpers.BEFORE_PARTS.clear()


def test_connection_killed_between_master_and_parts_rolls_back_and_populate_recovers(slow_table, hooks):
    Item.insert1({"item": 5})
    hooks.append(_kill_own_connection_once)
    result = Slow.populate(reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 0 and len(result["error_list"]) == 1
    assert dirty_rows(Slow) == 0 and dirty_rows(Slow.Piece) == 0  # no partial rows anywhere
    message = Slow.jobs.errors.fetch1("error_message")
    assert message.startswith("LostConnectionError") or "(2013" in message or "(1927" in message, message

    assert ops.retry_errors({"Slow": Slow}) == 1
    result = Slow.populate(reserve_jobs=True, suppress_errors=True)  # DataJoint has reconnected
    assert result["success_count"] == 1
    assert Slow.fetch1("square") == 25 and len(Slow.Piece()) == 3


def test_worker_retries_a_key_whose_connection_was_killed(slow_table, hooks):
    Item.insert([{"item": i, "fail": 0} for i in (2, 3)])
    hooks.append(_kill_own_connection_once)
    run = ops.run_worker({"Slow": Slow}, ops.WorkerOptions(poll_s=0.1))
    assert run.computed["Slow"] == 2
    assert sorted(Slow.to_arrays("square")) == [4, 9] and len(Slow.Piece()) == 6
    assert len(Slow.jobs) == 0


def test_connection_killed_during_a_large_insert_leaves_nothing(slow_table, monkeypatch):
    """KILL while the server executes a big multi-row part INSERT (~100k rows)."""
    monkeypatch.setenv("OPSTEST_PIECES", "100000")
    Item.insert1({"item": 9})
    killed = []

    def killer():
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            ids = root_query("SELECT ID FROM information_schema.PROCESSLIST "
                             f"WHERE INFO LIKE 'INSERT INTO {Slow.Piece.full_table_name}%'")
            for (connection_id,) in ids:
                root_query(f"KILL CONNECTION {int(connection_id)}")
                killed.append(connection_id)
            time.sleep(0.005)

    thread = threading.Thread(target=killer)
    thread.start()
    result = Slow.populate(reserve_jobs=True, suppress_errors=True)
    thread.join()
    assert killed, "the part insert finished before it could be killed"
    assert result["success_count"] == 0 and len(result["error_list"]) == 1
    assert dirty_rows(Slow) == 0 and dirty_rows(Slow.Piece) == 0

    monkeypatch.setenv("OPSTEST_PIECES", "1000")
    assert ops.retry_errors({"Slow": Slow}) == 1
    assert Slow.populate(reserve_jobs=True, suppress_errors=True)["success_count"] == 1
    assert len(Slow.Piece()) == 1000
