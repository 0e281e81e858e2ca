"""Forelimb kinematics from 3D pose alone: paw position and velocity, grasp aperture, supination, reach phase.

These are what motor cortex is tuned to, per frame and also outside knob trials (reaches that miss the
knob, paw movement between trials); the knob's own angle only checks them where both exist.

- **grasp aperture** (mm): distance between the two digit keypoints (how far the digits spread).
- **supination** (deg): the roll of the digit line (first digit -> last digit) about the forearm axis
  (wrist -> paw), right-handed about that axis, 0 when the digit line is horizontal (palm down: it lies
  along ``up x forearm``). Turning the knob with the hand rotates the digit line about the forearm, so
  during a turn supination changes as the knob angle does (``agreement_with_knob``).
- **reach phase**: rest, reach (reach onset to touch, or to paw arrival without one), contact (to release), turn
  (turn start to turn end) and withdraw (release to the next reach onset, at most ``withdraw_s``), from the
  movement events (``kinematics.detect_events``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InputError
from .kinematics import velocity

PHASE_NAMES = ("rest", "reach", "contact", "turn", "withdraw")


@dataclass(frozen=True)
class ForelimbParts:
    """Which keypoints are the forelimb's: the paw (centre of the hand), the wrist and the digits (two or more,
    the first and last span the grasp)."""
    paw: str = "paw"
    wrist: str = "wrist"
    digits: tuple[str, ...] = ("digit1", "digit2")

    def __post_init__(self):
        if len(self.digits) < 2:
            raise InputError(f"ForelimbParts: give at least two digits, got {self.digits}")


def grasp_aperture(first_digit: np.ndarray, last_digit: np.ndarray) -> np.ndarray:
    """Distance (n_frames,) mm between two digit keypoints (n_frames, 3); NaN where either is missing."""
    return np.linalg.norm(np.asarray(last_digit, float) - np.asarray(first_digit, float), axis=-1)


def supination(wrist: np.ndarray, paw: np.ndarray, first_digit: np.ndarray, last_digit: np.ndarray,
               up) -> np.ndarray:
    """Roll (n_frames,) deg of the digit line about the forearm axis; see the module's definition.

    Parameters
    ----------
    wrist, paw, first_digit, last_digit : numpy.ndarray, (n_frames, 3), mm
    up : array_like, (3,)
        The lab's up direction in the pose's frame.

    Returns
    -------
    numpy.ndarray, (n_frames,), deg in (-180, 180]
        NaN where a keypoint is missing or the forearm points straight up or down.
    """
    forearm = np.asarray(paw, float) - np.asarray(wrist, float)
    forearm /= np.linalg.norm(forearm, axis=-1, keepdims=True)
    up = np.asarray(up, float) / np.linalg.norm(up)
    reference = np.cross(up, forearm)
    norm = np.linalg.norm(reference, axis=-1, keepdims=True)
    reference = np.where(norm > 1e-6, reference / np.where(norm > 0, norm, 1.0), np.nan)
    line = np.asarray(last_digit, float) - np.asarray(first_digit, float)
    line -= np.sum(line * forearm, axis=-1, keepdims=True) * forearm
    sine = np.sum(np.cross(reference, line) * forearm, axis=-1)
    cosine = np.sum(reference * line, axis=-1)
    return np.degrees(np.arctan2(sine, cosine))


def reach_phases(times_s: np.ndarray, events: pd.DataFrame, withdraw_s: float = 0.5) -> np.ndarray:
    """Phase index (n_frames,) into PHASE_NAMES of every frame, from one session's movement events.

    Parameters
    ----------
    times_s : numpy.ndarray, (n_frames,), s
    events : pandas.DataFrame
        Columns trial, event, time_s (``kinematics.detect_events``).
    withdraw_s : float, s
        Longest withdrawal after a release.

    Returns
    -------
    numpy.ndarray, (n_frames,) int8
    """
    times_s = np.asarray(times_s, float)
    phase = np.zeros(len(times_s), np.int8)
    by_trial = events.pivot_table(index="trial", columns="event", values="time_s", aggfunc="first")
    onsets = np.sort(events.loc[events.event == "reach_onset", "time_s"].to_numpy(float))

    def mark(start, end, code):
        if np.isfinite(start) and np.isfinite(end) and end > start:
            phase[(times_s >= start) & (times_s < end)] = code

    for _, trial in by_trial.iterrows():
        get = trial.get
        release = get("release", np.nan)
        touch = get("touch", np.nan)
        contact = touch if np.isfinite(touch) else get("paw_arrival", np.nan)
        mark(get("reach_onset", np.nan), contact, 1)
        mark(contact, release, 2)
        mark(get("turn_start", np.nan), get("turn_end", np.nan), 3)
        later = onsets[onsets > release] if np.isfinite(release) else onsets[:0]
        mark(release, min(release + withdraw_s, later[0] if len(later) else np.inf), 4)
    return phase


def forelimb_kinematics(times_s: np.ndarray, points: dict[str, np.ndarray], up, events: pd.DataFrame | None = None,
                        *, parts: ForelimbParts = ForelimbParts(), smooth_s: float = 0.02) -> pd.DataFrame:
    """Every forelimb variable per frame: paw_x/_y/_z (mm), paw_vx/_vy/_vz (mm/s), paw_speed (mm/s),
    aperture_mm, supination_deg and phase (index into PHASE_NAMES; all rest without ``events``).

    Parameters
    ----------
    times_s : numpy.ndarray, (n_frames,), s
        Frame times on the neural clock.
    points : dict of str to numpy.ndarray
        Keypoint name -> (n_frames, 3) mm: at least the paw, the wrist and the digits of ``parts``.
    up : array_like, (3,)
    events : pandas.DataFrame, optional
        The session's movement events.
    parts : ForelimbParts
    smooth_s : float, s
        Velocity smoothing (``kinematics.velocity``).

    Returns
    -------
    pandas.DataFrame
        Indexed by time_s.
    """
    missing = [p for p in (parts.paw, parts.wrist, *parts.digits) if p not in points]
    if missing:
        raise InputError(f"forelimb kinematics need keypoint(s) {missing}; the pose has {sorted(points)}")
    paw = np.asarray(points[parts.paw], float)
    first, last = points[parts.digits[0]], points[parts.digits[-1]]
    table = {f"paw_{a}": paw[:, i] for i, a in enumerate("xyz")}
    v = velocity(times_s, paw, smooth_s=smooth_s)
    table.update({f"paw_v{a}": v[:, i] for i, a in enumerate("xyz")})
    table["paw_speed"] = np.linalg.norm(v, axis=1)
    table["aperture_mm"] = grasp_aperture(first, last)
    table["supination_deg"] = supination(points[parts.wrist], paw, first, last, up)
    table["phase"] = (np.zeros(len(times_s), np.int8) if events is None or not len(events)
                      else reach_phases(times_s, events))
    return pd.DataFrame(table, index=pd.Index(np.asarray(times_s, float), name="time_s"))


def agreement_with_knob(times_s: np.ndarray, supination_deg: np.ndarray, angle_times: np.ndarray,
                        angle_deg: np.ndarray, turns: np.ndarray) -> tuple[float, float]:
    """How pose-derived supination follows the knob's own angle during turns: (correlation, slope).

    Within each turn both are taken relative to their value at the turn's start; the slope is that of
    supination on knob angle (+-1 when the hand turns with the knob, its sign from the knob's axis).

    Parameters
    ----------
    times_s, supination_deg : numpy.ndarray, (n_frames,)
    angle_times, angle_deg : numpy.ndarray, (n_samples,)
        The knob sensor's angle.
    turns : numpy.ndarray, (n_turns, 2), s

    Returns
    -------
    tuple of float
        NaN, NaN when fewer than 10 frames fall in turns.
    """
    pose, knob = [], []
    for start, end in np.asarray(turns, float).reshape(-1, 2):
        inside = (times_s >= start) & (times_s <= end) & np.isfinite(supination_deg)
        if inside.sum() < 2:
            continue
        angle = np.interp(times_s[inside], angle_times, angle_deg)
        pose.append(supination_deg[inside] - supination_deg[inside][0])
        knob.append(angle - angle[0])
    if sum(len(p) for p in pose) < 10:
        return np.nan, np.nan
    pose, knob = np.concatenate(pose), np.concatenate(knob)
    return float(np.corrcoef(pose, knob)[0, 1]), float(np.polyfit(knob, pose, 1)[0])
