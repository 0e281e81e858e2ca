"""The knob: where it is in the rig (centre, radius, rotation axis, calibration frame, mm), and how
to estimate it from a tracked marker that turns with it."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from ..errors import DataError
from ..rig import Rig
from .kinematics import plane_basis

MIN_FIT_POINTS = 5


def _fit_circle(points: np.ndarray, min_arc_mm: float) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares plane (SVD) then circle (algebraic, refined geometrically) -> centre, radius, axis."""
    mean = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - mean, full_matrices=False)
    axis = vt[2] * np.sign(vt[2][np.argmax(np.abs(vt[2]))])
    e1, e2 = plane_basis(axis, reference=vt[0])
    uv = np.stack([(points - mean) @ e1, (points - mean) @ e2], axis=1)
    extent = np.ptp(uv, axis=0)
    if extent.min() < min_arc_mm:
        raise DataError(f"knob keypoint sweeps only {extent.round(2).tolist()} mm in its plane (< {min_arc_mm} mm): "
                         "it did not move along an arc, so no circle can be fitted")
    design = np.column_stack([2 * uv, np.ones(len(uv))])
    (a, b, c), *_ = np.linalg.lstsq(design, (uv ** 2).sum(axis=1), rcond=None)
    start = np.array([a, b, np.sqrt(max(c + a * a + b * b, 0.0))])
    u0, v0, radius = least_squares(lambda p: np.hypot(*(uv - p[:2]).T) - p[2], start).x
    return mean + u0 * e1 + v0 * e2, float(abs(radius)), axis



