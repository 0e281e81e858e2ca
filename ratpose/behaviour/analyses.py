"""What the analysis tables compute: knob validation, movement events and per-unit tuning (no database).

Each function composes the pure modules (kinematics, validation, tuning) for one table's make().
The rig's lab frame comes from the knob's rotation ``axis`` and the world's ``up`` (both in the
calibration frame, stored with the Knob); horizontal directions are measured from axis x up.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import DataError
from ..poses import keypoint_names, position_of
from .kinematics import EVENT_NAMES, detect_events, movement_direction, pose_at, speed
from .knob import KnobModel
from .tuning import DirectionTuning, ShuffleTest, direction_tuning, peth, shuffle_test
from .validation import KnobValidationResult, validate_against_knob


@dataclass(frozen=True)
class AnalysisSettings:
    """Body parts and thresholds of the behaviour analyses (one row of AnalysisParams).

    Attributes
    ----------
    paw : str
        The paw's body part.
    marker : str
        The body part of the marker that turns with the knob (used when the pose has it).
    distance_mm : float, mm
        Paw-to-knob distance within which the paw is at the knob (validation and paw arrival).
    speed_threshold_mm_s : float, mm/s
        Paw speed whose last upward crossing before arrival is the reach onset.
    smooth_s : float, s
        Gaussian smoothing (sigma) of the paw's velocity.
    max_speed_mm_s : float, mm/s
        Upper edge of the speed bins of the speed tuning (bins of ``speed_bin_mm_s`` from 0).
    min_speed_for_direction_mm_s : float, mm/s
        Horizontal paw speed below which the movement direction is undefined.
    n_shuffles : int
        Circular shifts of each shuffle test.
    min_shift_s : float, s
        Smallest circular shift of the spike train in the shuffle tests.
    min_occupancy_s : float, s
        Bins occupied for less than this get no rate.
    peth_window_s : float, s
        PETHs cover (-peth_window_s, peth_window_s) about each event.
    peth_bin_s : float, s
        Bin width of the PETHs.
    seed : int
        Seed of the shuffle tests' random shifts.
    """

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
    """One unit against the pose: paw position/speed at each spike, tuning and PETHs.

    Attributes
    ----------
    paw_at_spike : numpy.ndarray, (n_spikes, 3), mm
        NaN where the pose is unknown.
    speed_at_spike : numpy.ndarray, (n_spikes,), mm/s
    speed : ShuffleTest
        Speed tuning and its shuffle test.
    direction : DirectionTuning
        Horizontal movement-direction tuning and its shuffle test.
    peths : dict of str to PETH
        Per event name (of the events the session has), the PETH.
    """

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
    """Touch intervals (n, 2) from the knob log; a touch still on at the end closes at ``end_s``.

    Parameters
    ----------
    touch_on_s : numpy.ndarray, (n,), s
        Touch onsets on the neural clock.
    touch_off_s : numpy.ndarray, (n,) or (n - 1,), s
        Touch offsets; one fewer when the last touch is still on at the end.
    end_s : float, s
        End of the recording (a still-open touch closes at ``max(end_s, its onset)``).

    Returns
    -------
    numpy.ndarray, (n, 2) float64, s
        (start, end) of each touch.

    Raises
    ------
    DataError
        If the numbers of touch_on and touch_off events do not fit.
    """
    on, off = np.asarray(touch_on_s, float), np.asarray(touch_off_s, float)
    if len(off) == len(on) - 1:
        off = np.append(off, max(end_s, on[-1]))
    if len(off) != len(on):
        raise DataError(f"knob log has {len(on)} touch_on but {len(off)} touch_off events")
    return np.column_stack([on, off]) if len(on) else np.empty((0, 2))


def validate_session(poses: xr.Dataset, knob: KnobModel, knob_log: dict,
                     settings: AnalysisSettings) -> KnobValidationResult:
    """Knob validation of one session's 3D pose (``ratpose.poses``' form; body parts named by ``settings``).

    Parameters
    ----------
    poses : xarray.Dataset
        The session's 3D pose (``ratpose.poses``' form), times on the neural clock.
    knob : KnobModel
        The knob in the pose's world frame.
    knob_log : dict
        The session's knob log (a raw.KnobLog row): ``touch_on_s``, ``touch_off_s`` (neural clock, s),
        ``angle_time_s`` (s) and ``angle_deg`` (deg).
    settings : AnalysisSettings
        Body parts (paw; digits and knob marker where the pose has them) and ``distance_mm``.

    Returns
    -------
    KnobValidationResult

    Raises
    ------
    InputError
        If the pose has no keypoint named ``settings.paw``.
    DataError
        If the knob log's touches do not pair up, or inputs do not fit (see ``validate_against_knob``).
    """
    times_s = poses.time.values
    intervals = touch_intervals(knob_log["touch_on_s"], knob_log["touch_off_s"], float(times_s[-1]))
    names = set(keypoint_names(poses))
    optional = {part: position_of(poses, part) if part in names else None
                for part in (settings.roll_to, settings.roll_from, settings.marker)}
    return validate_against_knob(times_s, position_of(poses, settings.paw), knob, intervals,
                                 knob_log["angle_time_s"], knob_log["angle_deg"],
                                 digit_xyz=optional[settings.roll_to], digit_base_xyz=optional[settings.roll_from],
                                 knob_marker_xyz=optional[settings.marker], distance_mm=settings.distance_mm)


def session_events(poses: xr.Dataset, knob: KnobModel, knob_log: dict, settings: AnalysisSettings) -> pd.DataFrame:
    """Movement events (reach onset, paw arrival, touch, turn start/end, release) on the neural clock.

    They are found from the paw of one session's 3D pose (``ratpose.poses``' form); see ``detect_events``.

    Parameters
    ----------
    poses : xarray.Dataset
        The session's 3D pose, times on the neural clock.
    knob : KnobModel
        The knob in the pose's world frame.
    knob_log : dict
        The session's knob log (a raw.KnobLog row): ``touch_on_s``, ``touch_off_s`` (neural clock, s),
        ``angle_time_s`` (s) and ``angle_deg`` (deg).
    settings : AnalysisSettings
        The paw's body part, ``speed_threshold_mm_s``, ``distance_mm`` (arrival) and ``smooth_s``.

    Returns
    -------
    pandas.DataFrame
        Columns trial, event, time_s (s), sorted by time.

    Raises
    ------
    InputError
        If the pose has no keypoint named ``settings.paw``.
    DataError
        If the knob log's touches do not pair up, or inputs do not fit.
    """
    times_s = poses.time.values
    intervals = touch_intervals(knob_log["touch_on_s"], knob_log["touch_off_s"], float(times_s[-1]))
    return detect_events(times_s, position_of(poses, settings.paw), knob, intervals, knob_log["angle_time_s"],
                         knob_log["angle_deg"], speed_threshold_mm_s=settings.speed_threshold_mm_s,
                         arrival_distance_mm=settings.distance_mm, smooth_s=settings.smooth_s)


def analyse_unit(spike_times, times_s, paw_xyz, knob: KnobModel, up: np.ndarray, events: pd.DataFrame,
                 settings: AnalysisSettings) -> UnitAnalysis:
    """Pose at each spike, speed tuning and direction tuning with shuffle tests, and PETHs per event.

    Directions are horizontal (perpendicular to ``up``), measured from knob axis x up. A test the data
    are too few for is not run (``test_note`` says why); the curves are still computed.

    Parameters
    ----------
    spike_times : array_like, (n_spikes,), s
        The unit's spike times on the neural clock, sorted.
    times_s : numpy.ndarray, (n_frames,), s
        Pose times on the neural clock, strictly increasing.
    paw_xyz : numpy.ndarray, (n_frames, 3), mm
        The paw's position per frame (NaN where unknown).
    knob : KnobModel
        The knob; needs its rotation ``axis``.
    up : numpy.ndarray, (3,)
        The world's vertical in the pose's frame.
    events : pandas.DataFrame
        Movement events (columns trial, event, time_s), e.g. from ``session_events``.
    settings : AnalysisSettings
        Smoothing, speed bins, shuffle-test and PETH settings.

    Returns
    -------
    UnitAnalysis

    Raises
    ------
    DataError
        If the knob has no rotation axis, or the inputs do not fit (e.g. unsorted times).
    """
    if knob.axis is None:
        raise DataError("the knob needs its rotation axis for direction tuning")
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
