"""Test-only tables for workers and faults, and the entry point of worker child processes.

``Slow`` inserts its master row, logs the call, sleeps, then inserts its parts: a worker killed
while it sleeps has an open transaction with a master row and no parts, which must vanish.
Run as a script it is ``ratpose worker`` / ``ratpose jobs retry`` over these tables.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import datajoint as dj
import numpy as np
import pymysql
import pytest

from ratpose import db
from ratpose.cli import jobs as jobs_cli
from ratpose.schema import recovery

schema = dj.Schema()
BEFORE_PARTS = []  # in-process hooks called inside make() between the master and the part insert
AFTER_PARTS = []  # in-process hooks called at the end of make(), just before DataJoint commits


@schema
class Item(dj.Manual):
    definition = """  # one unit of test work
    item : int32
    ---
    fail = 0 : bool    # make() raises while set (a fixable cause)
    """


@schema
class Slow(dj.Computed):
    definition = """  # master row, then a pause, then OPSTEST_PIECES part rows
    -> Item
    ---
    square : int64
    maker_pid : int32
    """

    class Piece(dj.Part):
        definition = """
        -> master
        piece : int32
        ---
        data : <blob>
        """

    def make(self, key):
        if (Item & key).fetch1("fail"):
            raise ValueError(f"item {key['item']} is marked to fail")
        self.insert1({**key, "square": key["item"] ** 2, "maker_pid": os.getpid()})
        log = os.environ.get("OPSTEST_LOG")
        if log:
            with open(Path(log) / f"{os.getpid()}.log", "a") as handle:
                handle.write(f"{key['item']}\n")
        for hook in BEFORE_PARTS:
            hook()
        time.sleep(float(os.environ.get("OPSTEST_SLEEP", "0")))
        pieces = int(os.environ.get("OPSTEST_PIECES", "3"))
        self.Piece.insert({**key, "piece": p, "data": np.full(4, p)} for p in range(pieces))
        for hook in AFTER_PARTS:
            hook()


@schema
class Double(dj.Computed):
    definition = """  # a second table of the same items, populated after Slow
    -> Item
    ---
    double : int64
    """

    def make(self, key):
        self.insert1({**key, "double": 2 * key["item"]})


def test_tables(names=()) -> dict[str, type]:
    """Activate the test schema under the current prefix; the worker loader for these tables."""
    if not schema.is_activated():
        schema.activate(f"{db.prefix()}_opstest", connection=db.connect())
    return recovery.select_tables({"Slow": Slow}, names)


test_tables.__test__ = False  # not a pytest test


@pytest.fixture
def slow_table(db, request):
    """The empty test table (rows and jobs removed); its schema is dropped when the session ends."""
    tables = test_tables()
    if not _DROP_REGISTERED:
        request.session.addfinalizer(lambda: schema.drop(prompt=False))
        _DROP_REGISTERED.append(True)
    Item.delete(prompt=False)
    Slow.jobs.delete()
    Double.jobs.delete()
    return tables["Slow"]


_DROP_REGISTERED = []


def make_log(folder: Path) -> list[tuple[int, int]]:
    """(pid, item) of every make() call logged under folder."""
    return [(int(path.stem), int(line)) for path in sorted(folder.glob("*.log"))
            for line in path.read_text().split()]


def root_query(*statements: str) -> list[tuple]:
    """Run statements on a connection of their own (autocommit) as the tests' user; the last one's rows."""
    connection = pymysql.connect(host=os.environ["DJ_HOST"], user=os.environ["DJ_USER"],
                                 password=os.environ["DJ_PASS"], autocommit=True)
    try:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
            return list(cursor.fetchall())
    finally:
        connection.close()


def dirty_rows(table) -> int:
    """Rows of table including other connections' uncommitted ones (READ UNCOMMITTED)."""
    return root_query("SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED",
                      f"SELECT COUNT(*) FROM {table.full_table_name}")[0][0]


def start_worker(*args: str, env: dict | None = None) -> subprocess.Popen:
    """A worker child process over the test tables (same prefix, store and server as the tests)."""
    return subprocess.Popen([sys.executable, __file__, *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float, what: str) -> None:
    """Poll condition() until true; fail the test with ``what`` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    jobs_cli.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args, loader=test_tables)


if __name__ == "__main__":
    sys.exit(main())
