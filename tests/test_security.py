"""Database roles, configuration files and credentials."""
from __future__ import annotations

import argparse
import os
import re
import secrets
import stat
import subprocess
from pathlib import Path

import datajoint as dj
import pytest
from ops_helpers import Item, slow_table  # noqa: F401 (fixture)

from ratpose.cli import db as db_cli
from ratpose.schema import grants

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def users(slow_table):
    """Grant a role to fresh accounts; yields a function (role) -> connection; drops them at the end."""
    created = []

    def connect_as(role: str) -> dj.Connection:
        user, password = f"rp_{role[:4]}_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
        created.append(user)
        grants.grant(user, role, host="%", password=password)
        return dj.Connection(os.environ["DJ_HOST"], user, password)

    yield connect_as
    for user in created:
        dj.conn().query("DROP USER IF EXISTS %s@%s", args=(user, "%"))


def _item_table(connection) -> type:
    module = dj.VirtualModule("opstest", Item.database, connection=connection)
    return module.Item


def test_readonly_user_can_select_but_not_change(users):
    Item.insert1({"item": 1, "fail": 0})
    item = _item_table(users("readonly"))
    assert item.to_arrays("item").tolist() == [1]
    with pytest.raises(dj.DataJointError, match="(?i)denied"):
        item.insert1({"item": 2, "fail": 0})
    with pytest.raises(dj.DataJointError, match="(?i)denied"):
        (item & {"item": 1}).delete_quick()
    assert len(Item()) == 1


def test_worker_user_can_insert_and_delete(users):
    item = _item_table(users("worker"))
    item.insert1({"item": 3, "fail": 0})
    assert Item.to_arrays("item").tolist() == [3]
    (item & {"item": 3}).delete_quick()
    assert len(Item()) == 0


@pytest.mark.parametrize("user, host", [("bob'@'%' IDENTIFIED BY 'x", "%"), ("bob; DROP USER root", "%"),
                                        ("bob", "%' OR '1'='1"), ("", "%"), ("bob`", "localhost"), ("x" * 40, "%")])
def test_grant_rejects_names_with_quotes_or_sql(user, host):
    with pytest.raises(ValueError, match="invalid"):
        grants.grant(user, "readonly", host=host, password=secrets.token_hex(8))


def test_grant_to_a_missing_user_without_password_is_a_clear_error(db):
    user = f"rp_none_{secrets.token_hex(4)}"
    with pytest.raises(ValueError, match="does not exist; to create it give a password"):
        grants.grant(user, "worker")
    assert not dj.conn().query("SELECT 1 FROM mysql.user WHERE User=%s", args=(user,)).fetchone()


def test_config_write_is_owner_only_and_keeps_the_password_out_of_datajoint_json(tmp_path, monkeypatch):
    password = secrets.token_urlsafe(12)
    monkeypatch.setenv("RP_TEST_PASSWORD", password)
    parser = argparse.ArgumentParser()
    db_cli.add_commands(parser.add_subparsers())
    args = parser.parse_args(["db", "config", "--write", "--dir", str(tmp_path), "--host", "db.lab.local",
                              "--user", "alice", "--password-env", "RP_TEST_PASSWORD", "--store", str(tmp_path)])
    assert args.func(args) == 0
    config_file, secret_file = tmp_path / "datajoint.json", tmp_path / ".secrets" / "database.password"
    for path in (config_file, secret_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700
    assert password not in config_file.read_text() and secret_file.read_text() == password
    assert '"host": "db.lab.local"' in config_file.read_text()
    assert args.func(args) == 1  # an existing file is not replaced without --force


CREDENTIAL = re.compile(r"""(password|passwd|secret|DJ_PASS)["']?\s*[:=]\s*["'](?!\$\{\w+:-\})[^"'\s]+["']""", re.I)


def test_no_credentials_in_the_repository():
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split()
    assert len(files) > 50
    hits = [f"{name}:{match.group(0)}" for name in files if (REPO / name).is_file()
            for match in CREDENTIAL.finditer((REPO / name).read_text(errors="ignore"))]
    assert not hits, hits
    assert CREDENTIAL.search("DJ_PASS" + ' = "hunter2"') and not CREDENTIAL.search('DJ_PASS="${DJ_PASS:-}"')
