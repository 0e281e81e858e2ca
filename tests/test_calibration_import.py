"""An Anipose/aniposelib calibration.toml imported as a Calibration row: Pose3D against it equals aniposelib's 3D."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from conftest import build_simulated_pipeline

from ratpose.calibration import CalibrationError
from ratpose.sim import SessionSettings

IMPORT_DATE = dt.datetime(2026, 11, 23, 9, 0)


def _camera_group(rig, scale_size: float = 1):
    from aniposelib.cameras import Camera, CameraGroup

    return CameraGroup([Camera(name=c.name, size=[int(s * scale_size) for s in c.size], matrix=c.K, dist=c.dist,
                               rvec=c.rvec, tvec=c.t) for c in rig])


@pytest.fixture(scope="module")
def imported(db, tmp_path_factory):
    root = tmp_path_factory.mktemp("anipose_import")

    def register(truth, root):
        _camera_group(truth.rig).dump(str(root / "aniposelib.toml"))
        key, inserted = db["calib"].import_anipose_calibration(root / "aniposelib.toml", truth.config["rig"],
                                                                IMPORT_DATE.isoformat())
        assert inserted and key == {"rig": truth.config["rig"], "calibration_date": IMPORT_DATE}

    config = SessionSettings(seconds=20.0, fps=30.0, size=(640, 480), seed=5, subject="rat_import", n_units=2)
    truth, session, results = build_simulated_pipeline(db, root, config, exact_2d=True, register_calibration=register)
    return truth, session, results, root


def test_session_pose3d_on_imported_calibration_equals_aniposelib(imported, db):
    truth, session, results, root = imported
    assert not {n: r["error_list"] for n, r in results.items() if r["error_list"]}
    calib, pose = db["calib"], db["pose"]
    assert calib.session_calibration_key(session) == {"rig": truth.config["rig"], "calibration_date": IMPORT_DATE}
    recording = (calib.CalibrationRecording & calib.session_calibration_key(session)).fetch1()
    assert recording["source"] == "anipose" and recording["calib_dir"] == str((root / "aniposelib.toml").resolve())
    assert (calib.Calibration & session).fetch1("rms_px") is None
    pose.Pose3DParams.insert1(pose.Pose3DParams.LINEAR, skip_duplicates=True)  # per frame, as aniposelib
    pose.Pose3D.populate({**session, "pose3d_params": "linear"})
    key = (pose.Pose3D & session & {"pose_params": "external", "pose3d_params": "linear"}).fetch1("KEY")
    pulses = (pose.Pose3D & key).fetch1("pulse_index")
    parts = {r["bodypart"]: r["xyz"] for r in (pose.Pose3D.BodyPart & key).to_dicts()}
    ours = np.stack([parts[b] for b in truth.bodyparts], axis=1).astype(np.float64)
    points2d = truth.points2d()[:, pulses]  # the noise-free 2D, (C, N, P, 2); Pose2D and Pose3D store float64
    theirs = _camera_group(truth.rig).triangulate(points2d.reshape(len(truth.rig), -1, 2)).reshape(ours.shape)
    seen = np.isfinite(ours).all(axis=-1)
    assert seen.mean() > 0.5
    assert np.abs(ours[seen] - theirs[seen]).max() < 1e-6


def test_session_report_names_the_imported_calibration_and_its_drift(imported, tmp_path):
    from ratpose.report.build import write_report
    from ratpose.schema import report_data

    truth, session, _, root = imported
    report = report_data.fetch_report(session, n_examples=0)
    assert report.qc["calibration"] == f"2026-11-23 (latest), imported from {(root / 'aniposelib.toml').resolve()}"
    assert report.qc["calibration cam0"] == "imported calibration (no images: no held-out comparison)"
    assert report.qc["calibration cam0: drift"] == "first calibration of the rig (or of this camera)"
    assert write_report(report, tmp_path).is_file()  # the calibration section draws without QC numbers


def test_imported_calibration_of_other_image_size_is_refused_for_the_session(imported, db, tmp_path):
    truth, session, _, _ = imported
    calib = db["calib"]
    _camera_group(truth.rig, scale_size=1.5).dump(str(tmp_path / "large.toml"))
    later = IMPORT_DATE + dt.timedelta(hours=1)
    calib.import_anipose_calibration(tmp_path / "large.toml", truth.config["rig"], later)
    calib.Calibration.populate()
    (calib.SessionCalibration & session).delete(prompt=False, part_integrity="cascade")
    result = calib.SessionCalibration.populate(session, suppress_errors=True)
    assert "camera 'cam0': calibrated at 960x720 but the session's video is 640x480" in str(result["error_list"])


def test_identical_cameras_or_bad_files_are_refused_and_nothing_inserted(clean_db, tmp_path):
    from aniposelib.cameras import Camera, CameraGroup

    calib = clean_db["calib"]
    same = dict(size=[640, 480], matrix=np.diag([500.0, 500.0, 1.0]) + [[0, 0, 320], [0, 0, 240], [0, 0, 0]],
                dist=np.zeros(5), rvec=np.zeros(3), tvec=np.zeros(3))
    CameraGroup([Camera(name="left", **same), Camera(name="right", **same)]).dump(str(tmp_path / "copy.toml"))
    with pytest.raises(CalibrationError, match="cameras 'left' and 'right' are identical"):
        calib.import_anipose_calibration(tmp_path / "copy.toml", "rig1", IMPORT_DATE)
    with pytest.raises(ValueError, match="cannot read Anipose calibration"):
        calib.import_anipose_calibration(tmp_path / "missing.toml", "rig1", IMPORT_DATE)
    moved = {**same, "tvec": np.array([100.0, 0.0, 0.0])}
    CameraGroup([Camera(name="left", **same), Camera(name="right", **moved)]).dump(str(tmp_path / "ok.toml"))
    with pytest.raises(ValueError, match="not a valid ISO 8601 date"):
        calib.import_anipose_calibration(tmp_path / "ok.toml", "rig1", "yesterday")
    assert len(calib.CalibrationRecording()) == 0 and len(clean_db["raw"].Camera()) == 0
    calib.import_anipose_calibration(tmp_path / "ok.toml", "rig1", IMPORT_DATE)
    assert calib.import_anipose_calibration(tmp_path / "ok.toml", "rig1", IMPORT_DATE)[1] is False  # idempotent
    CameraGroup([Camera(name="left", **same), Camera(name="right", **{**moved, "tvec": np.array([90.0, 0, 0])})]
                ).dump(str(tmp_path / "ok.toml"))
    with pytest.raises(ValueError, match=r"ok.toml changed.*ratpose delete --rig rig1 --calibration-date "
                                         r"2026-11-23T09:00:00, then ratpose calibrate --import-anipose"):
        calib.import_anipose_calibration(tmp_path / "ok.toml", "rig1", IMPORT_DATE)
    assert len(calib.CalibrationRecording()) == 1
