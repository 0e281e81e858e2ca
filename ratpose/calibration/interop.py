"""Read and write other tools' calibration files: Anipose ``calibration.toml``, DeepLabCut 3D stereo pickles."""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import cv2
import numpy as np
import tomli_w
import yaml

from .._toml import tomllib
from ..rig import CameraModel, Rig
from .boards import Board, BoardError, CharucoBoard, Checkerboard
from .detect import CalibrationError

# (sleap-anipose board.toml key, Anipose config.toml [calibration] key) per field
_BOARD_KEYS = {"x": ("board_x", "board_size"), "square": ("square_length", "board_square_side_length"),
               "marker": ("marker_length", "board_marker_length"), "bits": ("marker_bits", "board_marker_bits"),
               "dict": ("dict_size", "board_marker_dict_number")}


def _to_camera(path: Path, section: str, table: dict) -> CameraModel:
    missing = {"name", "size", "matrix", "distortions", "rotation", "translation"} - set(table)
    if missing:
        raise CalibrationError(f"{path}: [{section}] lacks {sorted(missing)}")
    fisheye = bool(table.get("fisheye", False))  # aniposelib's FisheyeCamera: cv2.fisheye, k1..k4
    coeffs = np.asarray(table["distortions"], dtype=np.float64).ravel()
    most = 4 if fisheye else 8
    if len(coeffs) > most:
        raise CalibrationError(f"{path}: [{section}] has {len(coeffs)} distortion coefficients, "
                               f"at most {most} supported "
                               + ("(a fisheye camera's k1..k4)" if fisheye else "(OpenCV's rational model)"))
    dist = np.zeros(4 if fisheye else 5 if len(coeffs) <= 5 else 8)
    dist[: len(coeffs)] = coeffs
    try:
        return CameraModel(name=str(table["name"]), size=tuple(table["size"]), K=table["matrix"], dist=dist,
                      R=cv2.Rodrigues(np.asarray(table["rotation"], dtype=np.float64).reshape(3, 1))[0],
                      t=table["translation"], model="fisheye" if fisheye else "pinhole")
    except (ValueError, TypeError) as exc:
        raise CalibrationError(f"{path}: [{section}] has malformed values: {exc}") from None


def load_rig(path, refuse_identical: bool = True) -> Rig:
    """Rig from an Anipose calibration.toml ([cam_0], [cam_1], ... in index order; units as written).

    Refuses a file with two identical cameras unless ``refuse_identical`` is False (for inspection).

    Parameters
    ----------
    path : str or Path
    refuse_identical : bool

    Returns
    -------
    Rig

    Raises
    ------
    CalibrationError
        If the file cannot be read, is not an Anipose calibration, holds malformed camera tables, or (with
        ``refuse_identical``) two identical cameras.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{path}: cannot read Anipose calibration: {exc}") from None
    return rig_from_anipose_text(text, path, refuse_identical)


def rig_from_anipose_text(text: str, path, refuse_identical: bool = True) -> Rig:
    """``load_rig`` on the text of a calibration.toml; ``path`` names it in errors.

    Parameters
    ----------
    text : str
    path : str or Path
    refuse_identical : bool

    Returns
    -------
    Rig

    Raises
    ------
    CalibrationError
        As ``load_rig``.
    """
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CalibrationError(f"{path}: cannot read Anipose calibration: {exc}") from None
    sections = sorted((int(m.group(1)), key) for key in data if (m := re.fullmatch(r"cam_(\d+)", key)))
    if not sections:
        raise CalibrationError(f"{path}: no [cam_N] sections, not an Anipose calibration.toml")
    rig = Rig(tuple(_to_camera(path, key, data[key]) for _, key in sections))
    if refuse_identical:
        _refuse_identical(path, rig)
    return rig


def _refuse_identical(path: Path, rig: Rig) -> None:
    for i, a in enumerate(rig):
        for b in rig.cameras[i + 1:]:
            if np.allclose(a.R, b.R, atol=1e-9) and np.allclose(a.t, b.t, atol=1e-9) and np.allclose(a.K, b.K):
                raise CalibrationError(f"{path}: cameras {a.name!r} and {b.name!r} are identical (same intrinsics and "
                                       "pose): one was copied over the other, not calibrated")


def load_anipose_board(path) -> Board:
    """Board of a sleap-anipose ``board.toml`` or of an Anipose ``config.toml``'s [calibration] table.

    Anipose counts squares; a checkerboard of X x Y squares has (X - 1) x (Y - 1) inner corners.
    ChArUco boards use the pre-OpenCV-4.6 layout (``legacy``) that aniposelib drew them with.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    CharucoBoard or Checkerboard

    Raises
    ------
    CalibrationError
        If the file cannot be read, lacks a board field, or describes an invalid board.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CalibrationError(f"{path}: cannot read Anipose board: {exc}") from None
    data = data.get("calibration", data)

    def get(field, default=None):
        for key in _BOARD_KEYS[field]:
            if key in data:
                return data[key]
        if default is None:
            raise CalibrationError(f"{path}: lacks {' or '.join(_BOARD_KEYS[field])}")
        return default

    size = get("x")
    nx, ny = (size if isinstance(size, list) else (size, data.get("board_y")))
    if ny is None:
        raise CalibrationError(f"{path}: lacks board_y")
    kind = data.get("board_type", "charuco" if "marker_length" in data or "board_marker_length" in data
                    else "checkerboard")
    try:
        if kind == "checkerboard":
            return Checkerboard(int(nx) - 1, int(ny) - 1, float(get("square")))
        if kind != "charuco":
            raise CalibrationError(f"{path}: board_type {kind!r}: expected 'charuco' or 'checkerboard'")
        bits, n = int(get("bits", 4)), int(get("dict", 50))
        return CharucoBoard(int(nx), int(ny), float(get("square")), float(get("marker")), f"DICT_{bits}X{bits}_{n}",
                            legacy=True)
    except (BoardError, ValueError, TypeError) as exc:
        raise CalibrationError(f"{path}: bad board: {exc}") from None


