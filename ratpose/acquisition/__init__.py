"""Acquisition: synchronised two-camera recording (PySpin + pigpio, or simulated) with a pre-event ring buffer.

Only the CLI imports this package (``ratpose record --config rig.toml OUT_DIR`` calls :func:`record`).
"""
from ratpose.acquisition.backends import (
    AcquisitionError,
    CameraBackend,
    CameraError,
    CameraSettings,
    Frame,
    FrameTimeout,
    TriggerBackend,
    TriggerError,
)
from ratpose.acquisition.config import (
    RigConfigError,
    RigSettings,
    load_rig_config,
    rig_config_from_dict,
)
from ratpose.acquisition.recorder import (
    CameraReport,
    Recorder,
    RecordingResult,
    build_hardware_backends,
    build_simulated_backends,
    record,
)

__all__ = ["AcquisitionError", "CameraBackend", "CameraError", "CameraSettings", "Frame", "FrameTimeout",
           "TriggerBackend", "TriggerError", "RigSettings", "RigConfigError", "load_rig_config",
           "rig_config_from_dict", "CameraReport", "Recorder", "RecordingResult", "build_hardware_backends",
           "build_simulated_backends", "record"]
