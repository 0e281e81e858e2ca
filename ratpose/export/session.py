"""A session's export on its rows: the trigger-rate grid (or Pose3D's rows), each camera's 2D and the
subject, written in one of the open formats (``write_session``). The database fetch is
``ratpose.schema.export_data``."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import yaml

from ..behaviour import touch_intervals, turn_intervals
from ..errors import InputError
from ..pose3d.reconstruct import Pose3DSettings
from ..poses import keypoint_names, per_point, pose_dataset, positions
from ..rig import time_zone
from ..sync import pulse_rows, pulse_slots
from . import to_csv, to_dlc_h5, to_movement, to_nwb

PARTS = ("pose2d", "units", "knob", "cameras", "analysis")
FORMATS = ("nwb", "csv", "dlc", "movement")
ROWS = ("pulses", "reconstructed")


def on_pulses(row_pulses, pulses, *arrays, fill=np.nan) -> list[np.ndarray]:
    """``arrays`` whose rows belong to ``row_pulses`` (a camera's frames, Pose3D's rows), placed on ``pulses``:
    each pulse gets its row, ``fill`` where there is none."""
    rows, found = pulse_rows(row_pulses, pulses)
    placed = []
    for values in arrays:
        values = np.asarray(values, dtype=np.float64)
        placed.append(np.where(found.reshape(-1, *[1] * (values.ndim - 1)), values[rows], fill))
    return placed


def lowest_used_likelihood(likelihoods, min_likelihood: float):
    """Per point the lowest 2D likelihood among cameras at or above min_likelihood (those triangulated); NaN if none.
    likelihoods (n_cameras, n_frames, n_parts)."""
    lik = np.asarray(likelihoods, dtype=np.float64)
    used = lik >= min_likelihood
    lowest = np.where(used, lik, np.inf).min(axis=0)
    return np.where(used.any(axis=0), lowest, np.nan)


def times_file(csv: Path) -> Path:
    """Where the CSV export's times go: ``<name>_times.csv`` beside it (fnum, pulse_index (-1: no pulse in that
    slot), time_s: the pulse's neural-clock time, else the slot's)."""
    return csv.with_name(f"{csv.stem}_times.csv")


def skeleton_edges(bodyparts: list[str], limbs: str, labeled_dir: str | None) -> list[tuple[int, int]]:
    """Skeleton edges (body-part index pairs): Pose3DParams' limbs ('a-b,c-d', ``Pose3DSettings.limb_indices``),
    else the ``skeleton`` of the DeepLabCut project holding the training set (its config.yaml above
    labeled-data/; pairs naming other parts left out), else none."""
    edges = Pose3DSettings(limbs=limbs).limb_indices(list(bodyparts))
    if edges or not labeled_dir:
        return edges
    try:
        config = yaml.safe_load((Path(labeled_dir).parent / "config.yaml").read_text()) or {}
        pairs = [tuple(p) for p in config.get("skeleton") or []]
    except (OSError, yaml.YAMLError, AttributeError, TypeError):
        return []
    index = {name: i for i, name in enumerate(bodyparts)}
    return [(index[a], index[b]) for a, b in (p for p in pairs if len(p) == 2) if a in index and b in index]


def dandi_subject_gaps(row: dict) -> list[str]:
    """What DANDI requires of a subject (nwbinspector's dandi config: CRITICAL) that ``row`` (raw.Subject) lacks."""
    gaps = [] if row.get("species") else ["species"]
    if row.get("sex") not in ("M", "F", "O", "U"):
        gaps.append("sex")
    if not row.get("date_of_birth") and not row.get("age"):
        gaps.append("age or date of birth")
    return gaps


def _nwb_subject(row: dict, zone) -> dict:
    subject = {"subject_id": row["subject"], "species": row["species"], "sex": row["sex"]}
    if row.get("date_of_birth"):
        dob = row["date_of_birth"]
        subject["date_of_birth"] = datetime(dob.year, dob.month, dob.day, tzinfo=zone)
    if row.get("age"):
        subject["age"] = row["age"]
    return subject


def _knob_intervals(knob: dict | None, end_s: float) -> dict:
    """touches and turns (n, 2) from a KnobLog row (behaviour's definitions; touches without a turn left out)."""
    if knob is None:
        return {}
    touches = touch_intervals(knob["touch_on_s"], knob["touch_off_s"], end_s)
    turns = turn_intervals(knob["angle_time_s"], knob["angle_deg"], touches)
    return {"touches": touches, "turns": turns[np.isfinite(turns).all(axis=1)]}


def place_on_rows(poses: xr.Dataset, frames: dict, pulse_time, rate_hz: float, rows: str,
                  min_likelihood: float) -> xr.Dataset:
    """``poses`` (``ratpose.poses``' form, on Pose3D's rows) placed on the export's rows, the lowest 2D
    likelihood used for each point as its confidence.

    ``rows`` "pulses": every slot of the trigger rate from the first to the last frame any camera delivered
    (``sync.pulse_slots``; pulse_index -1 and NaN where no pulse or nothing was reconstructed);
    "reconstructed": Pose3D's rows only. ``frames``: per camera its frames' ``pulses`` and ``likelihood``;
    ``pulse_time``: every pulse's neural-clock time (s).
    """
    pulses = poses.pulse_index.values
    if rows == "pulses":  # a row per slot of the trigger rate: a pulse's, or none (NaN)
        first, last = min(f["pulses"][0] for f in frames.values()), max(f["pulses"][-1] for f in frames.values())
        span = np.arange(first, last + 1)
        slots, kept, start, period = pulse_slots(pulse_time[span], rate_hz)
        grid = np.full(slots[-1] + 1, -1, np.int64)
        grid[slots] = span[kept]
        times = np.where(grid >= 0, pulse_time[grid], start + np.arange(len(grid)) * period)
    else:
        grid = np.asarray(pulses)
        times = pulse_time[grid]
    points, errors = on_pulses(pulses, grid, positions(poses), per_point(poses, "reprojection_error_px"))
    n_cameras, = on_pulses(pulses, grid, per_point(poses, "n_cameras"), fill=0)
    likelihoods = [on_pulses(f["pulses"], grid, f["likelihood"])[0] for f in frames.values()]
    scores = np.where(n_cameras >= 2, lowest_used_likelihood(likelihoods, min_likelihood), np.nan)
    placed = pose_dataset(points, keypoint_names(poses), times, pulse_index=grid, confidence=scores,
                          reprojection_error_px=errors, n_cameras=n_cameras)
    placed.attrs.update(poses.attrs)
    return placed


def check_format(fmt: str, rows: str, timezone: str | None) -> None:
    """Refuse an unknown format, rows or time zone before anything is fetched."""
    if timezone is not None:
        time_zone(timezone)
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    if rows not in ROWS:
        raise InputError(f"unknown rows {rows!r}: use one of {', '.join(ROWS)}")


def write_session(data: dict, key: dict, fmt: str, out: Path, *, without=(), timezone: str | None = None,
                  spike_resolution_s: float = 1 / 30000, incomplete_subject: bool = False) -> Path:
    """Write a session's export ``data`` (``poses``: ``place_on_rows``' output; ``frames``, each camera's 2D;
    the session's edges, rig, videos, subject, timezone, units and knob) as ``fmt`` (one of FORMATS) to
    ``out``; returns the path written.

    ``key``: subject, training_set, pose_params (they name the scorer). ``without``: parts (PARTS) to leave
    out. NWB refuses a subject lacking what DANDI requires (``dandi_subject_gaps``) unless ``incomplete_subject``.
    """
    skip, out, poses = set(without), Path(out), data["poses"]
    names, points = keypoint_names(poses), positions(poses)
    scorer = f"ratpose_{key['training_set']}_{key['pose_params']}"
    columns = dict(errors=per_point(poses, "reprojection_error_px"), n_cameras=per_point(poses, "n_cameras"),
                   scores=per_point(poses, "confidence"))
    pulse_index, time_s = poses.pulse_index.values, poses.time.values
    grid_index = np.arange(len(pulse_index))
    if fmt == "csv":  # the exact times beside it: movement refuses a CSV with any column anipose does not write
        pd.DataFrame({"fnum": grid_index, "pulse_index": pulse_index, "time_s": time_s}).to_csv(
            times_file(out), index=False)
        return to_csv(out, points, names, frame_numbers=grid_index, **columns)
    if fmt == "dlc":
        out.mkdir(parents=True, exist_ok=True)
        scorer = f"DLC_{scorer}"  # DeepLabCut finds <video stem><scorer>.h5 next to the video
        to_dlc_h5(out / "pose3d.h5", points, names, scorer=scorer, index=grid_index)
        for camera, view in data["frames"].items() if "pose2d" not in skip else ():
            to_dlc_h5(out / f"{Path(data['videos'][camera]).stem}{scorer}.h5", view["xy"], names, scorer=scorer,
                      likelihood=view["likelihood"])  # a row per video frame, as DeepLabCut's own
        return out
    if fmt == "movement":
        to_movement(points, names, times_s=time_s, scores=columns["scores"]).to_netcdf(out)
        return out
    gaps = dandi_subject_gaps(data["subject"])
    if gaps and not incomplete_subject:
        raise InputError(f"subject {key['subject']!r} has no {' and no '.join(gaps)}, which DANDI requires: set it "
                         f"with ratpose subject set {key['subject']} --date-of-birth YYYY-MM-DD (or --age P90D, "
                         "--sex, --species), or export anyway with --incomplete-subject")
    knob = data["knob"] if "knob" not in skip else None
    units = [(u["unit_id"], u["spike_times"], {"tetrode": int(u["tetrode"])}) for u in data["units"]]
    zone = time_zone(timezone or data["timezone"])
    start = poses.attrs["session_datetime"].replace(tzinfo=zone)  # local time in the rig's zone
    return to_nwb(out, points, time_s, names, session_start_time=start,
                  rig=data["rig"] if "cameras" not in skip else None,
                  pose2d=None if skip & {"pose2d", "cameras"} or data["rig"] is None else
                  {c: (v["xy"], v["likelihood"], v["time_s"]) for c, v in data["frames"].items()},
                  edges=data["edges"], pulse_index=pulse_index,
                  subject=_nwb_subject(data["subject"], zone),
                  units=units if units and "units" not in skip else None, spike_resolution_s=spike_resolution_s,
                  **_knob_intervals(knob, end_s=float(time_s[-1])),
                  analysis=data.get("analysis") if "analysis" not in skip else None,
                  scorer=scorer, **columns)


