"""Live trigger log and online frame-to-pulse matching, so the recorder knows each frame's neural time.

The offline, authoritative alignment is ``ratpose.sync.align_frames`` on the saved session; this is its
streaming counterpart used only to decide which frames fall inside event windows while recording.
"""
from __future__ import annotations

import threading

import numpy as np

from ratpose.acquisition.backends import TICK_WRAP, AcquisitionError

from ..errors import InputError


class PulseLog:
    """Thread-safe log of trigger ticks as they arrive: raw uint32 ticks and unwrapped microseconds."""

    def __init__(self):
        self.raw: list[int] = []
        self.unwrapped_us: list[int] = []
        self._wraps = 0
        self._closed = False
        self._cond = threading.Condition()

    def append(self, tick_us: int) -> None:
        """Record one pulse's pigpio tick (0..2^32-1)."""
        tick = int(tick_us)
        if not 0 <= tick < TICK_WRAP:
            raise InputError(f"trigger tick {tick} is not a uint32 pigpio tick")
        with self._cond:
            if self.raw and tick < self.raw[-1]:
                self._wraps += 1
            self.raw.append(tick)
            self.unwrapped_us.append(tick + self._wraps * TICK_WRAP)
            self._cond.notify_all()

    def close(self) -> None:
        """No more pulses will come (the trigger stopped)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self.unwrapped_us)  # appended last: a pulse counts once both lists hold it

    def last(self) -> tuple[int, int] | None:
        """(raw tick, unwrapped us) of the latest pulse, read together; None before the first."""
        with self._cond:
            return (self.raw[-1], self.unwrapped_us[-1]) if self.unwrapped_us else None

    def wait_until(self, t_us: float, timeout_s: float) -> bool:
        """Wait until a pulse at or after ``t_us`` is logged (or the log closes); True if it is there."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or (self.unwrapped_us and self.unwrapped_us[-1] >= t_us),
                                timeout_s)
            return bool(self.unwrapped_us) and self.unwrapped_us[-1] >= t_us

    def time_s(self, index: int) -> float:
        """Neural-clock time (s) of pulse ``index``."""
        return self.unwrapped_us[index] / 1e6


class OnlinePulseMatcher:
    """Assigns each frame of one camera (in delivery order) the index of the pulse that exposed it.

    The first ``n_anchor`` frames are matched together against the start pattern of the pulse train
    (irregular intervals make the offset unique); later frames are predicted from the last match with
    the drift measured so far and snapped to the nearest pulse.
    """

    def __init__(self, log: PulseLog, rate_hz: float, camera: str, n_anchor: int = 6,
                 n_candidates: int = 64, wait_s: float = 2.0):
        self.log, self.camera = log, camera
        self.period_us = 1e6 / rate_hz
        self.n_anchor, self.n_candidates, self.wait_s = n_anchor, n_candidates, wait_s
        self._anchor: tuple[int, int] | None = None  # (pulse index, camera ts ns)
        self._last: tuple[int, int] | None = None
        self.max_residual_us = 0.0

    @property
    def anchored(self) -> bool:
        return self._anchor is not None

    def anchor(self, camera_ts_ns: list[int]) -> list[int]:
        """Pulse indices of the first frames; raises AcquisitionError when the match is not unique."""
        ts = np.asarray(camera_ts_ns, dtype=np.int64)
        rel_us = (ts - ts[0]) / 1e3
        self.log.wait_until(-1, self.wait_s)
        if self.log.unwrapped_us:
            span_us = rel_us[-1] + self.n_candidates * self.period_us
            self.log.wait_until(self.log.unwrapped_us[0] + span_us, self.wait_s)
        pulses = np.asarray(self.log.unwrapped_us, dtype=np.float64)
        if pulses.size == 0:
            raise AcquisitionError(f"camera {self.camera!r} delivered frames but no trigger pulse was logged")
        candidates = np.arange(min(self.n_candidates, pulses.size))
        predicted = pulses[candidates, None] + rel_us[None, :]
        nearest = np.clip(np.searchsorted(pulses, predicted), 1, pulses.size - 1)
        left, right = pulses[nearest - 1], pulses[nearest]
        use_left = np.abs(predicted - left) <= np.abs(predicted - right)
        index = np.where(use_left, nearest - 1, nearest)
        residual = np.abs(predicted - pulses[index]).max(axis=1)
        good = np.flatnonzero(residual < self.period_us / 4)
        if good.size != 1:
            raise AcquisitionError(
                f"camera {self.camera!r}: the first {len(ts)} frames match {good.size} positions in the "
                "trigger log (expected exactly one); is the start pattern on and the camera armed first?")
        indices = index[good[0]].tolist()
        self._anchor = (indices[0], int(ts[0]))
        self._last = (indices[-1], int(ts[-1]))
        return indices

    def match(self, camera_ts_ns: int) -> int:
        """Pulse index of the next frame (after anchoring)."""
        if self._last is None:
            raise AcquisitionError(f"camera {self.camera!r}: match() before anchor()")
        pulses = self.log.unwrapped_us
        (j0, ts0), (j, ts) = self._anchor, self._last
        scale = (pulses[j] - pulses[j0]) * 1e3 / (ts - ts0) if ts - ts0 > 1e9 else 1.0
        predicted = pulses[j] + (camera_ts_ns - ts) / 1e3 * scale
        self.log.wait_until(predicted + self.period_us, self.wait_s)
        n = len(pulses)
        k = j + 1
        while k + 1 < n and pulses[k + 1] <= predicted:
            k += 1
        if k + 1 < n and abs(pulses[k + 1] - predicted) < abs(pulses[k] - predicted):
            k += 1
        if k >= n:
            raise AcquisitionError(f"camera {self.camera!r}: a frame arrived with no trigger pulse logged for it")
        self.max_residual_us = max(self.max_residual_us, abs(pulses[k] - predicted))
        self._last = (k, int(camera_ts_ns))
        return k
