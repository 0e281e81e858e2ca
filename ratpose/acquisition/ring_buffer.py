"""Pre-event ring buffer: keep the last seconds of frames in memory, write only event windows.

Events (knob touch, motion in an ROI, a key press) open windows [event - pre_s, event + post_s] on the
neural clock; overlapping windows merge. A frame leaves the ring once every event that could still
claim it is known (the event *horizon* has passed its time + pre_s + latency_s) and is written only if a
window contains it. Kept frames keep their FrameID and camera timestamp, so sync works across segments.
"""
from __future__ import annotations

import math
import threading
from typing import Callable

import cv2
import numpy as np

from ..errors import InputError


def merge_windows(event_times_s, pre_s: float, post_s: float) -> np.ndarray:
    """Merged, sorted windows (n, 2) [start, end] of [t - pre_s, t + post_s] around each event time."""
    if pre_s < 0 or post_s < 0:
        raise InputError(f"pre_s and post_s must be >= 0, got {pre_s}, {post_s}")
    times = np.sort(np.asarray(event_times_s, dtype=np.float64).ravel())
    if times.size == 0:
        return np.zeros((0, 2))
    starts, ends = times - pre_s, times + post_s
    reach = np.maximum.accumulate(ends)
    new_group = np.concatenate([[True], starts[1:] > reach[:-1]])
    group = np.cumsum(new_group) - 1
    merged_end = np.zeros(group[-1] + 1)
    np.maximum.at(merged_end, group, ends)
    return np.column_stack([starts[new_group], merged_end])


def kept_fraction(event_times_s, pre_s: float, post_s: float, duration_s: float) -> float:
    """Fraction of a recording [0, duration_s] inside the merged event windows."""
    windows = np.clip(merge_windows(event_times_s, pre_s, post_s), 0.0, duration_s)
    return float(np.sum(windows[:, 1] - windows[:, 0]) / duration_s)


class EventWindows:
    """Thread-safe event list with merged windows and an event horizon shared by all cameras."""

    def __init__(self, pre_s: float = 5.0, post_s: float = 2.0, latency_s: float = 0.25):
        if latency_s < 0:
            raise InputError(f"latency_s must be >= 0, got {latency_s}")
        merge_windows([], pre_s, post_s)  # validates pre/post
        self.pre_s, self.post_s, self.latency_s = pre_s, post_s, latency_s
        self.events: list[tuple[float, str]] = []
        self._windows = np.zeros((0, 2))
        self._horizon = -math.inf
        self._cond = threading.Condition()

    def add(self, time_s: float, source: str) -> None:
        """Record an event; its window is merged with any it overlaps."""
        with self._cond:
            self.events.append((float(time_s), source))
            self._windows = merge_windows([t for t, _ in self.events], self.pre_s, self.post_s)

    @property
    def windows(self) -> np.ndarray:
        with self._cond:
            return self._windows.copy()

    def contains(self, time_s: float) -> bool:
        """True if a window contains ``time_s``."""
        with self._cond:
            w = self._windows
            i = int(np.searchsorted(w[:, 0], time_s, side="right")) - 1
            return i >= 0 and time_s <= w[i, 1]

    def advance(self, time_s: float) -> None:
        """Every event up to ``time_s`` has been reported (math.inf: no more events will come)."""
        with self._cond:
            if time_s > self._horizon:
                self._horizon = time_s
                self._cond.notify_all()

    def wait_decidable(self, time_s: float, timeout_s: float | None = None) -> bool:
        """Wait until no unseen event can claim a frame at ``time_s``; True when decidable."""
        needed = time_s + self.pre_s + self.latency_s
        with self._cond:
            return self._cond.wait_for(lambda: self._horizon >= needed, timeout_s)


