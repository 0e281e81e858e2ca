"""Raspberry Pi trigger through pigpiod: a DMA-timed pulse train (waves) with every edge's tick logged.

The train is two waves chained by pigpio: the start pattern (the same irregular intervals and pause as
``ratpose.sim.clocks``, so alignment is unambiguous) then one second of regular pulses looped forever.
Waves are timed in whole microseconds; the one-second wave spreads the rounding so the mean rate is exact.
A callback on the output GPIO reports each rising edge's tick (uint32 us, pigpio samples every 5 us by
default, so ticks are good to about 5 us).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ratpose.acquisition.backends import TriggerBackend, TriggerError
from ratpose.acquisition.config import TriggerSettings
from ratpose.sim.clocks import simulate_clocks

from ..errors import InputError

START_PULSES = 32  # pulses sent by the start wave (the pattern plus a few regular ones)


def _import_pigpio():
    try:
        import pigpio
    except ImportError as err:
        raise TriggerError("the pigpio Python package is not installed (pip install pigpio, or "
                           "pip install 'ratpose[acquisition]'); pigpiod must run on the Raspberry Pi") from err
    return pigpio


def pulse_train_intervals_us(rate_hz: float, start_pattern: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(start intervals, one second of regular intervals) in integer microseconds between rising edges.

    The start intervals are those of the simulator's schedule (ratpose.sim.clocks) without jitter; the
    regular intervals sum to round(rate_hz) periods, so the long-run rate is rate_hz.
    """
    if not 0 < rate_hz <= 10_000:
        raise InputError(f"rate_hz must be in (0, 10000], got {rate_hz}")
    schedule = simulate_clocks(START_PULSES + 1, rate_hz, (), jitter_us=0.0, start_pattern=start_pattern)
    start = np.diff(schedule.tick_us.astype(np.int64))
    n = max(1, round(rate_hz))
    regular = np.diff(np.rint(np.arange(n + 1) * 1e6 / rate_hz).astype(np.int64))
    return start, regular


class PigpioTrigger(TriggerBackend):
    """Pulse train on ``settings.gpio`` of the Pi running pigpiod at ``settings.host:port``."""

    def __init__(self, settings: TriggerSettings):
        self.settings = settings
        self.rate_hz = float(settings.rate_hz)
        self.start_intervals, self.regular_intervals = pulse_train_intervals_us(self.rate_hz, settings.start_pattern)
        if settings.pulse_width_us >= min(self.start_intervals.min(), self.regular_intervals.min()):
            raise InputError(f"[trigger] pulse_width_us={settings.pulse_width_us} must be shorter than the "
                             f"trigger period at {self.rate_hz} Hz")
        self._pi = None
        self._callback = None
        self._waves: list[int] = []

    def _wave(self, pigpio, intervals: np.ndarray) -> int:
        mask, width = 1 << self.settings.gpio, int(self.settings.pulse_width_us)
        pulses = []
        for interval in intervals.tolist():
            pulses += [pigpio.pulse(mask, 0, width), pigpio.pulse(0, mask, interval - width)]
        self._pi.wave_add_generic(pulses)
        wave_id = self._pi.wave_create()
        if wave_id < 0:
            raise TriggerError(f"pigpio could not create a wave of {len(pulses)} pulses (error {wave_id})")
        self._waves.append(wave_id)
        return wave_id

    def start(self, on_pulse: Callable[[int], None]) -> None:
        pigpio = _import_pigpio()
        try:
            self._start(pigpio, on_pulse)
        except pigpio.error as err:  # pigpio.exceptions is True by default: failures raise, not return < 0
            raise TriggerError(f"pigpio failed while starting the trigger: {err}") from err

    def _start(self, pigpio, on_pulse: Callable[[int], None]) -> None:
        s = self.settings
        self._pi = pigpio.pi(s.host, s.port)
        if not self._pi.connected:
            raise TriggerError(f"cannot reach pigpiod at {s.host}:{s.port} (is `sudo pigpiod` running on the Pi?)")
        self._pi.set_mode(s.gpio, pigpio.OUTPUT)
        self._pi.write(s.gpio, 0)
        self._pi.wave_clear()
        start_wave = self._wave(pigpio, self.start_intervals)
        regular_wave = self._wave(pigpio, self.regular_intervals)
        self._callback = self._pi.callback(s.gpio, pigpio.RISING_EDGE, lambda gpio, level, tick: on_pulse(tick))
        # start wave once, then loop the regular wave forever (255 0 = loop start, 255 3 = repeat forever)
        status = self._pi.wave_chain([start_wave, 255, 0, regular_wave, 255, 3])
        if status is not None and status < 0:
            raise TriggerError(f"pigpio wave_chain failed (error {status})")

    def attach_knob(self, knob) -> None:
        """Read the knob's inputs through this pigpiod connection: their ticks are the trigger's clock."""
        pigpio = _import_pigpio()
        if self._pi is None:
            raise TriggerError("the knob's inputs are attached after the trigger has started")
        try:
            knob.attach(self._pi, pigpio)
        except pigpio.error as err:
            raise TriggerError(f"pigpio failed while setting up the knob's inputs: {err}") from err

    def stop(self) -> None:
        if self._pi is None:
            return
        try:
            self._stop()
        except _import_pigpio().error as err:
            raise TriggerError(f"pigpio failed while stopping the trigger: {err}") from err

    def _stop(self) -> None:
        self._pi.wave_tx_stop()
        self._pi.write(self.settings.gpio, 0)
        time.sleep(0.1)  # let the last edges' callbacks arrive before the log is closed
        if self._callback is not None:
            self._callback.cancel()
            self._callback = None

    @property
    def finished(self) -> bool:
        return False  # the train runs until stop()

    def close(self) -> None:
        if self._pi is None:
            return
        pi, self._pi = self._pi, None
        try:
            for wave_id in self._waves:
                pi.wave_delete(wave_id)
        except _import_pigpio().error as err:
            raise TriggerError(f"pigpio failed while deleting the waves: {err}") from err
        finally:
            self._waves.clear()
            pi.stop()
