"""Fetch what a session report and its labeled videos show (drawn by ratpose.report, no database there)."""
from __future__ import annotations

import numpy as np
import xarray as xr

from .. import sync as sync_lib
from ..behaviour import validate_session
from ..calibration.qc import CameraQuality, heldout_line
from ..errors import InputError
from ..poses import positions
from ..report.data import (
    CameraSync,
    CameraTrack,
    ExampleFrame,
    SessionReport,
    UnitPlot,
    reproject_to_frames,
)
from ..video import read_frames
from . import analysis, calibration, pose, raw, sync

RUN_POPULATE = "run `ratpose populate`"


def choose_model(session_key: dict, training_set: str | None = None, pose_params: str | None = None) -> dict | None:
    """The PoseModel key with 2D pose for this session (None when there is none); ValueError when several fit."""
    wanted = {k: v for k, v in (("training_set", training_set), ("pose_params", pose_params)) if v}
    rows = (pose.PoseModel.proj() & (pose.Pose2D & session_key).proj() & wanted).to_dicts()
    if len(rows) > 1:
        options = ", ".join(f"--training-set {r['training_set']} --pose-params {r['pose_params']}" for r in rows)
        raise InputError(f"session {session_key} has 2D pose from several models; choose one of: {options}")
    return rows[0] if rows else None


def pose_cameras(session_key: dict, model: dict) -> list[str]:
    """Cameras of the session with 2D pose from this model."""
    return sorted((pose.Pose2D & session_key & model).to_arrays("camera"))


def camera_track(session_key: dict, model: dict, camera: str, bodyparts) -> CameraTrack:
    """2D pose of one camera's video, body parts in the given order, with the frames' neural times."""
    key = {**session_key, **model, "camera": camera}
    x, y, likelihood = (a.astype(float) for a in pose.pose2d_arrays(key, bodyparts))
    return CameraTrack(camera, (sync.SyncedFrames & key).fetch1("time_s"), x, y, likelihood)


def session_pose3d(session_key: dict, model: dict, pose3d_params: str, bodyparts) -> xr.Dataset | None:
    """The session's 3D pose of a model (``ratpose.poses``' form, keypoints in ``bodyparts``' order; attrs
    ``source_key``: the Pose3D key), or None before Pose3D."""
    restriction = {**session_key, **model, "pose3d_params": pose3d_params}
    if not pose.Pose3D & restriction:
        return None
    return pose.fetch_pose3d(restriction).sel(keypoints=list(bodyparts))


def labeled_video_inputs(session_key: dict, model: dict, camera: str, pose3d_params: str = "default") -> dict:
    """Arguments of ratpose.report.video.write_labeled_video for one camera of a session (reprojected
    is None before Pose3D)."""
    bodyparts = pose.training_bodyparts(model)
    track = camera_track(session_key, model, camera, bodyparts)
    found, rig = session_pose3d(session_key, model, pose3d_params, bodyparts), calibration.session_rig(session_key)
    frame_pulses = (sync.SyncedFrames & session_key & {"camera": camera}).fetch1("pulse_index")
    reprojected = None
    if found is not None and camera in rig.names:
        reprojected = reproject_to_frames(frame_pulses, found, rig[camera])
    return {"video_path": raw.video_path({**session_key, "camera": camera}), "points2d": track.points,
            "likelihood": track.likelihood, "reprojected": reprojected, "bodyparts": bodyparts}


def fetch_report(session_key: dict, model: dict | None = None, *, pose3d_params: str = "default",
                 analysis_params: str = "default", n_examples: int = 2) -> SessionReport:
    """Everything a session report shows; sections without data carry the reason in ``missing``."""
    session = (raw.Session & session_key).fetch1()
    bodyparts = pose.training_bodyparts(model) if model else ()
    min_likelihood = float((pose.Pose3DParams & {"pose3d_params": pose3d_params}).fetch1("min_likelihood"))
    report = SessionReport(
        title=f"{session['subject']} {session['session_datetime']:%Y-%m-%d %H:%M:%S}",
        info={"rig": session["rig"], "task": session["task"], "folder": raw.describe_location(session),
              "model": "none" if model is None else f"{model['training_set']}/{model['pose_params']}"},
        bodyparts=bodyparts, min_likelihood=min_likelihood)
    _add_sync(report, session_key)
    _add_calibration(report, session_key)
    if model is None:
        for section in ("trajectories", "pose3d", "frames", "validation", "units"):
            report.missing[section] = f"no 2D pose for this session yet (schedule Pose2D, {RUN_POPULATE})"
        return report
    report.tracks = [camera_track(session_key, model, c, bodyparts) for c in pose_cameras(session_key, model)]
    report.pose3d = session_pose3d(session_key, model, pose3d_params, bodyparts)
    if report.pose3d is None:
        for section in ("pose3d", "frames", "validation", "units"):
            report.missing[section] = f"no 3D pose for this session yet ({RUN_POPULATE})"
        return report
    pose3d_key = report.pose3d.attrs["source_key"]
    _add_pose3d_qc(report, pose3d_key)
    report.examples = _examples(session_key, report, n_examples)
    _add_analysis(report, {**pose3d_key, "analysis_params": analysis_params})
    return report


