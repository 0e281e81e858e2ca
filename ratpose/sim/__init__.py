"""The synthetic rig: ground-truth sessions for tests, benchmarks and the demo.

DLC training data: ``write_labeled_frames(path, n_frames, size, seed, scorer="sim")`` lives in
ratpose/sim/labeled.py (re-exported here); body parts are ``BODYPARTS``.
Sessions: ``write_session(path, SessionSettings(...)) -> GroundTruth``; ``load_ground_truth(path)``.
Demo material (session + calibration + labeled frames): ``write_rig_dataset(root, config)``.
DeepLabCut's outputs without a network (the truth through DLC-like errors, ``pose2d.DlcErrors``):
``write_dlc_outputs(truth, folder)``.
Long recordings for the analyses, no video (3D pose, units with known filters, knob log):
``simulate_recording(seconds, n_units) -> SimulatedRecording``.
"""
from .cameras import default_rig, focal_length_px, rig_and_lab_frame
from .labeled import labeled_dataframe, write_labeled_frames
from .neural import UnitModel, default_units, encoding_units, simulate_spikes, unit_rates
from .pose2d import dlc_dataframe, write_dlc_outputs
from .recording import SimulatedRecording, simulate_recording
from .render import BLOB_STYLES, SensorNoise, render_background, render_frame
from .scene import BODYPARTS, Scene, make_scene
from .session import (
           SessionSettings,
           session_backgrounds,
           write_rig_dataset,
           write_session,
)
from .truth import GroundTruth, load_ground_truth

__all__ = ["BLOB_STYLES", "BODYPARTS", "GroundTruth", "Scene", "SensorNoise", "SessionSettings", "SimulatedRecording",
           "UnitModel", "default_rig", "default_units", "dlc_dataframe", "encoding_units", "focal_length_px",
           "labeled_dataframe", "load_ground_truth", "make_scene", "render_background", "render_frame",
           "rig_and_lab_frame", "session_backgrounds", "simulate_recording", "simulate_spikes", "unit_rates",
           "write_dlc_outputs", "write_labeled_frames", "write_rig_dataset", "write_session"]
