"""`ratpose demo`: a synthetic rig session through every stage, compared with its ground truth.

Simulates a short two-camera session (calibration views at 4x the video resolution, standing for a
session recorded with 4x4 binning; DLC labeled frames), ingests it, trains a tiny DeepLabCut
model on the CPU, and populates sync -> calibration -> Pose2D -> Pose3D -> knob validation -> pose x
spikes. The knob geometry and the world's vertical are entered by hand, as a lab measures them once
per rig; the summary also shows how well the tracked knob marker alone would locate the knob.
"""
from __future__ import annotations

import os
import sys
import textwrap
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import TextIO

import numpy as np

from . import db, schema
from .behaviour import KnobModel
from .ingest.session_folder import read_session_folder
from .poses import positions
from .report import write_report
from .schema.jobs import populate
from .schema.report_data import fetch_report
from .sim import BODYPARTS, GroundTruth, SessionSettings, write_rig_dataset
from .sim.pose2d import HAND_LIMBS

VIDEO_SIZE = (160, 120)
CALIBRATION_SIZE = (640, 480)
DEMO_POSE3D = "demo_hand"  # Pose3DParams of the demo: pose3d.smooth with the hand's rigid segments
DEMO_LIMBS = ",".join(f"{BODYPARTS[i]}-{BODYPARTS[j]}" for i, j in HAND_LIMBS)


@dataclass(frozen=True)
class DemoSettings:
    """Size of the demo: a few minutes on 2 CPU cores with the defaults."""

    seconds: float = 40.0
    fps: float = 30.0
    n_labeled: int = 120
    epochs: int = 20
    net_type: str = "resnet_10"  # timm's resnet10t: 1.8x faster than resnet_18 on these frames, as accurate
    seed: int = 0
    subject: str = "demo_rat"
    rig: str = "demo-rig"
    swap_cameras: bool = False  # swap the calibration's two camera folders: a forced failure (pose3d)
    model: str = ""  # a trained DLC model (folder or snapshot, e.g. an earlier demo's) to register, not train
    db_prefix: str | None = None  # schemas <db_prefix>_<stage>; default <active prefix>_demo

    @property
    def prefix(self) -> str:
        """The demo's own schema prefix, so its rows stay out of the active pipeline."""
        return self.db_prefix or f"{db.prefix()}_demo"

    @property
    def model_key(self) -> dict:
        """The demo's PoseModel: trained here, or the given model registered."""
        return {"training_set": "demo", "pose_params": "demo_given" if self.model else "demo_cpu"}


WIDTHS = (15, 4, 44, 33)  # stage, result, pipeline, ground truth: 100 columns with the gaps


@dataclass
class DemoSummary:
    """One row per stage: PASS/FAIL (or '-' for information), what the pipeline found, and the truth."""

    session: dict
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, passed: bool | None, measured: str, truth: str, **metrics: float) -> None:
        self.rows.append((stage, "-" if passed is None else "PASS" if passed else "FAIL", measured, truth))
        self.metrics.update(metrics)

    @property
    def failed(self) -> list[str]:
        """Stages that failed against the truth."""
        return [row[0] for row in self.rows if row[1] == "FAIL"]

    def text(self) -> str:
        """The table, each cell wrapped to its column: no line is wider than 100 characters."""
        lines = [_line(("stage", "", "pipeline", "ground truth")), "-" * (sum(WIDTHS) + 4)]
        for row in self.rows:
            cells = [textwrap.wrap(cell, width, break_on_hyphens=False) or [""] for cell, width in zip(row, WIDTHS)]
            lines += [_line(parts) for parts in zip_longest(*cells, fillvalue="")]
        verdict = f"FAILED: {', '.join(self.failed)}" if self.failed else "every stage PASSED"
        return "\n".join(lines + ["", verdict])


def _line(cells) -> str:
    return f"{cells[0]:<{WIDTHS[0]}} {cells[1]:<{WIDTHS[1]}} {cells[2]:<{WIDTHS[2]}}  {cells[3]}".rstrip()