@dataclass(frozen=True)
class KnobModel:
    """Knob geometry in world mm: ``centre`` (3,), rim ``radius_mm``, optional unit rotation ``axis`` (3,).

    The axis is needed only for angles about it (rotation_angle, rim_points).
    ``image_regions`` optionally maps camera name -> (x0, y0, x1, y1) pixel box around the knob.

    Attributes
    ----------
    centre : numpy.ndarray, (3,), mm
    radius_mm : float, mm
        Rim radius, >= 0.
    axis : numpy.ndarray, (3,), optional
        Unit rotation axis (normalised on construction); None when unknown.
    image_regions : dict of str to tuple of float, (x0, y0, x1, y1), px
        Per camera, a pixel box around the knob (x0 < x1, y0 < y1).

    Raises
    ------
    DataError
        On construction, if the centre is not 3 finite numbers, the radius is negative or not finite, the
        axis is not a non-zero 3-vector, or an image region is not a box.
    """

    centre: np.ndarray
    radius_mm: float
    axis: np.ndarray | None = None
    image_regions: Mapping[str, tuple[float, float, float, float]] = field(default_factory=dict)

    def __post_init__(self):
        centre = np.asarray(self.centre, dtype=np.float64).reshape(-1)
        if centre.shape != (3,) or not np.isfinite(centre).all():
            raise DataError(f"Knob centre must be 3 finite numbers (mm), got {self.centre}")
        if not (np.isfinite(self.radius_mm) and self.radius_mm >= 0):
            raise DataError(f"Knob radius_mm must be finite and >= 0, got {self.radius_mm}")
        object.__setattr__(self, "centre", centre)
        object.__setattr__(self, "radius_mm", float(self.radius_mm))
        if self.axis is not None:
            axis = np.asarray(self.axis, dtype=np.float64).reshape(-1)
            norm = np.linalg.norm(axis) if axis.shape == (3,) else np.nan
            if not norm > 0:
                raise DataError(f"Knob axis must be a non-zero 3-vector, got {self.axis}")
            object.__setattr__(self, "axis", axis / norm)
        regions = {str(k): tuple(float(v) for v in box) for k, box in dict(self.image_regions).items()}
        for name, box in regions.items():
            if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
                raise DataError(f"Knob image_regions[{name!r}] must be (x0, y0, x1, y1) with x0<x1, y0<y1, got {box}")
        object.__setattr__(self, "image_regions", regions)

    def distance(self, points) -> np.ndarray:
        """Distance (mm) from points (..., 3) to the knob, taken as a ball of ``radius_mm`` about ``centre``.

        The knob's extent along the axis is unknown: 0 on or inside the ball; NaN stays NaN.

        Parameters
        ----------
        points : array_like, (..., 3), mm

        Returns
        -------
        numpy.ndarray, (...,), mm
        """
        offset = np.asarray(points, dtype=np.float64) - self.centre
        return np.maximum(np.linalg.norm(offset, axis=-1) - self.radius_mm, 0.0)

    def _plane(self) -> tuple[np.ndarray, np.ndarray]:
        if self.axis is None:
            raise DataError("this Knob has no axis; rotation about it needs one (from_keypoint gives one)")
        return plane_basis(self.axis, reference=np.eye(3)[np.argmin(np.abs(self.axis))])

    def rotation_angle(self, vectors) -> np.ndarray:
        """Angle (deg) of vectors (..., 3) about the knob axis (counter-clockwise seen from its tip).

        Parameters
        ----------
        vectors : array_like, (..., 3)

        Returns
        -------
        numpy.ndarray, (...,), deg
            In (-180, 180].

        Raises
        ------
        DataError
            If the knob has no axis.
        """
        e1, e2 = self._plane()
        vectors = np.asarray(vectors, dtype=np.float64)
        return np.degrees(np.arctan2(vectors @ e2, vectors @ e1))

    def rim_points(self, n: int = 64) -> np.ndarray:
        """n points (n, 3) on the knob's rim circle (needs an axis).

        Parameters
        ----------
        n : int
            Number of points, evenly spaced.

        Returns
        -------
        numpy.ndarray, (n, 3), mm

        Raises
        ------
        DataError
            If the knob has no axis.
        """
        e1, e2 = self._plane()
        phi = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
        return self.centre + self.radius_mm * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)

    def with_image_regions(self, rig: Rig, margin_px: float = 20.0) -> KnobModel:
        """A copy whose image_regions are the projected rim's bounding box (+ margin) in every camera.

        Without an axis, the six points ``centre +- radius_mm`` along the world axes stand in for the rim.

        Parameters
        ----------
        rig : Rig
            The calibrated rig (same world frame as the knob).
        margin_px : float, px
            Added on every side of each box.

        Returns
        -------
        KnobModel
        """
        rim = (self.rim_points() if self.axis is not None
               else self.centre + self.radius_mm * np.vstack([np.eye(3), -np.eye(3)]))
        regions = {}
        for cam, pixels in zip(rig, rig.project(rim)):
            lo, hi = pixels.min(axis=0) - margin_px, pixels.max(axis=0) + margin_px
            regions[cam.name] = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
        return KnobModel(self.centre, self.radius_mm, self.axis, regions)

    @classmethod
    def from_keypoint(cls, points3d, min_arc_mm: float = 1.0, max_iterations: int = 10) -> KnobModel:
        """Fit the knob from a rim keypoint's trajectory (n, 3) mm (NaN rows ignored): plane + circle.

        The plane's normal becomes the axis (sign: largest component positive). Outliers (tracking
        errors) are trimmed iteratively: points further than 3 robust SDs (1.4826 MAD) from the fitted
        circle are dropped and the fit repeated. The marker must sweep an arc: ValueError if it spans
        less than ``min_arc_mm`` in either in-plane direction.

        Parameters
        ----------
        points3d : array_like, (n, 3), mm
            The rim keypoint's positions.
        min_arc_mm : float, mm
            Smallest extent of the trajectory in either in-plane direction.
        max_iterations : int
            Most rounds of outlier trimming.

        Returns
        -------
        KnobModel
            With centre, radius and axis.

        Raises
        ------
        DataError
            (a ValueError) If the trajectory is not (n, 3), has fewer than 5 usable positions, or does not sweep
            an arc.
        """
        points = np.asarray(points3d, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise DataError(f"knob keypoint trajectory must have shape (n, 3), got {points.shape}")
        points = points[np.isfinite(points).all(axis=1)]
        inliers = np.ones(len(points), dtype=bool)
        for _ in range(max_iterations):
            if inliers.sum() < MIN_FIT_POINTS:
                raise DataError(f"knob keypoint has {inliers.sum()} usable positions; "
                                f"need >= {MIN_FIT_POINTS} to fit a circle")
            centre, radius, axis = _fit_circle(points[inliers], min_arc_mm)
            offset = points - centre
            along = offset @ axis
            residual = np.hypot(np.linalg.norm(offset - along[:, None] * axis, axis=1) - radius, along)
            spread = 1.4826 * np.median(residual[inliers])
            keep = residual <= max(3.0 * spread, 1e-9 * max(radius, 1.0))
            if (keep == inliers).all():
                break
            inliers = keep
        return cls(centre, radius, axis)

    def to_dict(self) -> dict:
        """Plain-python representation (lists), for JSON/TOML/database storage."""
        return {"centre": self.centre.tolist(), "radius_mm": self.radius_mm,
                "axis": None if self.axis is None else self.axis.tolist(),
                "image_regions": {k: list(v) for k, v in self.image_regions.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> KnobModel:
        """Inverse of to_dict.

        Parameters
        ----------
        d : dict
            Keys centre, radius_mm and optionally axis and image_regions.

        Returns
        -------
        KnobModel
        """
        return cls(d["centre"], d["radius_mm"], d.get("axis"), d.get("image_regions") or {})
