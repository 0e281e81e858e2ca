"""Read and validate a session folder (docs/session-format.md) into plain arrays.

Nothing here touches the database: ``read_session_folder`` either returns a complete, consistent
``SessionData`` or raises ``SessionFormatError`` naming the file and what is wrong, so the
database tier can insert it in one transaction.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from .._toml import tomllib
from ..copies import sha256_file
from ..errors import InputError
from ..names import check_subject, check_unique_serials
from ..rig import time_zone
from ..sync import unwrap_ticks
from ..video import VIDEO_SUFFIXES, VideoError, video_info

FORMAT_VERSION = 1
CAMERA_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
SPAN_MARGIN_S = 60.0  # knob events and spikes may lie this far outside the trigger pulses' span
FUTURE_MARGIN = _dt.timedelta(days=1)  # session dates later than now + this are refused
_MISSING = object()
SUBJECT_INFO = ("species", "sex", "date_of_birth", "age")  # the optional [subject_info] table's keys


class SessionFormatError(InputError):
    """A session folder breaks the format; the message names the file and the problem."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class CameraData:
    """One camera's recording: metadata from session.toml, per-frame arrays and video facts."""

    name: str
    role: str
    serial: str
    model: str
    pixel_size_um: float
    lens_mm: float
    video: Path
    n_frames: int
    width: int
    height: int
    fps: float
    frame_id: np.ndarray
    camera_ts_ns: np.ndarray
    exposure_us: np.ndarray | None


@dataclass(frozen=True)
class SessionData:
    """Everything in a valid session folder, as arrays."""

    path: Path
    subject: str
    session_datetime: _dt.datetime
    rig: str
    task: str
    notes: str
    trigger_rate_hz: float
    cameras: tuple[CameraData, ...]
    tick_us: np.ndarray
    touch_on_s: np.ndarray
    touch_off_s: np.ndarray
    angle_time_s: np.ndarray
    angle_deg: np.ndarray
    force_mn: np.ndarray | None
    units: pd.DataFrame = field(repr=False)
    spike_times: dict[int, np.ndarray] = field(repr=False)
    checksums: dict[str, str] = field(default_factory=dict, repr=False)  # file name -> sha256
    timezone: str = "UTC"  # the rig's IANA zone; session_datetime is local time in it
    subject_info: dict = field(default_factory=dict)  # raw.Subject columns given in [subject_info]


def _read_csv(path: Path, required: list[str], optional: tuple[str, ...] = ()) -> pd.DataFrame:
    if not path.is_file():
        raise SessionFormatError(path, "file is missing")
    try:
        table = pd.read_csv(path)
    except Exception as err:  # pandas raises many parser errors; name the file
        raise SessionFormatError(path, f"not a readable CSV ({err})") from err
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise SessionFormatError(path, f"missing column(s) {missing}; found {list(table.columns)}")
    for column in required + [c for c in optional if c in table.columns]:
        values = pd.to_numeric(table[column], errors="coerce") if column != "event" else table[column]
        if column != "event" and values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise SessionFormatError(path, f"column {column!r} has a missing or non-numeric value "
                                           f"at data row {row + 1}")
        table[column] = values
    return table


def _integer_column(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    if pd.api.types.is_signed_integer_dtype(table[column]):  # exact, even beyond 2**53
        return table[column].to_numpy(dtype=np.int64)
    values = table[column].to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values != np.round(values)) or np.any(np.abs(values) >= 2.0**63):
        raise SessionFormatError(path, f"column {column!r} must hold integers (within 64 bits)")
    return values.astype(np.int64)


