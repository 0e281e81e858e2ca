"""Fuzzing the folder readers: any mutation of a valid folder is either read consistently or refused
with the reader's own error naming a file inside the folder, never any other exception."""
from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratpose._toml import tomllib
from ratpose.calibration import CharucoBoard
from ratpose.ingest.calibration_folder import CalibrationFolderError, read_calibration_folder
from ratpose.ingest.session_folder import SessionFormatError, read_session_folder
from ratpose.sim import SessionSettings, write_session
from ratpose.sim.boards import write_calibration_folder

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SESSION_CSVS = ("trigger.csv", "cam0.frames.csv", "cam1.frames.csv", "knob_events.csv", "knob_angle.csv",
                "units.csv", "spikes.csv")
SESSION_FILES = ("session.toml", *SESSION_CSVS, "cam0.avi", "cam1.avi")
CALIBRATION_FILES = ("calibration.toml", "cam0/sync_0000.png", "cam0/sync_0001.png", "cam1/sync_0000.png",
                     "cam1/sync_0001.png", "cam0/single_0000.png")
BAD_CELLS = ("nan", "NaN", "inf", "-inf", "1e300", "-1e300", "-5", "0", "abc", "", "1.5", "18446744073709551617",
             "touch_on", "touch_off", '"', ",")

RAW_OPERATIONS = ("delete", "empty", "truncate", "bytes")

toml_values = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=12),
                        st.datetimes(), st.dates(), st.lists(st.integers(-5, 5), max_size=3),
                        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


@pytest.fixture(scope="module")
def session_template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz") / "session"
    write_session(folder, SessionSettings(seconds=1.0, fps=30.0, size=(32, 32), seed=5, n_units=2))
    shutil.rmtree(folder / "ground_truth")
    return folder


@pytest.fixture(scope="module")
def calibration_template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz") / "calibration"
    image = np.random.default_rng(0).integers(0, 256, (24, 32), dtype=np.uint8)
    write_calibration_folder(folder, "rig-1", CharucoBoard(5, 4, 4.0, 3.0),
                             {"cam0": [image, image], "cam1": [image, image]}, {"cam0": [image]}, date="2026-11-24")
    return folder


# --- mutations: (relative file, operation, parameters) applied to a fresh copy ---------------------

def _edit_csv_lines(path: Path, edit) -> None:
    lines = path.read_text().splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    header, rows = edit(header, rows)
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")


def _set_cell(value, row, column):
    def edit(header, rows):
        if rows:
            rows[row % len(rows)][column % len(header)] = value
        return header, rows
    return edit


def _rename_column(name, column):
    def edit(header, rows):
        header[column % len(header)] = name
        return header, rows
    return edit


def _permute_rows(seed):
    def edit(header, rows):
        return header, [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))]
    return edit


def _drop_rows(start, count):
    def edit(header, rows):
        return header, rows[:start] + rows[start + count:]
    return edit


def _edit_toml(path: Path, section: int | str | None, key: str, value) -> None:
    """Set (None: remove) a key at the top level, in [[camera]] number ``section`` or in table ``section``."""
    meta = tomllib.loads(path.read_text())
    cameras = meta.get("camera")
    if isinstance(section, str):
        target = meta.get(section)
    elif section is None or not isinstance(cameras, list) or not cameras:
        target = meta
    else:
        target = cameras[section % len(cameras)]
    if not isinstance(target, dict):  # an earlier edit replaced the table
        return
    if value is None:
        target.pop(key, None)
    else:
        target[key] = value
    path.write_text(tomli_w.dumps(meta))


def _apply(folder: Path, mutation) -> None:
    name, operation, args = mutation
    path = folder / name
    if operation == "delete":
        path.unlink()
    elif operation == "empty":
        path.write_bytes(b"")
    elif operation == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[:int(len(data) * args)])
    elif operation == "bytes":
        position, junk = args
        data = path.read_bytes()
        at = int(len(data) * position)
        path.write_bytes(data[:at] + junk + data[at + len(junk):])
    elif operation == "toml":
        _edit_toml(path, *args)
    else:
        _edit_csv_lines(path, {"cell": _set_cell, "rename": _rename_column, "permute": _permute_rows,
                               "drop": _drop_rows}[operation](*args))


def _raw_mutations(files):
    return st.one_of(
        st.tuples(st.sampled_from(files), st.just("delete"), st.none()),
        st.tuples(st.sampled_from(files), st.just("empty"), st.none()),
        st.tuples(st.sampled_from(files), st.just("truncate"), st.floats(0.0, 0.99)),
        st.tuples(st.sampled_from(files), st.just("bytes"),
                  st.tuples(st.floats(0.0, 1.0), st.binary(min_size=1, max_size=16))),
    )


session_toml_keys = st.sampled_from(["format_version", "subject", "session_datetime", "rig", "task", "notes",
                                     "trigger_rate_hz", "camera", "timezone", "subject_info", "extra"])
