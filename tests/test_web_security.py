"""`ratpose serve` attacked from the lab network: traversal, hostile names, writing accounts, methods, headers."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import datajoint as dj
import httpx
import pytest
from conftest import wipe
from starlette.testclient import TestClient
from web_helpers import raw_get, reader_account, running_server

from ratpose.web.app import Backend, create_app, download_name, inside

SECRET = b"the lab's secret"
HOSTILE = ["<script>alert(1)</script>", "../../etc/passwd", "rat\u202e10.exe", "a\x07b\r\nSet-Cookie: x=1",
           "'; DROP TABLE session; --", "\"><img src=x onerror=alert(1)>", "{{ 7*7 }}"]
WHEN = datetime(2026, 5, 6, 7, 8, 9)


@pytest.fixture(scope="module")
def attacked(db, tmp_path_factory):
    """Sessions whose every user-text field is hostile, a secret two folders above the cache and a link in
    it pointing there; the server runs as a read-only account. Yields (base URL, cache folder)."""
    root = tmp_path_factory.mktemp("attack")
    (root / "secret.txt").write_bytes(SECRET)
    cache = root / "a" / "cache"
    (cache / "f" / "v").mkdir(parents=True)
    (cache / "f" / "v" / "link.txt").symlink_to(root / "secret.txt")
    raw = db["raw"]
    wipe(db)
    raw.Subject.insert({"subject": name[:32], "notes": name} for name in HOSTILE)
    raw.Session.insert({"subject": name[:32], "session_datetime": WHEN, "rig": name[:64], "task": name[:64],
                        "session_dir": name, "trigger_rate_hz": 30.0, "notes": name} for name in HOSTILE)
    with reader_account() as account, running_server(cache, **account) as base:
        yield base, cache
    wipe(db)


@pytest.mark.parametrize("target", [
    "/reports/../../secret.txt", "/reports/%2E%2E/%2E%2E/secret.txt", "/reports/%2e%2e/%2e%2e/secret.txt",
    "/reports/%252E%252E/%252E%252E/secret.txt", "/reports/..%2F..%2F/x/secret.txt",
    "/reports/..%5C..%5C/x/secret.txt", "/reports/..\\..\\/x/secret.txt", "/reports/f/v/link.txt",
    "/reports/f/v/%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt", "/reports/%00/v/secret.txt", "/reports/././secret.txt",
    "/reports/f/..%2F..%2F../secret.txt", "/../../secret.txt", "//secret.txt"])
def test_no_file_outside_the_cache_is_served(attacked, target):
    base, _ = attacked
    status, body = raw_get(base, target)
    assert status in (400, 404) and SECRET not in body


def test_inside_resolves_and_refuses_what_leaves_the_folder(tmp_path):
    (tmp_path / "cache" / "d").mkdir(parents=True)
    (tmp_path / "cache" / "d" / "ok.png").write_bytes(b"x")
    (tmp_path / "outside.txt").write_bytes(SECRET)
    (tmp_path / "cache" / "d" / "out").symlink_to(tmp_path / "outside.txt")
    assert inside(tmp_path / "cache", "d", "ok.png") == (tmp_path / "cache" / "d" / "ok.png").resolve()
    for parts in (("..", "outside.txt"), ("d", "out"), ("d",), ("/etc", "passwd"), ("d", "ok.png\x00"), ()):
        with pytest.raises(Exception, match="no such file") as caught:
            inside(tmp_path / "cache", *parts)
        assert caught.value.status_code == 404


@pytest.mark.parametrize("page", ["/", "/units", "/rigs", "/models", "/pipeline"])
def test_hostile_names_are_escaped_on_every_page(attacked, page):
    base, _ = attacked
    response = httpx.get(base + page, timeout=30)
    assert response.status_code == 200
    for name in HOSTILE:
        for dangerous in ("<script>", "<img src=x", "\u202e", "\x07"):
            if dangerous in name:
                assert dangerous not in response.text, (page, name)
    if page == "/":
        assert f"{len(HOSTILE)} of {len(HOSTILE)} sessions" in response.text
        assert "rat\\u202e10.exe" in response.text  # shown, spelled out


def test_hostile_session_pages_escape_every_field(attacked):
    base, _ = attacked
    for name in HOSTILE:
        response = httpx.get(base + "/session", params={"subject": name[:32], "datetime": WHEN.isoformat()},
                             timeout=30)
        assert response.status_code == 200, name
        assert "<script>" not in response.text and "<img src=x" not in response.text and "\u202e" not in response.text


def test_only_get_and_head_are_allowed(attacked):
    base, _ = attacked
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"):
        status, _ = raw_get(base, "/", method)
        assert status in (400, 405), method
    assert httpx.head(base + "/", timeout=30).status_code == 200


def test_pages_carry_the_headers_of_a_read_only_app(attacked):
    base, _ = attacked
    headers = httpx.get(base + "/", timeout=30).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
    policy = headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy and "frame-ancestors 'self'" in policy
    assert httpx.get(base + "/nope", timeout=30).headers["x-content-type-options"] == "nosniff"


def test_download_names_are_plain(tmp_path):
    for words in (["../../rat01", "20260101"], ["rat\u202e10", "x"], ["a/b\\c", "\x00"], ["..", "."], [""]):
        name = download_name(*words, suffix="nwb")
        assert name.endswith(".nwb") and not name.startswith(".")
        assert all(c.isascii() and (c.isalnum() or c in "_.-") for c in name), name
    assert download_name("rat_01", "20260101_090000", suffix="csv") == "rat_01_20260101_090000.csv"


def test_exports_leave_nothing_behind_and_are_named_safely(tmp_path):
    def export(key, fmt, out):
        if key["training_set"] == "broken":
            Path(out).write_bytes(b"half")
            raise ValueError("no such pose")
        Path(out).write_bytes(b"pose data")

    backend = Backend(browse=None, report_data=None, export_session=export, pipeline_status=lambda: {})
    client = TestClient(create_app(lambda: backend, tmp_path / "cache"))
    params = {"subject": "../../rat\u202e01", "datetime": WHEN.isoformat(), "format": "csv", "training_set": "t"}
    for _ in range(3):
        response = client.get("/session/export", params=params)
        assert response.status_code == 200 and response.content == b"pose data"
        disposition = response.headers["content-disposition"]
        assert disposition == 'attachment; filename="rat01_20260506_070809.csv"', disposition
    assert client.get("/session/export", params={**params, "training_set": "broken"}).status_code == 404
    assert list((tmp_path / "cache" / "exports").iterdir()) == []


def _serve_once(env: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """`ratpose serve` expected to exit at once (it refuses to start)."""
    return subprocess.run([sys.executable, "-m", "ratpose.cli", "serve", "--port", "1", "--cache-dir",
                           str(tmp_path / "cache")], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)


def test_a_write_capable_account_is_refused(db, tmp_path):
    assert os.environ["DJ_USER"] == "root"
    done = _serve_once({}, tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "can write" in lines[0] and "ratpose db grant --reader" in lines[0], done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_an_empty_prefix_is_left_empty(db, tmp_path):
    prefix = f"rpempty_{uuid.uuid4().hex[:8]}"
    with reader_account(RATPOSE_DB_PREFIX=prefix) as account:
        with running_server(tmp_path / "cache", RATPOSE_DB_PREFIX=prefix, **account) as base:
            for page in ("/", "/pipeline", "/units", "/rigs", "/models", "/session"):
                response = httpx.get(base + page, params={"subject": "x", "datetime": WHEN.isoformat()}, timeout=30)
                assert response.status_code == 503 and "no ratpose pipeline" in response.text, page
            schema = dj.Schema(f"{prefix}_raw", create_schema=True, connection=dj.conn())  # an admin sets it up
            try:
                time.sleep(0.1)
                response = httpx.get(base + "/", timeout=30)
                assert response.status_code == 503  # raw alone is not the pipeline
            finally:
                schema.drop(prompt=False)
    assert dj.conn().query("SHOW DATABASES LIKE %s", args=(prefix.replace("_", r"\_") + "%",)).fetchall() == ()