class FrameRing:
    """Ring of the most recent frames of one camera: the images by reference (no copy per frame), their
    metadata in preallocated arrays. A backend hands over a fresh image per frame (PySpin's is copied out
    of the driver's buffer), so holding it costs no copy; a popped slot lets go of its image."""

    def __init__(self, capacity: int, height: int, width: int):
        if capacity < 2:
            raise InputError(f"ring capacity must be >= 2 frames, got {capacity}")
        self.shape = (height, width)
        self.images: list[np.ndarray | None] = [None] * capacity
        self.frame_id = np.zeros(capacity, dtype=np.int64)
        self.camera_ts_ns = np.zeros(capacity, dtype=np.int64)
        self.exposure_us = np.zeros(capacity)
        self.time_s = np.zeros(capacity)
        self.capacity = capacity
        self._head = 0  # index of the oldest frame
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def full(self) -> bool:
        return self._size == self.capacity

    def push(self, image: np.ndarray, frame_id: int, camera_ts_ns: int, exposure_us: float, time_s: float) -> None:
        """Add a frame (kept by reference: the caller must not reuse the array); the ring must not be full."""
        if self.full:
            raise OverflowError("ring is full: pop the oldest frame first")
        if image.shape != self.shape:
            raise InputError(f"ring frame is {image.shape}, expected {self.shape}")
        slot = (self._head + self._size) % self.capacity
        self.images[slot] = image
        self.frame_id[slot], self.camera_ts_ns[slot] = frame_id, camera_ts_ns
        self.exposure_us[slot], self.time_s[slot] = exposure_us, time_s
        self._size += 1

    def oldest(self) -> int:
        """Slot of the oldest frame (valid until the next push)."""
        if not self._size:
            raise IndexError("ring is empty")
        return self._head

    def pop(self) -> None:
        """Forget the oldest frame."""
        if not self._size:
            raise IndexError("ring is empty")
        self.images[self._head] = None
        self._head = (self._head + 1) % self.capacity
        self._size -= 1


# emit(image, frame_id, camera_ts_ns, exposure_us) receives every kept frame, in order
Emit = Callable[[np.ndarray, int, int, float], None]


class RingSegmenter:
    """One camera's ring: frames go in as they arrive; kept frames come out (in order) through ``emit``."""

    def __init__(self, ring: FrameRing, windows: EventWindows, emit: Emit,
                 is_stopping: Callable[[], bool] = lambda: False):
        self.ring, self.windows, self.emit, self.is_stopping = ring, windows, emit, is_stopping
        self.kept = 0
        self.dropped = 0

    def push(self, image: np.ndarray, frame_id: int, camera_ts_ns: int, exposure_us: float, time_s: float) -> None:
        """Add a frame, first releasing the oldest when the ring is full."""
        if self.ring.full:
            self._release_oldest()
        self.ring.push(image, frame_id, camera_ts_ns, exposure_us, time_s)

    def flush(self) -> None:
        """Release every frame left (at the end of a recording, once the horizon is final)."""
        while len(self.ring):
            self._release_oldest()

    def _release_oldest(self) -> None:
        r = self.ring
        slot = r.oldest()
        while not self.windows.wait_decidable(r.time_s[slot], 0.2):
            if self.is_stopping():
                break
        if self.windows.contains(r.time_s[slot]):
            self.emit(r.images[slot], int(r.frame_id[slot]), int(r.camera_ts_ns[slot]), float(r.exposure_us[slot]))
            self.kept += 1
        else:
            self.dropped += 1
        r.pop()


class MotionEnergy:
    """Motion trigger: mean absolute frame difference in an ROI crossing a threshold (rising edge)."""

    def __init__(self, roi: tuple[int, int, int, int] | None, threshold: float, refractory_s: float = 1.0):
        if threshold <= 0:
            raise InputError(f"motion threshold must be > 0 (grey levels), got {threshold}")
        self.roi, self.threshold, self.refractory_s = roi, threshold, refractory_s
        self._previous: np.ndarray | None = None
        self._above = False
        self._last_event = -math.inf
        self.energy = 0.0

    def update(self, image: np.ndarray, time_s: float) -> bool:
        """Feed the next frame; True if it starts a motion event."""
        if self.roi is not None:
            x, y, w, h = self.roi
            image = image[y:y + h, x:x + w]
        if self._previous is None or self._previous.shape != image.shape:
            self._previous = np.empty_like(image)
            self._previous[...] = image
            return False
        self.energy = float(cv2.absdiff(image, self._previous).mean())
        self._previous[...] = image
        above = self.energy > self.threshold
        start = above and not self._above and time_s - self._last_event >= self.refractory_s
        self._above = above
        if start:
            self._last_event = time_s
        return start
