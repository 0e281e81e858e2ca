"""Calibration: a calibration recording per rig -> a calibrated Rig -> which calibration a session uses."""
from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from pathlib import Path

import datajoint as dj

from ..calibration import CalibrationSettings, board_from_dict, calibrate_rig
from ..calibration.selection import select_calibration
from ..ingest.calibration_folder import read_calibration_folder
from ..rig import Camera as CameraModel
from ..rig import Rig
from . import raw
from .limits import check_rows

schema = dj.Schema()


@schema
class CalibrationRecording(dj.Manual):
    definition = """  # a calibration folder (docs/calibration-format.md) of one rig
    rig : varchar(64)
    calibration_date : datetime
    ---
    calib_dir : varchar(1024)     # absolute path when registered
    board : <blob>                # board definition (ratpose.calibration board_from_dict)
    camera_names : <blob>         # camera order; the first defines the world frame
    settings : <blob>             # CalibrationSettings.to_dict() (every calibration setting)
    notes = '' : varchar(1024)
    checksums = null : <blob>     # {relative file name: sha256} of the registered folder
    """


@schema
class Calibration(dj.Computed):
    definition = """  # intrinsics + extrinsics of every camera after joint bundle adjustment (mm, camera 0 = world)
    -> CalibrationRecording
    ---
    rms_px : float64             # overall reprojection RMS
    n_joint_instants : int32     # instants where at least two cameras saw the board
    converged : bool
    """

    class Camera(dj.Part):
        definition = """
        -> master
        -> raw.Camera
        ---
        camera_order : int16
        width : int32
        height : int32
        camera_matrix : <blob>     # K (3, 3)
        distortion : <blob>        # (k1, k2, p1, p2, k3)
        rotation : <blob>          # R (3, 3): x_cam = R X + t
        translation : <blob>       # t (3,) mm
        rms_px : float64
        p95_px : float64
        lens_model : varchar(16)   # distortion model fitted (LENS_MODELS)
        heldout_px : <blob>        # candidate model -> RMS px on views left out (empty when forced)
        n_shared_views : int32
        n_single_views : int32
        coverage : float64         # fraction of image cells with a detected corner
        corners : <blob@ratpose>   # detected corners (n, 2) px, for QC plots
        residuals : <blob@ratpose> # projection - detection (n, 2) px
        """

    def make_fetch(self, key):
        calib_dir, settings = (CalibrationRecording & key).fetch1("calib_dir", "settings")
        return str(calib_dir), settings

    def make_compute(self, key, calib_dir, settings):
        material = read_calibration_folder(calib_dir)
        return calibrate_rig(material.frames, material.board, material.intrinsics_frames,
                             CalibrationSettings.from_dict(settings))

    def make_insert(self, key, rig, report):
        self.insert1({**key, "rms_px": report.rms_px, "n_joint_instants": report.n_joint_instants,
                      "converged": bool(report.converged)})
        quality = report.cameras
        self.Camera.insert([{**key, "camera": cam.name, "camera_order": i, "width": cam.size[0],
                             "height": cam.size[1], "camera_matrix": cam.K, "distortion": cam.dist,
                             "rotation": cam.R, "translation": cam.t,
                             **{f: getattr(quality[cam.name], f)
                                for f in ("rms_px", "p95_px", "lens_model", "heldout_px", "n_shared_views", "n_single_views", "coverage")},
                             "corners": quality[cam.name].points, "residuals": quality[cam.name].residuals}
                            for i, cam in enumerate(rig.cameras)])


@schema
class CalibrationChoice(dj.Manual):
    definition = """  # set by hand: this session uses this calibration (overrides the automatic choice)
    -> raw.Session
    ---
    -> Calibration
    """


