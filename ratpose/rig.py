"""Camera and rig models: the one place that says how a 3D point becomes a pixel.

Conventions (OpenCV): a world point X maps to camera coordinates ``x_cam = R @ X + t``; pixels come
from the pinhole matrix ``K`` and the distortion vector ``dist``: with ``model`` "pinhole" (k1, k2, p1, p2, k3[, k4,
k5, k6]: OpenCV's rational model), with "fisheye" (k1, k2, k3, k4) of ``cv2.fisheye``'s equidistant model for wide
lenses (theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8)). World units
are millimetres; camera 0 of a calibrated rig defines the world frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cv2
import numpy as np

from .errors import ConfigurationError

PROJECTIONS = ("pinhole", "fisheye")  # CameraModel.model: OpenCV's pinhole-with-distortion or cv2.fisheye

def time_zone(name: str) -> ZoneInfo:
    """The rig's IANA time zone (its clock's session times are local times in it); ValueError if unknown.

    Parameters
    ----------
    name : str
        An IANA time-zone name, e.g. "Europe/London".

    Returns
    -------
    zoneinfo.ZoneInfo

    Raises
    ------
    ConfigurationError
        (a ValueError) If ``name`` is not an IANA time zone.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: a folder such as "Etc"
        raise ConfigurationError(f"time zone {name!r} is not an IANA time zone (e.g. Europe/London)") from None


