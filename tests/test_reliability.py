"""Reliability catalogue: hostile-but-realistic inputs to `ratpose ingest` / calibration registration /
DLC loading, each refused with exit 1 and one line naming the file or field, adding no row anywhere;
a valid ingest still works afterwards; populate reclaims dead reservations."""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import ops_helpers
import pandas as pd
import pymysql
import pytest
import tomli_w
from conftest import wipe
from ops_helpers import Item, slow_table  # noqa: F401 (fixture)

from ratpose._toml import tomllib
from ratpose.cli import main as cli
from ratpose.sim import SessionSettings, write_session


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reliability") / "session"
    write_session(folder, SessionSettings(seconds=1.0, fps=30.0, size=(32, 32), seed=5, n_units=2, subject="rat_rel"))
    shutil.rmtree(folder / "ground_truth")
    return folder


def _edit_toml(name, changes, locate):
    """A mutation setting (or, for None, deleting) fields of a folder's TOML; ``locate(meta, key)`` ->
    (table, field)."""
    def mutate(folder: Path):
        meta = tomllib.loads((folder / name).read_text())
        for key, value in changes.items():
            target, field = locate(meta, key)
            if value is None:
                del target[field]
            else:
                target[field] = value
        (folder / name).write_text(tomli_w.dumps(meta))
    return mutate


def _toml(**changes):
    return _edit_toml("session.toml", changes,
                      lambda meta, key: (meta["camera"][0], key[5:]) if key.startswith("cam0_") else (meta, key))


def _csv(name, edit):
    def mutate(folder: Path):
        table = pd.read_csv(folder / name)
        table = edit(table)
        table.to_csv(folder / name, index=False)
    return mutate


def _cell(name, column, value, row=0):
    def edit(table):
        table[column] = table[column].astype(object)
        table.loc[row, column] = value
        return table
    return _csv(name, edit)


def _shift(name, column, by):
    def edit(table):
        table[column] = table[column] + by
        return table
    return _csv(name, edit)


