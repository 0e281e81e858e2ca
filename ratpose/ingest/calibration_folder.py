"""Read a calibration folder (docs/calibration-format.md) into what ``ratpose.calibration.calibrate_rig`` takes."""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .._toml import tomllib
from ..calibration.boards import Board, BoardError, board_from_dict
from ..errors import InputError
from ..names import CAMERA_NAME
from .session_folder import FUTURE_MARGIN, file_checksums

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIEW_NAME = re.compile(r"(sync|single)_(\d+)")


def natural_key(name: str) -> list:
    """Sort key that orders the numbers inside names by value: 'img-9' before 'img-10'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class CalibrationFolderError(InputError):
    """A calibration folder does not follow docs/calibration-format.md."""


@dataclass
class CalibrationMaterial:
    """The images of one calibration: ``frames[cam][i]`` is instant i (None: not captured)."""

    rig_name: str
    date: str
    board: Board
    frames: dict[str, list[np.ndarray | None]]
    intrinsics_frames: dict[str, list[np.ndarray]]
    camera_names: list[str]
    checksums: dict[str, str] = field(default_factory=dict)  # relative file name -> sha256
    layout: str = "ratpose"  # which layout was read (ratpose.ingest.calibration_layouts)
    media: str = "images"  # "images" or "videos" (board videos, frames sampled)


def _read_meta(path: Path) -> dict:
    meta_path = path / "calibration.toml"
    if not meta_path.is_file():
        raise CalibrationFolderError(f"{meta_path}: missing (every calibration folder needs it)")
    try:
        meta = tomllib.loads(meta_path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CalibrationFolderError(f"{meta_path}: not valid TOML: {exc}") from None
    for key, kind in (("rig", str), ("date", (str, _dt.date)), ("board", dict)):
        if not isinstance(meta.get(key), kind):
            raise CalibrationFolderError(f"{meta_path}: key {key!r} missing or of the wrong type")
    if meta.get("format_version", 1) != 1:
        raise CalibrationFolderError(f"{meta_path}: unsupported format_version {meta['format_version']!r}")
    try:
        meta["board"] = board_from_dict(meta["board"])
    except BoardError as exc:
        raise CalibrationFolderError(f"{meta_path}: [board]: {exc}") from None
    meta["date"] = meta["date"].isoformat() if isinstance(meta["date"], _dt.date) else meta["date"]
    try:
        when = _dt.datetime.fromisoformat(meta["date"])
    except ValueError:
        raise CalibrationFolderError(f"{meta_path}: date {meta['date']!r} is not a valid ISO 8601 date") from None
    if when > _dt.datetime.now() + FUTURE_MARGIN:
        raise CalibrationFolderError(f"{meta_path}: date {meta['date']} is in the future")
    if not meta["rig"].strip():
        raise CalibrationFolderError(f"{meta_path}: 'rig' is empty")
    return meta


def _camera_names(path: Path, meta: dict) -> list[str]:
    found = sorted((p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")), key=natural_key)
    names = meta.get("cameras", found)
    if not isinstance(names, list):
        raise CalibrationFolderError(f"{path / 'calibration.toml'}: 'cameras' must be a list of camera names")
    if not names:
        raise CalibrationFolderError(f"{path}: no camera folders")
    for name in names:
        if not isinstance(name, str) or not CAMERA_NAME.fullmatch(name):
            raise CalibrationFolderError(f"{path / 'calibration.toml'}: bad camera name {name!r} ([a-z][a-z0-9_]*)")
        if not (path / name).is_dir():
            raise CalibrationFolderError(f"{path / name}: camera folder listed in calibration.toml is missing")
    return list(names)


def check_rig_cameras(path, rig: str, names, rig_cameras) -> None:
    """CalibrationFolderError naming the folder and the cameras it lacks (and those it adds) when the folder's
    camera ``names`` miss one of ``rig_cameras``, the cameras rig ``rig`` is known to have.

    Extra cameras alone are accepted (a camera added to the rig): sessions only need theirs calibrated.
    """
    missing = sorted(set(rig_cameras) - set(names), key=natural_key)
    if missing:
        extra = sorted(set(names) - set(rig_cameras), key=natural_key)
        raise CalibrationFolderError(f"{path}: lacks camera(s) {missing} of rig {rig!r} (its cameras: "
                                     f"{sorted(rig_cameras, key=natural_key)}; extra here: {extra or 'none'})")


def _views(camera_dir: Path) -> dict[str, dict[int, Path]]:
    views = {"sync": {}, "single": {}}
    for file in sorted(camera_dir.iterdir(), key=lambda f: natural_key(f.name)):
        match = VIEW_NAME.fullmatch(file.stem)
        if file.suffix.lower() not in IMAGE_SUFFIXES or match is None:
            if file.name.startswith(("sync_", "single_")):
                raise CalibrationFolderError(f"{file}: expected sync_NNNN or single_NNNN with an image suffix "
                                             f"{IMAGE_SUFFIXES}")
            continue
        index = int(match.group(2))
        if index in views[match.group(1)]:
            raise CalibrationFolderError(f"{file}: index {index} already used by {views[match.group(1)][index].name}")
        views[match.group(1)][index] = file
    return views


def _load(file: Path) -> np.ndarray:
    data = np.frombuffer(file.read_bytes(), np.uint8)  # opening it first: PermissionError names the file
    image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data.size else None
    if image is None:
        raise CalibrationFolderError(f"{file}: unreadable image (empty, truncated or not an image)")
    return image


def load_camera_images(path: Path, camera: str, files: list[Path]) -> list[np.ndarray]:
    """The images (greyscale) of one camera of the calibration folder ``path``; all must have one size."""
    images = [_load(f) for f in files]
    for file, image in zip(files, images):
        if image.shape != images[0].shape:
            raise CalibrationFolderError(f"{file}: image is {image.shape[1]}x{image.shape[0]} but {files[0].name} is "
                                         f"{images[0].shape[1]}x{images[0].shape[0]} (all images of camera "
                                         f"{camera} must have the same size)")
    return images


def inside_folder(root: Path, paths) -> None:
    """Refuse files or folders that link outside the calibration folder (their content could change unseen)."""
    for path in paths:
        if not path.resolve().is_relative_to(root):
            raise CalibrationFolderError(f"{path}: points outside the calibration folder (to {path.resolve()}); "
                                         "copy it into the folder")


def read_calibration_folder(path) -> CalibrationMaterial:
    """Load calibration.toml and every camera's sync_/single_ images (greyscale uint8)."""
    path = Path(path)
    try:
        return _read_calibration_folder(path)
    except PermissionError as err:
        raise CalibrationFolderError(f"{err.filename or path}: permission denied (make it readable)") from err


