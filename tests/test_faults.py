"""Lost connections inside make(): the transaction is rolled back and the work is done again.

"Server gone" is simulated by KILL CONNECTION from a second connection (the shared server itself
is never restarted): for the worker's connection this is what a server restart or a network cut
looks like, and the server rolls back the open transaction in both cases.
"""
from __future__ import annotations

import argparse
import threading
import time

import datajoint as dj
import ops_helpers
import pytest
from ops_helpers import Double, Item, Slow, dirty_rows, root_query, slow_table  # noqa: F401 (fixture)

from ratpose.cli import jobs as jobs_cli
from ratpose.schema import recovery, workers
from ratpose.schema.jobs import print_errors


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

    assert recovery.retry_errors({"Slow": Slow}) == 1
    result = Slow.populate(reserve_jobs=True, suppress_errors=True)  # DataJoint has reconnected
    assert result["success_count"] == 1
    assert Slow.fetch1("square") == 25 and len(Slow.Piece()) == 3


def test_worker_retries_a_key_whose_connection_was_killed(slow_table, hooks):
    Item.insert([{"item": i, "fail": 0} for i in (2, 3)])
    hooks.append(_kill_own_connection_once)
    run = workers.run_worker({"Slow": Slow}, workers.WorkerSettings(poll_s=0.1))
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
    assert recovery.retry_errors({"Slow": Slow}) == 1
    assert Slow.populate(reserve_jobs=True, suppress_errors=True)["success_count"] == 1
    assert len(Slow.Piece()) == 1000


# ---------------------------------------------------------------------------------------------
# `ratpose populate` (recovery.populate_recovering) under faults: a second table must still run

def _kill_running_sleep(connection_id: int) -> None:
    """From a second connection: KILL QUERY the SLEEP that connection is running (waits up to 10 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if root_query(f"SELECT ID FROM information_schema.PROCESSLIST WHERE ID={int(connection_id)} "
                      "AND INFO LIKE 'SELECT SLEEP%'"):
            root_query(f"KILL QUERY {int(connection_id)}")
            return
        time.sleep(0.01)


def _killing(times: int, kill) -> list:
    """A hook list whose hook runs ``kill(connection id)`` on its first ``times`` calls; counts calls."""
    calls = []

    def hook():
        calls.append(len(calls))
        if len(calls) <= times:
            kill(dj.conn().query("SELECT CONNECTION_ID()").fetchone()[0])
    return [hook], calls


def _query_killed(connection_id: int) -> None:
    thread = threading.Thread(target=_kill_running_sleep, args=(connection_id,))
    thread.start()
    try:
        dj.conn().query("SELECT SLEEP(30)")  # a statement of make(), interrupted by the KILL QUERY
    finally:
        thread.join()


def _connection_killed(connection_id: int) -> None:
    root_query(f"KILL CONNECTION {int(connection_id)}")  # the server rolls back; COMMIT finds no connection


@pytest.fixture
def two_tables(slow_table):
    ops_helpers.BEFORE_PARTS.clear()
    ops_helpers.AFTER_PARTS.clear()
    Item.insert([{"item": i} for i in (2, 3)])
    yield {"Slow": Slow, "Double": Double}
    ops_helpers.BEFORE_PARTS.clear()
    ops_helpers.AFTER_PARTS.clear()


def _rows() -> tuple[int, int, int]:
    """Rows of Slow, Slow.Piece and Double, uncommitted ones included."""
    return dirty_rows(Slow), dirty_rows(Slow.Piece), dirty_rows(Double)


@pytest.mark.parametrize("hooks,kill", [(ops_helpers.BEFORE_PARTS, _query_killed),
                                        (ops_helpers.AFTER_PARTS, _connection_killed)],
                         ids=["query-killed-mid-make", "connection-killed-before-commit"])
@pytest.mark.parametrize("reserve_jobs", [True, False], ids=["jobs", "direct"])
def test_populate_retries_a_killed_key_and_runs_the_other_tables(two_tables, hooks, kill, reserve_jobs):
    made, calls = _killing(1, kill)
    hooks.extend(made)
    results = recovery.populate_recovering(two_tables, reserve_jobs=reserve_jobs)
    assert {n: (r["success_count"], r["error_list"]) for n, r in results.items()} == {
        "Slow": (2, []), "Double": (2, [])}
    assert len(calls) == 3  # the killed key was made once more
    assert _rows() == (2, 6, 2) and len(Slow.jobs) == len(Double.jobs) == 0
    assert sorted(Slow.to_arrays("square")) == [4, 9]
    # idempotent: nothing left to do, nothing added
    again = recovery.populate_recovering(two_tables, reserve_jobs=reserve_jobs)
    assert all(r["success_count"] == 0 and not r["error_list"] for r in again.values())
    assert _rows() == (2, 6, 2)


@pytest.mark.parametrize("hooks,kill", [(ops_helpers.BEFORE_PARTS, _query_killed),
                                        (ops_helpers.AFTER_PARTS, _connection_killed)],
                         ids=["query-killed-mid-make", "connection-killed-before-commit"])
def test_populate_gives_up_on_a_key_killed_every_time(two_tables, capsys, hooks, kill):
    """A key whose make() is killed on every try ends in error after a bounded number of tries."""
    made, calls = _killing(10**6, kill)
    hooks.extend(made)
    results = recovery.populate_recovering(two_tables)
    assert results["Slow"]["success_count"] == 0 and len(results["Slow"]["error_list"]) == 2
    assert results["Double"] == {"success_count": 2, "error_list": []}
    assert len(calls) == 2 * (recovery.TRANSIENT_RETRIES + 1)
    assert _rows() == (0, 0, 2) and len(Slow.jobs.reserved) == 0  # no half-written rows, no stale reservation
    assert print_errors(two_tables) == 2
    out = capsys.readouterr().out
    assert "ERROR Slow item=2" in out and "ratpose jobs retry Slow" in out, out

    hooks.clear()  # the cause is fixed: the printed command makes the keys pending again
    assert jobs_cli.jobs_retry_command(argparse.Namespace(tables=["Slow"]), loader=lambda names: two_tables) == 0
    assert recovery.populate_recovering(two_tables)["Slow"] == {"success_count": 2, "error_list": []}
    assert _rows() == (2, 6, 2)
