"""Find board corners in images (OpenCV 4.x and 5.x array shapes both handled)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import DataError
from .boards import Board, CharucoBoard, Checkerboard

SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)


class CalibrationError(DataError):
    """Calibration material is unusable (no board, no shared views, degenerate views, bad sizes)."""


@dataclass(frozen=True)
class BoardDetection:
    """Corners of one board seen in one image: ids index ``board.object_points``; pixels are (N, 2).

    Attributes
    ----------
    ids : numpy.ndarray, (N,) int64
        Corner ids (ChArUco ids, or checkerboard detection indices), increasing.
    image_points : numpy.ndarray, (N, 2) float64, px
    image_size : tuple of int, (width, height), px
    """

    ids: np.ndarray
    image_points: np.ndarray
    image_size: tuple[int, int]

    def object_points(self, board: Board) -> np.ndarray:
        """The detected corners' positions on the board.

        Parameters
        ----------
        board : CharucoBoard or Checkerboard
            The board that was detected.

        Returns
        -------
        numpy.ndarray, (N, 3), mm
            In the board's frame.
        """
        return board.object_points[self.ids]


def to_gray(image: np.ndarray, what: str = "image") -> np.ndarray:
    """A uint8 greyscale view of a grey (H, W) or colour (H, W, 3|4, BGR) image."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim != 2:
        raise CalibrationError(f"{what}: expected a grey or colour image, got shape {image.shape}")
    if image.dtype != np.uint8:
        if np.issubdtype(image.dtype, np.floating):
            raise CalibrationError(f"{what}: expected integer pixels (uint8/uint16), got {image.dtype}")
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(image.max())))
    return image


def default_min_corners(board: Board) -> int:
    """Fewest corners for a view to count: the whole board for checkerboards, 6 for ChArUco."""
    return board.cols * board.rows if isinstance(board, Checkerboard) else 6


def detect_board(image: np.ndarray, board: Board, min_corners: int | None = None,
                 what: str = "image") -> BoardDetection | None:
    """Detect ``board`` in ``image``; None when fewer than ``min_corners`` usable corners are found.

    Parameters
    ----------
    image : numpy.ndarray, (H, W) or (H, W, 3|4)
        Grey or colour (BGR) image, integer pixels.
    board : CharucoBoard or Checkerboard
    min_corners : int, optional
        Fewest corners for a detection (at least 4); None: the whole board for a checkerboard, 6 for ChArUco.
    what : str
        Names the image in error messages.

    Returns
    -------
    BoardDetection or None

    Raises
    ------
    CalibrationError
        If ``image`` is not a grey or colour image of integer pixels.
    """
    gray = to_gray(image, what)
    size = (gray.shape[1], gray.shape[0])
    min_corners = default_min_corners(board) if min_corners is None else min_corners
    if isinstance(board, CharucoBoard):
        ids, points = _detect_charuco(gray, board)
    elif isinstance(board, Checkerboard):
        ids, points = _detect_checkerboard(gray, board)
    else:
        raise TypeError(f"board must be a CharucoBoard or Checkerboard, got {type(board).__name__}")
    if ids is None or len(ids) < max(min_corners, 4):
        return None
    return BoardDetection(ids=ids, image_points=points, image_size=size)


def _detect_charuco(gray: np.ndarray, board: CharucoBoard):
    corners, ids, _, _ = cv2.aruco.CharucoDetector(board.cv_board).detectBoard(gray)
    if ids is None or len(ids) == 0:
        return None, None
    ids = np.asarray(ids).reshape(-1).astype(np.int64)
    points = np.asarray(corners, dtype=np.float64).reshape(-1, 2)
    if board.cv_board.checkCharucoCornersCollinear(ids.reshape(-1, 1).astype(np.int32)):
        return None, None
    order = np.argsort(ids)
    return ids[order], points[order]


def _detect_checkerboard(gray: np.ndarray, board: Checkerboard):
    pattern = (board.cols, board.rows)
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    found, corners = cv2.findChessboardCorners(gray, pattern, flags=flags)
    if found:
        corners = np.asarray(corners, dtype=np.float32).reshape(-1, 2)
        half = subpix_half_window(corners, pattern)
        corners = cv2.cornerSubPix(gray, corners.reshape(-1, 1, 2), (half, half), (-1, -1), SUBPIX_CRITERIA)
    else:
        found, corners = cv2.findChessboardCornersSB(gray, pattern, flags=cv2.CALIB_CB_NORMALIZE_IMAGE)
    if not found:
        return None, None
    points = np.asarray(corners, dtype=np.float64).reshape(-1, 2)
    return np.arange(len(points)), points


def subpix_half_window(corners: np.ndarray, pattern: tuple[int, int]) -> int:
    """cornerSubPix half-window: a third of the smallest corner spacing, so no neighbour corner enters it."""
    grid = corners.reshape(pattern[1], pattern[0], 2)
    spacing = min(np.linalg.norm(np.diff(grid, axis=0), axis=2).min(),
                  np.linalg.norm(np.diff(grid, axis=1), axis=2).min())
    return int(np.clip(np.floor(spacing / 3.0), 2, 25))
