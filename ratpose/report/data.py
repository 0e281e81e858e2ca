"""What a session report shows, as plain arrays and dataclasses (filled from the database by
ratpose.schema.report_data, drawn by ratpose.report.build)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from ..behaviour.validation import KnobValidationResult
from ..calibration.qc import CameraQuality
from ..poses import positions
from ..sync import pulse_rows


@dataclass(frozen=True)
class CameraSync:
    """One camera's synchronisation: delivered frame times and dropped pulse times (neural clock, s)."""

    camera: str
    time_s: np.ndarray
    dropped_s: np.ndarray
    lost_in_transfer: int
    missed_trigger: int
    drift_ppm: float
    residual_rms_s: float
    residual_max_s: float


@dataclass(frozen=True)
class CameraTrack:
    """2D pose of one camera's video: (n_frames, n_parts) arrays, row i = video frame i."""

    camera: str
    time_s: np.ndarray
    x: np.ndarray
    y: np.ndarray
    likelihood: np.ndarray

    @property
    def points(self) -> np.ndarray:
        """(n_frames, n_parts, 2) pixel coordinates."""
        return np.stack([self.x, self.y], axis=-1)


@dataclass(frozen=True)
class UnitPlot:
    """A unit's stored tuning: speed and direction curves, PETHs (event -> (centres_s, rate_hz, sem_hz))."""

    unit_id: int
    tetrode: int
    n_spikes: int
    speed_centres: np.ndarray
    speed_rate_hz: np.ndarray
    speed_p_value: float | None    # None: the shuffle test did not run (test_note says why)
    direction_centres: np.ndarray | None
    direction_rate_hz: np.ndarray | None
    direction_p_value: float | None
    peths: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    test_note: str = ""


@dataclass(frozen=True)
class ExampleFrame:
    """One video frame with its 2D detections and the reprojected 3D points ((n_parts, 2) px, NaN = none)."""

    camera: str
    pulse: int
    time_s: float
    image: np.ndarray
    points2d: np.ndarray
    likelihood: np.ndarray
    reprojected: np.ndarray


@dataclass
class SessionReport:
    """Everything one session's report shows; a section whose data are missing is None/empty and
    ``missing`` says why (section name -> reason)."""

    title: str
    info: dict[str, str]
    bodyparts: tuple[str, ...]
    min_likelihood: float
    qc: dict[str, str] = field(default_factory=dict)
    sync: list[CameraSync] = field(default_factory=list)
    calibration: list[CameraQuality] = field(default_factory=list)
    calibration_rms_px: float = float("nan")
    calibration_joint_instants: int = 0
    tracks: list[CameraTrack] = field(default_factory=list)
    pose3d: xr.Dataset | None = None  # ratpose.poses' form, keypoints in ``bodyparts``' order
    #: per body part the 3D priors learned (acceleration) and, with 3+ cameras, the leave-one-camera-out
    #: reprojection error (camera -> px): {part: {"accel_mm_s2": float | None, "held_out_px": {camera: px}}}
    pose3d_validation: dict[str, dict] = field(default_factory=dict)
    validation: KnobValidationResult | None = None
    units: list[UnitPlot] = field(default_factory=list)
    #: UnitEncoding.Unit rows (filters, filter_se, pseudo_r2, group_r2, p_value, tuned) and the filters' lags (s)
    encoding: list[dict] = field(default_factory=list)
    encoding_lags_s: np.ndarray | None = None
    #: the PopulationDecoding row (R^2 per decoder and variable, held-out predictions)
    decoding: dict | None = None
    examples: list[ExampleFrame] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)


def reproject_to_frames(frame_pulses, pose: xr.Dataset, camera) -> np.ndarray:
    """3D pose projected into one camera (a ratpose.rig.CameraModel), per video frame: (n_frames, n_parts, 2) px.

    frame_pulses: the pulse index of each video frame (SyncedFrames); frames without a 3D pose get NaN.
    """
    xyz = positions(pose)
    out = np.full((len(frame_pulses), xyz.shape[1], 2), np.nan)
    rows, found = pulse_rows(frame_pulses, pose.pulse_index.values)
    out[rows[found]] = camera.project(xyz[found])
    return out
