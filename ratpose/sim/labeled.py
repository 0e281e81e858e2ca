"""DeepLabCut labeled-data from the simulator: images + CollectedData_<scorer>.h5/.csv."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ratpose.pose2d.labeling import collected_data
from ratpose.rig import CameraModel

from ..errors import InputError
from .cameras import rig_and_lab_frame
from .render import SensorNoise, in_image, render_background, render_frame
from .scene import BODYPARTS, PHASES, make_scene

#: CameraModel pose perturbation per labeled image (rotation deg, translation mm), so models generalise.
_POSE_JITTER = (1.0, 2.0)


def _perturbed(camera: CameraModel, rng: np.random.Generator) -> CameraModel:
    rvec = np.deg2rad(rng.normal(0.0, _POSE_JITTER[0], 3))
    dR = cv2.Rodrigues(rvec)[0]
    return replace(camera, R=dR @ camera.R, t=dR @ camera.t + rng.normal(0.0, _POSE_JITTER[1], 3))


def labeled_dataframe(coords: np.ndarray, video_name: str, image_names: list[str], scorer: str) -> pd.DataFrame:
    """DeepLabCut's CollectedData table of the simulator's body parts (``collected_data``).

    Parameters
    ----------
    coords : numpy.ndarray, (n_images, len(BODYPARTS), 2), px
        NaN = unlabeled.
    video_name : str
    image_names : list of str
    scorer : str

    Returns
    -------
    pandas.DataFrame
        Rows ('labeled-data', video, image), columns (scorer, bodyparts, coords).
    """
    return collected_data(coords, video_name, image_names, BODYPARTS, scorer)


def write_labeled_frames(path, n_frames: int, size: tuple[int, int] = (160, 128), seed: int = 0,
                         scorer: str = "sim", noise_std: float = 2.0, n_cameras: int = 2,
                         occlusion_prob: float = 0.03) -> Path:
    """Write a DeepLabCut labeled-data folder at ``path`` (its name is the 'video' name).

    It holds img0000.png... and CollectedData_<scorer>.h5/.csv, from poses drawn evenly over the trial phases
    (idle ... turned ... withdraw), seen by each camera of the simulated rig in turn, slightly
    perturbed, on the default sensor with ``noise_std`` DN of read noise (0: noise-free). Occluded/out-of-image
    keypoints are NaN.
    Returns ``path``. Body parts are ``ratpose.sim.BODYPARTS``.

    Parameters
    ----------
    path : str or Path
    n_frames : int
        Must be >= 1.
    size : tuple of int, (width, height), px
    seed : int
    scorer : str
        Non-empty, without '/'.
    noise_std : float, DN
    n_cameras : int
    occlusion_prob : float
        Probability that a keypoint is occluded in an image.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        If ``n_frames`` < 1, ``scorer`` is empty or has a '/', or ``n_cameras`` or ``size`` is out of range.
    OSError
        If an image cannot be written.
    """
    path = Path(path)
    if n_frames < 1:
        raise InputError(f"n_frames must be >= 1, got {n_frames}")
    if not scorer or "/" in scorer:
        raise InputError(f"scorer must be a non-empty name without '/', got {scorer!r}")
    rng = np.random.default_rng(seed)
    rig, R, t = rig_and_lab_frame(size, n_cameras)
    scene = make_scene(0.0, max(20.0, 0.3 * n_frames), seed=seed, lab_to_world_R=R, lab_to_world_t=t)
    # as DLC users pick frames to label (diverse poses): every trial phase and every camera equally
    phase = np.arange(n_frames) % len(PHASES)
    trial = rng.integers(len(scene.bounds), size=n_frames)
    times = rng.uniform(scene.bounds[trial, phase], scene.bounds[trial, phase + 1])
    points3d = scene.keypoints(times)
    path.mkdir(parents=True, exist_ok=True)
    coords = np.full((n_frames, len(BODYPARTS), 2), np.nan)
    names = [f"img{i:04d}.png" for i in range(n_frames)]
    sensor = SensorNoise.with_read_noise(noise_std)
    for i in range(n_frames):
        camera = _perturbed(rig[(i // len(PHASES)) % len(rig)], rng)
        uv = camera.project(points3d[i])
        visible = in_image(uv, camera.size) & (rng.random(len(BODYPARTS)) >= occlusion_prob)
        background = render_background(camera, scene, seed=int(rng.integers(2**31)), sensor=sensor)
        image = render_frame(background, uv, visible, sensor, rng)
        if not cv2.imwrite(str(path / names[i]), image):
            raise OSError(f"could not write {path / names[i]}")
        coords[i][visible] = uv[visible]
    df = labeled_dataframe(coords, path.name, names, scorer)
    df.to_hdf(path / f"CollectedData_{scorer}.h5", key="df_with_missing", mode="w")
    df.to_csv(path / f"CollectedData_{scorer}.csv")
    return path
