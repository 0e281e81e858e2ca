"""SLEAP predictions (.slp or analysis .h5) as Pose2D arrays, read with movement (which uses sleap-io)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .dlc import DLCError, Pose2DArrays


def is_sleap_file(path: str | Path) -> bool:
    """A .slp, or an .h5 holding SLEAP's analysis datasets ('tracks', 'node_names')."""
    path = Path(path)
    if path.suffix.lower() == ".slp":
        return True
    if path.suffix.lower() not in (".h5", ".hdf5") or not path.is_file():
        return False
    import h5py

    with h5py.File(path, "r") as f:
        return "tracks" in f and "node_names" in f


def load_sleap(path: str | Path, expected_bodyparts=None, expected_frames: int | None = None) -> Pose2DArrays:
    """One track of a SLEAP file as Pose2DArrays (likelihood = SLEAP's point score). Frames after SLEAP's
    last one, up to expected_frames, are NaN; body parts are returned in expected_bodyparts' order."""
    from movement.io import load_poses

    path = Path(path)
    try:
        ds = load_poses.from_sleap_file(path)
    except (OSError, ValueError, KeyError) as exc:
        raise DLCError(f"{path}: not a readable SLEAP file ({type(exc).__name__}: {exc})") from exc
    if ds.sizes["individuals"] != 1:
        raise DLCError(f"{path}: holds {ds.sizes['individuals']} tracks {list(ds.individuals.values)}; expected one")
    found = tuple(str(k) for k in ds.keypoints.values)
    bodyparts = found if expected_bodyparts is None else tuple(expected_bodyparts)
    if sorted(found) != sorted(bodyparts):
        raise DLCError(f"{path}: body parts {list(found)} do not match the expected {list(bodyparts)}")
    ds = ds.isel(individuals=0).sel(keypoints=list(bodyparts))
    xy = ds["position"].transpose("time", "keypoints", "space").values.astype(np.float64)
    score = ds["confidence"].transpose("time", "keypoints").values.astype(np.float64)
    n = len(xy) if expected_frames is None else int(expected_frames)
    if len(xy) > n:
        raise DLCError(f"{path}: {len(xy)} frames, expected {n}")
    pad = ((0, n - len(xy)), (0, 0))
    xy = np.pad(xy, pad + ((0, 0),), constant_values=np.nan)
    score = np.pad(score, pad, constant_values=np.nan)
    return Pose2DArrays(bodyparts, xy[..., 0], xy[..., 1], score)
