"""Mono8 frames of the simulated rig: textured background, the knob disc, one blob per keypoint.

Each body part has its own blob (shape, size, sign of contrast) so a small pose model can learn
identity; every blob is point-symmetric about the projected keypoint, so its intensity centroid is
the keypoint (OpenCV pixel-centre convention: pixel (row i, col j) is centred at x=j, y=i).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ratpose.rig import CameraModel

from ..errors import InputError
from .scene import BODYPARTS, Scene

#: Reference width at which BLOB_STYLES sizes are given; sizes scale with the image width.
STYLE_REFERENCE_WIDTH = 160
BACKGROUND_LEVELS = (85.0, 115.0)
KNOB_LEVEL = 140.0


@dataclass(frozen=True)
class BlobStyle:
    """shape: 'gauss' (sigma_x, sigma_y) or 'ring' (radius sigma_x, width sigma_y); amplitude in DN."""

    shape: str
    sigma_x: float
    sigma_y: float
    amplitude: float

    def extent(self) -> float:
        """Half-size (px, at the reference width) beyond which the blob is negligible."""
        return (self.sigma_x + 4 * self.sigma_y) if self.shape == "ring" else 4 * max(self.sigma_x, self.sigma_y)


BLOB_STYLES = {
    "wrist": BlobStyle("gauss", 2.6, 1.4, 90.0),
    "paw": BlobStyle("ring", 2.6, 0.9, 110.0),
    "digit1": BlobStyle("gauss", 1.3, 1.3, 105.0),
    "digit2": BlobStyle("gauss", 1.3, 1.3, -70.0),
    "knob_marker": BlobStyle("gauss", 1.7, 1.7, -85.0),
}


def _blob_values(style: BlobStyle, dx: np.ndarray, dy: np.ndarray, scale: float) -> np.ndarray:
    if style.shape == "ring":
        r = np.hypot(dx, dy)
        return style.amplitude * np.exp(-0.5 * ((r - style.sigma_x * scale) / (style.sigma_y * scale)) ** 2)
    return style.amplitude * np.exp(-0.5 * ((dx / (style.sigma_x * scale)) ** 2 + (dy / (style.sigma_y * scale)) ** 2))


@dataclass(frozen=True)
class SensorNoise:
    """What a CMOS sensor adds to a Mono8 image, in DN: shot noise, read noise and a fixed pattern.

    Photon shot noise (variance = signal / ``electrons_per_dn``), read noise (``read_dn``, std), and a fixed
    pattern that is the same in every frame of a camera: per-pixel dark offsets (DSNU, std ``dsnu_dn``) and
    gains (PRNU, relative std ``prnu``).

    Defaults: a Sony IMX273 (Blackfly S BFS-U3-16S2M; ~11 ke- full well over 8 bits, 43 e-/DN at 0 dB) at
    10 dB of gain, as a 2 ms exposure under IR light needs: ~3.4 DN of noise on a 100 DN background.

    Attributes
    ----------
    read_dn : float, DN
    electrons_per_dn : float, e-/DN
        Must be > 0.
    dsnu_dn : float, DN
    prnu : float

    Raises
    ------
    InputError
        On construction, if a noise level is < 0 or ``electrons_per_dn`` is not > 0.
    """

    read_dn: float = 2.0
    electrons_per_dn: float = 13.6
    dsnu_dn: float = 0.8
    prnu: float = 0.01

    def __post_init__(self):
        if min(self.read_dn, self.dsnu_dn, self.prnu) < 0 or not self.electrons_per_dn > 0:
            raise InputError(f"SensorNoise: noise levels must be >= 0 and electrons_per_dn > 0, got {self}")

    @classmethod
    def with_read_noise(cls, read_dn: float) -> "SensorNoise":
        """The default sensor with another read noise; 0 turns every noise off (noise-free frames).

        Parameters
        ----------
        read_dn : float, DN

        Returns
        -------
        SensorNoise
        """
        return cls(read_dn=read_dn) if read_dn > 0 else cls(0.0, np.inf, 0.0, 0.0)

    def fixed_pattern(self, image: np.ndarray, seed: int) -> np.ndarray:
        """``image`` (float32) as this sensor's pixels see it: PRNU gains and DSNU offsets, seeded per camera.

        Parameters
        ----------
        image : numpy.ndarray, (h, w) float32, DN
        seed : int
            The camera's seed (the same pattern in every frame).

        Returns
        -------
        numpy.ndarray, (h, w) float32, DN
        """
        if not (self.dsnu_dn or self.prnu):
            return image
        rng = np.random.default_rng([seed, 0x5E75])
        gain = 1.0 + self.prnu * rng.standard_normal(image.shape, dtype=np.float32)
        return image * gain + self.dsnu_dn * rng.standard_normal(image.shape, dtype=np.float32)

    def add(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``image`` (float32) plus this frame's shot and read noise.

        Parameters
        ----------
        image : numpy.ndarray, (h, w) float32, DN
        rng : numpy.random.Generator

        Returns
        -------
        numpy.ndarray, (h, w) float32, DN
        """
        variance = cv2.scaleAdd(np.maximum(image, 0), float(1.0 / self.electrons_per_dn),
                                np.full_like(image, self.read_dn ** 2))
        if not variance.any():
            return image
        return cv2.add(cv2.multiply(cv2.sqrt(variance), sensor_noise(image.shape, rng)), image)


