"""Reading DeepLabCut's outputs (.h5 or .csv, one animal) as arrays."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .records import _COORDS, _HEADER_ROWS, DLCError, Pose2DArrays


def _read_dlc_csv(path: Path):
    """A DLC .csv with the header rows (scorer, [individuals,] bodyparts, coords) and index columns (1, or 3:
    labeled-data, video, image) that the file itself has."""
    import csv
    import itertools

    import pandas as pd

    with open(path, newline="") as f:
        rows = list(itertools.islice(csv.reader(f), 4))
    n_header = next((i for i, row in enumerate(rows) if not row or row[0] not in _HEADER_ROWS), len(rows))
    if not n_header or rows[0][0] != "scorer":
        raise DLCError(f"{path}: not a DLC table (no scorer, bodyparts, coords header rows)")
    n_index = 1 + next((i for i, cell in enumerate(rows[0][1:]) if cell), len(rows[0]) - 1)
    return pd.read_csv(path, header=list(range(n_header)), index_col=list(range(n_index)))


def read_dlc_table(path: str | Path, what: str = "DLC output"):
    """A user's DLC table, .h5 or .csv, as pandas reads it.

    Parameters
    ----------
    path : str or Path
        A .csv (DLC's header rows and index columns) or an HDF5 file.
    what : str
        What the file should be, named in errors.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DLCError
        Naming the file (and ``what`` it should be) when it is missing or not one.
    """
    import pandas as pd

    path = Path(path)
    try:
        return _read_dlc_csv(path) if path.suffix.lower() == ".csv" else pd.read_hdf(path)
    except FileNotFoundError:
        raise DLCError(f"{path}: no such {what} file") from None
    except DLCError:
        raise
    except Exception as exc:  # pandas/tables raise many kinds
        raise DLCError(f"{path}: not a readable {what} ({type(exc).__name__}: {exc})") from exc


def _single_animal(df, path: Path):
    """df with columns (scorer, bodyparts, coords) of one scorer; a multi-animal table's one individual kept."""
    names = list(df.columns.names)
    if "individuals" in names:
        individuals = df.columns.get_level_values("individuals").unique()
        if len(individuals) != 1:
            raise DLCError(f"{path}: holds {len(individuals)} individuals {list(individuals)}; expected one")
        df = df.droplevel("individuals", axis=1)
    if list(df.columns.names) != ["scorer", "bodyparts", "coords"]:
        raise DLCError(f"{path}: columns {names} are not DLC's (scorer, [individuals,] bodyparts, coords)")
    scorers = df.columns.get_level_values("scorer").unique()
    if len(scorers) != 1:
        raise DLCError(f"{path}: holds {len(scorers)} scorers {list(scorers)}; expected one")
    return df


def load_dlc_h5(path: str | Path, expected_bodyparts: list[str] | tuple[str, ...] | None = None,
                expected_frames: int | None = None) -> Pose2DArrays:
    """Read a DLC pose output (.h5 or .csv, single animal or one individual) into :class:`Pose2DArrays`.

    With ``expected_bodyparts`` the body parts must be the same set (they are returned in that
    order); with ``expected_frames`` the row count must match.

    Parameters
    ----------
    path : str or Path
    expected_bodyparts : sequence of str, optional
    expected_frames : int, optional

    Returns
    -------
    Pose2DArrays

    Raises
    ------
    DLCError
        If the file is missing or unreadable, holds several individuals or scorers, lacks x/y/likelihood
        columns, does not match the expected body parts or frames, or has a likelihood outside [0, 1].
    """
    import pandas as pd

    path = Path(path)
    df = _single_animal(read_dlc_table(path), path)
    scorers = df.columns.get_level_values("scorer").unique()
    found = tuple(df.columns.get_level_values("bodyparts").unique())
    bodyparts = found
    if expected_bodyparts is not None:
        bodyparts = tuple(expected_bodyparts)
        missing, extra = sorted(set(bodyparts) - set(found)), sorted(set(found) - set(bodyparts))
        if missing or extra or len(bodyparts) != len(found):
            raise DLCError(f"{path}: body parts {list(found)} do not match the expected {list(bodyparts)} "
                           f"(missing {missing}, extra {extra})")
    if expected_frames is not None and len(df) != int(expected_frames):
        raise DLCError(f"{path}: {len(df)} frames, expected {int(expected_frames)}")
    columns = pd.MultiIndex.from_product([[scorers[0]], bodyparts, _COORDS])
    missing = columns.difference(df.columns)
    if len(missing):
        raise DLCError(f"{path}: missing columns {list(missing)[:6]} (is this a labels file, not a DLC output?)")
    values = df.reindex(columns=columns).to_numpy(dtype=np.float64).reshape(len(df), len(bodyparts), 3)
    likelihood = values[..., 2]
    bad = np.argwhere(~((likelihood >= 0) & (likelihood <= 1)) & ~np.isnan(likelihood))
    if bad.size:
        frame, part = bad[0]
        raise DLCError(f"{path}: likelihood {likelihood[frame, part]} of {bodyparts[part]!r} at frame {frame} "
                       "is outside [0, 1] (not a DLC output?)")
    return Pose2DArrays(bodyparts, values[..., 0], values[..., 1], values[..., 2])