def _add_sync(report: SessionReport, session_key: dict) -> None:
    rows = (sync.SyncedFrames & session_key).to_dicts()
    if not rows:
        report.missing["sync"] = f"frames are not synchronised yet ({RUN_POPULATE})"
        return
    pulse_s = sync_lib.unwrap_ticks((raw.TriggerLog & session_key).fetch1("tick_us"))
    for row in rows:
        report.sync.append(CameraSync(row["camera"], row["time_s"], pulse_s[row["dropped_pulses"]],
                                      int(row["lost_in_transfer"]), int(row["missed_trigger"]), row["drift_ppm"],
                                      row["residual_rms_s"], row["residual_max_s"]))
        report.qc[f"{row['camera']}: frames"] = str(row["n_frames"])
        report.qc[f"{row['camera']}: dropped pulses (lost / missed)"] = (
            f"{len(row['dropped_pulses'])} ({row['lost_in_transfer']} / {row['missed_trigger']})")
        report.qc[f"{row['camera']}: clock-fit residual max"] = f"{1e6 * row['residual_max_s']:.2f} us"
    checks = (sync.SessionSync & session_key).to_dicts()
    if checks:
        report.qc["sync QC"] = "passed" if checks[0]["passed"] else f"FAILED: {checks[0]['problems']}"


def _add_calibration(report: SessionReport, session_key: dict) -> None:
    chosen = (calibration.SessionCalibration & session_key).to_dicts()
    if not chosen:
        report.missing["calibration"] = f"no calibration chosen for this session yet ({RUN_POPULATE})"
        return
    key = {"rig": chosen[0]["rig"], "calibration_date": chosen[0]["calibration_date"]}
    overall = (calibration.Calibration & key).fetch1()
    nan = lambda value: float("nan") if value is None else value  # noqa: E731 (imported: no images, no QC)
    report.calibration_rms_px = nan(overall["rms_px"])
    report.calibration_joint_instants = int(overall["n_joint_instants"])
    report.calibration = [CameraQuality(
        name=r["camera"], image_size=(int(r["width"]), int(r["height"])), n_shared_views=int(r["n_shared_views"]),
        n_single_views=int(r["n_single_views"]), n_points=len(r["corners"]), rms_px=nan(r["rms_px"]),
        p95_px=nan(r["p95_px"]), coverage=nan(r["coverage"]), intrinsics_std={}, lens_model=r["lens_model"],
        heldout_px=r["heldout_px"], points=r["corners"], residuals=r["residuals"])
        for r in (calibration.Calibration.Camera & key).to_dicts(order_by="camera_order")]
    quality = (f"RMS {report.calibration_rms_px:.3f} px" if overall["rms_px"] is not None
               else "imported from " + (calibration.CalibrationRecording & key).fetch1("calib_dir"))
    report.qc["calibration"] = f"{key['calibration_date']:%Y-%m-%d} ({chosen[0]['chosen_by']}), {quality}"
    for quality in report.calibration:
        report.qc[f"calibration {quality.name}"] = heldout_line(quality)
    summary = calibration.calibration_summary(key)
    for cam in summary["cameras"]:
        drift = cam["drift"]
        report.qc[f"calibration {cam['camera']}: drift"] = (
            f"since {summary['previous']['calibration_date']:%Y-%m-%d}: {drift['baseline_mm']:.2f} mm, "
            f"{drift['rotation_deg']:.3f} deg, focal {drift['focal_pct']:+.2f} %" if drift
            else "first calibration of the rig (or of this camera)")


