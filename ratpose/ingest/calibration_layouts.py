"""Calibration material in the layouts labs already have, read into a ``CalibrationMaterial``.

``read_calibration(path, ...)`` recognises, in this order:

- **ratpose**: ``calibration.toml`` naming rig, date and [board] (docs/calibration-format.md);
- **dlc3d**: a DeepLabCut 3D project: ``config.yaml`` with ``camera_names`` and
  ``calibration_images/<camera>-<N>.jpg`` (a checkerboard; DeepLabCut takes its size as arguments, so give
  ``board``, e.g. ``--checkerboard 9x6 --square-mm 30``);
- **anipose** / **sleap-anipose**: ``board.toml`` or a ``config.toml`` with a [calibration] table (the folder's, or
  the Anipose project's a few levels up), and per camera
  a folder of images or one board video (sleap-anipose: inside ``<camera>/calibration_images/``), or files
  in the folder named by camera (Anipose's ``cam_regex`` from config.toml [triangulation], default ``-cam([A-Z])``);
- **named files**: no configuration, images or videos named ``<camera><N>`` (``left01.jpg``, ``right01.jpg``),
  with ``board`` given.

Images are matched across cameras by the last number in their names. Board videos are matched frame by frame:
they must have the same frame count and rate, unless ``frame_offsets.toml`` ([frame_offsets] camera = the
frame that matches the first camera's frame 0) says how they line up; up to ``VIDEO_SAMPLES`` instants are
sampled evenly from the common span (the solver then keeps the views that cover the image and the tilts).
"""
from __future__ import annotations

import datetime as _dt
import os
import re
from pathlib import Path

import numpy as np
import yaml

from .._toml import tomllib
from ..calibration.boards import Board
from ..calibration.detect import CalibrationError
from ..calibration.interop import load_anipose_board
from ..names import camera_name_from
from ..video import VIDEO_SUFFIXES, VideoError, decode_gray, video_info
from .calibration_folder import (
    IMAGE_SUFFIXES,
    CalibrationFolderError,
    CalibrationMaterial,
    inside_folder,
    load_camera_images,
    natural_key,
    read_calibration_folder,
)
from .session_folder import FUTURE_MARGIN, file_checksums

VIDEO_SAMPLES = 150  # instants sampled from board videos (memory: VIDEO_SAMPLES frames per camera)
ANIPOSE_CAM_REGEX = r"-cam([A-Z])"  # Anipose's default [triangulation] cam_regex
ANIPOSE_DEPTH = 3  # folders above a calibration folder searched for an Anipose project's config.toml
EXPECTED = ("a ratpose calibration folder (calibration.toml with rig, date and [board]), an Anipose or sleap-anipose "
            "folder (board.toml or config.toml [calibration]; a folder per camera or files named by camera), a "
            "DeepLabCut 3D project (config.yaml with camera_names; calibration_images/), or images/videos named "
            "<camera><N> with --board or --checkerboard")
MEDIA = ("auto", "images", "videos")


def read_calibration(path, rig: str | None = None, date=None, board: Board | None = None,
                     media: str = "auto") -> CalibrationMaterial:
    """The calibration material of a folder in any layout above; raises CalibrationFolderError naming the
    file and what was expected.

    ``rig`` and ``date`` name a folder that does not name itself (every layout but ratpose's); ``board``
    replaces the folder's board (required where the folder has none); ``media``: "images", "videos" or
    "auto" (images where the cameras have images, else videos).
    """
    path = Path(path)
    if media not in MEDIA:
        raise CalibrationFolderError(f"media {media!r}: expected one of {MEDIA}")
    if not path.is_dir():
        raise CalibrationFolderError(f"{path}: not a folder")
    try:
        if _names_itself(path):
            return _ratpose_folder(path, rig, date, board, media)
        return _foreign_folder(path, rig, date, board, media)
    except PermissionError as err:
        raise CalibrationFolderError(f"{err.filename or path}: permission denied (make it readable)") from err


