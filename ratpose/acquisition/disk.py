"""The disk's sustained write speed, for the rig check (the video writers are ``ratpose.video``)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


def disk_write_mb_s(folder: str | Path, n_bytes: float = 1e9, block_bytes: int = 1440 * 1080) -> float:
    """Sustained write speed of the disk under ``folder`` in MB/s: ``n_bytes`` in frame-sized blocks, then
    fsync (the page cache alone would show memory speed)."""
    block = np.full(block_bytes, 7, np.uint8).data
    path = Path(folder) / f".ratpose-disk-speed-{os.getpid()}.bin"
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(max(int(n_bytes // block_bytes), 1)):
            os.write(fd, block)
        os.fsync(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return size / (time.perf_counter() - t0) / 1e6
