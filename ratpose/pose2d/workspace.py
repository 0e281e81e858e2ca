"""The rig workspace: a 3D box where body parts can be, and the per-camera image crop that holds it.

The box (mm, calibration frame) is set once per rig, by hand or around the knob with a margin. Its
surface is projected through each camera's calibration (distortion included, so bulging edges count),
giving a pixel crop kept inside the image and rounded out to the network's grid (corner and size
multiples of its stride), so the network sees the pixels exactly as in the full frame and keypoints
away from the crop's edges come out as they would on the full frame (an origin off the grid moves them
by pixels, at times to another blob). Pose2D runs on the crop; ``to_full_frame`` maps its coordinates
back and turns keypoints outside the crop into NaN with likelihood 0 (never clamped to the border).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..rig import CameraModel


@dataclass(frozen=True)
class Workspace:
    """An axis-aligned box in the calibration frame: corners ``low`` and ``high`` (mm).

    Attributes
    ----------
    low, high : tuple of float, (3,), mm
        high must exceed low on every axis.

    Raises
    ------
    InputError
        On construction, if a corner is not 3 finite numbers or high does not exceed low.
    """

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def __post_init__(self):
        low, high = np.asarray(self.low, float).ravel(), np.asarray(self.high, float).ravel()
        if low.shape != (3,) or high.shape != (3,) or not (np.isfinite(low).all() and np.isfinite(high).all()):
            raise InputError(f"workspace corners must be 3 finite numbers each, got {self.low} and {self.high}")
        if not (high > low).all():
            raise InputError(f"workspace high {tuple(high)} must exceed low {tuple(low)} on every axis")
        object.__setattr__(self, "low", tuple(float(v) for v in low))
        object.__setattr__(self, "high", tuple(float(v) for v in high))

    @classmethod
    def around(cls, center, margin_mm) -> "Workspace":
        """A box of half-size ``margin_mm`` (a number or one per axis) around ``center`` (e.g. the knob).

        Parameters
        ----------
        center : array_like, (3,), mm
        margin_mm : float or array_like, (3,), mm

        Returns
        -------
        Workspace
        """
        c, m = np.asarray(center, float), np.broadcast_to(np.asarray(margin_mm, float), (3,))
        return cls(tuple(c - m), tuple(c + m))

    @classmethod
    def bounding(cls, points3d, margin_mm) -> "Workspace":
        """The box holding ``points3d`` (..., 3; NaN ignored, e.g. a pilot session's 3D poses) plus ``margin_mm``.

        Parameters
        ----------
        points3d : array_like, (..., 3), mm
        margin_mm : float or array_like, (3,), mm

        Returns
        -------
        Workspace
        """
        p = np.asarray(points3d, float).reshape(-1, 3)
        m = np.broadcast_to(np.asarray(margin_mm, float), (3,))
        return cls(tuple(np.nanmin(p, axis=0) - m), tuple(np.nanmax(p, axis=0) + m))

    def corners(self) -> np.ndarray:
        """(2, 3) array: low, high (how Pose2DTask and PoseDefaults store the box; ``Workspace(*corners)``)."""
        return np.array([self.low, self.high])

    def surface(self, n: int = 9) -> np.ndarray:
        """Points (6 n^2, 3) on a grid over the box's six faces.

        Parameters
        ----------
        n : int
            Grid points per edge of a face.

        Returns
        -------
        numpy.ndarray, (6 n^2, 3), mm
        """
        low, high = np.asarray(self.low), np.asarray(self.high)
        u = np.linspace(0.0, 1.0, n)
        a, b = (g.ravel() for g in np.meshgrid(u, u))
        faces = []
        for axis in range(3):
            others = [i for i in range(3) if i != axis]
            for side in (0.0, 1.0):
                f = np.empty((a.size, 3))
                f[:, axis], f[:, others[0]], f[:, others[1]] = side, a, b
                faces.append(f)
        return low + np.concatenate(faces) * (high - low)

    def contains(self, points3d: np.ndarray) -> np.ndarray:
        """True where world points (..., 3) lie inside the box (NaN: False).

        Parameters
        ----------
        points3d : numpy.ndarray, (..., 3), mm

        Returns
        -------
        numpy.ndarray, (...,) bool
        """
        p = np.asarray(points3d, float)
        with np.errstate(invalid="ignore"):
            return ((p >= self.low) & (p <= self.high)).all(axis=-1)


@dataclass(frozen=True)
class CropBox:
    """A pixel rectangle of a full frame: columns x0..x0+width-1, rows y0..y0+height-1.

    Attributes
    ----------
    x0, y0 : int, px
        The top-left pixel.
    width, height : int, px
    """

    x0: int
    y0: int
    width: int
    height: int

    @classmethod
    def full(cls, size: tuple[int, int]) -> "CropBox":
        """The whole frame as a crop.

        Parameters
        ----------
        size : tuple of int, (width, height), px

        Returns
        -------
        CropBox
        """
        return cls(0, 0, int(size[0]), int(size[1]))

    @classmethod
    def around(cls, points2d, size: tuple[int, int], frame_size: tuple[int, int]) -> "CropBox":
        """A ``size`` (width, height) window centred on the mean of ``points2d`` (..., 2 px; NaN ignored).

        It is shifted to lie inside a ``frame_size`` image (the frame's centre when no point is finite).

        Parameters
        ----------
        points2d : array_like, (..., 2), px
        size : tuple of int, (width, height), px
        frame_size : tuple of int, (width, height), px

        Returns
        -------
        CropBox

        Raises
        ------
        InputError
            If the window does not fit the frame.
        """
        (w, h), (fw, fh) = (int(v) for v in size), (int(v) for v in frame_size)
        if not (0 < w <= fw and 0 < h <= fh):
            raise InputError(f"window {w}x{h} does not fit a {fw}x{fh} frame")
        p = np.asarray(points2d, float).reshape(-1, 2)
        p = p[np.isfinite(p).all(axis=1)]
        cx, cy = p.mean(axis=0) if len(p) else ((fw - 1) / 2, (fh - 1) / 2)
        x0 = min(max(int(round(cx - (w - 1) / 2)), 0), fw - w)
        y0 = min(max(int(round(cy - (h - 1) / 2)), 0), fh - h)
        return cls(x0, y0, w, h)

    def cut(self, image: np.ndarray) -> np.ndarray:
        """The crop of a full frame (a view, rows then columns).

        Parameters
        ----------
        image : numpy.ndarray, (height, width, ...)

        Returns
        -------
        numpy.ndarray, (self.height, self.width, ...)
        """
        return image[self.y0:self.y0 + self.height, self.x0:self.x0 + self.width]

    def to_crop(self, xy: np.ndarray) -> np.ndarray:
        """Full-frame pixels (..., 2) to crop pixels; points outside the crop become NaN.

        Parameters
        ----------
        xy : numpy.ndarray, (..., 2), px

        Returns
        -------
        numpy.ndarray, (..., 2), px
        """
        xy = np.asarray(xy, float) - (self.x0, self.y0)
        out = xy.copy()
        out[~self._inside(xy)] = np.nan
        return out

    def to_full_frame(self, x: np.ndarray, y: np.ndarray, likelihood: np.ndarray):
        """Crop-pixel predictions to full-frame pixels; outside the crop: NaN and likelihood 0.

        Parameters
        ----------
        x, y : numpy.ndarray, (...), px
            In crop pixels.
        likelihood : numpy.ndarray, (...)

        Returns
        -------
        x, y : numpy.ndarray, (...), px
            In full-frame pixels.
        likelihood : numpy.ndarray, (...)
        """
        xy = np.stack([np.asarray(x, float), np.asarray(y, float)], axis=-1)
        inside = self._inside(xy)
        fx = np.where(inside, xy[..., 0] + self.x0, np.nan)
        fy = np.where(inside, xy[..., 1] + self.y0, np.nan)
        return fx, fy, np.where(inside, np.asarray(likelihood, float), 0.0)

    def _inside(self, xy: np.ndarray) -> np.ndarray:
        # pixel centres are integers: the crop spans -0.5 .. width-0.5
        with np.errstate(invalid="ignore"):
            return ((xy[..., 0] >= -0.5) & (xy[..., 0] <= self.width - 0.5)
                    & (xy[..., 1] >= -0.5) & (xy[..., 1] <= self.height - 0.5))

    def to_dict(self) -> dict:
        return {"crop_x0": self.x0, "crop_y0": self.y0, "crop_width": self.width, "crop_height": self.height}


def crop_for_camera(camera: CameraModel, workspace: Workspace, stride: int = 32) -> CropBox:
    """The smallest crop of ``camera``'s image holding the projected workspace, on the network's grid.

    ``stride``: the network's input stride (``dlc.input_stride(model)``; 32 fits every DeepLabCut
    backbone): the crop's corner sits on a multiple of it and its size is one (or reaches the image's
    edge). Raises ValueError when the box is behind the camera or projects outside the image.

    Parameters
    ----------
    camera : CameraModel
    workspace : Workspace
    stride : int, px
        Must be >= 1.

    Returns
    -------
    CropBox

    Raises
    ------
    InputError
        (a ValueError) If ``stride`` < 1, part of the box is behind the camera, or it projects outside the image.
    """
    if stride < 1:
        raise InputError(f"stride must be >= 1, got {stride}")
    points = workspace.surface()
    if ((points @ camera.R.T + camera.t)[:, 2] <= 0).any():
        raise InputError(f"camera {camera.name}: part of the workspace is behind the camera")
    xy = camera.project(points)
    w, h = camera.size
    lo = np.floor(xy.min(axis=0) + 0.5).astype(int)   # first pixel touched
    hi = np.floor(xy.max(axis=0) + 0.5).astype(int)   # last pixel touched
    lo, hi = np.maximum(lo, 0), np.minimum(hi, (w - 1, h - 1))
    if (hi < lo).any():
        raise InputError(f"camera {camera.name}: the workspace projects outside the {w}x{h} image")
    (x0, width), (y0, height) = (_grid_span(int(lo[i]), int(hi[i]), int((w, h)[i]), stride) for i in range(2))
    return CropBox(x0, y0, width, height)


def _grid_span(first: int, last: int, n: int, stride: int) -> tuple[int, int]:
    """Start (a multiple of stride) and length (a multiple of stride, or up to n) of a span covering
    first..last in 0..n-1."""
    start = first - first % stride
    return start, min(-(-(last + 1) // stride) * stride, n) - start
