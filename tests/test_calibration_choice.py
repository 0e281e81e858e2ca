"""Which calibration a session uses, and refusing ones that do not fit (pure logic, no database)."""
from __future__ import annotations

import datetime as dt

import pytest

from ratpose.calibration.selection import binning_factor, select_calibration

DAY = dt.datetime(2026, 11, 24, 10, 0)
CANDIDATES = [{"rig": "rig1", "calibration_date": DAY - dt.timedelta(days=d)} for d in (1, 5, -1)] + [
    {"rig": "rig2", "calibration_date": DAY - dt.timedelta(days=1)}]
CAMERAS = [{**c, "camera": cam, "width": 640, "height": 480} for c in CANDIDATES for cam in ("cam0", "cam1")]
SESSION = {"cam0": (640, 480), "cam1": (640, 480)}


def choose(**overrides):
    args = dict(session_rig="rig1", session_datetime=DAY, session_cameras=SESSION, candidates=CANDIDATES,
                candidate_cameras=CAMERAS, by_hand=None)
    return select_calibration(**{**args, **overrides})


def test_latest_calibration_of_the_rig_before_the_session_is_chosen():
    chosen = choose()
    assert chosen == {"rig": "rig1", "calibration_date": DAY - dt.timedelta(days=1), "chosen_by": "latest"}


def test_a_choice_by_hand_wins():
    by_hand = {"rig": "rig1", "calibration_date": DAY - dt.timedelta(days=5)}
    assert choose(by_hand=by_hand) == {**by_hand, "chosen_by": "hand"}


def test_calibration_of_another_rig_is_refused():
    with pytest.raises(ValueError, match="rig 'rig2' chosen for a session on rig 'rig1'"):
        choose(by_hand={"rig": "rig2", "calibration_date": DAY - dt.timedelta(days=1)})
    with pytest.raises(ValueError, match="no calibration of rig 'rig3'"):
        choose(session_rig="rig3")


def test_other_image_size_or_missing_camera_is_refused_but_binning_is_accepted():
    with pytest.raises(ValueError, match="calibrated at 640x480 but the session's video is 800x600"):
        choose(session_cameras={"cam0": (800, 600), "cam1": (640, 480)})
    with pytest.raises(ValueError, match="has no camera 'cam2'"):
        choose(session_cameras={**SESSION, "cam2": (640, 480)})
    assert choose(session_cameras={"cam0": (160, 120), "cam1": (320, 240)})["chosen_by"] == "latest"
    assert binning_factor((640, 480), (160, 120)) == 4
    assert binning_factor((640, 480), (160, 128)) is None
