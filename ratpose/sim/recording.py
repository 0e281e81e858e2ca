"""A long simulated recording without video, for the analyses: 3D pose as Pose3D would give it, spikes of
units tuned to the forelimb's continuous variables (``neural.encoding_units``), the knob's log.

Minutes of session in seconds: the 3D truth of the scene at the frame times plus a reconstruction error
(independent Gaussian per coordinate, ``pose_noise_mm``, the order of Pose3D's on the simulated rig), no
rendering, no 2D. Everything the analyses need to be checked against is kept: the units' true parameters and
rates (``rates``), the scene.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ..poses import pose_dataset
from .neural import UnitModel, encoding_units, knob_angle_log, simulate_spikes, unit_rates
from .scene import BODYPARTS, Scene, make_scene


@dataclass
class SimulatedRecording:
    """What ``simulate_recording`` returns: inputs in the forms the analyses take, and the truth."""
    poses: xr.Dataset                       # ratpose.poses' form, neural clock
    spike_times: dict[int, np.ndarray]      # unit_id -> s
    units: tuple[UnitModel, ...]
    unit_table: pd.DataFrame                # metadata indexed by unit_id (tetrode, kind)
    touch_intervals: np.ndarray             # (n, 2) s; a touch still on at the end closes there
    angle_time_s: np.ndarray
    angle_deg: np.ndarray
    scene: Scene

    def rates(self, t: np.ndarray) -> np.ndarray:
        """True rates (n_units, T) Hz at times t."""
        return unit_rates(self.units, self.scene, t)


def simulate_recording(seconds: float = 600.0, n_units: int = 30, *, fps: float = 100.0, seed: int = 0,
                       pose_noise_mm: float = 0.3, roll_jitter_deg: float = 5.0,
                       units: tuple[UnitModel, ...] | None = None) -> SimulatedRecording:
    """Simulate ``seconds`` of the knob task as pose + spikes + knob log (see the module).

    Parameters
    ----------
    seconds : float, s
    n_units : int
        Units of ``encoding_units`` (ignored when ``units`` is given).
    fps : float, frames/s
    seed : int
    pose_noise_mm : float, mm
        Std of the 3D reconstruction error per coordinate.
    roll_jitter_deg : float, deg
        The hand's own pronation/supination movements (``make_scene``): a rat's hand is never still.
    units : tuple of UnitModel, optional

    Returns
    -------
    SimulatedRecording
    """
    rng = np.random.default_rng(seed)
    scene = make_scene(0.0, seconds, seed=seed, roll_jitter_deg=roll_jitter_deg)
    t = np.arange(0.0, seconds, 1.0 / fps)
    points = scene.keypoints(t) + rng.normal(0.0, pose_noise_mm, (len(t), len(BODYPARTS), 3))
    poses = pose_dataset(points, BODYPARTS, t, sigma_mm=np.full(points.shape[:2], pose_noise_mm))
    units = encoding_units(n_units, seed=seed) if units is None else units
    ids, times = simulate_spikes(units, scene, 0.0, seconds, rng)
    angle_time, angle = knob_angle_log(scene, 0.0, seconds)
    table = pd.DataFrame([{"unit_id": u.unit_id, "tetrode": u.tetrode, "kind": u.kind} for u in units],
                         columns=["unit_id", "tetrode", "kind"]).set_index("unit_id")
    return SimulatedRecording(poses=poses, spike_times={u.unit_id: times[ids == u.unit_id] for u in units},
                              units=units, unit_table=table,
                              touch_intervals=np.nan_to_num(scene.touch_intervals(0.0, seconds), nan=t[-1]),
                              angle_time_s=angle_time, angle_deg=angle, scene=scene)
