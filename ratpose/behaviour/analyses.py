"""What the analysis tables compute: knob validation, movement events and per-unit tuning (no database).

Each function composes the pure modules (kinematics, validation, tuning) for one table's make().
The rig's lab frame comes from the knob's rotation ``axis`` and the world's ``up`` (both in the
calibration frame, stored with the Knob); horizontal directions are measured from axis x up.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .kinematics import EVENT_NAMES, detect_events, movement_direction, pose_at, speed
from .tuning import DirectionTuning, ShuffleTest, direction_tuning, peth, shuffle_test
from .knob import Knob
from .validation import KnobValidationResult, validate_against_knob


@dataclass(frozen=True)
class AnalysisSettings:
    """Body parts and thresholds of the behaviour analyses (one row of AnalysisParams)."""

    paw: str = "paw"
    roll_from: str = "digit1"   # the hand's roll during turns: angle of roll_to - roll_from about the knob axis
    roll_to: str = "digit2"     # (the digit span: twice the lever of paw -> digit1, so half the angle noise)
    marker: str = "knob_marker"
    distance_mm: float = 5.0
    speed_threshold_mm_s: float = 50.0
    smooth_s: float = 0.02
    speed_bin_mm_s: float = 25.0  # a rat's paw reaches at several hundred mm/s
    max_speed_mm_s: float = 500.0
    min_speed_for_direction_mm_s: float = 20.0
    n_shuffles: int = 500
    min_shift_s: float = 5.0
    min_occupancy_s: float = 0.5
    peth_window_s: float = 1.0
    peth_bin_s: float = 0.05
    seed: int = 0


@dataclass(frozen=True)
class UnitAnalysis:
    """One unit against the pose: paw position/speed at each spike, tuning and PETHs."""

    paw_at_spike: np.ndarray      # (n_spikes, 3) mm, NaN where the pose is unknown
    speed_at_spike: np.ndarray    # (n_spikes,) mm/s
    speed: ShuffleTest
    direction: DirectionTuning
    peths: dict                   # event name -> tuning.PETH

    @property
    def test_note(self) -> str:
        """Which shuffle tests did not run and why ('' when both ran)."""
        tests = {}
        for test, note in (("speed", self.speed.note), ("direction", self.direction.note)):
            if note:
                tests.setdefault(note, []).append(test)
        return "; ".join(f"{' and '.join(names)} test{'s' * (len(names) > 1)} not run: {note}"
                         for note, names in tests.items())


def touch_intervals(touch_on_s: np.ndarray, touch_off_s: np.ndarray, end_s: float) -> np.ndarray:
    """Touch intervals (n, 2) from the knob log; a touch still on at the end closes at ``end_s``."""
    on, off = np.asarray(touch_on_s, float), np.asarray(touch_off_s, float)
    if len(off) == len(on) - 1:
        off = np.append(off, max(end_s, on[-1]))
    if len(off) != len(on):
        raise ValueError(f"knob log has {len(on)} touch_on but {len(off)} touch_off events")
    return np.column_stack([on, off]) if len(on) else np.empty((0, 2))


def validate_session(times_s, parts: dict[str, np.ndarray], knob: Knob, knob_log: dict,
                     settings: AnalysisSettings) -> KnobValidationResult:
    """Knob validation of one session's 3D pose (parts: body part -> (n_frames, 3) mm)."""
    intervals = touch_intervals(knob_log["touch_on_s"], knob_log["touch_off_s"], float(times_s[-1]))
    return validate_against_knob(times_s, parts[settings.paw], knob, intervals, knob_log["angle_time_s"],
                                 knob_log["angle_deg"], digit_xyz=parts.get(settings.roll_to),
                                 digit_base_xyz=parts.get(settings.roll_from),
                                 knob_marker_xyz=parts.get(settings.marker), distance_mm=settings.distance_mm)


def session_events(times_s, parts: dict[str, np.ndarray], knob: Knob, knob_log: dict,
                   settings: AnalysisSettings) -> pd.DataFrame:
    """Movement events (reach onset, paw arrival, touch, turn start/end, release) on the neural clock."""
    intervals = touch_intervals(knob_log["touch_on_s"], knob_log["touch_off_s"], float(times_s[-1]))
    return detect_events(times_s, parts[settings.paw], knob, intervals, knob_log["angle_time_s"],
                         knob_log["angle_deg"], speed_threshold_mm_s=settings.speed_threshold_mm_s,
                         arrival_distance_mm=settings.distance_mm, smooth_s=settings.smooth_s)


def analyse_unit(spike_times, times_s, paw_xyz, knob: Knob, up: np.ndarray, events: pd.DataFrame,
                 settings: AnalysisSettings) -> UnitAnalysis:
    """Pose at each spike, speed tuning and direction tuning with shuffle tests, and PETHs per event.

    Directions are horizontal (perpendicular to ``up``), measured from knob axis x up. A test the data
    are too few for is not run (``test_note`` says why); the curves are still computed.
    """
    if knob.axis is None:
        raise ValueError("the knob needs its rotation axis for direction tuning")
    spike_times = np.asarray(spike_times, dtype=np.float64)
    paw_speed = speed(times_s, paw_xyz[:, None], smooth_s=settings.smooth_s)[:, 0]
    reference = np.cross(knob.axis, up)
    direction = movement_direction(times_s, paw_xyz[:, None], up=up, reference=reference,
                                   smooth_s=settings.smooth_s,
                                   min_speed_mm_s=settings.min_speed_for_direction_mm_s)[:, 0]
    bins = np.arange(0.0, settings.max_speed_mm_s + settings.speed_bin_mm_s, settings.speed_bin_mm_s)
    common = dict(n_shuffles=settings.n_shuffles, seed=settings.seed, min_shift_s=settings.min_shift_s,
                  min_occupancy_s=settings.min_occupancy_s)
    speed_test = shuffle_test(spike_times, times_s, paw_speed, bins, **common)
    direction_test = direction_tuning(spike_times, times_s, direction, **common)
    window = (-settings.peth_window_s, settings.peth_window_s)
    peths = {name: peth(spike_times, events.loc[events.event == name, "time_s"].to_numpy(), window,
                        settings.peth_bin_s)
             for name in EVENT_NAMES if (events.event == name).any()}
    return UnitAnalysis(paw_at_spike=pose_at(spike_times, times_s, paw_xyz),
                        speed_at_spike=pose_at(spike_times, times_s, paw_speed),
                        speed=speed_test, direction=direction_test, peths=peths)
