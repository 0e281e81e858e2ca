"""Knob events from a real-time system that runs elsewhere, over UDP (rig.toml ``[knob] source = "network"``).

Message format: one UDP datagram per event, a UTF-8 JSON object::

    {"event": "touch_on", "time_s": 4301.250118}
    {"event": "angle", "time_s": 4301.260000, "angle_deg": 12.5}

``event`` is ``touch_on``, ``touch_off`` or ``angle`` (with ``angle_deg``); ``time_s`` is the event's
time on the neural clock (the trigger pulses' clock: trigger.csv's ``tick_us`` unwrapped across their
uint32 wrap, in seconds, as ``sync.unwrap_ticks`` gives them), so the sender must share that clock (e.g.
a real-time system that logs the same trigger TTL). The recorder checks the clock on arrival against
its latest trigger pulse: an event older than the ring buffer's ``latency_s`` arrived too late to be
sure its window keeps every frame before it (written, counted as late); one more than ``FUTURE_S``
ahead cannot be on the neural clock (dropped, counted). Malformed messages, events before the first
pulse and touches out of order (earlier than one received, or the same kind twice) are dropped and
counted. ``send_event`` (and ``ratpose knob send``) sends one message, for testing a rig.
"""
from __future__ import annotations

import json
import math
import socket
import threading
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .pulse_matcher import PulseLog

EVENTS = ("touch_on", "touch_off", "angle")
FUTURE_S = 1.0  # an event this far ahead of the latest trigger pulse is not on the neural clock
MAX_DATAGRAM = 2048


def parse_address(address: str, where: str = "[knob] listen", *, any_port: bool = True) -> tuple[str, int]:
    """``host:port`` as (host, port); port 0 (the system picks one) only with ``any_port``; InputError naming
    ``where`` otherwise."""
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit() or not (0 if any_port else 1) <= int(port) < 65536:
        raise InputError(f"{where}: expected HOST:PORT (e.g. 0.0.0.0:5556), got {address!r}")
    return host, int(port)


def encode_event(event: str, time_s: float, angle_deg: float | None = None) -> bytes:
    """One message of the format above."""
    if event not in EVENTS:
        raise InputError(f"knob event must be one of {EVENTS}, got {event!r}")
    if (event == "angle") != (angle_deg is not None):
        raise InputError("an 'angle' event needs angle_deg, and only it")
    message = {"event": event, "time_s": float(time_s)}
    if angle_deg is not None:
        message["angle_deg"] = float(angle_deg)
    return json.dumps(message).encode()