def _insert_inputs(modules, data_dir: Path, settings: DemoSettings) -> dict:
    raw, calib, pose = modules["raw"], modules["calib"], modules["pose"]
    session, _ = raw.insert_session(read_session_folder(data_dir / "session"))
    calib.register_calibration(data_dir / "calibration")
    pose.register_training_set("demo", str(data_dir / "labeled"), list(BODYPARTS), "sim")
    how = ({"mode": "register", "model_path": str(Path(settings.model).expanduser().resolve())} if settings.model
           else {"mode": "train", "net_type": settings.net_type, "epochs": settings.epochs, "batch_size": 8,
                 "augmentation": False, "device": "auto", "init": "random"})
    pose.PoseModelParams.insert1({"pose_params": settings.model_key["pose_params"], **how}, replace=True)
    pose.Pose3DParams.insert1({"pose3d_params": DEMO_POSE3D, "min_likelihood": 0.1, "max_reprojection_px": None,
                               "refine": True, "median_window": 0, "method": "smooth", "limbs": DEMO_LIMBS},
                              skip_duplicates=True)
    pose.request_model(**settings.model_key)
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


# Seconds each stage took in `ratpose demo` on an idle 2-core machine (2026-12-03, 154 s in all): the
# ETA scales the remaining seconds by how much slower than that the stages so far ran.
STAGE_WEIGHTS = {"simulate": 5, "ingest": 1, "sync": 1, "calibration": 7, "pose model": 102, "pose2d": 24,
                 "pose3d": 1, "knob and events": 1, "unit tuning": 1, "report": 9}


class _Progress:
    """One line per stage on the console: elapsed time and the overall ETA (STAGE_WEIGHTS, scaled to the
    time the stages so far took; a given model is registered, not trained: its stage weighs 1 s)."""

    def __init__(self, console: TextIO, trains_model: bool):
        self.console, self.start, self.done = console, time.monotonic(), 0.0
        self.weights = {**STAGE_WEIGHTS, **({} if trains_model else {"pose model": 1})}
        self.total = sum(self.weights.values())

    @contextmanager
    def stage(self, name: str):
        index = list(self.weights).index(name) + 1
        begin = time.monotonic()
        self.console.write(f"[{index:>2}/{len(self.weights)}] {name:<16}")
        self.console.flush()
        yield
        self.done += self.weights[name]
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        self.console.write(f" {time.monotonic() - begin:5.0f} s   elapsed {elapsed:4.0f} s, ETA {eta:4.0f} s\n")
        self.console.flush()


@contextmanager
def _output_to(log_path: Path):
    """Everything written to stdout and stderr (DeepLabCut's config dumps and logging, progress bars,
    warnings) goes to log_path; yields the console for the demo's own lines."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(saved[0]), "w", buffering=1)
    with open(log_path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield console
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            console.close()


def run_demo(out: str | Path, settings: DemoSettings = DemoSettings()) -> DemoSummary:
    """Simulate, ingest and populate everything under the demo's own prefix; return the summary.

    Files go under out (data/, report/, demo.log: everything the stages print)."""
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "demo.log"
    print(f"demo folder: {out}\nlog: {log_path}\ndatabase: schemas {db.schema_name('raw', settings.prefix)} ... "
          f"{db.schema_name('analysis', settings.prefix)}", flush=True)
    with _output_to(log_path) as console, _prefix(settings.prefix):
        summary = _run_stages(out, settings, _Progress(console, trains_model=not settings.model))
    summary.add("log", None, str(log_path), "DeepLabCut's output and warnings")
    return summary


@contextmanager
def _prefix(value: str):
    """RATPOSE_DB_PREFIX set to value (schemas and the models folder follow it), restored afterwards."""
    saved = os.environ.get("RATPOSE_DB_PREFIX")
    os.environ["RATPOSE_DB_PREFIX"] = value
    try:
        db.prefix()  # validates
        yield
    finally:
        if saved is None:
            del os.environ["RATPOSE_DB_PREFIX"]
        else:
            os.environ["RATPOSE_DB_PREFIX"] = saved


def swap_camera_folders(calibration_dir: Path, names: tuple[str, str]) -> None:
    """Swap two cameras' image folders of a calibration folder (as if their cables had been swapped)."""
    first, second = (calibration_dir / name for name in names)
    held = calibration_dir / f".{names[0]}.swap"
    first.rename(held)
    second.rename(first)
    held.rename(second)


