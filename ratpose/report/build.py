"""Write a SessionReport as index.html with its PNGs beside it."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..behaviour.validation import plot_knob_validation
from ..calibration.qc import CalibrationReport, plot_report
from . import html
from .data import ExampleFrame, SessionReport
from .plots import plot_decoding, plot_encoding_filters, plot_sync, plot_trajectories, plot_trajectory_3d, plot_unit
from .video import draw_pose, part_colour

MIN_FRAME_WIDTH = 640  # example frames narrower than this are enlarged (integer factor) before drawing


def write_report(report: SessionReport, out_dir) -> Path:
    """Draw every section's figures into ``out_dir`` and write ``out_dir/index.html``; returns its path.

    Sections without data show why (``report.missing``).

    Parameters
    ----------
    report : SessionReport
        The report's data (``ratpose.schema.report_data.fetch_report``).
    out_dir : str or Path
        Created if need be; the PNGs go beside index.html.

    Returns
    -------
    Path
        ``out_dir``/index.html.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = [html.Section("qc", "QC summary", _qc_body(report))]
    for section_id, heading, has_data, draw in (
            ("sync", "Synchronisation", report.sync, _sync_body),
            ("calibration", "Calibration", report.calibration, _calibration_body),
            ("trajectories", "2D trajectories", report.tracks, _trajectories_body),
            ("pose3d", "3D pose", report.pose3d is not None, _pose3d_body),
            ("frames", "Example frames", report.examples, _frames_body),
            ("validation", "Knob validation", report.validation is not None, _validation_body),
            ("units", "Units", report.units, _units_body),
            ("encoding", "Encoding models", report.encoding, _encoding_body),
            ("decoding", "Population decoding", report.decoding is not None, _decoding_body)):
        body = draw(report, out_dir) if has_data else html.missing(report.missing.get(section_id, "no data"))
        sections.append(html.Section(section_id, heading, body))
    subtitle = ", ".join(f"{k}: {v}" for k, v in report.info.items())
    path = out_dir / "index.html"
    path.write_text(html.page(report.title, subtitle, sections), encoding="utf-8")
    return path


def _qc_body(report: SessionReport) -> str:
    return html.table(["measure", "value"], [[k, v] for k, v in report.qc.items()])


def session_start(report: SessionReport) -> float:
    """Neural-clock time (s) of the session's first frame: the zero of the report's time axes."""
    firsts = [c.time_s[0] for c in report.sync if c.time_s.size] + [t.time_s[0] for t in report.tracks if t.time_s.size]
    return float(min(firsts)) if firsts else 0.0


def _time_caption(report: SessionReport) -> str:
    return f"time from session start = neural clock - {session_start(report):.3f} s"


def _sync_body(report: SessionReport, out_dir: Path) -> str:
    plot_sync(report.sync, out_dir / "sync.png", session_start(report))
    return html.image("sync.png", "frame intervals and dropped pulses per camera",
                      f"frame intervals and dropped pulses per camera; {_time_caption(report)}")


def _calibration_body(report: SessionReport, out_dir: Path) -> str:
    summary = CalibrationReport({q.name: q for q in report.calibration}, report.calibration_rms_px,
                                n_joint_instants=report.calibration_joint_instants,
                                n_evaluations=0, converged=True)
    return _calibration_html(summary, out_dir, "calibration.png")


def _calibration_html(summary: CalibrationReport, out_dir: Path, png: str) -> str:
    """Per-camera quality table (held-out error of the chosen lens model beside OpenCV's default) and the
    corners/residuals figure, drawn into ``out_dir / png``."""
    plot_report(summary, out_dir / png)
    number = lambda value: "-" if value is None else round(value, 3)  # noqa: E731
    rows = [[q.name, q.lens_model, round(q.rms_px, 3), round(q.p95_px, 3), number(q.heldout_px.get(q.lens_model)),
             number(q.heldout_px.get("opencv")), f"{q.coverage:.0%}", q.n_shared_views, q.n_single_views]
            for q in summary.cameras.values()]
    return (html.table(["camera", "lens model", "RMS (px)", "p95 (px)", "held-out (px)", "OpenCV default held-out (px)",
                        "coverage", "shared views", "single views"], rows)
            + html.image(png, "calibration corners and residuals per camera"))


