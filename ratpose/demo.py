"""`ratpose demo`: a synthetic rig session through every stage, compared with its ground truth.

Simulates a short two-camera session (calibration views at 4x the video resolution, standing for a
session recorded with 4x4 binning; DLC labeled frames), ingests it, trains a tiny DeepLabCut
model on the CPU, and populates sync -> calibration -> Pose2D -> Pose3D -> knob validation -> pose x
spikes. The knob geometry and the world's vertical are entered by hand, as a lab measures them once
per rig; the summary also shows how well the tracked knob marker alone would locate the knob.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import schema
from .ingest.session_folder import read_session_folder
from .report import write_report
from .schema.jobs import populate
from .schema.report_data import fetch_report
from .sim import BODYPARTS, GroundTruth, SessionConfig, write_rig_dataset
from .behaviour import Knob

VIDEO_SIZE = (160, 120)
CALIBRATION_SIZE = (640, 480)


@dataclass(frozen=True)
class DemoSettings:
    """Size of the demo: a few minutes on 2 CPU cores with the defaults."""

    seconds: float = 24.0
    fps: float = 30.0
    n_labeled: int = 80
    epochs: int = 25
    seed: int = 0
    subject: str = "demo_rat"
    rig: str = "demo-rig"


@dataclass
class DemoSummary:
    """One line per stage: what the pipeline found and how far it is from the truth."""

    session: dict
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, measured: str, truth: str, **metrics: float) -> None:
        self.rows.append((stage, measured, truth))
        self.metrics.update(metrics)

    def text(self) -> str:
        width = max(len(r[1]) for r in self.rows)
        lines = [f"{'stage':<16} {'pipeline':<{width}}  vs ground truth", "-" * (width + 40)]
        lines += [f"{s:<16} {m:<{width}}  {t}" for s, m, t in self.rows]
        return "\n".join(lines)


def _insert_inputs(modules, data_dir: Path, settings: DemoSettings) -> dict:
    raw, calib, pose = modules["raw"], modules["calib"], modules["pose"]
    session, _ = raw.insert_session(read_session_folder(data_dir / "session"))
    calib.register_calibration(data_dir / "calibration")
    pose.register_training_set("demo", str(data_dir / "labeled"), list(BODYPARTS), "sim")
    pose.PoseModelParams.insert1({"pose_params": "demo_cpu", "mode": "train", "net_type": "resnet_18",
                                  "epochs": settings.epochs, "batch_size": 8, "augmentation": False,
                                  "device": "auto", "init": "random"}, skip_duplicates=True)
    pose.request_model("demo", "demo_cpu")
    return session


def _set_knob_by_hand(modules, key: dict, truth: GroundTruth) -> None:
    """The knob as the lab measures it once per rig (position, radius, axis) plus the world's vertical."""
    calibration_key = modules["calib"].session_calibration_key(key)
    modules["analysis"].set_knob(calibration_key, truth.scene.knob(), up=truth.scene.up, source="hand")


def _remove_previous_demo(modules, settings: DemoSettings) -> None:
    """A demo run replaces the previous one: its subject, rig calibrations, training set and failed jobs go."""
    restrictions = ((modules["raw"].Subject, {"subject": settings.subject}),
                    (modules["calib"].CalibrationRecording, {"rig": settings.rig}),
                    (modules["pose"].TrainingSet, {"training_set": "demo"}))
    for table, restriction in restrictions:
        if table & restriction:
            (table & restriction).delete(prompt=False, part_integrity="cascade")
    for table in schema.computed_tables(modules).values():
        for _, restriction in restrictions:
            if set(restriction) <= set(table.primary_key):
                (table.jobs.errors & restriction).delete()


def run_demo(workdir: str | Path, settings: DemoSettings = DemoSettings()) -> DemoSummary:
    """Simulate, ingest and populate everything under the active database prefix; return the summary."""
    workdir = Path(workdir)
    config = SessionConfig(seconds=settings.seconds, fps=settings.fps, size=VIDEO_SIZE, seed=settings.seed,
                           subject=settings.subject, rig=settings.rig, progress=True)
    modules = schema.activate()
    _remove_previous_demo(modules, settings)
    truth = write_rig_dataset(workdir / "data", config, n_labeled=settings.n_labeled,
                              calibration_size=CALIBRATION_SIZE)
    session = _insert_inputs(modules, workdir / "data", settings)
    tables = schema.computed_tables(modules)
    first = ("SyncedFrames", "SessionSync", "Calibration", "SessionCalibration", "PoseModel")
    errors = _errors(populate({n: tables[n] for n in first}))
    model_key = {"training_set": "demo", "pose_params": "demo_cpu"}
    if modules["pose"].PoseModel & model_key:
        modules["pose"].schedule_pose2d(session, model_key)
    errors += _errors(populate({n: tables[n] for n in ("Pose2D", "Pose3D")}))
    key = {**session, **model_key, "pose3d_params": "default"}
    if modules["pose"].Pose3D & key:
        _set_knob_by_hand(modules, key, truth)
    errors += _errors(populate({n: tables[n] for n in ("KnobValidation", "MovementEvents", "UnitTuning")}))
    summary = compare_with_truth(modules, key, truth)
    for table, message in errors:
        summary.add(table, "ERROR", message[:120])
    report = write_report(fetch_report(session, model_key if modules["pose"].PoseModel & model_key else None),
                          workdir / "report")
    summary.add("report", str(report), "open it in a browser")
    return summary


