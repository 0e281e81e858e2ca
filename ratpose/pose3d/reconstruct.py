"""What the Pose3D table computes: match cameras by pulse, triangulate, filter, summarise (no database)."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import DataError
from ..rig import Rig
from ..sync import match_cameras
from .filtering import median_filter
from .smooth import smooth
from .triangulation import Triangulation, triangulate
from .validation import held_out_error

METHODS = ("linear", "smooth")
#: smooth without max_reprojection_px: a point whose mean error over the cameras it uses (their 2D not judged
#: wrong against their own noise) exceeds this fraction of the image diagonal is NaN (36 px at 1440 x 1080):
#: 2D that contradicts the geometry, e.g. swapped cameras, whose own noise estimate is large too
GATE_FRACTION = 0.02


@dataclass(frozen=True)
class Pose3DSettings:
    """Reconstruction settings: likelihood cutoff, error limit, refinement, optional median filter, and method.

    Attributes
    ----------
    min_likelihood : float
        2D observations below it are not trusted ('smooth': ignored).
    max_reprojection_px : float, optional, px
        A point whose reprojection error over the cameras it trusts exceeds it is NaN. None (smooth's
        default): each 2D observation is judged against its own camera's robustly estimated noise (6x), and
        only a point whose error over the cameras it still uses exceeds GATE_FRACTION of their image diagonal
        is dropped (no noise explains it).
    refine : bool
        Gauss-Newton refinement of the triangulation ('linear' only: refine does not apply to 'smooth').
    median_window : int, frames
        Median filter of the 3D points (0 = no filtering).
    method : {"linear", "smooth"}
        'linear': each frame triangulated on its own; 'smooth' (pose3d.smooth): all frames jointly, robust to
        outliers, with a posterior sigma per point.
    accel_mm_s2 : float, optional, mm/s^2
    limb_sigma_mm : float, optional, mm
        The smoother's acceleration and limb-length priors (> 0); None: learned from each session's own data
        per body part and per limb.
    limbs : str
        The smoother's limb segments as 'partA-partB' pairs separated by commas, e.g. 'wrist-paw,paw-digit1'
        ('' = none).

    Raises
    ------
    DataError
        On construction, if ``method`` is unknown or a prior is not > 0.
    """

    min_likelihood: float = 0.1
    max_reprojection_px: float | None = None
    refine: bool = True
    median_window: int = 0  # frames; 0 = no filtering
    method: str = "smooth"
    accel_mm_s2: float | None = None
    limb_sigma_mm: float | None = None
    limbs: str = ""

    def __post_init__(self):
        if self.method not in METHODS:
            raise DataError(f"Pose3D method must be one of {METHODS}, got {self.method!r}")
        if any(v is not None and not v > 0 for v in (self.accel_mm_s2, self.limb_sigma_mm)):
            raise DataError(f"Pose3D accel_mm_s2 and limb_sigma_mm must be > 0 (or None: learned), got "
                             f"{self.accel_mm_s2}, {self.limb_sigma_mm}")

    def limb_indices(self, bodyparts) -> list[tuple[int, int]]:
        """limbs as index pairs into bodyparts; an unknown or malformed pair raises naming it.

        Parameters
        ----------
        bodyparts : tuple of str
            The body parts, in the pose's column order.

        Returns
        -------
        list of tuple of int

        Raises
        ------
        DataError
            If a pair is not two different body parts of ``bodyparts``.
        """
        pairs = []
        for pair in filter(None, (p.strip() for p in self.limbs.split(","))):
            names = pair.split("-")
            if len(names) != 2 or any(n not in bodyparts for n in names) or names[0] == names[1]:
                raise DataError(f"Pose3D limbs: {pair!r} is not two different body parts of {list(bodyparts)}")
            pairs.append((bodyparts.index(names[0]), bodyparts.index(names[1])))
        return pairs


@dataclass(frozen=True)
class Pose3DResult:
    """3D pose on the neural clock: one row per pulse seen by every camera.

    Attributes
    ----------
    pulse_index : numpy.ndarray, (n_frames,) int64
        The trigger pulse of each row.
    time_s : numpy.ndarray, (n_frames,), s
        Its neural-clock time.
    triangulation : Triangulation
        Errors, cameras used and scores per point (for 'smooth': the QC of the smoothed points).
    points3d : numpy.ndarray, (n_frames, n_parts, 3), mm
        After optional filtering.
    """

    pulse_index: np.ndarray
    time_s: np.ndarray
    triangulation: Triangulation
    points3d: np.ndarray  # (n_frames, n_parts, 3) after optional filtering
    sigma_mm: np.ndarray | None = None  # (n_frames, n_parts) posterior std (smooth only)
    outliers: np.ndarray | None = None  # (n_cameras, n_frames, n_parts) 2D judged wrong (smooth only)
    accel_mm_s2: np.ndarray | None = None  # (n_parts,) acceleration prior used (smooth only)
    limb_sigma_mm: np.ndarray | None = None  # (n_limbs,) limb-length prior used (smooth only)
    held_out_error_px: np.ndarray | None = None  # (n_cameras, n_parts) validation.held_out_error (3+ cameras)

    def part_summary(self, p: int) -> dict:
        """QC of body part p: fraction triangulated, median and 95th percentile reprojection error.

        The errors are raw px, over every camera that saw the point: ``Triangulation.qc_error``.

        Parameters
        ----------
        p : int
            The body part's index.

        Returns
        -------
        dict
            ``fraction_triangulated``, ``median_error_px`` and ``p95_error_px`` (NaN without triangulated points).
        """
        ok = np.isfinite(self.points3d[:, p, 0])
        errors = self.triangulation.qc_error[ok, p]
        return {"fraction_triangulated": float(ok.mean()) if ok.size else 0.0,
                "median_error_px": float(np.median(errors)) if errors.size else float("nan"),
                "p95_error_px": float(np.percentile(errors, 95)) if errors.size else float("nan")}


def reconstruct(rig: Rig, frames: dict[str, tuple[np.ndarray, np.ndarray]],
                pose2d: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], params: Pose3DSettings,
                bodyparts: tuple[str, ...] = ()) -> Pose3DResult:
    """Reconstruct 3D from the 2D pose of several cameras, matched by pulse index.

    Parameters
    ----------
    rig : Rig
        Every camera of the rig needs frames and 2D pose.
    frames : dict of str to tuple of numpy.ndarray
        Camera -> (pulse_index, time_s (s)) per video frame (SyncedFrames).
    pose2d : dict of str to tuple of numpy.ndarray
        Camera -> (x, y, likelihood), each (n_frames, n_parts), x and y in px, aligned row-for-row with that
        camera's frames.
    params : Pose3DSettings
    bodyparts : tuple of str
        The column names (needed when params.limbs names segments).

    Returns
    -------
    Pose3DResult
        With the smoother's sigma, outliers and priors for 'smooth', and held-out errors with 3+ cameras.

    Raises
    ------
    DataError
        If a camera of the rig has no synced 2D pose, its pose rows differ from its frames, the limbs are
        malformed, or the reconstruction's inputs are unusable.
    """
    missing = [name for name in rig.names if name not in frames or name not in pose2d]
    if missing:
        raise DataError(f"cameras {missing} of the calibration have no synced 2D pose in this session")
    for name in rig.names:
        if len(frames[name][0]) != len(pose2d[name][0]):
            raise DataError(f"camera {name!r}: {len(pose2d[name][0])} pose rows for {len(frames[name][0])} frames")
    common, rows, points2d, likelihood = matched_2d(rig, {name: frames[name][0] for name in rig.names}, pose2d)
    time_s = frames[rig.names[0]][1][rows[rig.names[0]]]
    fps = 1.0 / float(np.median(np.diff(time_s))) if len(time_s) > 1 else 1.0
    limbs = params.limb_indices(tuple(bodyparts))
    fit, result = _estimate(points2d, rig, likelihood, params, fps, limbs)
    points3d = result.points3d
    if params.median_window > 1:
        points3d = median_filter(points3d, params.median_window)
    held_out = held_out_error(points2d, rig, likelihood,
                              lambda p, r, lik: _estimate(p, r, lik, params, fps, limbs)[1].points3d,
                              min_likelihood=max(params.min_likelihood, 0.5)) if len(rig) >= 3 else None
    smoothed = {} if fit is None else {"sigma_mm": fit.sigma_mm, "outliers": fit.outliers,
                                       "accel_mm_s2": fit.accel_mm_s2, "limb_sigma_mm": fit.limb_sigma_mm}
    return Pose3DResult(pulse_index=common, time_s=time_s, triangulation=result, points3d=points3d,
                        held_out_error_px=held_out, **smoothed)


def _estimate(points2d, rig: Rig, likelihood, params: Pose3DSettings, fps: float, limbs):
    """(SmoothResult or None, Triangulation) of one set of cameras' matched 2D by params' method."""
    if params.method == "smooth":
        fit = smooth(points2d, rig, likelihood, fps=fps, min_likelihood=params.min_likelihood,
                     accel_mm_s2=params.accel_mm_s2, limb_sigma_mm=params.limb_sigma_mm, limbs=limbs)
        gate = params.max_reprojection_px
        if gate is None:  # scaled to the cameras' resolution: what no detector's noise explains
            gate = GATE_FRACTION * float(np.mean([np.hypot(*cam.size) for cam in rig]))
        per_frame = triangulate(points2d, rig, likelihood, min_likelihood=max(params.min_likelihood, 0.5),
                                refine=True, max_reprojection_px=gate).points3d
        qc, stood_in = _smooth_qc(fit.points3d, rig, points2d, likelihood, likelihood >= params.min_likelihood,
                                  fit.outliers, gate, per_frame)
        # where the cameras' own triangulation stood in, sigma is at least how far the smooth estimate was off
        sigma = np.where(stood_in, np.fmax(fit.sigma_mm, np.linalg.norm(per_frame - fit.points3d, axis=-1)),
                         fit.sigma_mm)
        return replace(fit, sigma_mm=sigma), qc
    return None, triangulate(points2d, rig, likelihood, min_likelihood=params.min_likelihood, refine=params.refine,
                             max_reprojection_px=params.max_reprojection_px)


def matched_2d(rig: Rig, pulses: dict[str, np.ndarray],
               pose2d: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]):
    """The pulses every camera of the rig saw, each camera's rows of them, points2d (C, n, P, 2) and
    likelihood (C, n, P) in the rig's camera order (pose2d: camera -> (x, y, likelihood) per video frame)."""
    common, rows = match_cameras({name: pulses[name] for name in rig.names})
    points2d = np.stack([np.stack([pose2d[n][0][rows[n]], pose2d[n][1][rows[n]]], axis=-1) for n in rig.names])
    likelihood = np.stack([pose2d[n][2][rows[n]] for n in rig.names])
    return common, rows, points2d, likelihood