LONG = "x" * 3000
# (case id, mutation, text the error line must contain)
CASES = [
    ("empty-subject", _toml(subject=""), "subject"),
    ("blank-subject", _toml(subject="   "), "subject"),
    ("empty-rig", _toml(rig=""), "rig"),
    ("subject-33", _toml(subject="s" * 33), "subject"),
    ("subject-long", _toml(subject=LONG), "subject"),
    ("rig-65", _toml(rig="r" * 65), "rig"),
    ("task-65", _toml(task="t" * 65), "task"),
    ("notes-2049", _toml(notes="n" * 2049), "notes"),
    ("serial-33", _toml(cam0_serial="9" * 33), "serial"),
    ("serial-int-long", _toml(cam0_serial=10**40), "serial"),
    ("model-65", _toml(cam0_model="m" * 65), "model"),
    ("camera-name-long", _toml(cam0_name="c" * 40), "camera name"),
    ("camera-name-bad", _toml(cam0_name="Cam 0"), "camera name"),
    ("role-bad", _toml(cam0_role="main"), "role"),
    ("video-outside", _toml(cam0_video="../cam0.avi"), "outside the session folder"),
    ("video-absolute", _toml(cam0_video="/tmp/elsewhere.avi"), "outside the session folder"),
    ("video-missing", _toml(cam0_video="nope.avi"), "nope.avi"),
    ("video-suffix", _toml(cam0_video="cam0.frames.csv"), "video must be"),
    ("date-2099", _toml(session_datetime="2099-01-01T10:00:00"), "future"),
    ("date-impossible", _toml(session_datetime="2026-02-30T10:00:00"), "session_datetime"),
    ("date-garbage", _toml(session_datetime="yesterday"), "session_datetime"),
    ("date-number", _toml(session_datetime=5), "session_datetime"),
    ("subject-missing", _toml(subject=None), "subject"),
    ("rate-negative", _toml(trigger_rate_hz=-30.0), "trigger_rate_hz"),
    ("rate-zero", _toml(trigger_rate_hz=0), "trigger_rate_hz"),
    ("rate-inf", _toml(trigger_rate_hz=float("inf")), "trigger_rate_hz"),
    ("rate-text", _toml(trigger_rate_hz="fast"), "trigger_rate_hz"),
    ("format-2", _toml(format_version=2), "format_version"),
    ("pixel-nan", _toml(cam0_pixel_size_um=float("nan")), "pixel_size_um"),
    ("no-cameras", _toml(camera=[]), "camera"),
    ("unit-id-2^31", _cell("units.csv", "unit_id", 2**31), "unit_id"),
    ("unit-id-neg", _cell("units.csv", "unit_id", -(2**31) - 1), "unit_id"),
    ("unit-id-2^63", _cell("units.csv", "unit_id", 2**63), "unit_id"),
    ("tetrode-40000", _cell("units.csv", "tetrode", 40000), "tetrode"),
    ("tetrode-neg", _cell("units.csv", "tetrode", -40000), "tetrode"),
    ("tetrode-float", _cell("units.csv", "tetrode", 1.5), "tetrode"),
    ("unit-repeat", _cell("units.csv", "unit_id", 2), "unit_id"),
    ("spike-unknown-unit", _cell("spikes.csv", "unit_id", 99), "unit_id"),
    ("spike-nan", _cell("spikes.csv", "time_s", "nan"), "time_s"),
    ("spikes-before-start", _shift("spikes.csv", "time_s", -1000.0), "spikes.csv"),
    ("spike-far-after", _cell("spikes.csv", "time_s", 1e6), "spikes.csv"),
    ("spikes-ms", _csv("spikes.csv", lambda t: t.assign(time_s=t.time_s * 1000)), "spikes.csv"),
    ("knob-after-end", _shift("knob_events.csv", "time_s", 5000.0), "knob_events.csv"),
    ("knob-before-start", _shift("knob_events.csv", "time_s", -630.0), "knob_events.csv"),
    ("knob-bad-event", _cell("knob_events.csv", "event", "touch"), "event"),
    ("knob-inf", _cell("knob_events.csv", "time_s", "inf"), "time_s"),
    ("angle-after-end", _shift("knob_angle.csv", "time_s", 9000.0), "knob_angle.csv"),
    ("angle-text", _cell("knob_angle.csv", "angle_deg", "abc"), "angle_deg"),
    ("tick-negative", _cell("trigger.csv", "tick_us", -5), "tick_us"),
    ("tick-2^32", _cell("trigger.csv", "tick_us", 2**32), "tick_us"),
    ("trigger-short", _csv("trigger.csv", lambda t: t.iloc[:5]), "trigger.csv"),
    ("frames-missing-row", _csv("cam0.frames.csv", lambda t: t.iloc[:-1]), "cam0"),
    ("frame-id-repeat", _cell("cam0.frames.csv", "frame_id", 23), "frame_id"),
    ("camera-ts-text", _cell("cam0.frames.csv", "camera_ts_ns", "x"), "camera_ts_ns"),
    ("no-units-file", lambda f: (f / "units.csv").unlink(), "units.csv"),
    ("no-trigger", lambda f: (f / "trigger.csv").unlink(), "trigger.csv"),
    ("no-toml", lambda f: (f / "session.toml").unlink(), "session.toml"),
    ("toml-garbage", lambda f: (f / "session.toml").write_text("subject = [unclosed"), "session.toml"),
    ("video-truncated", lambda f: (f / "cam0.avi").write_bytes((f / "cam0.avi").read_bytes()[:3000]), "cam0.avi"),
    ("video-empty", lambda f: (f / "cam0.avi").write_bytes(b""), "cam0.avi"),
]
PERMISSION_CASES = ["session.toml", "trigger.csv", "cam0.frames.csv", "knob_events.csv", "units.csv",
                    "spikes.csv", "cam0.avi", "."]


def _row_counts(modules) -> dict[str, int]:
    """Total rows per schema, one query each."""
    counts = {}
    for stage, module in modules.items():
        tables = [t for t in module.schema.list_tables()]
        sql = " + ".join(f"(SELECT COUNT(*) FROM `{module.schema.database}`.`{t}`)" for t in tables)
        counts[stage] = module.schema.connection.query(f"SELECT {sql}").fetchone()[0]
    return counts


def _refused(db, folder: Path, capsys, expected: str) -> None:
    before = _row_counts(db)
    code = cli(["ingest", str(folder)])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert expected in err, err
    assert _row_counts(db) == before


