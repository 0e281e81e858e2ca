"""Camera and trigger backend interfaces shared by the hardware (PySpin, pigpio) and simulated backends."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np

TICK_WRAP = 2**32


class AcquisitionError(RuntimeError):
    """Acquisition hardware failed in a way that ends the recording."""


class CameraError(AcquisitionError):
    """A camera stopped delivering (unplugged, stream error, driver failure)."""


class TriggerError(AcquisitionError):
    """The trigger source failed (pigpiod gone, wave could not be built)."""


class FrameTimeout(Exception):
    """No frame arrived within the timeout (normal between triggers and after the trigger stops)."""


@dataclass(frozen=True)
class CameraSettings:
    """How one camera is set up: identity, role in the trigger chain, exposure, gain, ROI, I/O lines."""

    name: str
    serial: str = ""
    role: str = "primary"
    model: str = "Blackfly S BFS-U3-16S2M"
    pixel_size_um: float = 3.45
    lens_mm: float = 12.5
    exposure_us: float = 2000.0
    gain_db: float = 0.0
    width: int = 1440
    height: int = 1080
    offset_x: int = 0
    offset_y: int = 0
    pixel_format: str = "Mono8"
    trigger_line: str = "Line0"
    strobe_line: str = ""
    buffer_count: int = 200
    buffer_handling: str = "OldestFirst"
    strobe_pullup: str = "line2_3v3"  # opto Line1 is open drain: Line2's 3.3 V (V3_3Enable) or an external pull-up


@dataclass(frozen=True)
class Frame:
    """One delivered image and its chunk metadata (camera clock, ns)."""

    image: np.ndarray
    frame_id: int
    timestamp_ns: int
    exposure_us: float
    incomplete: bool = False


class CameraBackend(ABC):
    """A triggered camera: configure, start, pull frames, stop, close."""

    name: str

    @abstractmethod
    def configure(self, settings: CameraSettings, rate_hz: float) -> None:
        """Apply exposure, gain, ROI, pixel format, trigger/strobe lines and stream buffering."""

    @abstractmethod
    def start(self) -> None:
        """Arm the camera: from now on every trigger it receives exposes a frame."""

    @abstractmethod
    def get_frame(self, timeout_s: float) -> Frame:
        """Next delivered frame, its image the caller's to keep (the ring holds it without a copy);
        raises FrameTimeout when none arrives in time, CameraError on failure."""

    @abstractmethod
    def stop(self) -> None:
        """Stop acquisition (frames already buffered may still be read until FrameTimeout)."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call more than once."""

    @property
    def incomplete_frames(self) -> int:
        """Frames the backend received incomplete and skipped."""
        return 0

    def stream_stats(self) -> dict[str, int]:
        """Driver-side stream counters (lost/dropped/incomplete frames) read at stop; {} when unknown."""
        return {}

    def info(self) -> dict[str, str]:
        """Identity of the device (serial, model, firmware, link speed); {} when unknown."""
        return {}


class TriggerBackend(ABC):
    """A source of trigger pulses that logs the pigpio tick (uint32 us) of every rising edge."""

    rate_hz: float

    @abstractmethod
    def start(self, on_pulse: Callable[[int], None]) -> None:
        """Start the pulse train; ``on_pulse(tick_us)`` is called for every pulse, in order."""

    @abstractmethod
    def stop(self) -> None:
        """Stop sending pulses and wait until the last pulse has been reported."""

    @property
    @abstractmethod
    def finished(self) -> bool:
        """True once a finite pulse train has been sent completely (never for an open-ended one)."""

    def close(self) -> None:
        """Release the trigger device (default: nothing to release)."""
