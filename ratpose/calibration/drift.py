"""How much a rig's calibration moved between two calibrations (pure numpy)."""
from __future__ import annotations

import numpy as np


def camera_drift(before: dict, after: dict) -> dict:
    """Change of one camera between calibrations, each given as {"K", "R", "t"} (x_cam = R X + t, mm).

    Returns baseline_mm (how far the camera centre moved, in the frame of the reference camera),
    rotation_deg (angle of the relative rotation) and focal_pct (change of the mean focal length).
    """
    centre_before = -np.asarray(before["R"]).T @ np.ravel(before["t"])
    centre_after = -np.asarray(after["R"]).T @ np.ravel(after["t"])
    relative = np.asarray(after["R"]) @ np.asarray(before["R"]).T
    cos_angle = np.clip((np.trace(relative) - 1) / 2, -1.0, 1.0)
    focal_before = np.mean(np.diag(np.asarray(before["K"]))[:2])
    focal_after = np.mean(np.diag(np.asarray(after["K"]))[:2])
    return {"baseline_mm": float(np.linalg.norm(centre_after - centre_before)),
            "rotation_deg": float(np.degrees(np.arccos(cos_angle))),
            "focal_pct": float(100 * (focal_after - focal_before) / focal_before)}
