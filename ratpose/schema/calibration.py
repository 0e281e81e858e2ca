"""Calibration: a calibration recording per rig -> a calibrated Rig -> which calibration a session uses."""
from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from pathlib import Path

import datajoint as dj
import numpy as np

from ..calibration import (
    CalibrationError,
    CalibrationSettings,
    board_from_dict,
    calibrate_rig,
    rig_from_anipose_text,
)
from ..calibration.drift import camera_drift
from ..calibration.interop import DLC3D_PICKLE, load_dlc3d_project, rig_to_anipose_text
from ..calibration.selection import select_calibration
from ..errors import InputError
from ..ingest.calibration_folder import CalibrationMaterial, check_rig_cameras
from ..ingest.calibration_layouts import calibration_datetime, read_calibration
from ..ingest.session_folder import file_checksums
from ..names import CAMERA_NAME, camera_name_from
from ..rig import CameraModel, Rig
from ..roots import configured_roots, local_path, reachable, stored_location
from . import raw
from .limits import check_rows

schema = dj.Schema()


@schema
class CalibrationRecording(dj.Manual):
    definition = """  # a calibration folder (any layout of ingest.calibration_layouts) or an imported calibration file
    rig : varchar(64)
    calibration_date : datetime
    ---
    source = 'folder' : enum('folder', 'anipose', 'dlc3d')  # 'anipose', 'dlc3d': an imported calibration, no images
    calib_dir : varchar(1024)     # the folder (or imported file): relative to data_root, or absolute when it is ''
    data_root = '' : varchar(32)  # named data root (ratpose.roots) of a folder; '': calib_dir is absolute
    layout = 'ratpose' : varchar(16)  # the folder's layout: ratpose, anipose, sleap-anipose, dlc3d, named files
    media = 'images' : enum('images', 'videos')  # what was read: images, or frames sampled from board videos
    board = null : <blob>         # board definition (ratpose.calibration board_from_dict); null when imported
    imported = null : <blob>      # the imported calibration as Anipose calibration.toml text
    camera_names : <blob>         # camera order; the first defines the world frame
    settings : <blob>             # CalibrationSettings.to_dict() (every calibration setting)
    notes = '' : varchar(1024)
    checksums = null : <blob>     # {relative file name: sha256} of the registered folder
    """


@schema
class Calibration(dj.Computed):
    depends_on_machine = True   # key_source: folders this machine reaches (schema.jobs.prepare)
    definition = """  # intrinsics + extrinsics of every camera after joint bundle adjustment (mm, camera 0 = world)
    -> CalibrationRecording
    ---
    rms_px = null : float64      # overall reprojection RMS (null: imported, no images)
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
        distortion : <blob>        # (k1, k2, p1, p2, k3), + (k4, k5, k6) with the rational model; fisheye: k1..k4
        projection = "pinhole" : varchar(8)  # 'pinhole' (OpenCV) or 'fisheye' (cv2.fisheye, equidistant)
        rotation : <blob>          # R (3, 3): x_cam = R X + t
        translation : <blob>       # t (3,) mm
        rms_px = null : float64    # null: imported, no images
        p95_px = null : float64
        lens_model : varchar(16)   # distortion model fitted (LENS_MODELS); 'imported' when imported
        heldout_px : <blob>        # candidate model -> RMS px on views left out (empty when forced)
        n_shared_views : int32
        n_single_views : int32
        coverage = null : float64  # fraction of image cells with a detected corner
        corners : <blob@ratpose>   # detected corners (n, 2) px, for QC plots
        residuals : <blob@ratpose> # projection - detection (n, 2) px
        """

    @property
    def key_source(self):
        """Calibration recordings this machine can compute: imported ones (no files) and folders whose data root
        it maps; the others are left to a machine that maps their root."""
        roots = configured_roots()
        return super().key_source & [{"rig": r["rig"], "calibration_date": r["calibration_date"]}
                                     for r in CalibrationRecording.proj("source", "data_root").to_dicts()
                                     if r["source"] != "folder" or reachable(r["data_root"], roots)]

    def make_fetch(self, key):
        row = (CalibrationRecording & key).fetch1()
        folder = str(local_path(row["data_root"], row["calib_dir"], configured_roots()))
        return row["source"], folder, row["settings"], row["imported"], row["board"], row["media"]

    def make_compute(self, key, source, calib_dir, settings, imported, board, media):
        if source != "folder":
            return rig_from_anipose_text(imported, calib_dir), None
        material = read_calibration(calib_dir, key["rig"], key["calibration_date"], board_from_dict(board), media)
        return calibrate_rig(material.frames, material.board, material.intrinsics_frames,
                             CalibrationSettings.from_dict(settings))

    def make_insert(self, key, rig, report):
        """``report`` None: an imported calibration (no images, so no reprojection statistics)."""
        overall = ({"rms_px": None, "n_joint_instants": 0, "converged": True} if report is None else
                   {"rms_px": report.rms_px, "n_joint_instants": report.n_joint_instants,
                    "converged": bool(report.converged)})
        self.insert1({**key, **overall})
        self.Camera.insert([{**key, "camera": cam.name, "camera_order": i, "width": cam.size[0],
                             "height": cam.size[1], "camera_matrix": cam.K, "distortion": cam.dist,
                             "projection": cam.model,
                             "rotation": cam.R, "translation": cam.t, **_quality_row(report, cam.name)}
                            for i, cam in enumerate(rig.cameras)])