def _errors(results: dict) -> list[tuple[str, str]]:
    return [(name, str(message)) for name, result in results.items() for _, message in result["error_list"]]


def compare_with_truth(modules, key: dict, truth: GroundTruth) -> DemoSummary:
    """QC of every stage of one session against the simulator's truth."""
    sync, calib, pose, analysis = (modules[s] for s in ("sync", "calib", "pose", "analysis"))
    summary = DemoSummary(session={k: key[k] for k in ("subject", "session_datetime")})
    for row in (sync.SyncedFrames & key).to_dicts():
        true = truth.cameras[row["camera"]]
        exact = np.mean(row["pulse_index"] == true.pulse_index) if len(row["pulse_index"]) == len(true.pulse_index) else 0
        summary.add(f"sync {row['camera']}", f"{exact:.1%} frames on their pulse, drift {row['drift_ppm']:.2f} ppm",
                    f"{len(true.lost_pulses)} lost, {len(true.missed_pulses)} missed pulses",
                    **{f"sync_exact_{row['camera']}": float(exact)})
    rig = calib.session_rig(key)
    if rig is not None:
        rms = (calib.Calibration & calib.session_calibration_key(key)).fetch1("rms_px")
        focal = max(abs(c.K[0, 0] / t.K[0, 0] - 1) for c, t in zip(rig, truth.rig))
        baseline = np.linalg.norm(rig[1].center - rig[0].center)
        true_baseline = np.linalg.norm(truth.rig[1].center - truth.rig[0].center)
        summary.add("calibration", f"RMS {rms:.2f} px at {CALIBRATION_SIZE[0]}x{CALIBRATION_SIZE[1]}, "
                    f"baseline {baseline:.2f} mm", f"focal error {focal:.2%}, baseline {true_baseline:.2f} mm",
                    focal_error=float(focal), baseline_error=float(abs(baseline / true_baseline - 1)))
    if pose.PoseModel & key:
        model = (pose.PoseModel & key).fetch1()
        summary.add("pose model", f"train {model['train_error_px']:.2f} px, test {model['test_error_px']:.2f} px",
                    "labels are exact projections", test_error_px=float(model["test_error_px"]))
    true_points2d = truth.points2d()
    for row in (pose.Pose2D & key).proj().to_dicts():
        cam = truth.rig.names.index(row["camera"])
        frames = truth.cameras[row["camera"]]
        true2d = true_points2d[cam, frames.pulse_index]
        seen = truth.visible[frames.pulse_index, cam]
        x, y, _ = pose.pose2d_arrays(row, BODYPARTS)
        xy = np.stack([x, y], axis=-1)
        error = np.linalg.norm(xy - true2d, axis=-1)[seen]
        summary.add(f"pose2d {row['camera']}", f"median {np.median(error):.2f} px, 90th pct "
                    f"{np.percentile(error, 90):.2f} px", f"{error.size} visible keypoints",
                    **{f"pose2d_median_px_{row['camera']}": float(np.median(error))})
    if pose.Pose3D & key:
        data = pose.fetch_pose3d(key)
        pulses = data["pulse_index"]
        xyz = data["points3d"][:, [data["bodyparts"].index(b) for b in BODYPARTS]]
        error = np.linalg.norm(xyz - truth.points3d[pulses], axis=-1)
        summary.add("pose3d", f"median {np.nanmedian(error):.2f} mm, {np.isfinite(error).mean():.0%} triangulated",
                    f"{len(pulses)} frames seen by both cameras", pose3d_median_mm=float(np.nanmedian(error)),
                    pose3d_fraction=float(np.isfinite(error).mean()))
        marker = xyz[:, BODYPARTS.index("knob_marker")].astype(np.float64)
        try:
            knob = Knob.from_keypoint(marker)
            estimate = (f"centre off by {np.linalg.norm(knob.centre - truth.knob_center):.2f} mm, "
                        f"radius {knob.radius_mm:.2f} mm")
        except ValueError as err:
            estimate = f"not estimable: {err}"
        summary.add("knob from marker", estimate, f"radius {truth.knob_radius_mm:.2f} mm (knob set by hand)")
    for row in (analysis.KnobValidation & key).to_dicts():
        summary.add("knob validation", f"sensitivity {row['sensitivity']:.2f}, precision {row['precision']:.2f}, "
                    f"{'PASSED' if row['passed'] else 'FAILED: ' + row['failed_checks']}",
                    f"{len(truth.touch_intervals)} touches", knob_sensitivity=float(row["sensitivity"]),
                    knob_precision=float(row["precision"]))
    tuning = {r["unit_id"]: r for r in (analysis.UnitTuning & key).to_dicts()}
    if tuning:
        kinds = {u.unit_id: u.kind for u in truth.units}
        found = [f"{uid}:{kinds[uid]}:p={r['speed_p_value']:.3f}" for uid, r in sorted(tuning.items())]
        summary.add("unit tuning", ", ".join(found[:3]) + (" ..." if len(found) > 3 else ""),
                    "speed p-values (short demo: weak statistics)")
    return summary
