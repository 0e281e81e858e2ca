"""Behaviour: kinematics of 3D pose on the neural clock, the knob (its model and fit), validation of
tracking against the knob's own sensor, neural tuning (PETHs, tuning curves, shuffle tests), and
what the analysis tables compute. Pure numpy/scipy/pandas; no database.
"""
from .analyses import (
    AnalysisSettings,
    UnitAnalysis,
    analyse_unit,
    session_events,
    touch_intervals,
    validate_session,
)
from .kinematics import (
    EVENT_NAMES,
    as_intervals,
    as_times,
    detect_events,
    movement_direction,
    paw_arrivals,
    plane_basis,
    pose_at,
    speed,
    turn_intervals,
    velocity,
)
from .knob import KnobModel
from .tuning import (
    PETH,
    DirectionTuning,
    ShuffleTest,
    TuningCurve,
    direction_tuning,
    peth,
    shuffle_test,
    tuning_curve,
)
from .validation import (
    KnobValidationResult,
    RotationAgreement,
    ValidationSettings,
    plot_knob_validation,
    rotation_agreement,
    validate_against_knob,
)

__all__ = [
    "EVENT_NAMES", "PETH", "AnalysisSettings", "DirectionTuning", "KnobModel", "KnobValidationResult",
    "RotationAgreement", "ShuffleTest", "TuningCurve", "UnitAnalysis", "ValidationSettings", "analyse_unit",
    "as_intervals", "as_times", "detect_events", "direction_tuning", "movement_direction", "paw_arrivals", "peth",
    "plane_basis", "plot_knob_validation", "pose_at", "rotation_agreement", "session_events", "shuffle_test",
    "speed", "touch_intervals", "tuning_curve", "turn_intervals", "validate_against_knob", "validate_session",
    "velocity",
]
