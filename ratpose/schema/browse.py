"""Read-only queries behind ``ratpose serve``: one query per table, joined in Python (no per-row queries)."""
from __future__ import annotations

import hashlib
from collections import defaultdict

from ..calibration.drift import camera_drift
from ..errors import NotFoundError
from . import analysis, calibration, pose, raw, sync


def _key(row: dict) -> tuple:
    return row["subject"], row["session_datetime"]


def _verdict(values: list[bool]) -> str:
    return "pending" if not values else ("PASS" if all(values) else "FAIL")


def sessions() -> list[dict]:
    """One row per session: subject, date, rig, duration, frames, sync QC, calibration, 3D coverage,
    knob validation and units."""
    rows = {_key(r): {**r, "frames": 0, "cameras": 0, "duration_s": None, "sync_qc": [], "calibration": None,
                      "coverage": [], "knob": [], "units": 0}
            for r in raw.Session.proj("rig", "task", "trigger_rate_hz").to_dicts()}
    for r in (raw.TriggerLog * raw.Session).proj("n_pulses", "trigger_rate_hz").to_dicts():
        rows[_key(r)]["duration_s"] = r["n_pulses"] / r["trigger_rate_hz"]
    for r in raw.Recording.proj("n_frames").to_dicts():
        rows[_key(r)]["frames"] += int(r["n_frames"])
        rows[_key(r)]["cameras"] += 1
    for r in sync.SessionSync.proj("passed").to_dicts():
        rows[_key(r)]["sync_qc"].append(bool(r["passed"]))
    for r in calibration.SessionCalibration.proj("rig", "calibration_date", "chosen_by").to_dicts():
        rows[_key(r)]["calibration"] = f"{r['rig']} {r['calibration_date']:%Y-%m-%d} ({r['chosen_by']})"
    for r in pose.Pose3D.BodyPart.proj("fraction_triangulated").to_dicts():
        rows[_key(r)]["coverage"].append(float(r["fraction_triangulated"]))
    for r in analysis.KnobValidation.proj("passed").to_dicts():
        rows[_key(r)]["knob"].append(bool(r["passed"]))
    for r in raw.Session.aggr(raw.Unit, n="count(*)").to_dicts():
        rows[_key(r)]["units"] = int(r["n"])
    for row in rows.values():
        row["sync_qc"], row["knob"] = _verdict(row["sync_qc"]), _verdict(row["knob"])
        row["coverage"] = sum(row["coverage"]) / len(row["coverage"]) if row["coverage"] else None
    return list(rows.values())


def session(key: dict) -> dict:
    """The session's own row, its 3D poses (keys for exports), cameras with 2D pose per model and units."""
    found = (raw.Session & key).to_dicts()
    if not found:
        raise NotFoundError(f"no session {key}")
    models = (pose.PoseModel.proj() & (pose.Pose2D & key).proj()).to_dicts()
    return {"session": found[0],
            "pose3d": (pose.Pose3D & key).proj().to_dicts(),
            "models": [{**m, "cameras": sorted((pose.Pose2D & key & m).to_arrays("camera"))} for m in models],
            "units": units(key)}


def units(key: dict | None = None) -> list[dict]:
    """Units (of one session, or all) with their spike counts and tuning p-values where computed."""
    restriction = key or {}
    tuning = defaultdict(list)
    for r in (analysis.UnitTuning & restriction).proj("speed_p_value", "direction_p_value").to_dicts():
        tuning[(*_key(r), r["unit_id"])].append(r)
    rows = []
    for r in ((raw.Unit & restriction).proj("tetrode", "n_spikes", "snr")
              .to_dicts(order_by=("subject", "session_datetime", "unit_id"))):
        tuned = tuning.get((*_key(r), r["unit_id"]))
        rows.append({**r, "speed_p_value": tuned[0]["speed_p_value"] if tuned else None,
                     "direction_p_value": tuned[0]["direction_p_value"] if tuned else None})
    return rows


def calibrations() -> list[dict]:
    """Every calibration per rig in date order, each camera with its drift since the rig's previous one."""
    cameras = defaultdict(dict)
    for r in calibration.Calibration.Camera.proj("camera_matrix", "rotation", "translation", "rms_px").to_dicts():
        cameras[(r["rig"], r["calibration_date"])][r["camera"]] = r
    rows, previous = [], {}
    for c in calibration.Calibration.to_dicts(order_by=("rig", "calibration_date")):
        now = cameras[(c["rig"], c["calibration_date"])]
        before = previous.get(c["rig"], {})
        c["cameras"] = [{"camera": name, "rms_px": r["rms_px"],
                         "drift": camera_drift(*({"K": x["camera_matrix"], "R": x["rotation"], "t": x["translation"]}
                                                 for x in (before[name], r))) if name in before else None}
                        for name, r in now.items()]
        previous[c["rig"]] = now
        rows.append(c)
    return rows


def models() -> list[dict]:
    """Every trained or registered model with its training set and evaluation errors."""
    parts = defaultdict(list)
    for r in pose.TrainingSet.BodyPart.proj().to_dicts():
        parts[r["training_set"]].append(r["bodypart"])
    sets = {r["training_set"]: r for r in pose.TrainingSet.to_dicts()}
    rows = []
    for m in (pose.PoseModel * pose.PoseModelParams).proj(
            "mode", "net_type", "epochs", "train_indices", "test_indices", "train_error_px", "test_error_px",
            "train_error_pcutoff_px", "test_error_pcutoff_px", "pcutoff").to_dicts():
        rows.append({**m, "n_train": len(m.pop("train_indices")), "n_test": len(m.pop("test_indices")),
                     "labeled_dir": sets[m["training_set"]]["labeled_dir"], "bodyparts": parts[m["training_set"]]})
    return rows


# tables whose rows a session's report is drawn from (apart from the session's raw rows)
REPORT_TABLES = (sync.SyncedFrames, sync.SessionSync, calibration.SessionCalibration, pose.Pose2D,
                 pose.Pose3D.BodyPart, analysis.KnobValidation, analysis.UnitTuning)


def session_version(key: dict) -> str:
    """A digest of the session's rows in the report's tables (their scalar attributes): it changes when
    a stage adds, deletes or recomputes the session's rows."""
    digest = hashlib.sha1()
    for table in REPORT_TABLES:
        scalars = [n for n in table.heading.secondary_attributes
                   if not (lambda a: a.is_blob or a.json or a.codec)(table.heading.attributes[n])]
        rows = (table & key).proj(*scalars).to_dicts(order_by=table.primary_key)
        digest.update(repr((table.__name__, rows)).encode())
    return digest.hexdigest()[:16]
