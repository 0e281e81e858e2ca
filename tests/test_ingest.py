"""Session-folder ingest against the real database: round trip, idempotence, bad input."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from ratpose.cli import main as cli
from ratpose.ingest.session_folder import SessionFormatError, read_session_folder
from ratpose.sim import SessionConfig, write_session


@pytest.fixture(scope="module")
def sim_session(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ingest") / "session"
    truth = write_session(folder, SessionConfig(seconds=2.0, fps=100.0, seed=3, subject="rat_ingest"))
    return folder, truth


def _counts(raw):
    return {t.__name__: len(t()) for t in (raw.Subject, raw.Session, raw.Recording, raw.TriggerLog,
                                           raw.KnobLog, raw.Unit, raw.Camera)}


def test_ingest_round_trips_exactly_and_is_idempotent(clean_db, sim_session):
    raw = clean_db["raw"]
    folder, truth = sim_session
    data = read_session_folder(folder)
    key, inserted = raw.insert_session(data)
    assert inserted
    counts = _counts(raw)
    assert counts["Recording"] == 2 and counts["Unit"] == len(truth.units)
    for camera, frames in truth.cameras.items():
        row = (raw.Recording & key & {"camera": camera}).to_dicts()[0]
        np.testing.assert_array_equal(row["frame_id"], frames.frame_id)
        np.testing.assert_array_equal(row["camera_ts_ns"], frames.camera_ts_ns)
        assert row["n_frames"] == len(frames.frame_id)
    np.testing.assert_array_equal((raw.TriggerLog & key).fetch1("tick_us"), truth.tick_us)
    for unit in (raw.Unit & key).to_dicts():  # database == file exactly; file == truth to its 1 us precision
        np.testing.assert_array_equal(unit["spike_times"], data.spike_times[unit["unit_id"]])
        expected = np.sort(truth.spike_time_s[truth.spike_unit_id == unit["unit_id"]])
        np.testing.assert_allclose(unit["spike_times"], expected, rtol=0, atol=1e-6)
    knob = (raw.KnobLog & key).to_dicts()[0]
    np.testing.assert_array_equal(knob["touch_on_s"], data.touch_on_s)
    np.testing.assert_array_equal(knob["angle_deg"], data.angle_deg)
    np.testing.assert_allclose(knob["touch_on_s"], truth.touch_intervals[:, 0], rtol=0, atol=1e-6)
    # Same folder again: nothing changes.
    assert cli(["ingest", str(folder)]) == 0
    assert _counts(raw) == counts


def _broken_copy(tmp_path, folder, name="broken"):
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def _prepend_toml(folder, text):
    (folder / "session.toml").write_text(text + "\n" + (folder / "session.toml").read_text())


def _append_toml(folder, text):
    (folder / "session.toml").write_text((folder / "session.toml").read_text() + "\n" + text + "\n")


def test_time_zone_and_subject_come_from_session_toml(clean_db, sim_session, tmp_path):
    raw = clean_db["raw"]
    folder = _broken_copy(tmp_path, sim_session[0], "berlin")
    _prepend_toml(folder, 'timezone = "Europe/Berlin"')
    _append_toml(folder, '[subject_info]\nsex = "F"\ndate_of_birth = 2026-06-01\nage = "P176D"')
    key, _ = raw.insert_session(read_session_folder(folder))
    assert (raw.Session & key).fetch1("timezone") == "Europe/Berlin"
    subject = (raw.Subject & key).fetch1()
    assert (subject["sex"], str(subject["date_of_birth"]), subject["age"]) == ("F", "2026-06-01", "P176D")
    assert subject["species"] == "Rattus norvegicus"
    assert read_session_folder(sim_session[0]).timezone == "UTC"  # without the key


def _edit_csv(path, edit):
    table = pd.read_csv(path)
    edit(table).to_csv(path, index=False)


BAD_INPUTS = {
    "missing trigger log": ("trigger.csv", lambda d: (d / "trigger.csv").unlink(), "file is missing"),
    "missing frames file": ("cam1.frames.csv", lambda d: (d / "cam1.frames.csv").unlink(), "file is missing"),
    "missing video": ("cam0.avi", lambda d: (d / "cam0.avi").unlink(), "missing"),
    "wrong column": ("knob_angle.csv", lambda d: _edit_csv(d / "knob_angle.csv",
                                                           lambda t: t.rename(columns={"angle_deg": "angle"})),
                     "missing column"),
    "non-monotonic camera clock": ("cam0.frames.csv", lambda d: _edit_csv(
        d / "cam0.frames.csv", lambda t: t.assign(camera_ts_ns=t.camera_ts_ns.to_numpy()[::-1])),
        "not strictly increasing"),
    "frame count disagrees with video": ("cam0.avi", lambda d: _edit_csv(
        d / "cam0.frames.csv", lambda t: t.iloc[:-5]), "frames but cam0.frames.csv has"),
    "trigger log shorter than frames": ("trigger.csv", lambda d: _edit_csv(
        d / "trigger.csv", lambda t: t.iloc[:50]), "trigger log too short"),
    "NaN spike time": ("spikes.csv", lambda d: _edit_csv(
        d / "spikes.csv", lambda t: t.assign(time_s=t.time_s.where(t.index != 3, np.nan))),
        "missing or non-numeric"),
    "inf spike time": ("spikes.csv", lambda d: _edit_csv(
        d / "spikes.csv", lambda t: t.assign(time_s=t.time_s.where(t.index != 3, np.inf))), "non-finite"),
    "unknown unit": ("spikes.csv", lambda d: _edit_csv(
        d / "spikes.csv", lambda t: t.assign(unit_id=t.unit_id.where(t.index != 0, 999))), "not in units.csv"),
    "knob events out of order": ("knob_events.csv", lambda d: _edit_csv(
        d / "knob_events.csv", lambda t: t.iloc[1:]), "must alternate"),
    "broken toml": ("session.toml", lambda d: (d / "session.toml").write_text("subject = [unclosed"),
                    "not valid TOML"),
    "unknown time zone": ("session.toml", lambda d: _prepend_toml(d, 'timezone = "Mars/Olympus"'),
                          "not an IANA time zone"),
    "bad subject sex": ("session.toml", lambda d: _append_toml(d, '[subject_info]\nsex = "X"'), "sex must be"),
    "bad date of birth": ("session.toml", lambda d: _append_toml(d, '[subject_info]\ndate_of_birth = "June"'),
                          "date_of_birth must be a date"),
    "truncated video": ("cam1.avi", lambda d: (d / "cam1.avi").write_bytes((d / "cam1.avi").read_bytes()[:4000]),
                        "video"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_rejected_clearly_and_inserts_nothing(clean_db, sim_session, tmp_path, case):
    raw = clean_db["raw"]
    file_name, breaker, message = BAD_INPUTS[case]
    folder = _broken_copy(tmp_path, sim_session[0])
    breaker(folder)
    before = _counts(raw)
    with pytest.raises(SessionFormatError) as info:
        read_session_folder(folder)
    assert file_name in str(info.value) and message in str(info.value)
    assert cli(["ingest", str(folder)]) == 1
    assert _counts(raw) == before


def test_duplicated_session_from_another_folder_is_refused(clean_db, sim_session, tmp_path):
    raw = clean_db["raw"]
    raw.insert_session(read_session_folder(sim_session[0]))
    before = _counts(raw)
    copy = _broken_copy(tmp_path, sim_session[0], "copy")
    with pytest.raises(ValueError, match="already exists"):
        raw.insert_session(read_session_folder(copy))
    assert _counts(raw) == before


def test_camera_with_other_serial_is_refused(clean_db, sim_session, tmp_path):
    raw = clean_db["raw"]
    raw.Camera.insert1({"camera": "cam0", "serial": "99999999"})
    before = _counts(raw)
    with pytest.raises(ValueError, match="serial"):
        raw.insert_session(read_session_folder(sim_session[0]))
    assert _counts(raw) == before