def render_background(camera: CameraModel, scene: Scene, seed: int = 0,
                      sensor: SensorNoise = SensorNoise()) -> np.ndarray:
    """Static float32 background of one camera: vertical gradient, smooth texture, the knob disc.

    It is as the camera's pixels see it (the sensor's fixed pattern).

    Parameters
    ----------
    camera : CameraModel
    scene : Scene
    seed : int
    sensor : SensorNoise

    Returns
    -------
    numpy.ndarray, (h, w) float32, DN
    """
    w, h = camera.size
    rng = np.random.default_rng(seed)
    lo, hi = BACKGROUND_LEVELS
    img = np.linspace(lo + 5, hi - 5, h, dtype=np.float32)[:, None].repeat(w, axis=1)
    texture = cv2.GaussianBlur(rng.normal(size=(h, w)).astype(np.float32), (0, 0), max(w / 60, 1.0))
    img += 5.0 * texture / max(float(np.abs(texture).max()), 1e-6)
    rim = camera.project(scene.knob_rim(np.linspace(0.0, 360.0, 96, endpoint=False)))
    if np.isfinite(rim).all():
        disc = np.zeros((h, w), np.uint8)
        cv2.fillPoly(disc, [np.round(rim * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        alpha = disc.astype(np.float32) / 255.0
        img = img * (1 - alpha) + KNOB_LEVEL * alpha
    return sensor.fixed_pattern(img, seed)


def draw_blobs(image: np.ndarray, points2d: np.ndarray, visible: np.ndarray) -> None:
    """Add the visible keypoint blobs (points2d (P, 2) pixels, in BODYPARTS order) to a float image."""
    h, w = image.shape
    scale = w / STYLE_REFERENCE_WIDTH
    for name, (x, y), vis in zip(BODYPARTS, points2d, visible):
        style = BLOB_STYLES[name]
        if not vis or not (np.isfinite(x) and np.isfinite(y)):
            continue
        half = int(np.ceil(style.extent() * scale))
        x0, x1 = max(int(round(x)) - half, 0), min(int(round(x)) + half + 1, w)
        y0, y1 = max(int(round(y)) - half, 0), min(int(round(y)) + half + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = np.arange(x0, x1)[None, :] - x
        dy = np.arange(y0, y1)[:, None] - y
        image[y0:y1, x0:x1] += _blob_values(style, dx, dy, scale)


#: Unit-variance binomial(8, 1/2) noise per random byte: near-Gaussian read noise, 4x cheaper than normals.
_BYTE_NOISE = ((np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.float32) - 4)
               / np.float32(np.sqrt(2.0)))


def sensor_noise(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance float32 read noise (binomial approximation of a Gaussian)."""
    return _BYTE_NOISE[np.frombuffer(rng.bytes(int(np.prod(shape))), dtype=np.uint8)].reshape(shape)


def render_frame(background: np.ndarray, points2d: np.ndarray, visible: np.ndarray,
                 sensor: SensorNoise = SensorNoise(), rng: np.random.Generator | None = None) -> np.ndarray:
    """One Mono8 frame (h, w) uint8: background + blobs of the visible keypoints + shot and read noise.

    The sum is rounded (half to even) and saturated to 0..255.

    Parameters
    ----------
    background : numpy.ndarray, (h, w), DN
        E.g. from ``render_background``.
    points2d : array_like, (P, 2), px
        Keypoints in BODYPARTS order.
    visible : array_like, (P,) bool
    sensor : SensorNoise
    rng : numpy.random.Generator, optional
        Default a fresh, unseeded one.

    Returns
    -------
    numpy.ndarray, (h, w) uint8
    """
    image = np.array(background, dtype=np.float32)
    draw_blobs(image, np.asarray(points2d, dtype=np.float64), np.asarray(visible, dtype=bool))
    image = sensor.add(image, rng if rng is not None else np.random.default_rng())
    return cv2.add(image, 0.0, dtype=cv2.CV_8U)


def random_occlusions(n_frames: int, n_cameras: int, fps: float, rate_hz: float, rng: np.random.Generator,
                      duration_s: tuple[float, float] = (0.05, 0.2)) -> np.ndarray:
    """Occlusion mask (n_frames, n_cameras, len(BODYPARTS)): episodes hiding one keypoint in one camera,
    Poisson in time at ``rate_hz`` per keypoint, each lasting ``duration_s`` (uniform)."""
    n_parts = len(BODYPARTS)
    n_episodes = rng.poisson(rate_hz * n_parts * n_frames / fps)
    start = rng.integers(0, max(n_frames, 1), n_episodes)
    stop = np.minimum(start + np.ceil(rng.uniform(*duration_s, n_episodes) * fps).astype(int), n_frames)
    flat = rng.integers(0, n_cameras, n_episodes) * n_parts + rng.integers(0, n_parts, n_episodes)
    edges = np.zeros((n_frames + 1, n_cameras * n_parts), np.int32)
    np.add.at(edges, (start, flat), 1)
    np.add.at(edges, (stop, flat), -1)
    return (np.cumsum(edges, axis=0)[:-1] > 0).reshape(n_frames, n_cameras, n_parts)


def in_image(points2d: np.ndarray, size: tuple[int, int], margin: float = 0.0) -> np.ndarray:
    """True where pixel points (..., 2) lie inside an image of ``size`` (w, h) by ``margin`` pixels."""
    w, h = size
    x, y = points2d[..., 0], points2d[..., 1]
    with np.errstate(invalid="ignore"):
        return (x >= margin - 0.5) & (x <= w - 0.5 - margin) & (y >= margin - 0.5) & (y <= h - 0.5 - margin)