def _finite_column(table: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = table[column].to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise SessionFormatError(path, f"column {column!r} has a non-finite value at data row {bad[0] + 1}")
    return values


def _require_increasing(values: np.ndarray, path: Path, column: str, strict: bool = True) -> None:
    steps = np.diff(values)
    bad = np.flatnonzero(steps <= 0 if strict else steps < 0)
    if bad.size:
        kind = "strictly increasing" if strict else "non-decreasing"
        raise SessionFormatError(path, f"column {column!r} is not {kind} (data row {bad[0] + 2}: "
                                       f"{values[bad[0] + 1]} after {values[bad[0]]})")


def probe_video(path: Path) -> tuple[int, int, int, float]:
    """(n_frames, width, height, fps) of a video; raises SessionFormatError if it cannot be read."""
    if not path.is_file():
        raise SessionFormatError(path, "video file is missing")
    if not os.access(path, os.R_OK):
        raise SessionFormatError(path, "permission denied (make the file readable)")
    try:  # frames counted from the packets, the first frame and the end decoded (a truncated file's does not)
        info = video_info(path, count="packets")
    except VideoError as err:
        problem = str(err).removeprefix(f"{path}: ")
        raise SessionFormatError(path, f"video cannot be opened or its frames cannot be decoded: {problem}") from None
    return info.n_frames, *info.size, info.fps


def _read_camera(folder: Path, entry: dict, index: int) -> CameraData:
    toml_path = folder / "session.toml"
    for key in ("name", "role", "video"):
        if key not in entry:
            raise SessionFormatError(toml_path, f"[[camera]] #{index + 1} lacks '{key}'")
    name = str(entry["name"])
    if not CAMERA_NAME.fullmatch(name):
        raise SessionFormatError(toml_path, f"camera name {name!r} must match {CAMERA_NAME.pattern}")
    if entry["role"] not in ("primary", "secondary"):
        raise SessionFormatError(toml_path, f"camera {name!r}: role must be 'primary' or 'secondary'")
    video = (folder / _toml_value(entry, "video", str, toml_path, f"camera {name!r}")).resolve()
    if not video.is_relative_to(folder):
        raise SessionFormatError(toml_path, f"camera {name!r}: video {entry['video']!r} is outside the session "
                                            "folder (copy it into the folder)")
    if video.suffix.lower() not in VIDEO_SUFFIXES:
        raise SessionFormatError(video, f"video must be one of {VIDEO_SUFFIXES}")
    frames_path = folder / f"{name}.frames.csv"
    table = _read_csv(frames_path, ["frame_id", "camera_ts_ns"], optional=("exposure_us",))
    if table.empty:
        raise SessionFormatError(frames_path, "no frames")
    frame_id = _integer_column(table, "frame_id", frames_path)
    camera_ts_ns = _integer_column(table, "camera_ts_ns", frames_path)
    _require_increasing(frame_id, frames_path, "frame_id")
    _require_increasing(camera_ts_ns, frames_path, "camera_ts_ns")
    exposure = _finite_column(table, "exposure_us", frames_path) if "exposure_us" in table else None
    n_frames, width, height, fps = probe_video(video)
    if n_frames != len(frame_id):
        raise SessionFormatError(video, f"video has {n_frames} frames but {frames_path.name} has "
                                        f"{len(frame_id)} rows")
    where = f"camera {name!r}"
    serial = str(_toml_value(entry, "serial", (str, int), toml_path, where, ""))
    return CameraData(name=name, role=entry["role"], serial=serial,
                      model=_toml_value(entry, "model", str, toml_path, where, ""),
                      pixel_size_um=_toml_number(entry, "pixel_size_um", toml_path, where, 0.0),
                      lens_mm=_toml_number(entry, "lens_mm", toml_path, where, 0.0), video=video, n_frames=n_frames,
                      width=width, height=height, fps=fps, frame_id=frame_id,
                      camera_ts_ns=camera_ts_ns, exposure_us=exposure)


def _toml_value(table: dict, key: str, kinds: type | tuple[type, ...], path: Path, where: str = "",
                default=_MISSING):
    """table[key] if it has one of the TOML types ``kinds`` (default when absent), else SessionFormatError."""
    if key not in table and default is not _MISSING:
        return default
    value = table.get(key)
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise SessionFormatError(path, f"{where + ': ' if where else ''}'{key}' must be a "
                                       f"{' or '.join(k.__name__ for k in kinds)}, got {value!r}")
    return value


def _toml_number(table: dict, key: str, path: Path, where: str = "", default=_MISSING) -> float:
    """A finite TOML number (int or float) as float."""
    value = float(_toml_value(table, key, (int, float), path, where, default))
    if not np.isfinite(value):
        raise SessionFormatError(path, f"{where + ': ' if where else ''}'{key}' must be finite, got {value}")
    return value


def _read_metadata(folder: Path) -> dict:
    path = folder / "session.toml"
    if not path.is_file():
        raise SessionFormatError(path, "file is missing (is this a session folder?)")
    try:
        meta = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SessionFormatError(path, f"not valid TOML ({err})") from err
    if meta.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise SessionFormatError(path, f"format_version {meta['format_version']} is not supported "
                                       f"(this ratpose reads {FORMAT_VERSION})")
    for key in ("subject", "session_datetime", "rig", "task", "trigger_rate_hz", "camera"):
        if key not in meta:
            raise SessionFormatError(path, f"missing key '{key}'")
    if (not isinstance(meta["camera"], list) or not meta["camera"]
            or not all(isinstance(c, dict) for c in meta["camera"])):
        raise SessionFormatError(path, "needs at least one [[camera]] table (and only tables)")
    for key in ("subject", "rig", "task", "notes"):
        _toml_value(meta, key, str, path, default="")
    if not meta["rig"].strip():
        raise SessionFormatError(path, "'rig' is empty")
    try:
        check_subject(meta["subject"])
    except ValueError as err:
        raise SessionFormatError(path, f"'subject': {err}") from None
    names = [str(c.get("name")) for c in meta["camera"]]
    if len(set(names)) != len(names):
        raise SessionFormatError(path, f"camera names repeat: {names}")
    when = meta["session_datetime"]
    if isinstance(when, str):
        try:
            when = _dt.datetime.fromisoformat(when)
        except ValueError as err:
            raise SessionFormatError(path, f"session_datetime {when!r} is not ISO 8601") from err
    if not isinstance(when, _dt.datetime):
        raise SessionFormatError(path, "session_datetime must be a date and time")
    meta["timezone"] = _toml_value(meta, "timezone", str, path, default="UTC")
    try:
        zone = time_zone(meta["timezone"])
    except ValueError as err:
        raise SessionFormatError(path, f"'timezone': {err}") from None
    meta["session_datetime"] = _local_time(when, zone, path).replace(microsecond=0)
    if meta["session_datetime"] > _dt.datetime.now() + FUTURE_MARGIN:
        raise SessionFormatError(path, f"session_datetime {meta['session_datetime']} is in the future")
    if not _toml_number(meta, "trigger_rate_hz", path) > 0:
        raise SessionFormatError(path, "trigger_rate_hz must be positive")
    meta["subject_info"] = check_subject_info(meta.get("subject_info", {}), path)
    return meta


def _local_time(when: _dt.datetime, zone: ZoneInfo, path: Path) -> _dt.datetime:
    """session_datetime as naive local time in the rig's zone; an offset must be that zone's at that instant."""
    if when.tzinfo is None:
        return when
    local = when.astimezone(zone)
    if local.utcoffset() != when.utcoffset():
        raise SessionFormatError(path, f"'session_datetime' {when.isoformat()} has UTC offset {_offset(when)} but "
                                       f"the rig's timezone {zone.key!r} is at {_offset(local)} then (give local "
                                       "time without an offset, or fix 'timezone')")
    return local.replace(tzinfo=None)


def _offset(when: _dt.datetime) -> str:
    """An aware datetime's UTC offset as +HH:MM."""
    minutes = round(when.utcoffset().total_seconds() / 60)
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def check_subject_info(info, path: Path) -> dict:
    """raw.Subject columns from the optional [subject_info] table: species, sex (M/F/U/O), date_of_birth, age.

    SessionFormatError naming ``path`` and the key when a value is not allowed."""
    if not isinstance(info, dict):
        raise SessionFormatError(path, "'subject_info' must be a table")
    unknown = sorted(set(info) - set(SUBJECT_INFO))
    if unknown:
        raise SessionFormatError(path, f"[subject_info]: unknown key(s) {unknown}; allowed: {list(SUBJECT_INFO)}")
    out = {key: _toml_value(info, key, (str, _dt.date), path, "[subject_info]") for key in info}
    for key in ("species", "sex", "age"):
        if not isinstance(out.get(key, ""), str):
            raise SessionFormatError(path, f"[subject_info]: '{key}' must be a str, got {out[key]!r}")
    if out.get("sex", "U") not in ("M", "F", "U", "O"):
        raise SessionFormatError(path, f"[subject_info]: sex must be M, F, U or O, got {out['sex']!r}")
    if not re.fullmatch(r"(P[0-9YMWDTHS.]+)?", out.get("age", "")):
        raise SessionFormatError(path, f"[subject_info]: age must be an ISO 8601 duration such as P90D, "
                                       f"got {out['age']!r}")
    if "date_of_birth" in out:
        dob = out["date_of_birth"]
        try:
            dob = _dt.date.fromisoformat(dob) if isinstance(dob, str) else dob
        except ValueError:
            dob = None
        if not isinstance(dob, _dt.date) or isinstance(dob, _dt.datetime):
            raise SessionFormatError(path, f"[subject_info]: date_of_birth must be a date (YYYY-MM-DD), "
                                           f"got {out['date_of_birth']!r}")
        out["date_of_birth"] = dob
    return out


def _read_trigger(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """trigger.csv's raw pigpio ticks (uint32) and their unwrapped neural-clock times (s)."""
    path = folder / "trigger.csv"
    ticks = _integer_column(_read_csv(path, ["tick_us"]), "tick_us", path)
    if ticks.size == 0:
        raise SessionFormatError(path, "no trigger pulses")
    try:
        times = unwrap_ticks(ticks)
    except ValueError as err:
        raise SessionFormatError(path, f"column 'tick_us': {err}") from None
    return ticks.astype(np.uint32), times


def _read_knob(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    path = folder / "knob_events.csv"
    events = _read_csv(path, ["time_s", "event"])
    times = _finite_column(events, "time_s", path)
    _require_increasing(times, path, "time_s", strict=False)
    kinds = events["event"].astype(str).to_numpy()
    unknown = sorted(set(kinds) - {"touch_on", "touch_off"})
    if unknown:
        raise SessionFormatError(path, f"unknown event(s) {unknown}; expected touch_on/touch_off")
    expected = np.where(np.arange(len(kinds)) % 2 == 0, "touch_on", "touch_off")
    wrong = np.flatnonzero(kinds != expected)
    if wrong.size:
        raise SessionFormatError(path, f"events must alternate touch_on/touch_off starting with touch_on "
                                       f"(data row {wrong[0] + 1} is {kinds[wrong[0]]})")
    on, off = times[0::2], times[1::2]
    path = folder / "knob_angle.csv"
    angle = _read_csv(path, ["time_s", "angle_deg"], optional=("force_mn",))
    angle_time = _finite_column(angle, "time_s", path)
    _require_increasing(angle_time, path, "time_s")
    force = _finite_column(angle, "force_mn", path) if "force_mn" in angle else None
    return on, off, angle_time, _finite_column(angle, "angle_deg", path), force


def _read_units(folder: Path) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    units_path, spikes_path = folder / "units.csv", folder / "spikes.csv"
    if not units_path.exists():
        if spikes_path.exists():
            raise SessionFormatError(units_path, "spikes.csv is present but units.csv is missing")
        return pd.DataFrame(columns=["unit_id", "tetrode"]), {}
    units = _read_csv(units_path, ["unit_id", "tetrode"], optional=("snr", "peak_amplitude_uv"))
    unit_ids = _integer_column(units, "unit_id", units_path)
    if len(set(unit_ids)) != len(unit_ids):
        raise SessionFormatError(units_path, "unit_id values repeat")
    units["unit_id"] = unit_ids
    units["tetrode"] = _integer_column(units, "tetrode", units_path)
    spikes = _read_csv(spikes_path, ["unit_id", "time_s"])
    spike_unit = _integer_column(spikes, "unit_id", spikes_path)
    spike_time = _finite_column(spikes, "time_s", spikes_path)
    unknown = sorted(set(spike_unit) - set(unit_ids))
    if unknown:
        raise SessionFormatError(spikes_path, f"unit_id(s) {unknown[:5]} are not in units.csv")
    order = np.lexsort((spike_time, spike_unit))
    spike_unit, spike_time = spike_unit[order], spike_time[order]
    bounds = np.searchsorted(spike_unit, unit_ids), np.searchsorted(spike_unit, unit_ids, side="right")
    return units, {int(u): spike_time[a:b] for u, a, b in zip(unit_ids, *bounds)}


def _check_span(times: np.ndarray, path: Path, column: str, span: tuple[float, float]) -> None:
    lo, hi = span[0] - SPAN_MARGIN_S, span[1] + SPAN_MARGIN_S
    bad = np.flatnonzero((times < lo) | (times > hi))
    if bad.size:
        raise SessionFormatError(path, f"{column} {times[bad[0]]} s lies outside the session's trigger span "
                                       f"{span[0]:.3f}..{span[1]:.3f} s (+-{SPAN_MARGIN_S:g} s): wrong clock or file?")


def file_checksums(folder: Path, names) -> dict[str, str]:
    """sha256 of each named file present in the folder."""
    sums = {}
    for name in sorted(set(names)):
        path = folder / name
        if path.is_file():
            sums[name] = sha256_file(path)
    return sums


def read_session_folder(path: str | Path) -> SessionData:
    """Read and validate a whole session folder; raise SessionFormatError on the first problem."""
    folder = Path(path).expanduser().resolve()
    try:
        return _read_session_folder(folder)
    except PermissionError as err:
        raise SessionFormatError(err.filename or folder, "permission denied (make it readable)") from err


def _read_session_folder(folder: Path) -> SessionData:
    if not folder.is_dir():
        raise SessionFormatError(folder, "is not a folder")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise SessionFormatError(folder, "permission denied (make the folder readable)")
    meta = _read_metadata(folder)
    cameras = tuple(_read_camera(folder, entry, i) for i, entry in enumerate(meta["camera"]))
    try:
        check_unique_serials((cam.name, cam.serial) for cam in cameras)
    except ValueError as err:
        raise SessionFormatError(folder / "session.toml", f"[[camera]] 'serial': {err}") from None
    tick_us, pulse_s = _read_trigger(folder)
    for cam in cameras:
        if cam.n_frames > tick_us.size:
            raise SessionFormatError(folder / "trigger.csv", f"has {tick_us.size} pulses but camera "
                                     f"{cam.name!r} delivered {cam.n_frames} frames (trigger log too short)")
    on, off, angle_time, angle_deg, force = _read_knob(folder)
    units, spikes = _read_units(folder)
    span = (pulse_s[0], pulse_s[-1])
    _check_span(np.concatenate([on, off]), folder / "knob_events.csv", "time_s", span)
    _check_span(angle_time, folder / "knob_angle.csv", "time_s", span)
    if spikes:
        _check_span(np.concatenate(list(spikes.values())), folder / "spikes.csv", "time_s", span)
    names = ["session.toml", "trigger.csv", "knob_events.csv", "knob_angle.csv", "units.csv", "spikes.csv",
             *(f"{c.name}.frames.csv" for c in cameras), *(str(c.video.relative_to(folder)) for c in cameras)]
    return SessionData(path=folder, subject=str(meta["subject"]), session_datetime=meta["session_datetime"],
                       rig=str(meta["rig"]), task=str(meta["task"]), notes=str(meta.get("notes", "")),
                       trigger_rate_hz=float(meta["trigger_rate_hz"]), cameras=cameras, tick_us=tick_us,
                       touch_on_s=on, touch_off_s=off, angle_time_s=angle_time, angle_deg=angle_deg,
                       force_mn=force, units=units, spike_times=spikes, checksums=file_checksums(folder, names),
                       timezone=meta["timezone"], subject_info=meta["subject_info"])
