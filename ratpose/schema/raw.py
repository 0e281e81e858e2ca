"""Raw tier: what the rig recorded, inserted by ``insert_session`` from a validated session folder."""
from __future__ import annotations

import datetime as _dt
import fnmatch
import tempfile
from pathlib import Path

import datajoint as dj
import numpy as np

from .. import db
from ..copies import CopyMismatch, mismatches, sha256_file, stage_files, verified_folder
from ..errors import InputError, NotFoundError
from ..ingest.session_folder import SessionData
from ..roots import configured_roots, local_path, reachable, stored_location
from .limits import check_rows

schema = dj.Schema()


@schema
class Subject(dj.Manual):
    definition = """
    subject : varchar(32)
    ---
    species = 'Rattus norvegicus' : varchar(64)
    sex = 'U' : enum('M', 'F', 'U', 'O')   # NWB / DANDI codes: male, female, unknown, other
    date_of_birth = null : date
    age = '' : varchar(32)                 # ISO 8601 duration at the session, e.g. P90D (when no date_of_birth)
    notes = '' : varchar(1024)
    """


@schema
class Camera(dj.Manual):
    definition = """  # a physical camera; names are unique in the lab
    camera : varchar(32)
    ---
    serial = '' : varchar(32)
    model = '' : varchar(64)
    pixel_size_um = 0 : float64
    lens_mm = 0 : float64
    """


@schema
class Session(dj.Manual):
    definition = """
    -> Subject
    session_datetime : datetime
    ---
    rig : varchar(64)
    task : varchar(64)
    session_dir : varchar(1024)   # the session folder: relative to data_root, or absolute when it is ''
    data_root = '' : varchar(32)  # named data root (ratpose.roots); '': session_dir is the absolute path
    trigger_rate_hz : float64
    timezone = 'UTC' : varchar(64)  # the rig's IANA time zone: session_datetime is local time in it
    notes = '' : varchar(2048)
    checksums = null : <blob>     # {file name: sha256} of the ingested files
    """


@schema
class Recording(dj.Manual):
    definition = """  # one camera's video of a session with per-frame metadata (row i = video frame i)
    -> Session
    -> Camera
    ---
    role : enum('primary', 'secondary')
    video_file : varchar(255)     # path relative to session_dir
    serial = '' : varchar(32)     # camera serial and model as recorded in session.toml
    model = '' : varchar(64)
    n_frames : int64
    fps : float64                 # nominal, from the video container
    width : int32
    height : int32
    frame_id : <blob@ratpose>     # int64 (n_frames,), the camera's FrameID counter
    camera_ts_ns : <blob@ratpose> # int64 (n_frames,), camera clock
    exposure_us = null : <blob@ratpose>
    """


@schema
class SessionCopy(dj.Manual):
    definition = """  # a session's videos (and DLC .h5 beside them) in the object store, for machines without its root
    -> Session
    ---
    files : <object@ratpose>      # a folder: paths relative to the session folder
    checksums : <blob>            # {relative path: sha256}, as ingested
    """


@schema
class TriggerLog(dj.Manual):
    definition = """  # every trigger pulse the Pi sent, raw pigpio ticks (uint32 microseconds)
    -> Session
    ---
    n_pulses : int64
    tick_us : <blob@ratpose>
    """


@schema
class KnobLog(dj.Manual):
    definition = """  # knob touches and angle, neural clock (s)
    -> Session
    ---
    n_touches : int32
    touch_on_s : <blob>
    touch_off_s : <blob>
    angle_time_s : <blob@ratpose>
    angle_deg : <blob@ratpose>
    force_mn = null : <blob@ratpose>
    """


@schema
class Unit(dj.Manual):
    definition = """  # a sorted unit with its spike times on the neural clock (s)
    -> Session
    unit_id : int32
    ---
    tetrode : int16
    n_spikes : int64
    spike_times : <blob@ratpose>
    snr = null : float64
    peak_amplitude_uv = null : float64
    """


def session_key(data: SessionData) -> dict:
    """Primary key of the Session a folder describes."""
    return {"subject": data.subject, "session_datetime": data.session_datetime}


def _check_cameras(data: SessionData) -> None:
    """Each camera's serial and model agree with the database's, and no serial is another camera's there."""
    for cam in data.cameras:
        other = ((Camera & {"serial": cam.serial}) - {"camera": cam.name}).to_arrays("camera") if cam.serial else []
        if len(other):
            raise InputError(f"{data.path / 'session.toml'}: camera {cam.name!r} has serial {cam.serial!r}, which the "
                             f"database knows as camera {str(other[0])!r} (one camera, one name)")
        known = (Camera & {"camera": cam.name}).to_dicts()
        for field in ("serial", "model"):
            if known and known[0][field] and getattr(cam, field) and known[0][field] != getattr(cam, field):
                raise InputError(f"{data.path / 'session.toml'}: camera {cam.name!r} has {field} "
                                 f"{getattr(cam, field)!r} but the database knows it as {known[0][field]!r} "
                                 "(camera swapped? camera names must be unique in the lab)")


