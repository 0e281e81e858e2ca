"""`ratpose calibrate` (folder and --import-anipose) and `ratpose board`, run as subprocesses."""
from __future__ import annotations

import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ratpose.calibration import LENS_MODELS, CharucoBoard, detect_board
from ratpose.cli import main as cli
from ratpose.ingest.session_folder import read_session_folder
from ratpose.sim import SessionSettings, default_rig, write_session
from ratpose.sim.boards import simulate_calibration_views, write_calibration_folder

BOARD = CharucoBoard(9, 7, 4.0, 3.0, "DICT_4X4_50")


def ratpose(*args, ok=True):
    done = subprocess.run([sys.executable, "-W", "ignore", "-m", "ratpose.cli", *map(str, args)],
                          capture_output=True, text=True)
    assert (done.returncode == 0) == ok, (done.returncode, done.stdout, done.stderr)
    return done


@pytest.fixture(scope="module")
def views():
    return simulate_calibration_views(default_rig(), BOARD, 8, 12, seed=4, image_size=(640, 512))


def test_calibrate_a_folder_twice_prints_quality_then_drift(clean_db, views, tmp_path):
    frames, singles = views
    for date in ("2026-11-20", "2026-11-22"):
        write_calibration_folder(tmp_path / date, "rig-cli", BOARD, frames, singles, date=date)
    first = ratpose("calibrate", tmp_path / "2026-11-20").stdout
    assert re.search(r"calibration of rig 'rig-cli' on 2026-11-20 00:00: RMS 0\.\d+ px, 8 joint instants", first)
    assert "drift: first calibration of this rig" in first
    rows = {line.split()[0]: line.split() for line in first.splitlines() if re.match(r"cam\d ", line)}
    assert set(rows) == {"cam0", "cam1"}
    for camera, (_, model, rms, _, heldout, opencv, *drift) in rows.items():
        assert model in LENS_MODELS and float(rms) < 0.5
        assert float(heldout) <= float(opencv) and drift == ["-", "-", "-"]
    second = ratpose("calibrate", tmp_path / "2026-11-22").stdout  # same views: the rig did not move
    assert "drift: since the calibration of 2026-11-20 00:00" in second
    for line in second.splitlines():
        if re.match(r"cam\d ", line):
            assert [abs(float(v)) for v in line.split()[-3:]] == [0.0, 0.0, 0.0], line
    assert len(clean_db["calib"].Calibration()) == 2


def test_calibrate_bad_folder_or_no_board_fails_in_one_line_and_inserts_nothing(clean_db, tmp_path):
    failed = ratpose("calibrate", tmp_path / "missing", ok=False)
    assert len(failed.stderr.strip().splitlines()) == 1
    assert f"{tmp_path / 'missing'}: not a folder" in failed.stderr
    noise = np.random.default_rng(0).integers(0, 256, (48, 64), dtype=np.uint8)
    write_calibration_folder(tmp_path / "noise", "rig-cli", BOARD, {"cam0": [noise] * 6, "cam1": [noise] * 6}, {},
                             date="2026-11-20")
    failed = ratpose("calibrate", tmp_path / "noise", ok=False)
    assert len(failed.stderr.strip().splitlines()) == 1 and "no board found in camera 'cam0'" in failed.stderr
    calib = clean_db["calib"]
    assert len(calib.CalibrationRecording()) == 0 and len(calib.Calibration()) == 0


def test_calibrate_import_anipose(clean_db, tmp_path):
    from aniposelib.cameras import Camera, CameraGroup

    CameraGroup([Camera(name=c.name, size=list(c.size), matrix=c.K, dist=c.dist, rvec=c.rvec, tvec=c.t)
                 for c in default_rig()]).dump(str(tmp_path / "calibration.toml"))
    out = ratpose("calibrate", "--import-anipose", tmp_path / "calibration.toml", "--rig", "rig-a",
                  "--date", "2026-11-21T09:30").stdout
    assert (f"calibration of rig 'rig-a' on 2026-11-21 09:30: imported from anipose "
            f"({tmp_path / 'calibration.toml'})") in out
    assert re.search(r"cam1\s+imported\s+-\s+-\s+-\s+-\s+-", out)
    rows = (clean_db["calib"].Calibration.Camera).to_dicts(order_by="camera_order")
    np.testing.assert_allclose(rows[1]["translation"], default_rig()[1].t)
    failed = ratpose("calibrate", "--import-anipose", tmp_path / "calibration.toml", "--rig", "rig-a", ok=False)
    assert len(failed.stderr.strip().splitlines()) == 1 and "needs --rig and --date" in failed.stderr


def test_board_command_writes_a_true_scale_sheet(tmp_path):
    out = ratpose("board", "--out", tmp_path / "board.png", "--squares", "5", "6", "--square-mm", "30",
                  "--marker-mm", "22", "--legacy", "--dpi", "100").stdout
    assert "ChArUco 5 x 6 squares, marker 22 mm, DICT_4X4_50, legacy layout; square 30 mm; board 150 x 180 mm" in out
    image = cv2.imread(str(tmp_path / "board.png"), cv2.IMREAD_GRAYSCALE)
    board = CharucoBoard(5, 6, 30.0, 22.0, legacy=True)
    detection = detect_board(image, board)
    spacing = np.polyfit(detection.object_points(board)[:, 0], detection.image_points[:, 0], 1)[0]
    assert len(detection.ids) == len(board.object_points) and abs(spacing / (100 / 25.4) - 1) < 2e-3
    ratpose("board", "--out", tmp_path / "checker.pdf", "--type", "checkerboard", "--squares", "10", "7")
    assert (tmp_path / "checker.pdf").stat().st_size > 0
    failed = ratpose("board", "--out", tmp_path / "board.svg", ok=False)
    assert len(failed.stderr.strip().splitlines()) == 1 and ".png or .pdf" in failed.stderr


def test_calibration_missing_a_camera_of_the_rig_is_refused(clean_db, tmp_path, capsys):
    raw, calib = clean_db["raw"], clean_db["calib"]
    write_session(tmp_path / "s", SessionSettings(seconds=1.0, fps=30.0, size=(32, 32), seed=3))
    raw.insert_session(read_session_folder(tmp_path / "s"))
    image = np.random.default_rng(0).integers(0, 256, (24, 32), dtype=np.uint8)
    folder = write_calibration_folder(tmp_path / "c", "sim-rig-1", CharucoBoard(5, 4, 4.0, 3.0),
                                      {"cam0": [image, image]}, date="2026-11-24")
    cameras = len(raw.Camera())
    assert cli(["ingest", str(folder)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{folder.resolve()}: lacks camera(s) ['cam1'] of rig 'sim-rig-1'" in err
    assert len(calib.CalibrationRecording()) == 0 and len(raw.Camera()) == cameras
    ok = write_calibration_folder(tmp_path / "c2", "sim-rig-1", CharucoBoard(5, 4, 4.0, 3.0),
                                  {"cam0": [image, image], "cam1": [image, image]}, date="2026-11-24")
    assert cli(["ingest", str(ok)]) == 0