camera_toml_keys = st.sampled_from(["name", "role", "serial", "model", "pixel_size_um", "lens_mm", "video"])
csv_mutations = st.one_of(
    st.tuples(st.sampled_from(SESSION_CSVS), st.just("cell"),
              st.tuples(st.sampled_from(BAD_CELLS) | st.text(max_size=6), st.integers(0, 500), st.integers(0, 3))),
    st.tuples(st.sampled_from(SESSION_CSVS), st.just("rename"), st.tuples(st.text(max_size=8), st.integers(0, 3))),
    st.tuples(st.sampled_from(SESSION_CSVS), st.just("permute"), st.tuples(st.integers(0, 2**16))),
    st.tuples(st.sampled_from(SESSION_CSVS), st.just("drop"), st.tuples(st.integers(0, 40), st.integers(1, 40))),
)
session_mutations = st.one_of(
    _raw_mutations(SESSION_FILES), csv_mutations,
    st.tuples(st.just("session.toml"), st.just("toml"), st.tuples(st.none(), session_toml_keys, toml_values)),
    st.tuples(st.just("session.toml"), st.just("toml"), st.tuples(st.integers(0, 1), camera_toml_keys, toml_values)),
)
calibration_mutations = st.one_of(
    _raw_mutations(CALIBRATION_FILES),
    st.tuples(st.just("calibration.toml"), st.just("toml"),
              st.tuples(st.none(), st.sampled_from(["format_version", "rig", "date", "board", "cameras"]),
                        toml_values | st.lists(st.sampled_from(["cam0", "cam1", "cam9", "Cam", ""]), max_size=3))),
    st.tuples(st.just("calibration.toml"), st.just("toml"),
              st.tuples(st.just("board"), st.sampled_from(["type", "squares_x", "squares_y", "square_mm", "marker_mm",
                                                            "dictionary", "legacy", "extra"]),
                        toml_values | st.sampled_from(["checkerboard", "DICT_9X9_1", 0, -3, 1, 2, 1e9]))),
)


def _mutated_copy(template: Path, mutations, tmp: str) -> Path:
    folder = Path(tmp) / template.name
    shutil.copytree(template, folder)
    # structured edits first: they need a parseable file, byte-level damage comes after
    for mutation in sorted(mutations, key=lambda m: m[1] in RAW_OPERATIONS):
        if (folder / mutation[0]).exists():
            _apply(folder, mutation)
    return folder.resolve()


def _check_session(data) -> None:
    """A session that was read must hold consistent arrays."""
    assert data.cameras
    for cam in data.cameras:
        assert cam.n_frames == len(cam.frame_id) == len(cam.camera_ts_ns) > 0
        assert np.all(np.diff(cam.frame_id) > 0) and np.all(np.diff(cam.camera_ts_ns) > 0)
        assert cam.exposure_us is None or (len(cam.exposure_us) == cam.n_frames and np.isfinite(cam.exposure_us).all())
        assert cam.n_frames <= data.tick_us.size
    assert data.tick_us.dtype == np.uint32 and data.tick_us.size > 0
    assert data.trigger_rate_hz > 0 and isinstance(data.session_datetime, dt.datetime)
    assert data.touch_on_s.size - data.touch_off_s.size in (0, 1)
    assert np.all(data.touch_off_s >= data.touch_on_s[:data.touch_off_s.size])
    assert len(data.angle_time_s) == len(data.angle_deg) and np.all(np.diff(data.angle_time_s) > 0)
    assert set(data.spike_times) == set(data.units["unit_id"].tolist())
    assert all(np.isfinite(t).all() for t in data.spike_times.values())


def _check_calibration(material) -> None:
    """A calibration folder that was read must hold greyscale images for every listed camera."""
    assert material.camera_names and set(material.frames) == set(material.camera_names)
    for name in material.camera_names:
        assert all(f is None or (f.dtype == np.uint8 and f.ndim == 2) for f in material.frames[name])
        assert all(f.dtype == np.uint8 and f.ndim == 2 for f in material.intrinsics_frames[name])


def _read_or_refuse(template: Path, mutations, reader, error, named_file, check) -> None:
    """Read a mutated copy: either check() its result, or the reader's own error names a file in it."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = _mutated_copy(template, mutations, tmp)
        try:
            result = reader(folder)
        except error as err:
            named = named_file(err)
            assert named == folder or folder in named.parents, str(err)
            return
        check(result)


@FUZZ
@given(mutations=st.lists(session_mutations, min_size=1, max_size=3))
def test_mutated_session_folder_is_read_consistently_or_refused_naming_a_file(session_template, mutations):
    _read_or_refuse(session_template, mutations, read_session_folder, SessionFormatError,
                    lambda err: err.path.resolve(), _check_session)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(calibration_mutations, min_size=1, max_size=3))
def test_mutated_calibration_folder_is_read_or_refused_naming_a_file(calibration_template, mutations):
    _read_or_refuse(calibration_template, mutations, read_calibration_folder, CalibrationFolderError,
                    lambda err: Path(str(err).split(": ", 1)[0]), _check_calibration)


def test_an_unmutated_copy_reads_back(session_template, calibration_template):
    """The templates are valid, so every refusal above comes from a mutation."""
    with tempfile.TemporaryDirectory() as tmp:
        _check_session(read_session_folder(_mutated_copy(session_template, [], tmp)))
        assert read_calibration_folder(_mutated_copy(calibration_template, [], tmp)).camera_names == ["cam0", "cam1"]
