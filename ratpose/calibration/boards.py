"""Calibration targets: ChArUco and checkerboard boards, their 3D corner positions and printable images.

Board frame: origin at the top-left outer corner of the square grid, x to the right along the
columns, y down along the rows, z = 0 on the board surface; units are millimetres. Corner ``i``
(ChArUco id or checkerboard detection index) sits at ``object_points[i]``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError

MM_PER_INCH = 25.4


class BoardError(InputError):
    """A board description is invalid."""


class _Printable:
    """Rendering shared by both board types (needs ``size_mm``, ``square_mm`` and ``_render_grid``)."""

    def render(self, dpi: float = 300.0, margin_mm: float = 10.0) -> np.ndarray:
        """The printable board image (uint8) at ``dpi`` with a white margin of ``margin_mm``.

        Parameters
        ----------
        dpi : float, dots per inch
        margin_mm : float, mm

        Returns
        -------
        numpy.ndarray, (height, width) uint8

        Raises
        ------
        BoardError
            If ``dpi`` is not > 0 or ``margin_mm`` < 0.
        """
        return render_board(self, dpi / MM_PER_INCH, margin_mm)[0]

    def save_printable(self, path, dpi: float = 300.0, margin_mm: float = 10.0) -> Path:
        """Write the board as PNG or PDF that prints at true scale (print at 100 %).

        Parameters
        ----------
        path : str or Path
            Ends in .png or .pdf.
        dpi : float, dots per inch
        margin_mm : float, mm

        Returns
        -------
        Path
            The file written (see ``save_printable_board``).

        Raises
        ------
        BoardError
            If ``path`` is not .png or .pdf.
        """
        return save_printable_board(self, path, dpi, margin_mm)


@dataclass(frozen=True)
class CharucoBoard(_Printable):
    """A ChArUco board of ``squares_x`` x ``squares_y`` squares (OpenCV >= 4.7 layout unless ``legacy``).

    ``legacy=True`` selects the pre-4.6 marker layout (``setLegacyPattern``), needed for boards with
    an even number of rows printed by older OpenCV or calib.io.

    Attributes
    ----------
    squares_x, squares_y : int
        Squares across and down (at least 2 each).
    square_mm : float, mm
        Side of a square.
    marker_mm : float, mm
        Side of an ArUco marker, in (0, square_mm).
    dictionary : str
        OpenCV's ArUco dictionary, e.g. "DICT_4X4_50"; it must hold the board's markers.
    legacy : bool

    Raises
    ------
    BoardError
        On construction, if a field is out of range or the dictionary is unknown or too small.
    """

    squares_x: int
    squares_y: int
    square_mm: float
    marker_mm: float
    dictionary: str = "DICT_4X4_50"
    legacy: bool = False

    def __post_init__(self):
        if self.squares_x < 2 or self.squares_y < 2:
            raise BoardError(f"ChArUco board needs at least 2x2 squares, got {self.squares_x}x{self.squares_y}")
        if not 0 < self.marker_mm < self.square_mm:
            raise BoardError(f"marker_mm must be in (0, square_mm={self.square_mm}), got {self.marker_mm}")
        if not self.dictionary.startswith("DICT_") or not hasattr(cv2.aruco, self.dictionary):
            raise BoardError(f"unknown ArUco dictionary {self.dictionary!r} (e.g. 'DICT_4X4_50')")
        n_markers = (self.squares_x * self.squares_y) // 2
        dict_size = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary)).bytesList.shape[0]
        if n_markers > dict_size:
            raise BoardError(f"{self.dictionary} holds {dict_size} markers but the board needs {n_markers}")

    @property
    def corner_grid(self) -> tuple[int, int]:
        """Inner corners per row and per column."""
        return self.squares_x - 1, self.squares_y - 1

    @property
    def size_mm(self) -> tuple[float, float]:
        """Board width and height (the square grid) in mm."""
        return self.squares_x * self.square_mm, self.squares_y * self.square_mm

    @cached_property
    def object_points(self) -> np.ndarray:
        """(n_corners, 3) corner positions in mm, indexed by ChArUco corner id."""
        return _grid_points(*self.corner_grid, self.square_mm)

    @cached_property
    def cv_board(self) -> cv2.aruco.CharucoBoard:
        """The OpenCV board object (units mm)."""
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        board = cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), float(self.square_mm),
                                       float(self.marker_mm), dictionary)
        board.setLegacyPattern(bool(self.legacy))
        return board

    def _render_grid(self, px_per_square: int) -> np.ndarray:
        size = (self.squares_x * px_per_square, self.squares_y * px_per_square)
        return self.cv_board.generateImage(size, marginSize=0, borderBits=1)

    def to_dict(self) -> dict:
        return {"type": "charuco", "squares_x": self.squares_x, "squares_y": self.squares_y,
                "square_mm": float(self.square_mm), "marker_mm": float(self.marker_mm),
                "dictionary": self.dictionary, "legacy": bool(self.legacy)}



@dataclass(frozen=True)
class Checkerboard(_Printable):
    """A checkerboard with ``cols`` x ``rows`` inner corners (so (cols+1) x (rows+1) squares).

    Attributes
    ----------
    cols, rows : int
        Inner corners across and down (at least 2 each, and different: a square board's orientation is
        ambiguous).
    square_mm : float, mm
        Side of a square, > 0.

    Raises
    ------
    BoardError
        On construction, if a field is out of range.
    """

    cols: int
    rows: int
    square_mm: float

    def __post_init__(self):
        if self.cols < 2 or self.rows < 2:
            raise BoardError(f"checkerboard needs at least 2x2 inner corners, got {self.cols}x{self.rows}")
        if self.cols == self.rows:
            raise BoardError("a square checkerboard (cols == rows) has an ambiguous orientation; "
                             f"use different counts, got {self.cols}x{self.rows}")
        if not self.square_mm > 0:
            raise BoardError(f"square_mm must be > 0, got {self.square_mm}")

    @property
    def corner_grid(self) -> tuple[int, int]:
        return self.cols, self.rows

    @property
    def size_mm(self) -> tuple[float, float]:
        return (self.cols + 1) * self.square_mm, (self.rows + 1) * self.square_mm

    @cached_property
    def object_points(self) -> np.ndarray:
        """(cols*rows, 3) corner positions in mm, in OpenCV detection order (row by row)."""
        return _grid_points(self.cols, self.rows, self.square_mm)

    def _render_grid(self, px_per_square: int) -> np.ndarray:
        iy, ix = np.mgrid[0:self.rows + 1, 0:self.cols + 1]
        squares = np.where((ix + iy) % 2 == 0, 0, 255).astype(np.uint8)
        return np.kron(squares, np.ones((px_per_square, px_per_square), np.uint8))

    def to_dict(self) -> dict:
        return {"type": "checkerboard", "cols": self.cols, "rows": self.rows, "square_mm": float(self.square_mm)}



Board = CharucoBoard | Checkerboard


def _grid_points(nx: int, ny: int, square_mm: float) -> np.ndarray:
    iy, ix = np.mgrid[0:ny, 0:nx]
    pts = np.zeros((nx * ny, 3))
    pts[:, 0] = (ix.ravel() + 1) * square_mm
    pts[:, 1] = (iy.ravel() + 1) * square_mm
    return pts


def board_from_dict(d: dict) -> Board:
    """Rebuild a board from ``to_dict()`` output (key ``type``: 'charuco' or 'checkerboard').

    Parameters
    ----------
    d : dict
        ``type`` plus the board's fields (e.g. from a TOML file).

    Returns
    -------
    CharucoBoard or Checkerboard

    Raises
    ------
    BoardError
        If ``d`` has no or an unknown type, unknown or missing fields, or values of the wrong type or range.
    """
    if not isinstance(d, dict) or "type" not in d:
        raise BoardError(f"board description must be a table with a 'type' key, got {d!r}")
    kind = d["type"]
    fields = {k: v for k, v in d.items() if k != "type"}
    cls = {"charuco": CharucoBoard, "checkerboard": Checkerboard}.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise BoardError(f"board type must be 'charuco' or 'checkerboard', got {kind!r}")
    _check_fields(cls, kind, fields)
    return cls(**fields)


COUNT_RANGE = (2, 200)  # squares (ChArUco) or inner corners (checkerboard) per side
SIZE_RANGE_MM = (0.1, 1000.0)  # square and marker sizes
_KINDS = {"str": (str,), "bool": (bool, np.bool_)}


def _check_fields(cls, kind: str, fields: dict) -> None:
    """Names, types and ranges of a board description read from a file (BoardError naming the field)."""
    declared = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - set(declared))
    missing = sorted(n for n, f in declared.items() if n not in fields and f.default is dataclasses.MISSING)
    if unknown or missing:
        raise BoardError(f"{kind} board: " + "; ".join(
            ([f"unknown field(s) {unknown}"] if unknown else []) + ([f"missing field(s) {missing}"] if missing else []))
            + f" (fields: {list(declared)})")
    for name, value in fields.items():
        wanted = declared[name].type
        number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
        whole = number and np.isfinite(value) and value == int(value)
        if wanted == "int" and not (whole and COUNT_RANGE[0] <= value <= COUNT_RANGE[1]):
            raise BoardError(f"{kind} board: {name} = {value!r} must be a whole number in "
                             f"{COUNT_RANGE[0]}..{COUNT_RANGE[1]}")
        if wanted == "float" and not (number and SIZE_RANGE_MM[0] <= value <= SIZE_RANGE_MM[1]):
            raise BoardError(f"{kind} board: {name} = {value!r} must be a size in mm within "
                             f"{SIZE_RANGE_MM[0]}..{SIZE_RANGE_MM[1]}")
        if wanted in _KINDS and not isinstance(value, _KINDS[wanted]):
            raise BoardError(f"{kind} board: {name} = {value!r} must be a {'string' if wanted == 'str' else 'boolean'}")
        if wanted == "int":
            fields[name] = int(value)


def render_board(board: Board, px_per_mm: float, margin_mm: float = 10.0) -> tuple[np.ndarray, float]:
    """Board image (uint8, white margin) at ``px_per_mm``; also returns the margin in pixels.

    Board point (x, y) mm lies at pixel coordinate ``margin_px + (x, y) * px_per_mm`` (continuous
    coordinates, pixel i covering [i, i+1)); sizes are rounded to whole pixels.

    Parameters
    ----------
    board : CharucoBoard or Checkerboard
    px_per_mm : float, px/mm
        Must be > 0.
    margin_mm : float, mm
        Must be >= 0.

    Returns
    -------
    image : numpy.ndarray, (height, width) uint8
    margin_px : float, px

    Raises
    ------
    BoardError
        If ``px_per_mm`` <= 0 or ``margin_mm`` < 0.
    """
    if px_per_mm <= 0 or margin_mm < 0:
        raise BoardError(f"px_per_mm must be > 0 and margin_mm >= 0, got {px_per_mm}, {margin_mm}")
    width_mm, height_mm = board.size_mm
    out_w, out_h = round(width_mm * px_per_mm), round(height_mm * px_per_mm)
    px_per_square = max(8, int(np.ceil(board.square_mm * px_per_mm)))
    grid = board._render_grid(px_per_square)
    if grid.shape[::-1] != (out_w, out_h):
        grid = cv2.resize(grid, (out_w, out_h), interpolation=cv2.INTER_AREA)
    margin_px = round(margin_mm * px_per_mm)
    return cv2.copyMakeBorder(grid, margin_px, margin_px, margin_px, margin_px,
                              cv2.BORDER_CONSTANT, value=255), float(margin_px)


def board_label(board: Board) -> str:
    """The board's printed dimensions, e.g. for the sheet (checked with a ruler) and the command line.

    Parameters
    ----------
    board : CharucoBoard or Checkerboard

    Returns
    -------
    str
        E.g. "checkerboard 8 x 6 squares (7 x 5 inner corners); square 25 mm; board 200 x 150 mm".
    """
    width, height = board.size_mm
    if isinstance(board, CharucoBoard):
        kind = (f"ChArUco {board.squares_x} x {board.squares_y} squares, marker {board.marker_mm:g} mm, "
                f"{board.dictionary}{', legacy layout' if board.legacy else ''}")
    else:
        kind = f"checkerboard {board.cols + 1} x {board.rows + 1} squares ({board.cols} x {board.rows} inner corners)"
    return f"{kind}; square {board.square_mm:g} mm; board {width:g} x {height:g} mm"


LABEL_MM = 14.0  # strip under the board holding its label and a 50 mm ruler bar


def save_printable_board(board: Board, path, dpi: float = 300.0, margin_mm: float = 10.0) -> Path:
    """Write ``board`` to ``path`` (.png or .pdf) at ``dpi`` so it prints at true scale (print at 100 %).

    Under the board: its dimensions (``board_label``) and a 50 mm bar to check the print with a ruler.

    Parameters
    ----------
    board : CharucoBoard or Checkerboard
    path : str or Path
        Ends in .png or .pdf.
    dpi : float, dots per inch
    margin_mm : float, mm
        White margin around the board.

    Returns
    -------
    Path

    Raises
    ------
    BoardError
        If ``path`` is not .png or .pdf.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    path = Path(path)
    if path.suffix.lower() not in (".png", ".pdf"):
        raise BoardError(f"printable board must be .png or .pdf, got {path}")
    image = render_board(board, dpi / MM_PER_INCH, margin_mm)[0]
    height, width = image.shape
    strip = round(LABEL_MM * dpi / MM_PER_INCH)
    fig = Figure(figsize=(width / dpi, (height + strip) / dpi), dpi=dpi)
    fig.figimage(image, yo=strip, cmap="gray", vmin=0, vmax=255, resize=False)
    px = dpi / MM_PER_INCH
    fx, fy = (lambda v: v * px / width), (lambda v: v * px / (height + strip))  # noqa: E731 (mm -> fraction)
    left, bar = margin_mm, LABEL_MM - 5.0
    fig.add_artist(Line2D([fx(left), fx(left + 50)], [fy(bar)] * 2, color="black", linewidth=1.5))
    fig.text(fx(left + 52), fy(bar - 1), "50 mm", fontsize=6)
    fig.text(fx(left), fy(2), f"{board_label(board)}. Print at 100 % (no scaling).", fontsize=6)
    fig.savefig(path, dpi=dpi)
    return path
