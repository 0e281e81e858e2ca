"""Session-folder ingest against the real database: round trip, idempotence, bad input."""
from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w

from ratpose._toml import tomllib
from ratpose.acquisition import RigConfigError, rig_config_from_dict
from ratpose.calibration import CharucoBoard
from ratpose.cli import main as cli
from ratpose.ingest.calibration_folder import CalibrationFolderError, check_rig_cameras
from ratpose.ingest.session_folder import SessionFormatError, read_session_folder
from ratpose.names import SUBJECT_MAX_LEN
from ratpose.sim import SessionSettings, write_session
from ratpose.sim.boards import write_calibration_folder
from ratpose.sync import unwrap_ticks


@pytest.fixture(scope="module")
def sim_session(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ingest") / "session"
    truth = write_session(folder, SessionSettings(seconds=2.0, fps=100.0, seed=3, subject="rat_ingest"))
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
    """Add ``text`` to session.toml; a table it declares replaces the simulator's (e.g. [subject_info])."""
    meta = tomllib.loads((folder / "session.toml").read_text())
    for table in re.findall(r"^\[(\w+)\]", text, re.M):
        meta.pop(table, None)
    (folder / "session.toml").write_text(tomli_w.dumps(meta) + "\n" + text + "\n")


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


def _set_toml(folder, camera=None, **changes):
    """Set top-level keys of session.toml, or keys of camera number ``camera``."""
    meta = tomllib.loads((folder / "session.toml").read_text())
    (meta if camera is None else meta["camera"][camera]).update(changes)
    (folder / "session.toml").write_text(tomli_w.dumps(meta))


def _ticks(edit):
    return lambda d: _edit_csv(d / "trigger.csv", lambda t: t.assign(tick_us=edit(t.tick_us.to_numpy())))


def _swap(ticks, i):
    ticks[[i, i + 1]] = ticks[[i + 1, i]]
    return ticks


def _back(ticks, i, by):
    ticks[i:] -= by
    return ticks


HOUR = dt.timedelta(hours=1)
HOSTILE_SUBJECTS = ["../../rat01", "rat\u202e10", "a/b", "a\\b", "rat 01", "", "..", ".", "rat\x0701", "rat\n",
                    ".rat", "-rat", "r" * (SUBJECT_MAX_LEN + 1)]


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
    "swapped trigger ticks": ("trigger.csv", _ticks(lambda t: _swap(t, 40)),
                              "column 'tick_us': ticks go backwards at pulse index 41"),
    "trigger tick 1 s back": ("trigger.csv", _ticks(lambda t: _back(t, 100, 1_000_000)),
                              "column 'tick_us': ticks go backwards at pulse index 100"),
    "datetime offset not the rig's": ("session.toml",
                                      lambda d: _set_toml(d, session_datetime="2026-11-24T10:00:00+05:00"),
                                      "'session_datetime' 2026-11-24T10:00:00+05:00 has UTC offset +05:00 but the "
                                      "rig's timezone 'UTC' is at +00:00"),
    "summer offset in winter": ("session.toml", lambda d: _set_toml(
        d, timezone="Europe/Berlin", session_datetime=dt.datetime(2026, 11, 24, 10, tzinfo=dt.timezone(2 * HOUR))),
        "has UTC offset +02:00 but the rig's timezone 'Europe/Berlin' is at +01:00"),
    "one serial, two cameras": ("session.toml", lambda d: _set_toml(d, camera=1, serial="21000001"),
                                "[[camera]] 'serial': '21000001' is given to cameras 'cam0' and 'cam1'"),
    **{f"subject {ascii(name)}": ("session.toml", lambda d, name=name: _set_toml(d, subject=name),
                                  f"'subject': {name!r} is not a plain name") for name in HOSTILE_SUBJECTS},
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


def test_a_serial_the_database_knows_under_another_name_is_refused(clean_db, sim_session):
    raw = clean_db["raw"]
    data = read_session_folder(sim_session[0])
    raw.Camera.insert1({"camera": "cam_old", "serial": data.cameras[0].serial})
    before = _counts(raw)
    with pytest.raises(ValueError, match=rf"session\.toml: camera '{data.cameras[0].name}' has serial "
                                         rf"'{data.cameras[0].serial}', which the database knows as camera 'cam_old'"):
        raw.insert_session(data)
    assert _counts(raw) == before


def test_genuine_tick_wrap_is_ingested_unwrapped(clean_db, tmp_path):
    raw = clean_db["raw"]
    config = SessionSettings(seconds=2.0, fps=100.0, seed=5, subject="rat_wrap", wrap=True)
    truth = write_session(tmp_path / "wrap", config)
    assert np.sum(np.diff(truth.tick_us.astype(np.int64)) < 0) == 1
    key, _ = raw.insert_session(read_session_folder(tmp_path / "wrap"))
    stored = (raw.TriggerLog & key).fetch1("tick_us")
    np.testing.assert_array_equal(stored, truth.tick_us)
    np.testing.assert_array_equal(unwrap_ticks(stored), truth.pulse_time_s)


@pytest.mark.parametrize("when", [dt.datetime(2026, 11, 24, 10, tzinfo=dt.timezone(5 * HOUR)),
                                  "2026-11-24T10:00:00+05:00"])
def test_datetime_with_the_zones_offset_is_local_time(clean_db, sim_session, tmp_path, when):
    raw = clean_db["raw"]
    folder = _broken_copy(tmp_path, sim_session[0], "karachi")
    _set_toml(folder, timezone="Asia/Karachi", session_datetime=when)
    key, _ = raw.insert_session(read_session_folder(folder))
    assert key["session_datetime"] == dt.datetime(2026, 11, 24, 10, 0)
    assert (raw.Session & key).fetch1("timezone") == "Asia/Karachi"


@pytest.mark.parametrize("name", ["rat_01", "R-7.b", "r" * SUBJECT_MAX_LEN])
def test_plain_subject_is_accepted(clean_db, sim_session, tmp_path, name):
    raw = clean_db["raw"]
    folder = _broken_copy(tmp_path, sim_session[0], "plain")
    _set_toml(folder, subject=name)
    raw.insert_session(read_session_folder(folder))
    assert raw.Subject.to_arrays("subject").tolist() == [name]


def test_subject_limit_is_the_tables(db):
    assert db["raw"].Subject.heading.attributes["subject"].type == f"varchar({SUBJECT_MAX_LEN})"


def _rig_toml(**session):
    doc = tomllib.loads((Path(__file__).resolve().parents[1] / "examples" / "rig.toml").read_text())
    doc["session"].update(session)
    return doc


def test_rig_config_refuses_a_serial_under_two_names_and_hostile_subjects():
    doc = _rig_toml()
    doc["camera"][1]["serial"] = doc["camera"][0]["serial"]
    with pytest.raises(RigConfigError, match=r"^rig\.toml: \[\[camera\]\] 'serial': '21000001' is given to cameras "
                                             r"'cam0' and 'cam1'"):
        rig_config_from_dict(doc, "rig.toml")
    for name in HOSTILE_SUBJECTS:
        with pytest.raises(RigConfigError) as info:
            rig_config_from_dict(_rig_toml(subject=name), "rig.toml")
        assert str(info.value).startswith(f"rig.toml: [session] 'subject': {name!r} is not a plain name")
    assert rig_config_from_dict(_rig_toml(subject="R-7.b"), "rig.toml").session.subject == "R-7.b"


@pytest.fixture
def calibration_folder(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (24, 32), dtype=np.uint8)
    return write_calibration_folder(tmp_path / "calibration", "rig-1", CharucoBoard(5, 4, 4.0, 3.0),
                                    {"cam0": [image, image], "cam1": [image, image]}, date="2026-11-24")


def test_calibration_camera_without_images_is_refused(clean_db, calibration_folder, capsys):
    calib, raw = clean_db["calib"], clean_db["raw"]
    for image in (calibration_folder / "cam1").iterdir():
        image.unlink()
    assert cli(["ingest", str(calibration_folder)]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"{calibration_folder / 'cam1'}: no sync_NNNN or single_NNNN images (camera 'cam1'" in error
    assert len(calib.CalibrationRecording()) == 0 and len(raw.Camera()) == 0


def test_calibration_must_cover_the_rigs_cameras(calibration_folder):
    check_rig_cameras(calibration_folder, "rig-1", ["cam0", "cam1"], ["cam1", "cam0"])
    check_rig_cameras(calibration_folder, "rig-1", ["cam0", "cam1", "cam2"], ["cam0", "cam1"])  # a camera added
    with pytest.raises(CalibrationFolderError) as info:
        check_rig_cameras(calibration_folder, "rig-1", ["cam0", "cam_1"], ["cam0", "cam1"])
    assert str(info.value) == (f"{calibration_folder}: lacks camera(s) ['cam1'] of rig 'rig-1' (its cameras: "
                               "['cam0', 'cam1']; extra here: ['cam_1'])")