def _smooth_qc(points3d: np.ndarray, rig: Rig, points2d: np.ndarray, likelihood: np.ndarray,
               trusted: np.ndarray, outliers: np.ndarray, max_reprojection_px: float,
               per_frame: np.ndarray) -> tuple[Triangulation, np.ndarray]:
    """Triangulation-style QC of smoothed 3D points. reprojection_error (= qc_error): mean raw-pixel error
    over every confident camera, the 2D judged wrong included (as for 'linear', so QC and outlier frame
    picking see the disagreement); cameras used and likelihood score: the confident, not judged wrong. A
    point whose error over the cameras used exceeds max_reprojection_px takes the cameras' own per-frame
    triangulation per_frame (n_frames, n_parts, 3) where that fits them (a fast reach the motion prior cut
    short: a point the cameras agree on is never dropped), else is NaN: no smoothness makes 2D that disagrees
    with the geometry (e.g. swapped cameras) a 3D pose. Returns the QC and where per_frame stood in."""
    seen = trusted & np.isfinite(points2d).all(axis=-1)
    used = seen & ~outliers
    error = np.linalg.norm(rig.project(points3d) - points2d, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_seen = np.where(seen, error, 0.0).sum(axis=0) / seen.sum(axis=0)
        mean_used = np.where(used, error, 0.0).sum(axis=0) / used.sum(axis=0)
        score = np.where(used, likelihood, 0.0).sum(axis=0) / used.sum(axis=0)
    gated = mean_used > max_reprojection_px
    points3d = np.where(gated[..., None], per_frame, points3d)
    return Triangulation(points3d=points3d, reprojection_error=mean_seen, n_cameras=used.sum(axis=0),
                         camera_mask=used, score=score, qc_error=mean_seen), gated & np.isfinite(per_frame[..., 0])
