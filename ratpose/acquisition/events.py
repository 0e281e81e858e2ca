"""Event sources for the ring buffer: anything with ``poll(now_s) -> [(time_s, kind), ...]``.

Times are on the neural clock (seconds). Knob sources report kinds ``touch_on``/``touch_off`` (written to
knob_events.csv) and may offer ``poll_angle(now_s) -> (n, 2) array of (time_s, angle_deg)``.
"""
from __future__ import annotations

import threading
from typing import IO, Protocol


class EventSource(Protocol):
    def poll(self, now_s: float) -> list[tuple[float, str]]:
        """Events that happened up to ``now_s`` and were not returned before."""


class ManualKeySource:
    """A person presses Enter on the recording terminal; each press is a 'manual' event at the current time."""

    def __init__(self, stream: IO[str]):
        self._presses = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), name="manual-key", daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for _ in stream:
            with self._lock:
                self._presses += 1

    def poll(self, now_s: float) -> list[tuple[float, str]]:
        with self._lock:
            presses, self._presses = self._presses, 0
        return [(now_s, "manual")] * presses