def _quality_row(report, camera: str) -> dict:
    """The QC columns of one camera; an imported calibration (report None) has none to show."""
    if report is None:
        return {"lens_model": "imported", "heldout_px": {}, "n_shared_views": 0, "n_single_views": 0,
                "corners": np.zeros((0, 2)), "residuals": np.zeros((0, 2))}
    q = report.cameras[camera]
    return {**{f: getattr(q, f) for f in ("rms_px", "p95_px", "lens_model", "heldout_px", "n_shared_views",
                                          "n_single_views", "coverage")},
            "corners": q.points, "residuals": q.residuals}


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
                         material: CalibrationMaterial | None = None, **overrides) -> tuple[dict, bool]:
    """Validate a calibration folder and insert it as a CalibrationRecording (idempotent).

    ``material``: the folder as read (``read_calibration``, for a layout that needs --rig/--date/--board);
    default: read as a ratpose calibration folder. ``settings`` (default ``CalibrationSettings()``, as
    ``calibrate_rig``) with ``overrides`` of its fields.
    """
    settings = replace(settings or CalibrationSettings(), **overrides)
    material = material or read_calibration(calib_dir)
    when = material.date if isinstance(material.date, _dt.datetime) else _dt.datetime.fromisoformat(str(material.date))
    key = {"rig": material.rig_name, "calibration_date": when}
    folder = Path(calib_dir).resolve()
    check_rig_cameras(folder, material.rig_name, material.camera_names, rig_cameras(material.rig_name, when))
    data_root, calib_dir = stored_location(folder, configured_roots())
    row = {**key, "calib_dir": calib_dir, "data_root": data_root, "layout": material.layout, "media": material.media,
           "board": material.board.to_dict(),
           "camera_names": list(material.camera_names), "settings": settings.to_dict(), "notes": notes,
           "checksums": material.checksums}
    return _insert_recording(row, folder, folder / "calibration.toml" if material.layout == "ratpose" else folder)


def rig_cameras(rig: str, when: _dt.datetime) -> set[str]:
    """Cameras rig ``rig`` is known to have at ``when``: those its ingested sessions from then on recorded,
    else those of its latest calibration before; empty when the database knows neither."""
    sessions = (raw.Recording.proj() * raw.Session.proj("rig") & {"rig": rig}).to_dicts()
    recorded = {r["camera"] for r in sessions if r["session_datetime"] >= when}
    earlier = [r for r in (CalibrationRecording & {"rig": rig}).proj("camera_names").to_dicts()
               if r["calibration_date"] < when]
    return recorded or set(max(earlier, key=lambda r: r["calibration_date"])["camera_names"] if earlier else [])


def import_anipose_calibration(toml_path: str | Path, rig: str, date, notes: str = "") -> tuple[dict, bool]:
    """Register an Anipose/aniposelib calibration.toml as the calibration of ``rig`` on ``date`` (idempotent).

    No images: Calibration copies the file's cameras (source 'anipose'). Refuses a file with identical
    cameras or bad camera names; SessionCalibration refuses it for a session whose image sizes differ.
    """
    path = Path(toml_path).resolve()
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read Anipose calibration: {exc}") from None
    return _import(path, text, rig, date, notes, "anipose", [path])


def import_dlc3d_calibration(project: str | Path, rig: str, date, square_mm: float,
                             notes: str = "") -> tuple[dict, bool]:
    """Register a DeepLabCut 3D project's stereo calibration (config.yaml + camera_matrix/stereo_params.pickle)
    as the calibration of ``rig`` on ``date`` (idempotent); cameras renamed as ratpose names
    (``camera-1`` -> ``camera_1``), translations in mm from the board's ``square_mm``."""
    path = Path(project).resolve()
    dlc = load_dlc3d_project(path, square_mm)
    try:
        renamed = Rig(tuple(replace(cam, name=camera_name_from(cam.name)) for cam in dlc))
    except ValueError as exc:
        raise CalibrationError(f"{path / 'config.yaml'}: {exc}") from None
    text = rig_to_anipose_text(renamed, {"imported_from": "DeepLabCut 3D", "square_mm": square_mm})
    return _import(path, text, rig, date, notes, "dlc3d", [path / "config.yaml", path / DLC3D_PICKLE])


