"""Which calibration applies to a session: pure selection logic, no database."""
from __future__ import annotations

import datetime as _dt

from ..errors import DataError


def select_calibration(*, session_rig: str, session_datetime: _dt.datetime, session_cameras: dict,
                       candidates: list[dict], candidate_cameras: list[dict], by_hand: dict | None = None) -> dict:
    """Pick the calibration of a session and check it fits the session's cameras.

    session_cameras maps camera -> (width, height) of its recording. candidates are calibration keys
    (rig, calibration_date); candidate_cameras rows (rig, calibration_date, camera, width, height).
    A choice by hand wins; otherwise the rig's latest calibration taken before the session. A session
    may be recorded with k x k binning of the calibrated resolution (Pose3D rescales the cameras).
    Returns the chosen key plus ``chosen_by``; raises ValueError when none fits.
    """
    if by_hand is not None:
        chosen = {"rig": by_hand["rig"], "calibration_date": by_hand["calibration_date"], "chosen_by": "hand"}
    else:
        earlier = [c for c in candidates if c["rig"] == session_rig and c["calibration_date"] <= session_datetime]
        if not earlier:
            rigs = sorted({c["rig"] for c in candidates})
            raise DataError(f"no calibration of rig {session_rig!r} taken before {session_datetime} "
                             f"(calibrated rigs: {rigs or 'none'})")
        latest = max(earlier, key=lambda c: c["calibration_date"])
        chosen = {"rig": latest["rig"], "calibration_date": latest["calibration_date"], "chosen_by": "latest"}
    if chosen["rig"] != session_rig:
        raise DataError(f"calibration of rig {chosen['rig']!r} chosen for a session on rig {session_rig!r}")
    sizes = {c["camera"]: (c["width"], c["height"]) for c in candidate_cameras
             if c["rig"] == chosen["rig"] and c["calibration_date"] == chosen["calibration_date"]}
    for camera, size in session_cameras.items():
        if camera not in sizes:
            raise DataError(f"calibration {chosen['rig']} {chosen['calibration_date']} has no camera {camera!r} "
                             f"(it has {sorted(sizes)})")
        if binning_factor(sizes[camera], size) is None:
            raise DataError(f"camera {camera!r}: calibrated at {sizes[camera][0]}x{sizes[camera][1]} but the "
                             f"session's video is {size[0]}x{size[1]} (not the same size or an integer binning)")
    return chosen


def binning_factor(calibrated_size, recorded_size) -> int | None:
    """k when the recording is the calibrated image binned k x k (k = 1: same size), else None."""
    (cw, ch), (w, h) = calibrated_size, recorded_size
    if w <= 0 or h <= 0 or cw % w or ch % h or cw // w != ch // h:
        return None
    return cw // w