def write_calibration_report(summary: CalibrationReport, path, title: str, subtitle: str = "") -> Path:
    """A calibration's QC page at ``path`` (.html), its figure beside it (same name, .png); returns ``path``.

    Parameters
    ----------
    summary : CalibrationReport
    path : str or Path
        The page; its folder is created if need be.
    title : str
    subtitle : str

    Returns
    -------
    Path
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    overall = html.table(["measure", "value"], [["RMS after bundle adjustment (px)", round(summary.rms_px, 3)],
                                                ["instants seen by 2+ cameras", summary.n_joint_instants],
                                                ["converged", str(summary.converged)]])
    body = _calibration_html(summary, path.parent, path.with_suffix(".png").name)
    path.write_text(html.page(title, subtitle, [html.Section("calibration", "Calibration", overall + body)]),
                    encoding="utf-8")
    return path


def _trajectories_body(report: SessionReport, out_dir: Path) -> str:
    parts = []
    for track in report.tracks:
        name = f"trajectories_{track.camera}.png"
        plot_trajectories(track, report.bodyparts, out_dir / name, report.min_likelihood, session_start(report))
        parts.append(html.image(name, f"2D trajectories, {track.camera}",
                                f"2D trajectories, {track.camera}; {_time_caption(report)}"))
    return "".join(parts)


def _pose3d_body(report: SessionReport, out_dir: Path) -> str:
    plot_trajectory_3d(report.pose3d, report.bodyparts, out_dir / "pose3d.png", session_start(report))
    caption = "3D trajectories and reprojection errors" + ("" if "sigma_mm" not in report.pose3d else
                                                            ", posterior sigma and 2D outliers")
    return html.image("pose3d.png", caption) + _pose3d_validation(report.pose3d_validation)


def _pose3d_validation(validation: dict[str, dict]) -> str:
    """The learned acceleration prior and the held-out-camera error per body part, as a table."""
    if not validation:
        return ""
    cameras = list(dict.fromkeys(c for v in validation.values() for c in v["held_out_px"]))
    rows = [[part, "-" if v["accel_mm_s2"] is None else round(v["accel_mm_s2"]),
             *("-" if not np.isfinite(v["held_out_px"].get(c, np.nan)) else round(v["held_out_px"][c], 2)
               for c in cameras)] for part, v in validation.items()]
    note = ("Held-out-camera error: each camera left out in turn, 3D from the others projected into it, median "
            "px against its own 2D (the check a lab can make without ground truth)." if cameras else
            "Held-out-camera error needs 3 or more cameras.")
    return (f"<p>{note}</p>" + html.table(["body part", "acceleration prior (mm/s^2)",
                                           *(f"{c}: held out (px)" for c in cameras)], rows))


def example_image(example: ExampleFrame, min_likelihood: float) -> np.ndarray:
    """RGB picture of an example frame (enlarged if small) with its detections and reprojections drawn."""
    scale = max(1, MIN_FRAME_WIDTH // example.image.shape[1])
    image = cv2.resize(example.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    return draw_pose(image, example.points2d * scale, example.reprojected * scale, example.likelihood, min_likelihood)


def _frames_body(report: SessionReport, out_dir: Path) -> str:
    figures = []
    for i, example in enumerate(report.examples):
        name = f"frame_{i}_{example.camera}.png"
        cv2.imwrite(str(out_dir / name), cv2.cvtColor(example_image(example, report.min_likelihood), cv2.COLOR_RGB2BGR))
        figures.append(html.image(name, f"{example.camera} frame", f"{example.camera}, pulse {example.pulse}, "
                                  f"{example.time_s - session_start(report):.3f} s from session start"))
    legend = html.colour_legend([(part, part_colour(p)) for p, part in enumerate(report.bodyparts)])
    return (f"<p>Filled circles: DeepLabCut detections (likelihood >= {report.min_likelihood:g}); hollow circles: "
            f"3D points reprojected into the camera.</p>{legend}"
            f'<div class="frames">{"".join(figures)}</div>')


def _validation_body(report: SessionReport, out_dir: Path) -> str:
    plot_knob_validation(report.validation, out_dir / "knob_validation.png", t0_s=session_start(report))
    return html.image("knob_validation.png", "paw-to-knob distance with touches",
                      f"paw-to-knob distance with touches; {_time_caption(report)}")


def _units_body(report: SessionReport, out_dir: Path) -> str:
    parts = []
    for unit in report.units:
        name = f"unit_{unit.unit_id}.png"
        plot_unit(unit, out_dir / name)
        parts.append(html.image(name, f"unit {unit.unit_id} tuning"))
    return "".join(parts)


def _encoding_body(report: SessionReport, out_dir: Path) -> str:
    rows = [[r["unit_id"], "yes" if r["tuned"] else "no", r["p_value"], r["pseudo_r2"],
             *(r["group_r2"].get(g) for g in ("velocity", "position", "supination")), r["note"]]
            for r in report.encoding]
    table = html.table(["unit", "tuned", "p (LRT)", "pseudo-R2 (held out)", "velocity", "position", "supination",
                        "note"], rows)
    fitted = [r for r in report.encoding if r["filters"]]
    if not fitted:
        return table
    plot_encoding_filters(fitted, report.encoding_lags_s, out_dir / "encoding_filters.png")
    return table + html.image("encoding_filters.png", "encoding filters",
                              "filters over the covariates' history (log rate per scale unit), +-2 SE bands; "
                              "columns per group and vector component")


def _decoding_body(report: SessionReport, out_dir: Path) -> str:
    d = report.decoding
    rows = [[variable, r2, d["kalman_r2"].get(variable), d["bayesian_r2"].get(variable)]
            for variable, r2 in d["linear_r2"].items()]
    rows.append(["knob angle during turns (sensor)", d["knob_turns_r2"], None, None])
    table = html.table(["variable", "R2 linear (held out)", "R2 Kalman", "R2 Bayesian"], rows)
    if d["predicted"] is None or d["note"]:
        return table + (html.missing(d["note"]) if d["note"] else "")
    plot_decoding(d, out_dir / "decoding.png", t0_s=session_start(report))
    return table + html.image("decoding.png", "decoded vs actual", f"held-out decoding; {_time_caption(report)}")
