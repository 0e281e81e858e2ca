"""Checks shared by the calibration tests, written independently of ratpose's solver."""
from __future__ import annotations

import cv2
import numpy as np


def opencv_heldout_px(views, cam: str, board, folds: int = 5) -> float:
    """RMS px on views left out of OpenCV's own ``calibrateCamera`` (default model and flags): views in
    the order ratpose folds them (shared instants, then single views), view i in fold i % ``folds``; each
    held-out view's pose by ``solvePnP`` with the training intrinsics."""
    dets = [d for d in [*views.shared[cam], *views.single.get(cam, [])] if d is not None]
    obj = [board.object_points[d.ids].astype(np.float32) for d in dets]
    img = [d.image_points.astype(np.float32) for d in dets]
    fold = np.arange(len(dets)) % folds
    squared, n = 0.0, 0
    for f in range(folds):
        train = np.flatnonzero(fold != f)
        _, K, dist, _, _ = cv2.calibrateCamera([obj[i] for i in train], [img[i] for i in train],
                                               views.image_sizes[cam], None, None)
        for i in np.flatnonzero(fold == f):
            _, rvec, tvec = cv2.solvePnP(obj[i], img[i], K, dist)
            projected = cv2.projectPoints(obj[i], rvec, tvec, K, dist)[0].reshape(-1, 2)
            squared += float(np.sum((projected - img[i]) ** 2))
            n += len(projected)
    return float(np.sqrt(squared / n))
