"""The simulator's ground truth of a session, saved in SESSION_DIR/ground_truth/ (npz + json).

The pipeline never reads it; tests, benchmarks and the demo compare the pipeline's results to it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ratpose.rig import Rig

from .clocks import CameraFrames
from .neural import UnitModel, unit_rates
from .scene import BODYPARTS, Scene

TRUTH_DIR = "ground_truth"
_NPZ, _JSON = "truth.npz", "truth.json"
_FRAME_FIELDS = ("frame_id", "camera_ts_ns", "pulse_index", "lost_pulses", "missed_pulses")


@dataclass
class GroundTruth:
    """Everything true about a simulated session.

    Per pulse (N pulses): tick_us, pulse_time_s (neural clock), points3d (N, P, 3) world mm in BODYPARTS
    order, visible (N, C, P) whether each keypoint is drawn in each camera, knob_angle_deg (N,).
    cameras: per camera name, the clock truth (delivered frame i shows pulse pulse_index[i]).
    touch_intervals (n, 2) on the neural clock (NaN off: still touching at the end).
    units and the scene give every unit's rate at any time (``rates``); spikes as written.

    Attributes
    ----------
    config : dict
        The SessionSettings the session was written with, as a dict.
    rig : Rig
        The simulated rig (camera 0's frame).
    scene : Scene
    tick_us : numpy.ndarray, (N,), us
        The Pi's trigger log (uint32 ticks).
    pulse_time_s : numpy.ndarray, (N,), s
    points3d : numpy.ndarray, (N, P, 3), mm
    visible : numpy.ndarray, (N, C, P) bool
    knob_angle_deg : numpy.ndarray, (N,), deg
    cameras : dict of str to CameraFrames
    touch_intervals : numpy.ndarray, (n, 2), s
    units : tuple of UnitModel
    spike_unit_id : numpy.ndarray, (n_spikes,) int64
    spike_time_s : numpy.ndarray, (n_spikes,), s
        The spikes written, sorted by time.
    bodyparts : tuple of str
    """

    config: dict
    rig: Rig
    scene: Scene
    tick_us: np.ndarray
    pulse_time_s: np.ndarray
    points3d: np.ndarray
    visible: np.ndarray
    knob_angle_deg: np.ndarray
    cameras: dict[str, CameraFrames]
    touch_intervals: np.ndarray
    units: tuple[UnitModel, ...]
    spike_unit_id: np.ndarray
    spike_time_s: np.ndarray
    bodyparts: tuple[str, ...] = BODYPARTS

    @property
    def knob_center(self) -> np.ndarray:
        return self.scene.knob_center

    @property
    def knob_radius_mm(self) -> float:
        return self.scene.knob_radius_mm

    def points2d(self) -> np.ndarray:
        """True pixel positions (C, N, P, 2) of every keypoint at every pulse (drawn or not)."""
        return self.rig.project(self.points3d)

    def frame_points3d(self, camera: str) -> np.ndarray:
        """True 3D keypoints (F, P, 3) behind each delivered video frame of ``camera``.

        Parameters
        ----------
        camera : str
            A camera name of the rig.

        Returns
        -------
        numpy.ndarray, (F, P, 3), mm
        """
        return self.points3d[self.cameras[camera].pulse_index]

    def rates(self, t: np.ndarray) -> np.ndarray:
        """Every unit's true firing rate (n_units, T) in Hz at neural times t.

        Parameters
        ----------
        t : array_like, (T,), s

        Returns
        -------
        numpy.ndarray, (n_units, T), Hz
        """
        return unit_rates(self.units, self.scene, t)

    def save(self, session_dir) -> Path:
        """Write SESSION_DIR/ground_truth/truth.npz and truth.json; returns that folder.

        Parameters
        ----------
        session_dir : str or Path

        Returns
        -------
        Path
            SESSION_DIR/ground_truth.
        """
        folder = Path(session_dir) / TRUTH_DIR
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {f"scene_{k}": v for k, v in self.scene.to_arrays().items()}
        for name, frames in self.cameras.items():
            arrays.update({f"camera_{name}_{f}": getattr(frames, f) for f in _FRAME_FIELDS})
        arrays.update(tick_us=self.tick_us, pulse_time_s=self.pulse_time_s, points3d=self.points3d,
                      visible=self.visible, knob_angle_deg=self.knob_angle_deg,
                      touch_intervals=self.touch_intervals.reshape(-1, 2),
                      spike_unit_id=self.spike_unit_id, spike_time_s=self.spike_time_s)
        np.savez_compressed(folder / _NPZ, **arrays)
        meta = {"config": self.config, "rig": self.rig.to_dict(), "bodyparts": list(self.bodyparts),
                "camera_names": list(self.cameras), "units": [u.to_dict() for u in self.units],
                "knob": {"center_mm": self.knob_center.tolist(), "radius_mm": self.knob_radius_mm,
                         "axis": self.scene.knob_axis.tolist(), "touch_distance_mm": self.scene.touch_distance_mm}}
        (folder / _JSON).write_text(json.dumps(meta, indent=1))
        return folder


def load_ground_truth(path) -> GroundTruth:
    """Load the ground truth of a simulated session (``path``: the session folder or its ground_truth/).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    GroundTruth

    Raises
    ------
    FileNotFoundError
        If there is no truth.npz and truth.json.
    """
    folder = Path(path)
    if not (folder / _NPZ).exists():
        folder = folder / TRUTH_DIR
    if not (folder / _NPZ).exists() or not (folder / _JSON).exists():
        raise FileNotFoundError(f"no simulator ground truth ({_NPZ}, {_JSON}) in {path}")
    meta = json.loads((folder / _JSON).read_text())
    with np.load(folder / _NPZ) as z:
        arrays = {k: z[k] for k in z.files}
    scene = Scene.from_arrays({k[len("scene_"):]: v for k, v in arrays.items() if k.startswith("scene_")})
    cameras = {name: CameraFrames(**{f: arrays[f"camera_{name}_{f}"] for f in _FRAME_FIELDS})
               for name in meta["camera_names"]}
    return GroundTruth(config=meta["config"], rig=Rig.from_dict(meta["rig"]), scene=scene,
                       tick_us=arrays["tick_us"], pulse_time_s=arrays["pulse_time_s"], points3d=arrays["points3d"],
                       visible=arrays["visible"], knob_angle_deg=arrays["knob_angle_deg"], cameras=cameras,
                       touch_intervals=arrays["touch_intervals"], units=tuple(UnitModel(**u) for u in meta["units"]),
                       spike_unit_id=arrays["spike_unit_id"], spike_time_s=arrays["spike_time_s"],
                       bodyparts=tuple(meta["bodyparts"]))
