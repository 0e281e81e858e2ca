"""Which board views to keep: those that together cover each camera's image and the board's tilts.

A board video gives hundreds of near-identical views; the solver needs a few dozen that differ. Each
view is described by the image cells its corners fall in and by its tilt (angle and direction of the
board's normal, from the homography under a rough pinhole guess); instants are chosen greedily, each
adding the most not-yet-covered (camera, cell) and (camera, tilt) features, ties to more corners.
"""
from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from .boards import Board
from .detect import BoardDetection
from .qc import COVERAGE_GRID

TILT_EDGES_DEG = (10.0, 25.0, 40.0)  # tilt bins: < 10, 10-25, 25-40, >= 40 deg
TILT_DIRECTIONS = 8  # sectors of the normal's direction for tilted views


def view_features(detection: BoardDetection, board: Board) -> set[tuple]:
    """The image cells (COVERAGE_GRID) a view's corners fall in and its tilt bin, as hashable features."""
    w, h = detection.image_size
    gx, gy = COVERAGE_GRID
    pts = detection.image_points
    cells = {("cell", int(c), int(r)) for c, r in zip(np.clip(pts[:, 0] * gx // w, 0, gx - 1),
                                                       np.clip(pts[:, 1] * gy // h, 0, gy - 1))}
    return cells | {("tilt", *_tilt_bin(detection, board))}


def _tilt_bin(detection: BoardDetection, board: Board) -> tuple[int, int]:
    obj = detection.object_points(board)[:, :2].astype(np.float64)
    if len(obj) < 4:
        return (-1, 0)
    H, _ = cv2.findHomography(obj, detection.image_points.astype(np.float64))
    if H is None:
        return (-1, 0)
    w, h = detection.image_size
    f = float(max(w, h))  # a rough focal length: the tilt bins are coarse
    K_inv = np.linalg.inv(np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]]))
    r1, r2 = (K_inv @ H)[:, 0], (K_inv @ H)[:, 1]
    normal = np.cross(r1 / np.linalg.norm(r1), r2 / np.linalg.norm(r2))
    normal *= -np.sign(normal[2] or 1.0) / np.linalg.norm(normal)  # towards the camera
    tilt = float(np.degrees(np.arccos(min(1.0, -normal[2]))))
    level = int(np.searchsorted(TILT_EDGES_DEG, tilt, side="right"))
    sector = int((np.arctan2(normal[1], normal[0]) + np.pi) // (2 * np.pi / TILT_DIRECTIONS)) % TILT_DIRECTIONS
    return (level, sector if level else 0)


def choose_instants(shared: dict[str, list[BoardDetection | None]], board: Board, max_instants: int) -> list[int]:
    """Indices of at most ``max_instants`` instants (all when there are no more) covering the views best.

    The instants are chosen greedily to cover each camera's image cells and board tilts; in increasing order.

    Parameters
    ----------
    shared : dict of str to list of BoardDetection or None
        Per camera, its detection at each shared instant (None: board not seen).
    board : CharucoBoard or Checkerboard
    max_instants : int

    Returns
    -------
    list of int
        Indices of instants where some camera saw the board, increasing.
    """
    n = len(next(iter(shared.values()), []))
    seen = [i for i in range(n) if any(shared[cam][i] is not None for cam in shared)]
    if len(seen) <= max_instants:
        return seen
    features = {i: {(cam, *f) for cam in shared if shared[cam][i] is not None
                    for f in view_features(shared[cam][i], board)} for i in seen}
    corners = {i: sum(len(shared[cam][i].ids) for cam in shared if shared[cam][i] is not None) for i in seen}
    covered: set = set()
    chosen: list[int] = []
    left = set(seen)
    while left and len(chosen) < max_instants:
        best = max(sorted(left), key=lambda i: (len(features[i] - covered), corners[i]))
        chosen.append(best)
        covered |= features[best]
        left.discard(best)
    return sorted(chosen)


def keep_instants(views, instants: list[int]):
    """A ViewSet holding only the shared ``instants`` (single views unchanged)."""
    return replace(views, shared={cam: [dets[i] for i in instants] for cam, dets in views.shared.items()})