def _add_pose3d_qc(report: SessionReport, pose3d_key: dict) -> None:
    cameras = (pose.Pose3D & pose3d_key).fetch1("cameras")
    for row in (pose.Pose3D.BodyPart & pose3d_key).to_dicts():
        error = row["median_error_px"]
        report.qc[f"3D {row['bodypart']}: triangulated / median reprojection error"] = (
            f"{row['fraction_triangulated']:.1%} / " + ("-" if error is None else f"{error:.2f} px"))
        held_out = row["held_out_error_px"]
        report.pose3d_validation[row["bodypart"]] = {
            "accel_mm_s2": row["accel_prior_mm_s2"],
            "held_out_px": {} if held_out is None else {c: float(e) for c, e in zip(cameras, held_out)}}


def _examples(session_key: dict, report: SessionReport, n_examples: int) -> list[ExampleFrame]:
    """Frames of every camera at ``n_examples`` instants (evenly spread) where the most body parts are in 3D."""
    xyz = positions(report.pose3d)
    n_finite = np.isfinite(xyz[..., 0]).sum(axis=1)
    best = np.flatnonzero(n_finite == n_finite.max())
    instants = best[np.linspace(0, len(best) - 1, n_examples + 2)[1:-1].round().astype(int)]
    pulses = report.pose3d.pulse_index.values[instants]
    rig = calibration.session_rig(session_key)
    examples = []
    for track in report.tracks:
        frame_pulses = (sync.SyncedFrames & session_key & {"camera": track.camera}).fetch1("pulse_index")
        rows, _ = sync_lib.pulse_rows(frame_pulses, pulses)  # every camera has a frame at these pulses
        images = read_frames(raw.video_path({**session_key, "camera": track.camera}), rows)
        examples += [ExampleFrame(track.camera, int(pulse), float(track.time_s[row]), image, track.points[row],
                                  track.likelihood[row], rig[track.camera].project(xyz[instant]))
                     for instant, pulse, row, image in zip(instants, pulses, rows, images)]
    return sorted(examples, key=lambda e: e.time_s)


def _add_analysis(report: SessionReport, key: dict) -> None:
    stored = (analysis.KnobValidation & key).to_dicts()
    if not stored:
        reason = f"no knob validation for this session yet (set the Knob of its calibration, {RUN_POPULATE})"
        report.missing["validation"] = report.missing["units"] = reason
        return
    poses, knob_log, knob, _ = analysis.session_inputs(key)
    report.validation = validate_session(poses, knob, knob_log, analysis.analysis_settings(key))
    row = stored[0]
    report.qc["knob validation"] = (f"{'passed' if row['passed'] else 'FAILED: ' + row['failed_checks']}; "
                                    f"sensitivity {row['sensitivity']:.2f}, precision {row['precision']:.2f}, "
                                    f"{row['n_touches']} touches")
    tetrodes = dict(zip(*(raw.Unit & key).to_arrays("unit_id", "tetrode")))
    peths = {}
    for p in (analysis.UnitTuning.PETH & key).to_dicts():
        peths.setdefault(p["unit_id"], {})[p["event"]] = (p["bin_centres_s"], p["rate_hz"], p["sem_hz"])
    report.units = [UnitPlot(int(r["unit_id"]), int(tetrodes[r["unit_id"]]), int(r["n_spikes"]),
                             r["speed_bin_centres"], r["speed_rate_hz"], r["speed_p_value"],
                             r["direction_bin_centres"], r["direction_rate_hz"], r["direction_p_value"],
                             peths.get(r["unit_id"], {}), r["test_note"])
                    for r in (analysis.UnitTuning & key).to_dicts(order_by="unit_id")]
    if not report.units:
        report.missing["units"] = f"no unit tuning for this session ({RUN_POPULATE}; were units ingested?)"
    master = (analysis.UnitEncoding & key).to_dicts()
    report.encoding = (analysis.UnitEncoding.Unit & key).to_dicts(order_by="unit_id")
    report.encoding_lags_s = master[0]["lags_s"] if master else None
    if not report.encoding:
        report.missing["encoding"] = f"no encoding models for this session ({RUN_POPULATE}; were units ingested?)"
    decoding = (analysis.PopulationDecoding & key).to_dicts()
    report.decoding = decoding[0] if decoding else None
    if report.decoding is None:
        report.missing["decoding"] = f"no population decoding for this session ({RUN_POPULATE})"
    report.qc["units (speed-tuned at p < 0.01)"] = (
        f"{len(report.units)} ({sum(u.speed_p_value is not None and u.speed_p_value < 0.01 for u in report.units)})")