def save_rig(rig: Rig, path, metadata: dict | None = None) -> Path:
    """Write ``rig`` as an Anipose calibration.toml (rotation as a Rodrigues vector) with a [metadata] table.

    A fisheye camera is written as aniposelib's FisheyeCamera (``fisheye = true``, 4 coefficients).

    Parameters
    ----------
    rig : Rig
    path : str or Path
    metadata : dict, optional
        The [metadata] table (empty when None).

    Returns
    -------
    Path
    """
    path = Path(path)
    path.write_text(rig_to_anipose_text(rig, metadata))
    return path


def rig_to_anipose_text(rig: Rig, metadata: dict | None = None) -> str:
    """The text of ``save_rig``'s calibration.toml.

    Parameters
    ----------
    rig : Rig
    metadata : dict, optional
        The [metadata] table (empty when None).

    Returns
    -------
    str
    """
    data = {f"cam_{i}": {"name": cam.name, "size": list(cam.size), "matrix": cam.K.tolist(),
                         "distortions": cam.dist.tolist(), "rotation": cam.rvec.tolist(),
                         "translation": cam.t.tolist(), **({"fisheye": True} if cam.fisheye else {})}
            for i, cam in enumerate(rig)}
    data["metadata"] = dict(metadata or {})
    return tomli_w.dumps(data)


def load_dlc_stereo_pickle(path, camera_names: list[str], square_mm: float = 1.0) -> Rig:
    """Two-camera rig from DeepLabCut 3D's stereo_params.pickle (key '<cam1>-<cam2>').

    DeepLabCut measures the board in squares, so its translation T is in square units: pass the
    board's ``square_mm`` to get millimetres. The first camera defines the world frame.

    Parameters
    ----------
    path : str or Path
    camera_names : list of str
        The pair's two camera names, in DLC's order.
    square_mm : float, mm
        The board's square size (1: translations stay in squares).

    Returns
    -------
    Rig

    Raises
    ------
    CalibrationError
        If ``camera_names`` does not name 2 cameras, the pickle cannot be read, or lacks the pair or its fields.
    """
    path = Path(path)
    if len(camera_names) != 2:
        raise CalibrationError(f"camera_names must name the 2 cameras of a DLC stereo pair, got {camera_names}")
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError) as exc:
        raise CalibrationError(f"{path}: cannot read DLC stereo pickle: {exc}") from None
    key = f"{camera_names[0]}-{camera_names[1]}"
    if not isinstance(data, dict) or key not in data:
        keys = list(data) if isinstance(data, dict) else type(data).__name__
        raise CalibrationError(f"{path}: no stereo pair {key!r} (has {keys})")
    pair = data[key]
    missing = {"cameraMatrix1", "cameraMatrix2", "distCoeffs1", "distCoeffs2", "R", "T", "image_shape"} - set(pair)
    if missing:
        raise CalibrationError(f"{path}: pair {key!r} lacks {sorted(missing)}")
    cams = []
    for i, name in enumerate(camera_names):
        dist = np.zeros(5)
        coeffs = np.asarray(pair[f"distCoeffs{i + 1}"], dtype=np.float64).ravel()[:5]
        dist[: len(coeffs)] = coeffs
        R = np.eye(3) if i == 0 else pair["R"]
        t = np.zeros(3) if i == 0 else np.asarray(pair["T"], dtype=np.float64).ravel() * square_mm
        cams.append(CameraModel(name=name, size=tuple(pair["image_shape"][i]), K=pair[f"cameraMatrix{i + 1}"],
                           dist=dist, R=R, t=t))
    return Rig(tuple(cams))


DLC3D_PICKLE = Path("camera_matrix") / "stereo_params.pickle"


def load_dlc3d_project(path, square_mm: float) -> Rig:
    """Two-camera rig of a DeepLabCut 3D project folder; translations in mm given the board's ``square_mm``.

    The cameras are its config.yaml's ``camera_names``, the calibration ``camera_matrix/stereo_params.pickle``.

    Parameters
    ----------
    path : str or Path
        The DeepLabCut 3D project folder.
    square_mm : float, mm
        The board's square size, > 0.

    Returns
    -------
    Rig

    Raises
    ------
    CalibrationError
        If config.yaml cannot be read or does not list 2 cameras, ``square_mm`` is not > 0, or the pickle is
        unusable.
    """
    path = Path(path)
    config = path / "config.yaml"
    try:
        cameras = (yaml.safe_load(config.read_text()) or {}).get("camera_names")
    except (OSError, yaml.YAMLError, UnicodeDecodeError, AttributeError) as exc:
        raise CalibrationError(f"{config}: cannot read a DeepLabCut 3D config: {exc}") from None
    if not isinstance(cameras, list) or len(cameras) != 2:
        raise CalibrationError(f"{config}: 'camera_names' must list the project's 2 cameras, got {cameras!r}")
    if not square_mm or square_mm <= 0:
        raise CalibrationError(f"{path}: DeepLabCut 3D measures its board in squares; give the square size "
                               "(--square-mm) to get millimetres")
    return load_dlc_stereo_pickle(path / DLC3D_PICKLE, [str(c) for c in cameras], square_mm)