def _import(path: Path, text: str, rig: str, date, notes: str, source: str, files: list[Path]) -> tuple[dict, bool]:
    """Insert an imported calibration (Anipose text) as a CalibrationRecording of ``rig`` on ``date``; refuses
    text Calibration could not use (``rig_from_anipose_text``: identical cameras, malformed values)."""
    cameras = rig_from_anipose_text(text, path).names
    for name in cameras:
        if not CAMERA_NAME.fullmatch(name):
            raise CalibrationError(f"{path}: bad camera name {name!r} ([a-z][a-z0-9_]*)")
    when = calibration_datetime(path, date)
    if not str(rig).strip():
        raise InputError(f"{path}: rig name is empty")
    root = files[0].parent
    row = {"rig": rig, "calibration_date": when, "source": source, "calib_dir": str(path), "board": None,
           "imported": text, "camera_names": list(cameras), "settings": CalibrationSettings().to_dict(),
           "notes": notes, "checksums": file_checksums(root, [str(f.relative_to(root)) for f in files])}
    return _insert_recording(row, path, path)


def _insert_recording(row: dict, origin: Path, where: Path) -> tuple[dict, bool]:
    """Insert a CalibrationRecording row and its cameras; an identical existing row is left alone."""
    key = {k: row[k] for k in ("rig", "calibration_date")}
    cameras = [{"camera": name} for name in row["camera_names"]]
    check_rows(CalibrationRecording, [row], str(where))
    check_rows(raw.Camera, cameras, str(where))
    existing = (CalibrationRecording & key).to_dicts()
    if existing:
        if existing[0]["checksums"] != row["checksums"]:
            when = key["calibration_date"].isoformat()
            again = {"anipose": f"ratpose calibrate --import-anipose {origin} --rig {key['rig']} --date {when}",
                     "dlc3d": f"ratpose calibrate --import-dlc3d {origin} --rig {key['rig']} --date {when} "
                              "--square-mm MM"}.get(row.get("source"),
                                                    f"ratpose ingest {origin}" if row.get("layout") == "ratpose"
                                                    else f"ratpose calibrate {origin} --rig {key['rig']} --date {when}")
            raise InputError(f"{origin}: rig {key['rig']!r} already has a calibration dated {when} "
                             f"from {existing[0]['calib_dir']} with other content "
                             f"({raw.describe_changes(existing[0]['checksums'], row['checksums'])}); to replace it "
                             f"(and what was computed from it): ratpose delete --rig {key['rig']} --calibration-date "
                             f"{when}, then {again}")
        return key, False
    with CalibrationRecording.connection.transaction:
        raw.Camera.insert(cameras, skip_duplicates=True)
        CalibrationRecording.insert1(row)
    return key, True


def fetch_rig(key: dict) -> Rig:
    """The calibrated Rig of a Calibration (cameras in calibration order)."""
    rows = (Calibration.Camera & key).to_dicts(order_by="camera_order")
    if not rows:
        raise InputError(f"no calibrated cameras for {key}")
    return Rig(tuple(CameraModel(name=r["camera"], size=(r["width"], r["height"]), K=r["camera_matrix"],
                                 dist=r["distortion"], R=r["rotation"], t=r["translation"],
                                 model=r["projection"]) for r in rows))


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


def compute_calibration(key: dict, discard_on_failure: bool = False) -> dict:
    """Populate the Calibration of a CalibrationRecording and return ``calibration_summary``.

    ``discard_on_failure``: when computing fails, delete the CalibrationRecording (it was just registered).
    """
    try:
        Calibration.populate(key, reserve_jobs=False)
    except Exception:
        if discard_on_failure:
            (CalibrationRecording & key).delete(prompt=False)
        raise
    return calibration_summary(key)


def calibration_summary(key: dict) -> dict:
    """A Calibration's overall and per-camera quality, each camera with its drift since the rig's previous one."""
    recording = (CalibrationRecording & key).fetch1()
    overall = (Calibration & key).fetch1()
    earlier = [k for k in (Calibration & {"rig": key["rig"]}).proj().to_dicts()
               if k["calibration_date"] < key["calibration_date"]]
    previous = max(earlier, key=lambda k: k["calibration_date"]) if earlier else None
    before = ({r["camera"]: r for r in (Calibration.Camera & previous).to_dicts()} if previous else {})
    cameras = []
    for r in (Calibration.Camera & key).to_dicts(order_by="camera_order"):
        drift = camera_drift(*({"K": x["camera_matrix"], "R": x["rotation"], "t": x["translation"]}
                               for x in (before[r["camera"]], r))) if r["camera"] in before else None
        cameras.append({**{f: r[f] for f in ("camera", "lens_model", "rms_px", "p95_px", "heldout_px")},
                        "drift": drift})
    return {"key": {k: key[k] for k in ("rig", "calibration_date")}, "rms_px": overall["rms_px"],
            "n_joint_instants": overall["n_joint_instants"], "source": recording["source"],
            "layout": recording["layout"], "media": recording["media"],
            "calib_dir": recording["calib_dir"], "previous": previous, "cameras": cameras}