def _run_stages(out: Path, settings: DemoSettings, progress: _Progress) -> DemoSummary:
    config = SessionSettings(seconds=settings.seconds, fps=settings.fps, size=VIDEO_SIZE, seed=settings.seed,
                           subject=settings.subject, rig=settings.rig)
    if settings.prefix.endswith("_demo"):  # the demo's own prefix: a fresh database each run
        schema.drop_all()
    modules = schema.activate()
    tables = schema.computed_tables(modules)
    errors = []

    def run(*names, restriction=None):
        errors.extend(_errors(populate({n: tables[n] for n in names}, restriction=restriction)))

    with progress.stage("simulate"):
        _remove_previous_demo(modules, settings)
        truth = write_rig_dataset(out / "data", config, n_labeled=settings.n_labeled,
                                  calibration_size=CALIBRATION_SIZE)
        if settings.swap_cameras:
            swap_camera_folders(out / "data" / "calibration", tuple(truth.rig.names))
    with progress.stage("ingest"):
        session = _insert_inputs(modules, out / "data", settings)
    with progress.stage("sync"):
        run("SyncedFrames", "SessionSync")
    with progress.stage("calibration"):
        run("Calibration", "SessionCalibration")
    with progress.stage("pose model"):
        run("PoseModel")
    model_key = settings.model_key
    has_model = bool(modules["pose"].PoseModel & model_key)
    with progress.stage("pose2d"):
        if has_model:
            modules["pose"].schedule_pose2d(session, model_key)
        run("Pose2D")
    key = {**session, **model_key, "pose3d_params": DEMO_POSE3D}
    with progress.stage("pose3d"):
        run("Pose3D", restriction={"pose3d_params": DEMO_POSE3D})
        if modules["pose"].Pose3D & key:
            _set_knob_by_hand(modules, key, truth)
    with progress.stage("knob and events"):
        run("KnobValidation", "MovementEvents")
    with progress.stage("unit tuning"):
        run("UnitTuning", "UnitEncoding", "PopulationDecoding")
    with progress.stage("report"):
        summary = compare_with_truth(modules, key, truth)
        for table, message in errors:
            summary.add(table, False, "ERROR", message[:160])
        report = write_report(fetch_report(session, model_key if has_model else None, pose3d_params=DEMO_POSE3D),
                              out / "report")
    summary.add("report", None, str(report), "open it in a browser")
    return summary


def _errors(results: dict) -> list[tuple[str, str]]:
    return [(name, str(message)) for name, result in results.items() for _, message in result["error_list"]]


# What each stage must reach against the truth (160x120 frames, heatmap stride 8 px: a model that
# learned the blobs is within a few px, an untrained one ~40 px off; 1 px at f ~ 400 px and 150 mm is
# ~0.4 mm per camera).
LIMITS = {"calibration_error": 0.005, "test_error_px": 6.0, "pose2d_median_px": 4.0, "pose3d_median_mm": 2.0,
          "pose3d_fraction": 0.9, "tuning_p": 0.05}