def describe_changes(old: dict | None, new: dict) -> str:
    old = old or {}
    changed = [f"{n} {'added' if n not in old else 'removed' if n not in new else 'changed'}"
               for n in sorted(set(old) | set(new)) if old.get(n) != new.get(n)]
    return ", ".join(changed[:6]) + (" ..." if len(changed) > 6 else "")


def _rows(data: SessionData, key: dict) -> list[tuple[type, list[dict]]]:
    """Every row a session folder adds, by table."""
    return [
        (Subject, [{"subject": data.subject, **data.subject_info}]),
        (Camera, [{"camera": c.name, "serial": c.serial, "model": c.model, "pixel_size_um": c.pixel_size_um,
                   "lens_mm": c.lens_mm} for c in data.cameras]),
        (Session, [{**key, "rig": data.rig, "task": data.task, **folder_location(data.path),
                    "trigger_rate_hz": data.trigger_rate_hz, "timezone": data.timezone, "notes": data.notes,
                    "checksums": data.checksums}]),
        (Recording, [{**key, "camera": c.name, "role": c.role, "video_file": str(c.video.relative_to(data.path)),
                      "serial": c.serial, "model": c.model,
                      "n_frames": c.n_frames, "fps": c.fps, "width": c.width, "height": c.height,
                      "frame_id": c.frame_id, "camera_ts_ns": c.camera_ts_ns,
                      "exposure_us": c.exposure_us} for c in data.cameras]),
        (TriggerLog, [{**key, "n_pulses": int(data.tick_us.size), "tick_us": data.tick_us}]),
        (KnobLog, [{**key, "n_touches": int(data.touch_on_s.size), "touch_on_s": data.touch_on_s,
                    "touch_off_s": data.touch_off_s, "angle_time_s": data.angle_time_s,
                    "angle_deg": data.angle_deg, "force_mn": data.force_mn}]),
        (Unit, [{**key, "unit_id": int(row.unit_id), "tetrode": int(row.tetrode),
                 "n_spikes": int(data.spike_times[int(row.unit_id)].size),
                 "spike_times": data.spike_times[int(row.unit_id)],
                 "snr": _optional_float(row, "snr"),
                 "peak_amplitude_uv": _optional_float(row, "peak_amplitude_uv")}
                for row in data.units.itertuples()]),
    ]


_SOURCE = {Subject: "session.toml", Camera: "session.toml", Session: "session.toml", Recording: "session.toml",
           TriggerLog: "trigger.csv", KnobLog: "knob_events.csv", Unit: "units.csv"}


def insert_session(data: SessionData) -> tuple[dict, bool]:
    """Insert a validated session in one transaction; returns (key, inserted).

    Re-ingesting the same unchanged folder changes nothing (inserted=False); a changed folder, or a
    different folder claiming an existing session key, is refused naming what differs.
    """
    key = session_key(data)
    rows = _rows(data, key)
    for table, table_rows in rows:
        check_rows(table, table_rows, str(data.path / _SOURCE[table]))
    existing = (Session & key).to_dicts()
    if existing:
        if not _same_location(existing[0], data.path):
            raise InputError(f"{data.path}: session {key} already exists, ingested from "
                             f"{describe_location(existing[0])} (duplicated session?)")
        if existing[0]["checksums"] != data.checksums:
            raise InputError(f"{data.path}: folder changed since it was ingested "
                             f"({describe_changes(existing[0]['checksums'], data.checksums)}); "
                             f"to replace the session run `ratpose delete --subject {data.subject} --datetime "
                             f"{data.session_datetime.isoformat()}` then `ratpose ingest {data.path}`")
        return key, False
    _check_cameras(data)
    with Session.connection.transaction:
        for table, table_rows in rows:
            table.insert(table_rows, skip_duplicates=table in (Subject, Camera))
    return key, True


def _optional_float(row, name: str) -> float | None:
    value = getattr(row, name, None)
    return None if value is None or not np.isfinite(value) else float(value)


def find_session(*, session_dir=None, subject: str | None = None, session_datetime=None) -> dict:
    """Session key from an ingested session folder, or from subject + session datetime (ISO 8601)."""
    if session_dir is not None:
        folder = Path(session_dir).expanduser().resolve()
        rows = (Session & [folder_location(folder), {"data_root": "", "session_dir": str(folder)}]).proj().to_dicts()
        if not rows:
            raise NotFoundError(f"{folder}: no ingested session comes from this folder (run `ratpose ingest` first)")
        return rows[0]
    if subject is None or session_datetime is None:
        raise InputError("give a session folder, or both a subject and a session datetime")
    try:
        when = session_datetime if isinstance(session_datetime, _dt.datetime) else _dt.datetime.fromisoformat(
            str(session_datetime))
    except ValueError:
        raise InputError(f"session datetime {session_datetime!r} is not ISO 8601 (e.g. 2026-11-24T10:00:00)") \
            from None
    key = {"subject": subject, "session_datetime": when}
    if not Session & key:
        raise NotFoundError(f"no session of subject {subject!r} at {when.isoformat()} in the database")
    return key


