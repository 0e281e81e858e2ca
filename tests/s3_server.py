"""A real S3-compatible server for the tests: moto's standalone server (PyPI ``moto[server]``), over HTTP.

It speaks the S3 REST protocol that botocore/s3fs (and so DataJoint's ``s3`` store) speak to AWS, MinIO
or SeaweedFS; it keeps objects in the server process's memory. Credentials are made up per run and
only ever live in the environment of the processes that use them.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class S3Server:
    endpoint: str      # http://127.0.0.1:PORT
    access_key: str
    secret_key: str

    def store_url(self, bucket: str, prefix: str = "") -> str:
        """The ``RATPOSE_STORE`` value of a bucket (and key prefix) on this server."""
        return f"{self.endpoint}/{bucket}" + (f"/{prefix}" if prefix else "")

    def environment(self) -> dict[str, str]:
        """The variables botocore reads its credentials from."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1"}

    def filesystem(self):
        """An s3fs filesystem on this server (to make buckets and look at what was stored)."""
        import s3fs

        return s3fs.S3FileSystem(key=self.access_key, secret=self.secret_key,
                                 client_kwargs={"endpoint_url": self.endpoint})


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_s3_server(log: Path, timeout_s: float = 30.0):
    """Start moto's server on a free local port; returns (process, S3Server) once it answers."""
    executable = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if executable is None:
        raise RuntimeError("moto_server is not installed (pip install 'moto[server]', the dev extra)")
    port = _free_port()
    handle = open(log, "w")
    process = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(port)], stdout=handle,
                               stderr=subprocess.STDOUT, env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "1"})
    server = S3Server(f"http://127.0.0.1:{port}", "rp" + secrets.token_hex(8), secrets.token_hex(16))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, server
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"moto_server did not answer on port {port} within {timeout_s} s")