def decode_event(data: bytes) -> tuple[str, float, float | None]:
    """(event, time_s, angle_deg or None) of one message; InputError saying what is wrong."""
    try:
        message = json.loads(data.decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise InputError(f"not a UTF-8 JSON object ({type(err).__name__})") from None
    if not isinstance(message, dict) or message.get("event") not in EVENTS:
        raise InputError(f"needs 'event' in {EVENTS}")
    time_s = _finite(message.get("time_s"), "needs a finite number 'time_s' (neural clock, s)")
    if message["event"] == "angle":
        return "angle", time_s, _finite(message.get("angle_deg"), "an 'angle' event needs a finite number 'angle_deg'")
    return message["event"], time_s, None


def _finite(value, problem: str) -> float:
    """``value`` as a finite float (a JSON number, not a bool); InputError(problem) otherwise."""
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise InputError(problem)
    except OverflowError:  # an integer too large for a float
        raise InputError(problem) from None
    return float(value)


def send_event(address: str, event: str, time_s: float, angle_deg: float | None = None) -> None:
    """Send one knob event to a recorder listening at ``address`` (HOST:PORT)."""
    host, port = parse_address(address, "knob send --to", any_port=False)
    message = encode_event(event, time_s, angle_deg)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(message, (host, port))
    except OSError as err:  # an unknown host, no route
        raise InputError(f"knob send --to {address}: {err}") from None


@dataclass
class NetworkReport:
    """What arrived: counts of messages, late and future events, malformed messages (with the first one)."""

    received: int = 0
    late: int = 0
    future: int = 0
    malformed: int = 0
    out_of_order: int = 0        # earlier than one received, or a touch event repeating the previous one
    before_first_pulse: int = 0  # no neural clock to check them against yet
    first_problem: str = ""
    lateness_s: list = field(default_factory=list)

    def warnings(self, latency_s: float) -> list[str]:
        """Sentences for session.toml's warnings (empty when every event was on time and well formed)."""
        out = []
        if self.late:
            out.append(f"knob network: {self.late} of {self.received} event(s) arrived later than latency_s "
                       f"{latency_s:g} s (worst {max(self.lateness_s):.3f} s): their ring windows may miss frames")
        if self.future:
            out.append(f"knob network: {self.future} event(s) more than {FUTURE_S:g} s ahead of the trigger's clock "
                       "were dropped: is the sender on the neural clock?")
        if self.malformed or self.out_of_order or self.before_first_pulse:
            out.append(f"knob network: {self.malformed} malformed message(s), {self.out_of_order} event(s) out of "
                       f"order (earlier than one received, or a touch repeated) and {self.before_first_pulse} "
                       f"before the first trigger pulse dropped ({self.first_problem})")
        return out


class NetworkKnobSource:
    """Knob events arriving over UDP: an event source for the recorder and the ring buffer."""

    def __init__(self, listen: str, latency_s: float, pulses: PulseLog):
        self.address = parse_address(listen)
        self.latency_s, self.pulses = latency_s, pulses
        self.report = NetworkReport()
        self._events: list[tuple[float, str]] = []
        self._angles: list[tuple[float, float]] = []
        self._last_angle_s = self._last_event_s = -np.inf
        self._last_touch = "touch_off"  # the first touch event must be a touch_on
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen (a thread receives until ``stop``)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(self.address)
        except OSError as err:
            sock.close()
            raise InputError(f"[knob] listen {self.address[0]}:{self.address[1]}: cannot listen there ({err})") \
                from None
        sock.settimeout(0.1)
        self._socket = sock
        self._thread = threading.Thread(target=self._receive, name="knob-network", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """The port listened on (the one asked for, or the system's choice for port 0)."""
        return self._socket.getsockname()[1] if self._socket is not None else self.address[1]

    def stop(self) -> None:
        """Stop listening; what arrived stays to be polled."""
        sock, self._socket = self._socket, None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if sock is not None:
            sock.close()

    def _receive(self) -> None:
        sock = self._socket
        while self._socket is sock:
            try:
                data = sock.recv(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self.accept(data)
            except Exception as err:  # a message must never end the listener: count it and go on
                with self._lock:
                    self._problem("malformed", f"{data[:80]!r}: {type(err).__name__}: {err}")

    def accept(self, data: bytes) -> None:
        """One message as it arrives: the clock check, then kept for ``poll``/``poll_angle``."""
        with self._lock:
            self.report.received += 1
            try:
                event, time_s, angle = decode_event(data)
            except InputError as err:
                self._problem("malformed", f"{data[:80]!r}: {err}")
                return
            latest = self.pulses.last()
            if latest is None:  # no neural clock yet: nothing can be checked, so nothing is kept
                self._problem("before_first_pulse", f"{event} at {time_s:.6f} s before the first trigger pulse")
                return
            now_s = latest[1] / 1e6
            if time_s > now_s + FUTURE_S:
                self.report.future += 1
                return
            if now_s - time_s > self.latency_s:
                self.report.late += 1
                self.report.lateness_s.append(now_s - time_s)
            last = self._last_angle_s if event == "angle" else self._last_event_s
            if time_s < last or (event == "angle" and time_s == last):  # the files are in time order
                self._problem("out_of_order", f"{event} at {time_s:.6f} s after one at {last:.6f} s")
                return
            if event == self._last_touch:  # a lost or repeated message: touches must alternate on and off
                self._problem("out_of_order", f"{event} at {time_s:.6f} s after another {event}")
                return
            if event != "angle":
                self._last_touch = event
            if event == "angle":
                self._last_angle_s = time_s
                self._angles.append((time_s, angle))
            else:
                self._last_event_s = time_s
                self._events.append((time_s, event))

    def _problem(self, kind: str, what: str) -> None:
        setattr(self.report, kind, getattr(self.report, kind) + 1)
        self.report.first_problem = self.report.first_problem or what

    def poll(self, now_s: float) -> list[tuple[float, str]]:
        """Touch events received so far (a late one still counts), in time order."""
        with self._lock:
            events, self._events = self._events, []
        return events

    def poll_angle(self, now_s: float) -> np.ndarray:
        """Angle samples (time_s, angle_deg) received so far, in time order."""
        with self._lock:
            angles, self._angles = self._angles, []
        return np.asarray(angles, dtype=np.float64).reshape(-1, 2)