@dataclass(frozen=True)
class CameraModel:
    """One calibrated camera: name, image size (width, height), intrinsics and pose.

    Attributes
    ----------
    name : str
    size : tuple of int, (width, height), px
    K : numpy.ndarray, (3, 3)
        The pinhole matrix, px.
    dist : numpy.ndarray, (n,)
        Distortion coefficients: (k1, k2, p1, p2, k3[, k4, k5, k6]) for "pinhole", (k1, k2, k3, k4) for
        "fisheye". Default five zeros.
    R : numpy.ndarray, (3, 3)
        World-to-camera rotation (``x_cam = R @ X + t``). Default identity.
    t : numpy.ndarray, (3,), mm
        World-to-camera translation. Default zero.
    model : {"pinhole", "fisheye"}
        OpenCV's pinhole-with-distortion model or cv2.fisheye's equidistant one.

    Raises
    ------
    ConfigurationError
        If ``model`` is unknown, or a fisheye camera has other than 4 distortion coefficients.
    """

    name: str
    size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    t: np.ndarray = field(default_factory=lambda: np.zeros(3))
    model: str = "pinhole"

    def __post_init__(self):
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))
        object.__setattr__(self, "K", np.asarray(self.K, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "dist", np.asarray(self.dist, dtype=np.float64).ravel())
        object.__setattr__(self, "R", np.asarray(self.R, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "t", np.asarray(self.t, dtype=np.float64).reshape(3))
        if self.model not in PROJECTIONS:
            raise ConfigurationError(f"camera {self.name!r}: model {self.model!r}, expected one of {PROJECTIONS}")
        if self.fisheye and self.dist.size != 4:
            raise ConfigurationError(f"camera {self.name!r}: a fisheye camera has 4 distortion coefficients, "
                                     f"got {self.dist.size}")

    @property
    def fisheye(self) -> bool:
        """True for cv2.fisheye's equidistant model."""
        return self.model == "fisheye"

    @property
    def rvec(self) -> np.ndarray:
        """Rotation as a Rodrigues vector (3,)."""
        return cv2.Rodrigues(self.R)[0].ravel()

    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates (mm)."""
        return -self.R.T @ self.t

    @property
    def extrinsic_matrix(self) -> np.ndarray:
        """The 3x4 matrix [R | t] (projection in normalised, undistorted coordinates)."""
        return np.hstack([self.R, self.t[:, None]])

    def project(self, points3d: np.ndarray) -> np.ndarray:
        """Project world points (..., 3) to distorted pixel coordinates (..., 2); NaN stays NaN.

        Parameters
        ----------
        points3d : numpy.ndarray, (..., 3), mm
            Points in the world frame.

        Returns
        -------
        numpy.ndarray, (..., 2), px
            Distorted pixel coordinates; NaN where a point has a NaN coordinate.
        """
        pts = np.asarray(points3d, dtype=np.float64)
        flat = pts.reshape(-1, 3)
        out = np.full((flat.shape[0], 2), np.nan)
        ok = np.isfinite(flat).all(axis=1)
        if ok.any():
            lib = cv2.fisheye if self.fisheye else cv2
            proj, _ = lib.projectPoints(flat[ok].reshape(-1, 1, 3), self.rvec, self.t, self.K, self.dist)
            out[ok] = proj.reshape(-1, 2)
        return out.reshape(pts.shape[:-1] + (2,))

    @property
    def undistort_iterations(self) -> int:
        """Fixed-point steps that invert the distortion to ~1e-8 (normalised units) at the image corners (5..40).

        Each step shrinks the error by about the distortion's slope up to the corner radius r: at most
        3|k1| r^2 + 5|k2| r^4 + 7|k3| r^6, or with the rational model's denominator the largest
        |d/dr (r (radial(r) - 1))| (the larger of the two), plus tangential terms ~ 4(|p1| + |p2|) r.
        A fisheye camera takes 40 (its inversion is Newton's method, which stops once converged).
        """
        if self.fisheye:
            return 40
        w, h = self.size
        r = np.hypot(max(self.K[0, 2], w - self.K[0, 2]) / self.K[0, 0],
                     max(self.K[1, 2], h - self.K[1, 2]) / self.K[1, 1])
        k1, k2, p1, p2, k3, k4, k5, k6 = (list(self.dist) + [0.0] * 8)[:8]
        rho = np.linspace(0.0, r, 256)
        q = rho**2
        excess = rho * ((1 + q * (k1 + q * (k2 + q * k3))) / (1 + q * (k4 + q * (k5 + q * k6))) - 1)
        bound = 3 * abs(k1) * r**2 + 5 * abs(k2) * r**4 + 7 * abs(k3) * r**6  # exact without k4..k6
        slope = max(bound, float(np.max(np.abs(np.gradient(excess, rho))))) + 4 * (abs(p1) + abs(p2)) * r
        if slope <= 1e-12:
            return 5
        if slope >= 0.9:
            return 40
        return int(np.clip(np.ceil(np.log(1e-8) / np.log(slope)), 5, 40))

    def undistort(self, points2d: np.ndarray) -> np.ndarray:
        """Pixel points (..., 2) to undistorted normalised image coordinates (..., 2); NaN stays NaN.

        OpenCV inverts the distortion by fixed-point iteration; its default 5 steps are exact for narrow
        lenses but leave ~0.1 px in the corners of wide, strongly distorted ones, so the step count is
        chosen from the lens (see ``undistort_iterations``).

        Parameters
        ----------
        points2d : numpy.ndarray, (..., 2), px
            Distorted pixel coordinates.

        Returns
        -------
        numpy.ndarray, (..., 2)
            Undistorted normalised image coordinates (x/z, y/z in the camera frame); NaN where a point has a NaN.
        """
        pts = np.asarray(points2d, dtype=np.float64)
        flat = pts.reshape(-1, 2)
        ok = np.isfinite(flat).all(axis=1)
        everything = bool(ok.all())
        out = np.empty_like(flat) if everything else np.full_like(flat, np.nan)
        if ok.any():
            src = flat if everything else flat[ok]
            steps = self.undistort_iterations
            if self.fisheye:
                und = cv2.fisheye.undistortPoints(src.reshape(-1, 1, 2), self.K, self.dist,
                                                  criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS,
                                                            steps, 1e-12))
            elif steps <= 5:  # OpenCV's default: 5 steps, its fastest path
                und = cv2.undistortPoints(src.reshape(-1, 1, 2), self.K, self.dist)
            else:
                und = cv2.undistortPoints(src.reshape(-1, 1, 2), self.K, self.dist,
                                          criteria=(cv2.TERM_CRITERIA_COUNT, steps, 0.0))
            out[ok if not everything else slice(None)] = und.reshape(-1, 2)
        return out.reshape(pts.shape)

    def scaled(self, size: tuple[int, int]) -> "CameraModel":
        """The same camera imaging at another resolution (binning/resizing): K scaled about pixel centres.

        Parameters
        ----------
        size : tuple of int, (width, height), px
            The new image size.

        Returns
        -------
        CameraModel
            A copy with ``size`` and ``K`` replaced (distortion and pose unchanged).
        """
        sx, sy = size[0] / self.size[0], size[1] / self.size[1]
        K = self.K.copy()
        K[0, 0], K[1, 1] = K[0, 0] * sx, K[1, 1] * sy
        K[0, 2], K[1, 2] = (K[0, 2] + 0.5) * sx - 0.5, (K[1, 2] + 0.5) * sy - 0.5
        return replace(self, size=size, K=K)

    def to_dict(self) -> dict:
        """Plain-python representation (lists), for JSON/TOML/database storage."""
        return {"name": self.name, "size": list(self.size), "K": self.K.tolist(),
                "dist": self.dist.tolist(), "R": self.R.tolist(), "t": self.t.tolist(), "model": self.model}

    @classmethod
    def from_dict(cls, d: dict) -> "CameraModel":
        """The camera of a ``to_dict`` representation.

        Parameters
        ----------
        d : dict
            Keys name, size, K, dist, R, t and optionally model (default "pinhole").

        Returns
        -------
        CameraModel
        """
        return cls(name=d["name"], size=tuple(d["size"]), K=d["K"], dist=d["dist"], R=d["R"], t=d["t"],
                   model=d.get("model", "pinhole"))


@dataclass(frozen=True)
class Rig:
    """An ordered set of calibrated cameras sharing one world frame.

    Attributes
    ----------
    cameras : tuple of CameraModel
        The cameras, in order; their names must be unique (else ConfigurationError). A rig is also indexed by
        position or camera name (KeyError for an unknown name).
    """

    cameras: tuple[CameraModel, ...]

    def __post_init__(self):
        object.__setattr__(self, "cameras", tuple(self.cameras))
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"camera names must be unique, got {names}")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def __len__(self) -> int:
        return len(self.cameras)

    def __iter__(self):
        return iter(self.cameras)

    def __getitem__(self, key: int | str) -> CameraModel:
        if isinstance(key, str):
            for cam in self.cameras:
                if cam.name == key:
                    return cam
            raise KeyError(f"no camera named {key!r} in rig {self.names}")
        return self.cameras[key]

    def subset(self, names: list[str]) -> "Rig":
        """The rig restricted to (and ordered as) the given camera names.

        Parameters
        ----------
        names : list of str
            Camera names of this rig.

        Returns
        -------
        Rig

        Raises
        ------
        KeyError
            If a name is not a camera of this rig.
        """
        return Rig(tuple(self[n] for n in names))

    def scaled(self, sizes: dict[str, tuple[int, int]]) -> "Rig":
        """The rig with each named camera rescaled to the given (width, height) (see CameraModel.scaled).

        Parameters
        ----------
        sizes : dict of str to tuple of int, (width, height), px
            New image size per camera name; cameras not named stay as they are.

        Returns
        -------
        Rig
        """
        return Rig(tuple(cam.scaled(sizes[cam.name]) if cam.name in sizes else cam for cam in self.cameras))

    def project(self, points3d: np.ndarray) -> np.ndarray:
        """Project world points (..., 3) into every camera: (n_cameras, ..., 2).

        Parameters
        ----------
        points3d : numpy.ndarray, (..., 3), mm
            Points in the world frame.

        Returns
        -------
        numpy.ndarray, (n_cameras, ..., 2), px
            Distorted pixel coordinates in each camera, in the rig's order; NaN stays NaN.
        """
        return np.stack([cam.project(points3d) for cam in self.cameras])

    def to_dict(self) -> dict:
        return {"cameras": [c.to_dict() for c in self.cameras]}

    @classmethod
    def from_dict(cls, d: dict) -> "Rig":
        """The rig of a ``to_dict`` representation.

        Parameters
        ----------
        d : dict
            ``{"cameras": [camera dict, ...]}``, each camera as ``CameraModel.from_dict`` takes it.

        Returns
        -------
        Rig
        """
        return cls(tuple(CameraModel.from_dict(c) for c in d["cameras"]))