@schema
class SessionCalibration(dj.Computed):
    definition = """  # the calibration a session uses: chosen by hand, else the rig's latest before the session
    -> raw.Session
    ---
    -> Calibration
    chosen_by : enum('hand', 'latest')
    """

    @property
    def key_source(self):
        return raw.Session & raw.Recording

    def make_fetch(self, key):
        session = (raw.Session & key).fetch1()
        recordings = (raw.Recording & key).proj("width", "height").to_dicts()  # not the frame arrays
        by_hand = (CalibrationChoice & key).to_dicts()
        candidates = (Calibration.proj() * CalibrationRecording.proj()).to_dicts()
        cameras = (Calibration.Camera.proj("width", "height")).to_dicts()
        return session, recordings, by_hand, candidates, cameras

    def make_compute(self, key, session, recordings, by_hand, candidates, cameras):
        choice = select_calibration(
            session_rig=session["rig"], session_datetime=session["session_datetime"],
            session_cameras={r["camera"]: (r["width"], r["height"]) for r in recordings},
            candidates=candidates, candidate_cameras=cameras,
            by_hand=by_hand[0] if by_hand else None)
        return (choice,)

    def make_insert(self, key, choice):
        self.insert1({**key, **choice})


def register_calibration(calib_dir: str | Path, notes: str = "", settings: CalibrationSettings | None = None,
                         **overrides) -> tuple[dict, bool]:
    """Validate a calibration folder and insert it as a CalibrationRecording (idempotent).

    ``settings`` (default ``CalibrationSettings()``, as ``calibrate_rig``) with ``overrides`` of its fields.
    """
    settings = replace(settings or CalibrationSettings(), **overrides)
    material = read_calibration_folder(calib_dir)
    when = material.date if isinstance(material.date, _dt.datetime) else _dt.datetime.fromisoformat(str(material.date))
    key = {"rig": material.rig_name, "calibration_date": when}
    folder = Path(calib_dir).resolve()
    row = {**key, "calib_dir": str(folder), "board": material.board.to_dict(),
           "camera_names": list(material.camera_names), "settings": settings.to_dict(), "notes": notes,
           "checksums": material.checksums}
    cameras = [{"camera": name} for name in material.camera_names]
    check_rows(CalibrationRecording, [row], str(folder / "calibration.toml"))
    check_rows(raw.Camera, cameras, str(folder / "calibration.toml"))
    existing = (CalibrationRecording & key).to_dicts()
    if existing:
        if existing[0]["checksums"] != material.checksums:
            raise ValueError(f"{folder}: rig {key['rig']!r} already has a calibration dated {when.isoformat()} "
                             f"from {existing[0]['calib_dir']} with other content "
                             f"({raw.describe_changes(existing[0]['checksums'], material.checksums)}); to replace it "
                             f"(and what was computed from it): ratpose delete --rig {key['rig']} --calibration-date "
                             f"{when.isoformat()}, then ratpose ingest {folder}")
        return key, False
    with CalibrationRecording.connection.transaction:
        raw.Camera.insert(cameras, skip_duplicates=True)
        CalibrationRecording.insert1(row)
    return key, True


def fetch_rig(key: dict) -> Rig:
    """The calibrated Rig of a Calibration (cameras in calibration order)."""
    rows = (Calibration.Camera & key).to_dicts(order_by="camera_order")
    if not rows:
        raise ValueError(f"no calibrated cameras for {key}")
    return Rig(tuple(CameraModel(name=r["camera"], size=(r["width"], r["height"]), K=r["camera_matrix"],
                                 dist=r["distortion"], R=r["rotation"], t=r["translation"]) for r in rows))


def session_calibration_key(session_key: dict) -> dict | None:
    """Key (rig, calibration_date) of the Calibration a session uses; None before SessionCalibration."""
    rows = (SessionCalibration & session_key).to_dicts()
    return {k: rows[0][k] for k in ("rig", "calibration_date")} if rows else None


def session_rig(session_key: dict) -> Rig | None:
    """The calibrated Rig a session uses, rescaled to its recordings' resolution; None before SessionCalibration."""
    calibration_key = session_calibration_key(session_key)
    if calibration_key is None:
        return None
    sizes = {r["camera"]: (r["width"], r["height"])
             for r in (raw.Recording & session_key).proj("width", "height").to_dicts()}
    return fetch_rig(calibration_key).scaled(sizes)


def board_of(key: dict):
    """The board of a CalibrationRecording as a ratpose.calibration board."""
    return board_from_dict((CalibrationRecording & key).fetch1("board"))