def compare_with_truth(modules, key: dict, truth: GroundTruth) -> DemoSummary:
    """QC of every stage of one session against the simulator's truth, PASS/FAIL by LIMITS."""
    sync, calib, pose, analysis = (modules[s] for s in ("sync", "calib", "pose", "analysis"))
    summary = DemoSummary(session={k: key[k] for k in ("subject", "session_datetime")})
    for row in (sync.SyncedFrames & key).to_dicts():
        true = truth.cameras[row["camera"]]
        exact = (np.mean(row["pulse_index"] == true.pulse_index)
                 if len(row["pulse_index"]) == len(true.pulse_index) else 0)
        summary.add(f"sync {row['camera']}", exact == 1.0,
                    f"{exact:.1%} frames on their pulse, drift {row['drift_ppm']:.2f} ppm",
                    f"{len(true.lost_pulses)} lost in transfer, {len(true.missed_pulses)} missed trigger",
                    **{f"sync_exact_{row['camera']}": float(exact)})
    rig = calib.session_rig(key)
    if rig is not None:
        rms = (calib.Calibration & calib.session_calibration_key(key)).fetch1("rms_px")
        focal = max(abs(c.K[0, 0] / t.K[0, 0] - 1) for c, t in zip(rig, truth.rig))
        baseline = np.linalg.norm(rig[1].center - rig[0].center)
        true_baseline = np.linalg.norm(truth.rig[1].center - truth.rig[0].center)
        baseline_error = abs(baseline / true_baseline - 1)
        summary.add("calibration", max(focal, baseline_error) < LIMITS["calibration_error"],
                    f"RMS {rms:.2f} px at {CALIBRATION_SIZE[0]}x{CALIBRATION_SIZE[1]}, baseline {baseline:.2f} mm",
                    f"focal off {focal:.2%}, baseline {true_baseline:.2f} mm",
                    focal_error=float(focal), baseline_error=float(baseline_error))
    if pose.PoseModel & key:
        model = (pose.PoseModel & key).fetch1()
        summary.add("pose model", model["test_error_px"] < LIMITS["test_error_px"],
                    f"train {model['train_error_px']:.2f} px, test {model['test_error_px']:.2f} px",
                    "labels are exact projections", test_error_px=float(model["test_error_px"]))
        summary.add("model folder", None, model["model_dir"], "rerun without training: ratpose demo --model DIR")
    true_points2d = truth.points2d()
    for row in (pose.Pose2D & key).proj().to_dicts():
        cam = truth.rig.names.index(row["camera"])
        frames = truth.cameras[row["camera"]]
        true2d = true_points2d[cam, frames.pulse_index]
        seen = truth.visible[frames.pulse_index, cam]
        x, y, _ = pose.pose2d_arrays(row, BODYPARTS)
        error = np.linalg.norm(np.stack([x, y], axis=-1) - true2d, axis=-1)[seen]
        summary.add(f"pose2d {row['camera']}", np.median(error) < LIMITS["pose2d_median_px"],
                    f"median {np.median(error):.2f} px, 90th pct {np.percentile(error, 90):.2f} px",
                    f"{error.size} visible keypoints", **{f"pose2d_median_px_{row['camera']}": float(np.median(error))})
    if pose.Pose3D & key:
        poses = pose.fetch_pose3d(key)
        pulses = poses.pulse_index.values
        xyz = positions(poses, BODYPARTS)
        error = np.linalg.norm(xyz - truth.points3d[pulses], axis=-1)
        median, fraction = float(np.nanmedian(error)), float(np.isfinite(error).mean())
        summary.add("pose3d", median < LIMITS["pose3d_median_mm"] and fraction > LIMITS["pose3d_fraction"],
                    f"median {median:.2f} mm, {fraction:.0%} of points in 3D",
                    f"{len(pulses)} frames seen by both cameras", pose3d_median_mm=median, pose3d_fraction=fraction)
        marker = xyz[:, BODYPARTS.index("knob_marker")].astype(np.float64)
        try:
            knob = KnobModel.from_keypoint(marker)
            estimate = (f"centre off by {np.linalg.norm(knob.centre - truth.knob_center):.2f} mm, "
                        f"radius {knob.radius_mm:.2f} mm")
        except ValueError as err:
            estimate = f"not estimable: {err}"
        summary.add("knob marker", None, estimate, f"radius {truth.knob_radius_mm:.2f} mm (knob set by hand)")
    for row in (analysis.KnobValidation & key).to_dicts():
        r = row["digit_rotation_corr"]
        summary.add("knob check", bool(row["passed"]), f"sensitivity {row['sensitivity']:.2f}, precision "
                    f"{row['precision']:.2f}, digit rotation " + ("not measured" if r is None else f"|r| {abs(r):.2f}")
                    + ("" if row["passed"] else f"; {row['failed_checks']}"),
                    f"{len(truth.touch_intervals)} touches", knob_sensitivity=float(row["sensitivity"]),
                    knob_precision=float(row["precision"]))
    tuning = (analysis.UnitTuning & key).to_dicts()
    if tuning:
        summary.add("unit tuning", *tuning_row({u.unit_id: u.kind for u in truth.units}, tuning))
    return summary


def tuning_row(kinds: dict[int, str], tuning: list[dict]) -> tuple[bool, str, str]:
    """PASS when every speed- or direction-tuned unit's own shuffle p-value is below LIMITS['tuning_p']."""
    found, ok = [], True
    for row in sorted(tuning, key=lambda r: r["unit_id"]):
        kind = kinds[row["unit_id"]]
        p_speed, p_dir = row["speed_p_value"], row["direction_p_value"]
        found.append(f"{row['unit_id']}:{kind} speed p={'not run' if p_speed is None else f'{p_speed:.3f}'}"
                     + ("" if p_dir is None else f" dir p={p_dir:.3f}"))
        if kind in ("speed", "direction"):
            own = p_speed if kind == "speed" else p_dir
            ok &= own is not None and own < LIMITS["tuning_p"]
    return ok, "; ".join(found), (f"tuned units' own shuffle p < {LIMITS['tuning_p']} (speed: information, dir: vector "
                                     "strength)")