def _names_itself(path: Path) -> bool:
    """True for a ratpose calibration folder: a calibration.toml that is not Anipose's output ([cam_N]); one
    that is not valid TOML counts (read_calibration_folder names the problem)."""
    meta = path / "calibration.toml"
    if not meta.is_file():
        return False
    try:
        data = tomllib.loads(meta.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return True
    return not any(re.fullmatch(r"cam_\d+", key) for key in data)


def _ratpose_folder(path, rig, date, board, media) -> CalibrationMaterial:
    if media == "videos":
        raise CalibrationFolderError(f"{path / 'calibration.toml'}: a ratpose calibration folder holds images, "
                                     "not board videos (docs/calibration-format.md)")
    material = read_calibration_folder(path)
    if board is not None and board.to_dict() != material.board.to_dict():
        raise CalibrationFolderError(f"{path / 'calibration.toml'}: names its own [board]; leave out --board")
    naive = lambda when: when.replace(tzinfo=None)  # noqa: E731 - the database keeps the folder's local time
    for given, own, what in ((rig, material.rig_name, "rig"),
                             (naive(calibration_datetime(path, date)) if date else None,
                              naive(calibration_datetime(path, material.date)), "date")):
        if given is not None and given != own:
            raise CalibrationFolderError(f"{path / 'calibration.toml'}: says {what} {own!r}, not {given!r}")
    return material


def calibration_datetime(path: Path, date) -> _dt.datetime:
    """``date`` (ISO 8601 text or a datetime) as a datetime; refused, naming ``path``, if invalid or in the future."""
    try:
        when = date if isinstance(date, _dt.datetime) else _dt.datetime.fromisoformat(str(date))
    except ValueError:
        raise CalibrationFolderError(f"{path}: date {date!r} is not a valid ISO 8601 date") from None
    if when > _dt.datetime.now(when.tzinfo) + FUTURE_MARGIN:  # an offset compares as itself
        raise CalibrationFolderError(f"{path}: date {when.isoformat()} is in the future")
    return when


def _foreign_folder(path: Path, rig, date, board, media) -> CalibrationMaterial:
    layout, own_board, config_files, camera_files = _layout(path)
    board = board or own_board
    if board is None:
        raise CalibrationFolderError(f"{path}: a {layout} folder does not say which board it shows: give --board "
                                     "BOARD.toml (Anipose keys) or --checkerboard COLSxROWS --square-mm MM")
    if not rig or not str(rig).strip() or date is None:
        raise CalibrationFolderError(f"{path}: a {layout} folder does not name its rig and date: ratpose calibrate "
                                     f"{path} --rig R --date YYYY-MM-DD")
    root = path.resolve()
    inside_folder(root, [f for files in camera_files.values() for f in files])
    images = {cam: [f for f in files if f.suffix.lower() in IMAGE_SUFFIXES] for cam, files in camera_files.items()}
    videos = {cam: [f for f in files if f.suffix.lower() in VIDEO_SUFFIXES] for cam, files in camera_files.items()}
    use_videos = media == "videos" or (media == "auto" and not all(images.values()))
    chosen = videos if use_videos else images
    empty = [cam for cam, files in chosen.items() if not files]
    if empty:
        kind = "board video" if use_videos else "image"
        raise CalibrationFolderError(f"{path}: camera {empty[0]!r} has no {kind} ({layout} layout; expected "
                                     f"{'one of ' + str(VIDEO_SUFFIXES) if use_videos else str(IMAGE_SUFFIXES)})")
    names = {cam: _camera_name(path, cam) for cam in chosen}
    if len(set(names.values())) < len(names):
        raise CalibrationFolderError(f"{path}: camera names {sorted(names)} collide as ratpose names "
                                     f"{sorted(names.values())}")
    if use_videos:
        files = {cam: _one_video(path, cam, found) for cam, found in chosen.items()}
        frames = _video_frames(path, files)
        used = list(files.values())
    else:
        frames = _image_frames(path, chosen)
        used = [f for found in chosen.values() for f in found]
    used = [*config_files, *used]
    return CalibrationMaterial(
        rig_name=str(rig), date=calibration_datetime(path, date).isoformat(), board=board,
        frames={names[cam]: v for cam, v in frames.items()}, intrinsics_frames={names[cam]: [] for cam in frames},
        camera_names=[names[cam] for cam in frames], layout=layout, media="videos" if use_videos else "images",
        checksums=file_checksums(path, [os.path.relpath(f, path) for f in used]))  # an Anipose config above: ../


def _layout(path: Path) -> tuple[str, Board | None, list[Path], dict[str, list[Path]]]:
    """(layout name, the folder's board or None, its configuration files, camera -> media files)."""
    config_yaml, board_toml, config_toml = path / "config.yaml", path / "board.toml", _anipose_config_file(path)
    if config_yaml.is_file():
        cameras = _dlc3d_cameras(config_yaml)
        folder = path / "calibration_images"
        if not folder.is_dir():
            raise CalibrationFolderError(f"{folder}: missing (a DeepLabCut 3D project keeps its calibration images "
                                         "there)")
        return "dlc3d", None, [config_yaml], _files_by_prefix(folder, cameras)
    anipose_config = _anipose_config(config_toml) if config_toml is not None else None
    if board_toml.is_file() or (anipose_config is not None and "calibration" in anipose_config):
        source = board_toml if board_toml.is_file() else config_toml
        try:
            board = load_anipose_board(source)
        except CalibrationError as exc:
            raise CalibrationFolderError(str(exc)) from None
        folders = _camera_folders(path)
        if len(folders) == 1:
            empty = sorted(f.name for f in path.iterdir() if f.is_dir() and f.name not in folders)
            raise CalibrationFolderError(f"{path}: only camera folder {next(iter(folders))!r} holds images or videos "
                                         f"(without any: {empty or 'none'}); a rig calibration needs 2 or more")
        if folders:
            nested = any((f / "calibration_images").is_dir() for f in folders.values())
            return ("sleap-anipose" if nested else "anipose"), board, [source], {
                cam: _media(f / "calibration_images" if (f / "calibration_images").is_dir() else f)
                for cam, f in folders.items()}
        pattern = ((anipose_config or {}).get("triangulation", {}).get("cam_regex") or ANIPOSE_CAM_REGEX)
        return "anipose", board, [source], _files_by_regex(path, pattern)
    named = _files_by_prefix(path, None)
    if len(named) >= 2:
        return "named files", None, [], named
    raise CalibrationFolderError(f"{path}: not a calibration folder in a layout ratpose reads; expected {EXPECTED}")


def _dlc3d_cameras(config_yaml: Path) -> list[str]:
    try:
        config = yaml.safe_load(config_yaml.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CalibrationFolderError(f"{config_yaml}: not valid YAML: {exc}") from None
    cameras = config.get("camera_names") if isinstance(config, dict) else None
    if not isinstance(cameras, list) or len(cameras) < 2 or not all(isinstance(c, str) and c for c in cameras):
        raise CalibrationFolderError(f"{config_yaml}: 'camera_names' missing or not a list of 2+ names (a "
                                     "DeepLabCut 3D project's config.yaml lists its cameras there)")
    return cameras


def _anipose_config_file(path: Path) -> Path | None:
    """The folder's config.toml, else the nearest one above it (up to ANIPOSE_DEPTH levels) with a [calibration]
    table: Anipose keeps it at the project root, above ``<session>/calibration/``."""
    if (path / "config.toml").is_file():
        return path / "config.toml"
    for folder in path.resolve().parents[:ANIPOSE_DEPTH]:
        candidate = folder / "config.toml"
        if candidate.is_file() and "calibration" in _anipose_config(candidate):
            return candidate
    return None


def _anipose_config(config_toml: Path) -> dict:
    try:
        return tomllib.loads(config_toml.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CalibrationFolderError(f"{config_toml}: not valid TOML: {exc}") from None


def _media(folder: Path) -> list[Path]:
    return sorted((f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
                   and f.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES), key=lambda f: natural_key(f.name))


def _camera_folders(path: Path) -> dict[str, Path]:
    """Sub-folders holding images or videos (directly or in calibration_images/): one per camera."""
    found = {}
    for folder in sorted((f for f in path.iterdir() if f.is_dir() and not f.name.startswith(".")),
                         key=lambda f: natural_key(f.name)):
        inner = folder / "calibration_images"
        if _media(inner if inner.is_dir() else folder):
            found[folder.name] = folder
    return found


def _files_by_prefix(folder: Path, cameras: list[str] | None) -> dict[str, list[Path]]:
    """Media files grouped by camera: the name before the last number (``left01`` -> ``left``), or, given
    ``cameras``, the camera name the file name starts with (longest first: ``camera-10`` before ``camera-1``)."""
    grouped: dict[str, list[Path]] = {cam: [] for cam in cameras or []}
    for file in _media(folder):
        if cameras is None:
            match = re.fullmatch(r"(.*?)[-_ ]*\d+", file.stem)
            if match and match.group(1):
                grouped.setdefault(match.group(1), []).append(file)
            continue
        owner = next((c for c in sorted(cameras, key=len, reverse=True) if file.stem.startswith(c)), None)
        if owner is not None:
            grouped[owner].append(file)
    return grouped


def _files_by_regex(folder: Path, pattern: str) -> dict[str, list[Path]]:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise CalibrationFolderError(f"{folder / 'config.toml'}: cam_regex {pattern!r} is not a regex: {exc}") from None
    grouped: dict[str, list[Path]] = {}
    for file in _media(folder):
        match = regex.search(file.stem)
        if match:
            grouped.setdefault(match.group(1) if match.groups() else match.group(0), []).append(file)
    if len(grouped) < 2:
        raise CalibrationFolderError(f"{folder}: found {len(grouped)} camera(s) by cam_regex {pattern!r} and no "
                                     f"camera folders; expected {EXPECTED}")
    return grouped


def _camera_name(path: Path, name: str) -> str:
    try:
        return camera_name_from(name)
    except ValueError as exc:
        raise CalibrationFolderError(f"{path}: {exc}") from None


def _instant(file: Path) -> int:
    numbers = re.findall(r"\d+", file.stem)
    if not numbers:
        raise CalibrationFolderError(f"{file}: no number in the name to match it with the other cameras' images")
    return int(numbers[-1])


def _image_frames(path: Path, images: dict[str, list[Path]]) -> dict[str, list[np.ndarray | None]]:
    by_instant = {}
    for cam, files in images.items():
        by_instant[cam] = {}
        for file in files:
            index = _instant(file)
            if index in by_instant[cam]:
                raise CalibrationFolderError(f"{file}: number {index} already used by {by_instant[cam][index].name} "
                                             f"(camera {cam!r})")
            by_instant[cam][index] = file
    instants = sorted(set().union(*by_instant.values()))
    frames = {}
    for cam, found in by_instant.items():
        ordered = sorted(found.items())
        loaded = dict(zip([i for i, _ in ordered], load_camera_images(path, cam, [f for _, f in ordered])))
        frames[cam] = [loaded.get(i) for i in instants]
    return frames


def _one_video(path: Path, cam: str, videos: list[Path]) -> Path:
    """The camera's board video; copies in other containers (same name, other suffix) are left out."""
    stems = {f.stem for f in videos}
    if len(stems) > 1:
        raise CalibrationFolderError(f"{path}: camera {cam!r} has {len(stems)} board videos "
                                     f"({', '.join(f.name for f in videos)}); keep one per camera")
    return videos[0]


def _video_frames(path: Path, files: dict[str, Path]) -> dict[str, list[np.ndarray]]:
    infos = {}
    for cam, file in files.items():
        try:
            infos[cam] = video_info(file)
        except VideoError as exc:
            raise CalibrationFolderError(str(exc)) from None
    offsets = _frame_offsets(path, list(files))
    plain = {(i.n_frames, round(i.fps, 3)) for i in infos.values()}
    if offsets is None:
        if len(plain) > 1:
            described = ", ".join(f"{cam} {i.n_frames} frames at {i.fps:g} fps" for cam, i in infos.items())
            raise CalibrationFolderError(f"{path}: board videos differ ({described}); matching them frame by frame "
                                         "needs frame_offsets.toml ([frame_offsets] camera = the frame matching the "
                                         "first camera's frame 0)")
        offsets = dict.fromkeys(files, 0)
    span = min(infos[cam].n_frames - offsets[cam] for cam in files)
    if span < 1:
        raise CalibrationFolderError(f"{path / 'frame_offsets.toml'}: the offsets leave no frame all videos share")
    wanted = np.unique(np.linspace(0, span - 1, min(span, VIDEO_SAMPLES)).round().astype(int))
    frames = {}
    for cam, file in files.items():
        keep = set((wanted + offsets[cam]).tolist())
        frames[cam] = [image for i, image in enumerate(decode_gray(file)) if i in keep]
        if len(frames[cam]) != len(wanted):
            raise CalibrationFolderError(f"{file}: decoded {len(frames[cam])} of the {len(wanted)} sampled frames")
    return frames


def _frame_offsets(path: Path, cameras: list[str]) -> dict[str, int] | None:
    file = path / "frame_offsets.toml"
    if not file.is_file():
        return None
    try:
        table = tomllib.loads(file.read_text()).get("frame_offsets")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CalibrationFolderError(f"{file}: not valid TOML: {exc}") from None
    if not isinstance(table, dict) or set(table) != set(cameras) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in table.values()):
        raise CalibrationFolderError(f"{file}: [frame_offsets] must give every camera {sorted(cameras)} a frame "
                                     "number >= 0")
    return dict(table)
