"""The knob on the Raspberry Pi's GPIOs, read through the trigger's pigpio connection.

pigpiod samples every GPIO every 5 us and reports each level change with its tick, the same uint32 us
clock as the trigger's edges: a knob event's tick is on the neural clock without any alignment. Two
inputs make the knob:

Touch sensor
    One input (``touch_gpio``), touched at ``touch_active`` level. pigpio's glitch filter
    (``glitch_us``) drops level changes shorter than that and reports a stable edge ``glitch_us``
    after it began, so the edge's time is its tick minus ``glitch_us``. Contact bounce is handled on top:
    a release followed by a new contact within ``debounce_us`` continues the touch, so one touch is one
    ``touch_on`` / ``touch_off`` pair; a release is final once ``debounce_us`` passed without contact.

Angle
    A quadrature encoder on two inputs (``encoder_a_gpio``, ``encoder_b_gpio``): each change of A or B
    is one count, its direction from the phase (Gray code 00 -> 01 -> 11 -> 10 -> 00 is +1), and
    ``counts_per_rev`` counts are 360 degrees. Both inputs changing within one 5 us sample means the
    knob turned faster than pigpio samples: the step's direction is unknown, so it is counted as two
    counts in the direction of the last good step and reported (``KnobReport.ambiguous_steps``),
    never silently taken as a valid step. The angle is written at ``angle_rate_hz`` on the neural
    clock, each sample the exact count at its time.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from .backends import TICK_WRAP
from .config import KnobSettings
from .pulse_matcher import PulseLog

# (previous AB, new AB) -> step, A the high bit: 00 -> 01 -> 11 -> 10 -> 00 counts up
_STEP = {(0b00, 0b01): 1, (0b01, 0b11): 1, (0b11, 0b10): 1, (0b10, 0b00): 1,
         (0b01, 0b00): -1, (0b11, 0b01): -1, (0b10, 0b11): -1, (0b00, 0b10): -1}
SETTLE_S = 0.05  # angle samples wait this long for edges still in pigpiod's socket


@dataclass
class KnobReport:
    """What the knob inputs did during a recording."""

    touches: int = 0
    bounces: int = 0            # releases shorter than debounce_us, merged into their touch
    counts: int = 0             # net encoder count at the end
    ambiguous_steps: int = 0    # A and B changed within one sample: turned faster than pigpio samples

    def warnings(self, settings: KnobSettings) -> list[str]:
        """Sentences for session.toml's warnings (empty when nothing went wrong)."""
        if not self.ambiguous_steps:
            return []
        return [f"knob encoder turned faster than pigpio's 5 us sampling {self.ambiguous_steps} time(s): those "
                f"steps' direction is unknown (taken as the previous step's), so the angle may be off by up to "
                f"{4 * self.ambiguous_steps * 360 / settings.counts_per_rev:.2f} deg"]