def video_path(key: dict) -> str:
    """Path of a Recording's video on this machine (``session_file`` of its video_file)."""
    return str(session_file(key, (Recording & key).fetch1("video_file")))


def folder_location(folder) -> dict:
    """Session's data_root and session_dir for a folder (``ratpose.roots.stored_location``)."""
    root, path = stored_location(folder, configured_roots())
    return {"data_root": root, "session_dir": path}


def _same_location(row: dict, folder) -> bool:
    """Whether a Session row was ingested from ``folder`` (by its data root, or by its absolute path)."""
    here = folder_location(folder)
    absolute = str(Path(folder).expanduser().resolve())
    return (row["data_root"], row["session_dir"]) in ((here["data_root"], here["session_dir"]), ("", absolute))


def describe_location(row: dict) -> str:
    """A Session row's folder as people read it: ``root:relative/path`` or the absolute path."""
    return f"{row['data_root']}:{row['session_dir']}" if row["data_root"] else row["session_dir"]


def session_folder(key: dict) -> Path:
    """A session's folder on this machine (``ratpose.roots.locate`` for a data root)."""
    row = (Session & key).proj("data_root", "session_dir").fetch1()
    return local_path(row["data_root"], row["session_dir"], configured_roots())


def session_file(key: dict, relative: str) -> Path:
    """A session's file on this machine: in its folder (through the data root), else this machine's copy of
    the store's ``SessionCopy``, fetched once and checked against the sha256 recorded at ingest.

    Raises NotFoundError naming the root, the paths tried and that the store holds no copy of the file.
    """
    try:
        path = session_folder(key) / relative
        if path.is_file():
            return path
        missing = f"{path} does not exist"
    except NotFoundError as err:
        missing = str(err)
    copies = (SessionCopy & key).to_dicts()
    if not copies or relative not in copies[0]["checksums"]:
        raise NotFoundError(f"{missing}, and the store holds no copy of it (upload the session with "
                            "`ratpose ingest --upload FOLDER` on a machine that has it)")
    folder = verified_folder(db.cache_root() / "sessions", {relative: copies[0]["checksums"][relative]},
                             object_fetcher(copies[0]["files"], [relative]))
    return folder / relative


def object_fetcher(ref, names):
    """A ``copies.verified_folder`` fetch of the named files of a folder object (``<object@>``'s ObjectRef), one
    file at a time, each to its relative path."""
    def fetch(destination: Path) -> None:
        for name in names:
            ref.download(destination / name, subpath=name)
    return fetch


def session_file_names(key: dict) -> list[str]:
    """The files of a session this machine can read (``session_file``): its folder's, else its store copy's."""
    try:
        folder = session_folder(key)
        if folder.is_dir():
            return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    except NotFoundError:
        pass
    return sorted(next(iter((SessionCopy & key).to_dicts()), {"checksums": {}})["checksums"])


def dlc_outputs_beside(video_file: str, names) -> list[str]:
    """The session files among ``names`` that are DeepLabCut outputs of one video: ``<video stem>*.h5`` in its
    folder (DLC's own naming, ``<stem><scorer>.h5``)."""
    return fnmatch.filter(names, f"{Path(video_file).with_suffix('').as_posix()}*.h5")


def upload_session(key: dict) -> int:
    """Copy a session's videos, and the DeepLabCut .h5 files beside them, to the object store (``SessionCopy``)
    for machines that do not reach its folder. Every file must still match the sha256 recorded at ingest (an
    .h5 added later is hashed now). Returns the number of files uploaded (0 when the copy exists)."""
    if SessionCopy & key:
        return 0
    folder = session_folder(key)
    recorded = (Session & key).fetch1("checksums") or {}
    names = session_file_names(key)
    files = set()
    for video in (Recording & key).fetch("video_file"):
        files.add(video)
        files.update(dlc_outputs_beside(video, names))
    changed = mismatches(folder, {name: recorded[name] for name in files if name in recorded})
    if changed:
        raise CopyMismatch(f"{folder}: {', '.join(changed)} changed since the session was ingested; not uploaded")
    checksums = {name: recorded.get(name) or sha256_file(folder / name) for name in sorted(files)}
    with tempfile.TemporaryDirectory(prefix="ratpose-upload-") as staging:
        stage_files({name: folder / name for name in checksums}, Path(staging))
        SessionCopy.insert1({**key, "files": staging, "checksums": checksums})
    return len(checksums)


def reachable_sessions() -> list[dict]:
    """Sessions whose files this machine can reach: every one stored by absolute path (as before data roots),
    those whose data root it maps, and those with a copy in the store. A worker leaves the others to a machine
    that maps their root."""
    roots = configured_roots()
    copied = {tuple(r.values()) for r in SessionCopy.proj().to_dicts()}
    return [{k: r[k] for k in Session.primary_key} for r in Session.proj("data_root").to_dicts()
            if reachable(r["data_root"], roots) or tuple(r[k] for k in Session.primary_key) in copied]
