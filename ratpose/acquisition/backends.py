"""Camera and trigger backend interfaces shared by the hardware (PySpin, pigpio) and simulated backends."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import RatposeError

TICK_WRAP = 2**32


class AcquisitionError(RatposeError, RuntimeError):
    """Acquisition hardware failed in a way that ends the recording."""


class CameraError(AcquisitionError):
    """A camera stopped delivering (unplugged, stream error, driver failure)."""


class TriggerError(AcquisitionError):
    """The trigger source failed (pigpiod gone, wave could not be built)."""


class FrameTimeout(Exception):
    """No frame arrived within the timeout (normal between triggers and after the trigger stops)."""


@dataclass(frozen=True)
class CameraSettings:
    """How one camera is set up: identity, role in the trigger chain, exposure, gain, ROI, I/O lines.

    Attributes
    ----------
    name : str
        ``[a-z][a-z0-9_]*``: the file stem of the camera's video and frames.csv.
    serial : str
        Serial number (required for PySpin).
    role : {"primary", "secondary"}
        "primary": triggered by the Pi, drives the strobe; "secondary": triggered by the primary's strobe.
    model : str
    pixel_size_um : float, um
    lens_mm : float, mm
        Model, pixel size and lens focal length, copied to session.toml.
    exposure_us : float, us
        Fixed exposure; must fit in the trigger period minus the readout margin.
    gain_db : float, dB
        Fixed gain.
    width, height, offset_x, offset_y : int, px
        The region of interest on the sensor.
    pixel_format : str
        Only "Mono8" is supported end to end.
    trigger_line : str
        The input line of the trigger, e.g. "Line0" (opto-isolated) or "Line3" (GPIO).
    strobe_line : str
        The output line carrying ExposureActive to the secondary ("" for none).
    buffer_count : int
        Driver stream buffers.
    buffer_handling : str
        Must be "OldestFirst" (frames in order).
    """

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
    """One delivered image and its chunk metadata (camera clock, ns).

    Attributes
    ----------
    image : numpy.ndarray, (height, width) uint8
        The image, the receiver's to keep.
    frame_id : int
        The camera's FrameID (a jump of k means k-1 frames lost in transfer).
    timestamp_ns : int, ns
        Exposure timestamp on the camera clock.
    exposure_us : float, us
        The exposure the camera reports.
    incomplete : bool
        The image arrived incomplete.
    """

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
        """Apply exposure, gain, ROI, pixel format, trigger/strobe lines and stream buffering.

        Parameters
        ----------
        settings : CameraSettings
            The camera's settings from the rig config.
        rate_hz : float, Hz
            The trigger rate (the exposure must fit in its period).

        Raises
        ------
        InputError
            If a setting cannot work on this camera (e.g. an exposure that does not fit in the trigger period).
        CameraError
            If the device fails while being configured.
        """

    @abstractmethod
    def start(self) -> None:
        """Arm the camera: from now on every trigger it receives exposes a frame."""

    @abstractmethod
    def get_frame(self, timeout_s: float) -> Frame:
        """Next delivered frame, its image the caller's to keep (the ring holds it without a copy).

        Raises FrameTimeout when none arrives in time, CameraError on failure.

        Parameters
        ----------
        timeout_s : float, s
            How long to wait for a frame.

        Returns
        -------
        Frame

        Raises
        ------
        FrameTimeout
            When no frame arrives within ``timeout_s``.
        CameraError
            On failure of the camera or its stream.
        """

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
        """Start the pulse train; ``on_pulse(tick_us)`` is called for every pulse, in order.

        Parameters
        ----------
        on_pulse : callable
            ``on_pulse(tick_us: int)``, called with the pigpio tick (uint32 us) of every rising edge.

        Raises
        ------
        TriggerError
            If the trigger source cannot start.
        """

    @abstractmethod
    def stop(self) -> None:
        """Stop sending pulses and wait until the last pulse has been reported."""

    @property
    @abstractmethod
    def finished(self) -> bool:
        """True once a finite pulse train has been sent completely (never for an open-ended one)."""

    def close(self) -> None:
        """Release the trigger device (default: nothing to release)."""

    def attach_knob(self, knob) -> None:
        """Read a knob's GPIO inputs (``acquisition.knob_gpio.GpioKnob``) on the trigger's clock.

        Only the pigpio trigger can; this default raises.

        Parameters
        ----------
        knob : GpioKnob
            The knob whose inputs to read.

        Raises
        ------
        TriggerError
            Always here: this trigger has no GPIO inputs ([knob] source = "gpio" needs the pigpio trigger).
        """
        raise TriggerError(f"{type(self).__name__} has no GPIO inputs: [knob] source = \"gpio\" needs the pigpio "
                           "trigger")