def tick_time_s(pulses: PulseLog, tick: int) -> float | None:
    """Neural-clock time (s) of a pigpio tick: the tick unwrapped next to the latest trigger pulse's
    (a tick within 35 min of it); None before the first pulse."""
    latest = pulses.last()
    if latest is None:
        return None
    last_raw, last_us = latest
    offset = (int(tick) - last_raw + TICK_WRAP // 2) % TICK_WRAP - TICK_WRAP // 2
    return (last_us + offset) / 1e6


class GpioKnob:
    """Knob events and angle from the Pi's GPIOs: an event source for the recorder and the ring buffer
    (``poll``, ``poll_angle``), attached to the trigger's pigpio connection with ``attach``."""

    def __init__(self, settings: KnobSettings, pulses: PulseLog):
        settings.check()
        self.settings, self.pulses = settings, pulses
        self.report = KnobReport()
        self._lock = threading.Lock()
        self._touch_edges: list[tuple[int, int]] = []
        self._encoder_edges: list[tuple[int, int, int]] = []
        self._callbacks = []
        self._closed = False
        self._touched = False
        self._release_s: float | None = None
        self._ab = 0
        self._last_step = 1
        self._count = 0
        self._count_times: list[float] = []   # neural time of each count change not yet sampled, and the count
        self._count_values: list[int] = []
        self._count_before = 0  # the count before the first change not yet sampled
        self._next_sample_s: float | None = None
        self._levels = {}

    def attach(self, pi, pigpio) -> None:
        """Configure the inputs (mode, pull, glitch filter) and register edge callbacks on ``pi``."""
        s = self.settings
        pull = {"up": pigpio.PUD_UP, "down": pigpio.PUD_DOWN, "off": pigpio.PUD_OFF}
        inputs = [(s.touch_gpio, s.touch_pull)]
        if s.has_encoder:
            inputs += [(s.encoder_a_gpio, s.encoder_pull), (s.encoder_b_gpio, s.encoder_pull)]
        for gpio, how in inputs:
            pi.set_mode(gpio, pigpio.INPUT)
            pi.set_pull_up_down(gpio, pull[how])
            self._levels[gpio] = pi.read(gpio)
        pi.set_glitch_filter(s.touch_gpio, s.glitch_us)
        if s.has_encoder:
            self._ab = (self._levels[s.encoder_a_gpio] << 1) | self._levels[s.encoder_b_gpio]
        if self._active(self._levels[s.touch_gpio]):  # touched at the start: no touch_on to begin with
            self._touched = True
        self._callbacks = [pi.callback(s.touch_gpio, pigpio.EITHER_EDGE, self._on_touch)]
        if s.has_encoder:
            self._callbacks += [pi.callback(g, pigpio.EITHER_EDGE, self._on_encoder)
                                for g in (s.encoder_a_gpio, s.encoder_b_gpio)]

    def detach(self) -> None:
        """Cancel the callbacks (the recording ended)."""
        for callback in self._callbacks:
            callback.cancel()
        self._callbacks = []
        self._closed = True  # no contact can follow a release any more: a pending one is final

    def status(self) -> str:
        """The inputs' levels, the touch state and the encoder count, for the terminal's live line."""
        s = self.settings
        with self._lock:
            levels = dict(self._levels)
        touch = f"touch GPIO{s.touch_gpio}={levels.get(s.touch_gpio, '?')} " \
                f"({'touched' if self._touched else 'released'}, {self.report.touches} touches)"
        if not s.has_encoder:
            return f"knob: {touch}"
        return (f"knob: {touch}, encoder GPIO{s.encoder_a_gpio}={levels.get(s.encoder_a_gpio, '?')} "
                f"GPIO{s.encoder_b_gpio}={levels.get(s.encoder_b_gpio, '?')} count {self._count:+d} "
                f"({self._count * 360.0 / s.counts_per_rev:+.1f} deg)")

    def _active(self, level: int) -> bool:
        return bool(level) == (self.settings.touch_active == "high")

    def _on_touch(self, gpio: int, level: int, tick: int) -> None:
        if level > 1:  # pigpio's watchdog timeout (level 2): no change
            return
        with self._lock:
            self._levels[gpio] = level
            self._touch_edges.append((tick, level))

    def _on_encoder(self, gpio: int, level: int, tick: int) -> None:
        if level > 1:
            return
        with self._lock:
            self._levels[gpio] = level
            self._encoder_edges.append((tick, gpio, level))

    def poll(self, now_s: float) -> list[tuple[float, str]]:
        """touch_on / touch_off events known by ``now_s`` (neural clock) and not returned before."""
        with self._lock:
            edges, self._touch_edges = self._touch_edges, []
        events = []
        glitch_s = self.settings.glitch_us / 1e6
        debounce_s = self.settings.debounce_us / 1e6
        for tick, level in edges:
            time_s = tick_time_s(self.pulses, tick)
            if time_s is None:  # before the first pulse: no neural time yet, but the level counts
                self._touched = self._active(level)
                continue
            time_s -= glitch_s  # pigpio stamps a filtered edge when it has been stable for glitch_us
            if self._active(level):
                if self._release_s is not None and time_s - self._release_s < debounce_s:
                    self.report.bounces += 1  # contact again within the debounce time: the same touch
                elif not self._touched or self._release_s is not None:
                    if self._release_s is not None:
                        events.append((self._release_s, "touch_off"))
                    events.append((time_s, "touch_on"))
                    self.report.touches += 1
                self._touched, self._release_s = True, None
            elif self._touched and self._release_s is None:
                self._release_s = time_s
        # a contact within the debounce time is reported glitch_us late: wait for it before the release is final
        if self._release_s is not None and (self._closed or now_s - glitch_s - self._release_s >= debounce_s):
            events.append((self._release_s, "touch_off"))
            self._touched, self._release_s = False, None
        return events

    def poll_angle(self, now_s: float) -> np.ndarray:
        """Angle samples (time_s, angle_deg) every 1/angle_rate_hz up to ``now_s`` (less SETTLE_S while the
        callbacks run: edges may still be on their way), not returned before."""
        if not self.settings.has_encoder:
            return np.zeros((0, 2))
        self._decode()
        step = 1.0 / self.settings.angle_rate_hz
        if self._next_sample_s is None:
            if not len(self.pulses):
                return np.zeros((0, 2))
            self._next_sample_s = self.pulses.time_s(0)
        end = now_s if self._closed else now_s - SETTLE_S
        times = self._next_sample_s + step * np.arange(max(0, math.floor((end - self._next_sample_s) / step) + 1))
        if not times.size:
            return np.zeros((0, 2))
        self._next_sample_s = float(times[-1] + step)
        changes = np.asarray(self._count_times)
        values = np.asarray(self._count_values, dtype=np.int64)
        index = np.searchsorted(changes, times, side="right") - 1
        before = self._count_before
        counts = np.where(index >= 0, values[np.clip(index, 0, None)] if values.size else before, before)
        keep = np.searchsorted(changes, times[-1], side="right")
        if keep:
            self._count_before = int(values[keep - 1])
            del self._count_times[:keep], self._count_values[:keep]
        return np.column_stack([times, counts * 360.0 / self.settings.counts_per_rev])

    def _decode(self) -> None:
        """Turn the encoder edges received so far into counts at their neural times."""
        s = self.settings
        with self._lock:
            edges, self._encoder_edges = self._encoder_edges, []
        i = 0
        while i < len(edges):
            tick = edges[i][0]
            ab = self._ab
            while i < len(edges) and edges[i][0] == tick:  # every change pigpio saw in this 5 us sample
                _, gpio, level = edges[i]
                bit = 1 if gpio == s.encoder_a_gpio else 0
                ab = (ab & ~(1 << bit)) | (level << bit)
                i += 1
            if ab == self._ab:
                continue
            step = _STEP.get((self._ab, ab))
            if step is None:  # both inputs changed in one sample: direction unknown
                self.report.ambiguous_steps += 1
                step = 2 * self._last_step
            else:
                self._last_step = step
            self._ab = ab
            self._count += step
            time_s = tick_time_s(self.pulses, tick)
            if time_s is None:  # turned before the first pulse: part of the starting angle
                self._count_before = self._count
                continue
            self._count_times.append(time_s)
            self._count_values.append(self._count)
        self.report.counts = self._count
