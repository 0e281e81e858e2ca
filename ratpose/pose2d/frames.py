"""Feeding Pose2D: decoded grey frames (``ratpose.video.decode_gray``) ahead of the network.

``prefetch`` runs any frame iterator in a thread behind a bounded queue, so decoding overlaps with
inference (the network never waits while the decoder keeps up) and memory stays bounded;
``fastest_batch_size`` probes the network's batch size on the device it runs on.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator

import numpy as np

_END = object()


def prefetch(items: Iterable, maxsize: int = 64) -> Iterator:
    """The items of ``items``, produced by a background thread at most ``maxsize`` ahead of the consumer.

    An exception in the producer is raised in the consumer; stopping early stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize)
    stop = threading.Event()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def batches(frames: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Frames grouped into (n, height, width) arrays of ``size`` (the last one may be shorter)."""
    batch = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


def fastest_batch_size(infer, frame: np.ndarray, candidates=BATCH_SIZES, repeats: int = 2) -> int:
    """The batch size of ``candidates`` (increasing) at which ``infer`` (a list of frames -> anything)
    runs most frames/s on copies of ``frame``. A short probe: each size runs once to warm up, then
    ``repeats`` times; it stops at the first size that runs out of memory or is no faster than the best."""
    best, best_rate = candidates[0], 0.0
    for size in candidates:
        batch = [frame] * size
        try:
            infer(batch)
            start = time.perf_counter()
            for _ in range(repeats):
                infer(batch)
        except (MemoryError, RuntimeError) as err:  # torch's OutOfMemoryError is a RuntimeError
            if isinstance(err, MemoryError) or "out of memory" in str(err).lower():
                break
            raise
        rate = size * repeats / (time.perf_counter() - start)
        if rate <= best_rate:
            break
        best, best_rate = size, rate
    return best