def _read_calibration_folder(path: Path) -> CalibrationMaterial:
    if not path.is_dir():
        raise CalibrationFolderError(f"{path}: not a folder")
    root = path.resolve()
    inside_folder(root, [path / "calibration.toml"])
    meta = _read_meta(path)
    names = _camera_names(path, meta)
    inside_folder(root, [path / name for name in names])
    views = {name: _views(path / name) for name in names}
    inside_folder(root, [f for v in views.values() for kind in v.values() for f in kind.values()])
    empty = [name for name in names if not views[name]["sync"] and not views[name]["single"]]
    if empty:
        raise CalibrationFolderError(f"{path / empty[0]}: no sync_NNNN or single_NNNN images (camera {empty[0]!r} "
                                     "cannot be calibrated; copy its images or remove the folder)")
    instants = sorted(set().union(*(v["sync"] for v in views.values())))
    frames, intrinsics_frames = {}, {}
    for name in names:
        sync, single = sorted(views[name]["sync"].items()), sorted(views[name]["single"].items())
        images = dict(zip([("sync", i) for i, _ in sync] + [("single", i) for i, _ in single],
                          load_camera_images(path, name, [f for _, f in sync + single])))
        frames[name] = [images.get(("sync", i)) for i in instants]
        intrinsics_frames[name] = [images["single", i] for i, _ in single]
    files = ["calibration.toml", *(str(f.relative_to(path)) for name in names for kind in views[name].values()
                                   for f in kind.values())]
    return CalibrationMaterial(rig_name=meta["rig"], date=meta["date"], board=meta["board"], frames=frames,
                               intrinsics_frames=intrinsics_frames, camera_names=names,
                               checksums=file_checksums(path, files))
