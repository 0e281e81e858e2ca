"""`ratpose serve` as a child process for the web tests: a read-only account, a free port, raw requests."""
from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import datajoint as dj
import httpx
import pytest

from ratpose.schema import grants


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def reader_account(**env):
    """A fresh read-only account on the prefix in force (or env's RATPOSE_DB_PREFIX); yields its DJ_* variables."""
    user, password = f"rp_web_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        grants.grant(user, "readonly", host="%", password=password)
    try:
        yield {"DJ_USER": user, "DJ_PASS": password}
    finally:
        dj.conn().query("DROP USER IF EXISTS %s@%s", args=(user, "%"))


@contextlib.contextmanager
def running_server(cache: Path, **env):
    """`ratpose serve --cache-dir cache` with the environment changed by env; yields its base URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "ratpose.cli", "serve", "--port", str(port),
                                "--cache-dir", str(cache)], env={**os.environ, **env}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(base + "/pipeline", timeout=5)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"server did not start: {process.stdout.read()}")
            time.sleep(0.3)
    try:
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def raw_get(base: str, target: str, method: str = "GET") -> tuple[int, bytes]:
    """Send the request target exactly as given (no client normalises '..' or escapes); (status, body)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body