@pytest.fixture(scope="module")
def baseline(db, template, tmp_path_factory):
    """An existing session, so re-ingest cases can edit it."""
    wipe(db)
    assert cli(["ingest", str(template)]) == 0
    return template


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_session_folder_is_refused(db, template, tmp_path, capsys, case):
    _, mutate, expected = case
    folder = tmp_path / "session"
    shutil.copytree(template, folder)
    mutate(folder)
    _refused(db, folder, capsys, expected)


@contextlib.contextmanager
def _as_nobody():
    """Act as an unprivileged user (root reads everything), if this process may switch."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.mark.parametrize("name", PERMISSION_CASES)
def test_unreadable_file_names_permission(db, template, capsys, name, tmp_path_factory):
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"ratpose-rel-{os.getpid()}"
    folder = root / "session"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(template, folder)
    _unreadable_is_refused(db, capsys, root, folder, name)


def _unreadable_is_refused(db, capsys, root: Path, folder: Path, name: str):
    """With ``folder / name`` unreadable (the rest world-readable), ingest as nobody names the permission."""
    for path in (root, *folder.rglob("*"), folder):
        path.chmod(0o755 if path.is_dir() else 0o644)
    (folder / name).chmod(0)
    try:
        with _as_nobody():
            _refused(db, folder, capsys, "permission denied")
    finally:
        (folder / name).chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def _edited(template: Path, tmp_path: Path, edit) -> Path:
    """The template edited in place (same folder path as ingested); returns the backup to restore from."""
    backup = tmp_path / "backup"
    shutil.copytree(template, backup)
    edit(template)
    return backup


@pytest.mark.parametrize("edit,changed", [
    (_toml(notes="edited after ingest"), "session.toml changed"),
    (_shift("knob_angle.csv", "angle_deg", 1.0), "knob_angle.csv changed"),
    (lambda f: (f / "spikes.csv").write_text("unit_id,time_s\n1,631.0\n"), "spikes.csv changed"),
    (lambda f: (f / "units.csv").unlink() or (f / "spikes.csv").unlink(), "units.csv removed"),
    (_toml(cam0_serial="21000099"), "session.toml changed"),
])
def test_folder_edited_after_ingest_is_refused(db, baseline, tmp_path, capsys, edit, changed):
    backup = _edited(baseline, tmp_path, edit)
    try:
        _refused(db, baseline, capsys, changed)
    finally:
        shutil.rmtree(baseline)
        shutil.copytree(backup, baseline)
    assert cli(["ingest", str(baseline)]) == 0
    assert "already ingested" in capsys.readouterr().out


def test_changed_folder_message_names_replace_command(db, baseline, tmp_path, capsys):
    backup = _edited(baseline, tmp_path, _toml(notes="changed"))
    try:
        assert cli(["ingest", str(baseline)]) == 1
        err = capsys.readouterr().err
        assert "ratpose delete --subject rat_rel --datetime" in err and "ratpose ingest" in err
    finally:
        shutil.rmtree(baseline)
        shutil.copytree(backup, baseline)


def test_swapped_camera_is_refused(db, baseline, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(baseline, other)
    _toml(session_datetime="2026-11-25T10:00:00", cam0_model="Other model X")(other)
    _refused(db, other, capsys, "model")
    _toml(cam0_model="Blackfly S BFS-U3-16S2M", cam0_serial="99999999")(other)
    _refused(db, other, capsys, "serial")


def test_unwritable_store_is_one_line(db, template, tmp_path, capsys, monkeypatch):
    import datajoint as dj

    wipe(db)
    blocker = tmp_path / "store-is-a-file"
    blocker.write_text("")
    spec = dict(dj.config.stores["ratpose"])
    monkeypatch.setitem(dj.config.stores, "ratpose", {**spec, "location": str(blocker / "sub")})
    before = _row_counts(db)
    assert cli(["ingest", str(template)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "store" in err.lower(), err
    assert _row_counts(db) == before


def test_valid_ingest_works_after_the_catalogue(db, template, capsys):
    wipe(db)
    assert cli(["ingest", str(template)]) == 0
    raw = db["raw"]
    assert len(raw.Session()) == 1 and len(raw.Recording()) == 2
    row = (raw.Recording & {"camera": "cam0"}).to_dicts()[0]
    assert row["serial"] == "21000001" and row["model"] == "Blackfly S BFS-U3-16S2M"
    assert Path(raw.video_path({k: row[k] for k in ("subject", "session_datetime", "camera")})).is_file()


@pytest.fixture
def ingested(db, template):
    """The template as the only session, whatever earlier tests left."""
    wipe(db)
    assert cli(["ingest", str(template)]) == 0
    return template


def test_populate_reclaims_reservation_of_dead_connection(db, ingested):
    """A key reserved by a killed process (its connection gone) is computed by a plain populate."""
    from ratpose.schema.recovery import pipeline_tables, reclaim

    tables = pipeline_tables([])
    name, table = next((n, t) for n, t in tables.items() if t.key_source - t.proj())
    table.jobs.refresh()
    key = table.jobs.pending.keys()[0]
    assert table.jobs.reserve(key)
    where = " AND ".join(f"`{k}`=%s" for k in key)
    table.connection.query(f"UPDATE {table.jobs.full_table_name} SET status='reserved', connection_id=999999999 "
                           f"WHERE {where}", args=tuple(key.values()))
    assert len(table.jobs.reserved) == 1
    assert cli(["populate", name]) == 0
    assert len(table.jobs.reserved) == 0 and table & key
    assert reclaim({name: table}) == 0


@pytest.fixture
def populate_cli(slow_table, monkeypatch):
    """`ratpose populate` over the test tables (ops_helpers: Slow fails on items marked ``fail``)."""
    from ratpose.cli import jobs

    monkeypatch.setattr(jobs, "pipeline_tables", ops_helpers.test_tables)
    return lambda *args: cli(["populate", *args, "Slow"])


def test_populate_prints_a_data_error_once_with_what_replaces_the_input(populate_cli, capsys, caplog):
    Item.insert([{"item": 1, "fail": 0}, {"item": 2, "fail": 1}])
    with caplog.at_level(logging.INFO, logger="datajoint"):
        assert populate_cli() == 1
    lines = capsys.readouterr().out.splitlines()
    error = "ERROR Slow item=2: ValueError: item 2 is marked to fail"
    assert [line for line in lines if "marked to fail" in line] == [error]
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]  # DataJoint's line of it
    hint = lines[lines.index(error) + 1]
    assert hint == "    fix the cause (bad input: replace it), then `ratpose jobs retry Slow`, `ratpose populate Slow`"

    assert populate_cli("--direct") == 1  # no jobs table: populate itself tries the key again
    out = capsys.readouterr().out
    assert out.count(error) == 1, out
    assert f"{error}\n    fix the cause (bad input: replace it), then `ratpose populate --direct Slow`\n" in out


def test_populate_suggests_retrying_only_a_passing_failure(populate_cli, capsys, monkeypatch):
    """A make() that keeps hitting a lock wait timeout (1205) is tried 1 + TRANSIENT_RETRIES times, then
    reported once with the retry."""
    from ratpose.schema.recovery import TRANSIENT_RETRIES

    calls = []

    def lock_wait():
        calls.append(1)
        raise pymysql.err.OperationalError(1205, "Lock wait timeout exceeded; try restarting transaction")

    monkeypatch.setattr(ops_helpers, "BEFORE_PARTS", [lock_wait])
    Item.insert1({"item": 3, "fail": 0})
    assert populate_cli() == 1
    out = capsys.readouterr().out
    assert len(calls) == 1 + TRANSIENT_RETRIES and out.count("Lock wait timeout") == 1, out
    assert ("ERROR Slow item=3: OperationalError: (1205, 'Lock wait timeout exceeded; try restarting transaction')\n"
            "    a passing failure (connection, lock or killed query) that outlasted the retries: retry with "
            "`ratpose jobs retry Slow`, `ratpose populate Slow`\n") in out


def test_every_pipeline_table_names_what_replaces_its_input(db):
    from ratpose.schema import computed_tables
    from ratpose.schema.jobs import REPLACED_BY, error_report

    assert set(REPLACED_BY) == set(computed_tables(db))
    data = error_report("UnitTuning", "unit_id=1", "ValueError: knob log has 2 touch_on but 1 touch_off events")
    assert "`ratpose delete --subject S --datetime D`, `ratpose ingest FOLDER`" in data and "passing" not in data
    lost = error_report("UnitTuning", "unit_id=1", "LostConnectionError: Server connection lost")
    assert "passing failure" in lost and "ratpose delete" not in lost


def test_bad_dlc_likelihood_is_refused(tmp_path):
    from ratpose.pose2d.dlc import DLCError, load_dlc_h5

    columns = pd.MultiIndex.from_product([["scorer"], ["nose"], ["x", "y", "likelihood"]],
                                         names=["scorer", "bodyparts", "coords"])
    for value in (1.5, -0.1, np.inf):
        path = tmp_path / f"out{value}.h5"
        pd.DataFrame([[1.0, 2.0, 0.5], [1.0, 2.0, value]], columns=columns).to_hdf(path, key="df")
        with pytest.raises(DLCError, match="likelihood .* 'nose' at frame 1"):
            load_dlc_h5(path)


@pytest.mark.parametrize("command,settings,names", [
    (["status"], {"DJ_HOST": "127.0.0.1", "DJ_PORT": "1"}, ["127.0.0.1:1", "start the server", "DJ_HOST"]),
    (["populate"], {"DJ_PASS": secrets.token_hex(8)}, ["Access denied", "DJ_USER and DJ_PASS"]),
], ids=["closed-port", "wrong-password"])
def test_database_unreachable_is_one_line(tmp_path, command, settings, names):
    """A real `ratpose` process against a closed port or with a wrong password: one line, exit 1."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "RATPOSE_STORE": str(tmp_path),
           "DJ_USER": os.environ["DJ_USER"], **settings}
    done = subprocess.run([sys.executable, "-m", "ratpose.cli", *command], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    err = done.stderr.strip()
    assert done.returncode == 1, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and err.startswith("ERROR cannot connect"), err
    for name in names:
        assert name in err, err


# ---------------------------------------------------------------------------------------------
# calibration folders (docs/calibration-format.md)

@pytest.fixture(scope="module")
def calibration_template(tmp_path_factory):
    """A small calibration folder: 2 cameras, 3 sync views and 1 single view each (48x40, never detected)."""
    from ratpose.calibration.boards import CharucoBoard
    from ratpose.sim.boards import write_calibration_folder

    rng = np.random.default_rng(3)
    views = {cam: [rng.integers(0, 255, (40, 48), dtype=np.uint8) for _ in range(3)] for cam in ("cam0", "cam1")}
    singles = {cam: [rng.integers(0, 255, (40, 48), dtype=np.uint8)] for cam in ("cam0", "cam1")}
    return write_calibration_folder(tmp_path_factory.mktemp("reliability") / "calibration", "rel-rig",
                                    CharucoBoard(5, 4, 4.0, 3.0), views, singles, date="2026-11-20")


def _calib_toml(**changes):
    return _edit_toml("calibration.toml", changes,
                      lambda meta, key: (meta["board"], key[6:]) if key.startswith("board_") else (meta, key))


def _image(name, write):
    return lambda folder: write(folder / name)


def _png(shape):
    return lambda path: cv2.imwrite(str(path), np.zeros(shape, np.uint8))


def _link(name, target):
    """Replace ``name`` in the folder by a symlink to ``target`` (made outside the folder, from the original)."""
    def mutate(folder: Path):
        outside = folder.parent / f"outside-{target}"
        shutil.move(folder / name, outside)
        (folder / name).symlink_to(outside if target == "absolute"
                                   else os.path.relpath(outside, (folder / name).parent))
    return mutate


CHECKERBOARD = {"type": "checkerboard", "cols": 9, "rows": 6, "square_mm": 30.0}
CALIBRATION_CASES = [
    ("calibration-toml-garbage", lambda f: (f / "calibration.toml").write_text("rig = ["), "calibration.toml"),
    ("calibration-toml-binary", lambda f: (f / "calibration.toml").write_bytes(b"\xff\xfe\x00"), "calibration.toml"),
    ("rig-missing", _calib_toml(rig=None), "rig"),
    ("rig-empty", _calib_toml(rig=""), "rig"),
    ("rig-blank", _calib_toml(rig="   "), "rig"),
    ("rig-number", _calib_toml(rig=7), "rig"),
    ("rig-long", _calib_toml(rig="r" * 3000), "rig"),
    ("date-missing", _calib_toml(date=None), "date"),
    ("date-impossible", _calib_toml(date="2026-02-30"), "date"),
    ("date-garbage", _calib_toml(date="last week"), "date"),
    ("date-number", _calib_toml(date=20261120), "date"),
    ("date-future", _calib_toml(date="2099-01-01"), "future"),
    ("format-2", _calib_toml(format_version=2), "format_version"),
    ("board-missing", _calib_toml(board=None), "board"),
    ("board-not-table", _calib_toml(board="charuco"), "board"),
    ("board-no-type", _calib_toml(board_type=None), "type"),
    ("board-type-unknown", _calib_toml(board_type="circles"), "circles"),
    ("board-unknown-field", _calib_toml(board_colour="white"), "colour"),
    ("board-misspelt-field", _calib_toml(board_square_size=4.0, board_square_mm=None), "square_size"),
    ("board-missing-field", _calib_toml(board_marker_mm=None), "marker_mm"),
    ("board-squares-text", _calib_toml(board_squares_x="5"), "squares_x"),
    ("board-squares-float", _calib_toml(board_squares_x=5.5), "squares_x"),
    ("board-squares-bool", _calib_toml(board_squares_x=True), "squares_x"),
    ("board-squares-1", _calib_toml(board_squares_y=1), "squares_y"),
    ("board-squares-huge", _calib_toml(board_squares_x=10**9), "squares_x"),
    ("board-squares-negative", _calib_toml(board_squares_x=-5), "squares_x"),
    ("board-square-zero", _calib_toml(board_square_mm=0.0), "square_mm"),
    ("board-square-negative", _calib_toml(board_square_mm=-4.0), "square_mm"),
    ("board-square-nan", _calib_toml(board_square_mm=float("nan")), "square_mm"),
    ("board-square-inf", _calib_toml(board_square_mm=float("inf")), "square_mm"),
    ("board-square-km", _calib_toml(board_square_mm=4e6), "square_mm"),
    ("board-marker-larger", _calib_toml(board_marker_mm=5.0), "marker_mm"),
    ("board-dictionary-unknown", _calib_toml(board_dictionary="DICT_9X9_7"), "DICT_9X9_7"),
    ("board-dictionary-small", _calib_toml(board_squares_x=12, board_squares_y=12), "DICT_4X4_50"),
    ("board-legacy-text", _calib_toml(board_legacy="yes"), "legacy"),
    ("checkerboard-square", _calib_toml(board={**CHECKERBOARD, "rows": 9}), "ambiguous"),
    ("checkerboard-charuco-field", _calib_toml(board={**CHECKERBOARD, "marker_mm": 3.0}), "marker_mm"),
    ("cameras-not-list", _calib_toml(cameras="cam0"), "cameras"),
    ("cameras-empty", _calib_toml(cameras=[]), "camera"),
    ("cameras-bad-name", _calib_toml(cameras=["Cam 0"]), "camera name"),
    ("cameras-dotdot", _calib_toml(cameras=["cam0", "../cam1"]), "camera name"),
    ("cameras-number", _calib_toml(cameras=[0]), "camera name"),
    ("cameras-unknown-folder", _calib_toml(cameras=["cam0", "cam2"]), "cam2"),
    ("camera-name-long", lambda f: (f / "cam1").rename(f / ("c" * 40)), "camera"),
    ("no-camera-folders", lambda f: [shutil.rmtree(f / c) for c in ("cam0", "cam1")], "no camera folders"),
    ("no-images", lambda f: [p.unlink() for p in f.glob("cam*/*.png")], "no sync_NNNN"),
    ("image-bad-name", _image("cam0/sync_abc.png", _png((40, 48))), "sync_abc.png"),
    ("image-index-repeat", _image("cam0/sync_1.png", _png((40, 48))), "sync_1.png"),
    ("image-truncated", _image("cam0/sync_0001.png", lambda p: p.write_bytes(p.read_bytes()[:60])), "sync_0001.png"),
    ("image-empty", _image("cam1/sync_0002.png", lambda p: p.write_bytes(b"")), "sync_0002.png"),
    ("image-text", _image("cam1/single_0000.png", lambda p: p.write_text("not an image")), "single_0000.png"),
    ("image-size-sync", _image("cam0/sync_0002.png", _png((80, 96))), "same size"),
    ("image-size-single", _image("cam1/single_0000.png", _png((41, 48))), "single_0000.png"),
    ("image-link-outside", _link("cam0/sync_0001.png", "relative"), "outside the calibration folder"),
    ("image-link-absolute", _link("cam1/single_0000.png", "absolute"), "outside the calibration folder"),
    ("camera-link-outside", _link("cam1", "absolute"), "outside the calibration folder"),
    ("toml-link-outside", _link("calibration.toml", "relative"), "outside the calibration folder"),
    ("image-link-dangling", lambda f: (f / "cam0" / "sync_0005.png").symlink_to("/nonexistent/x.png"),
     "sync_0005.png"),
]
CALIBRATION_PERMISSION_CASES = ["calibration.toml", "cam0", "cam0/sync_0000.png", "cam1/single_0000.png"]


def _calibration_copy(template: Path, root: Path) -> Path:
    folder = root / "calibration"
    shutil.copytree(template, folder)
    return folder


@pytest.mark.parametrize("case", CALIBRATION_CASES, ids=[c[0] for c in CALIBRATION_CASES])
def test_bad_calibration_folder_is_refused(db, calibration_template, tmp_path, capsys, case):
    _, mutate, expected = case
    folder = _calibration_copy(calibration_template, tmp_path)
    mutate(folder)
    _refused(db, folder, capsys, expected)


@pytest.mark.parametrize("name", CALIBRATION_PERMISSION_CASES)
def test_unreadable_calibration_file_names_permission(db, calibration_template, capsys, name):
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"ratpose-rel-calib-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    _unreadable_is_refused(db, capsys, root, _calibration_copy(calibration_template, root), name)


@pytest.fixture
def registered_calibration(db, calibration_template, tmp_path, capsys):
    """The template registered from a copy (so it can be edited in place)."""
    wipe(db)
    folder = _calibration_copy(calibration_template, tmp_path)
    assert cli(["ingest", str(folder)]) == 0
    capsys.readouterr()
    return folder


@pytest.mark.parametrize("edit,changed", [
    (_calib_toml(board_square_mm=4.1), "calibration.toml changed"),
    (_image("cam0/sync_0001.png", _png((40, 48))), "cam0/sync_0001.png changed"),
    (lambda f: (f / "cam1" / "sync_0002.png").unlink(), "cam1/sync_0002.png removed"),
    (_image("cam1/single_0001.png", _png((40, 48))), "cam1/single_0001.png added"),
], ids=["toml", "image-changed", "image-removed", "image-added"])
def test_calibration_edited_after_ingest_is_refused(db, registered_calibration, capsys, edit, changed):
    edit(registered_calibration)
    _refused(db, registered_calibration, capsys, changed)
    assert cli(["ingest", str(registered_calibration)]) == 1
    err = capsys.readouterr().err
    assert "ratpose delete --rig rel-rig --calibration-date 2026-11-20T00:00:00" in err, err
    assert f"ratpose ingest {registered_calibration.resolve()}" in err, err


def test_same_rig_and_date_from_another_folder_is_refused(db, registered_calibration, calibration_template,
                                                          tmp_path, capsys):
    other = _calibration_copy(calibration_template, tmp_path / "other")
    _image("cam0/sync_0000.png", _png((40, 48)))(other)
    _refused(db, other, capsys, "already has a calibration dated 2026-11-20")
    same = _calibration_copy(calibration_template, tmp_path / "same")  # same content elsewhere: nothing new
    assert cli(["ingest", str(same)]) == 0 and "already ingested" in capsys.readouterr().out


def test_replace_command_replaces_the_calibration(db, registered_calibration, capsys):
    _calib_toml(board_square_mm=4.1)(registered_calibration)
    calib = db["calib"]
    assert cli(["delete", "--rig", "rel-rig", "--calibration-date", "2026-11-20", "--yes"]) == 0
    assert len(calib.CalibrationRecording()) == 0
    assert cli(["ingest", str(registered_calibration)]) == 0
    assert calib.board_of({"rig": "rel-rig", "calibration_date": "2026-11-20"}).square_mm == 4.1


def test_valid_calibration_ingest_works_after_the_catalogue(db, calibration_template, capsys):
    wipe(db)
    assert cli(["ingest", str(calibration_template)]) == 0
    calib = db["calib"]
    row = calib.CalibrationRecording.to_dicts()[0]
    assert (row["rig"], row["camera_names"], len(row["checksums"])) == ("rel-rig", ["cam0", "cam1"], 9)
    assert cli(["ingest", str(calibration_template)]) == 0 and "already ingested" in capsys.readouterr().out
