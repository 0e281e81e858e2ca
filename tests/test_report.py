"""Session report and labeled videos on a simulated session that went through the whole pipeline."""
from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import build_simulated_pipeline, chromium

from ratpose.cli.report import add_commands
from ratpose.figures import read_panels
from ratpose.report import draw_pose, write_labeled_video
from ratpose.report.video import marker_radius, part_colour
from ratpose.sim import SessionSettings

SECTIONS = ("qc", "sync", "calibration", "trajectories", "pose3d", "frames", "validation", "units", "encoding",
            "decoding")


def run_cli(*argv) -> int:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


@pytest.fixture(scope="module")
def session(db, tmp_path_factory):
    """A 40 s simulated session populated through every stage, and its report."""
    root = tmp_path_factory.mktemp("report")
    config = SessionSettings(seconds=40.0, fps=30.0, size=(320, 240), seed=5, subject="rat_report", n_units=3)
    truth, key, results = build_simulated_pipeline(db, root, config)
    assert not any(r["error_list"] for r in results.values())
    assert run_cli("report", root / "session", "--out", root / "report") == 0
    return truth, key, root


def _image_references(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]+)"', page)


def _assert_real_picture(path: Path, min_size=(200, 300)) -> None:
    image = cv2.imread(str(path))
    assert image is not None, path
    assert image.shape[0] >= min_size[0] and image.shape[1] >= min_size[1], (path, image.shape)
    assert image.std() > 10, f"{path} looks blank"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50, f"{path} has almost no colours"


def test_report_references_only_existing_non_blank_images(session):
    _, _, root = session
    page = (root / "report" / "index.html").read_text()
    images = _image_references(page)
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert "Not available" not in page
    # 2 cameras x (trajectories + 2 example frames), sync, calibration, 3D, knob validation, 3 units
    # + encoding filters, decoding traces
    assert len(images) == 2 * 3 + 4 + 3 + 2, images
    for src in images:
        assert not src.startswith(("/", "http", "file:")), src
        _assert_real_picture(root / "report" / src)


def test_report_numbers_match_the_simulation(db, session):
    from ratpose.schema import report_data

    truth, key, root = session
    model = report_data.choose_model(key)
    report = report_data.fetch_report(key, model)
    for cam in report.sync:
        delivered = truth.cameras[cam.camera].pulse_index
        assert len(cam.time_s) == len(delivered)
        assert cam.dropped_s.size == delivered[-1] - delivered[0] + 1 - len(delivered)
    true_points = truth.points2d()  # (cameras, pulses, parts, 2)
    cameras = list(truth.cameras)
    assert len(report.examples) == 4
    for example in report.examples:
        truth_xy = true_points[cameras.index(example.camera), example.pulse]
        seen = truth.visible[example.pulse, cameras.index(example.camera)]
        # the detections shown are the DLC file's row of that frame (DLC-like errors: outliers, occlusions
        # of several px); the reprojections of the 3D points stay close to the truth (a part that one camera
        # lost in a fast movement at 30 fps by a few px: measured up to 3.8)
        row = int(np.searchsorted(truth.cameras[example.camera].pulse_index, example.pulse))
        stored = pd.read_hdf(root / "dlc" / f"{example.camera}DLC_sim.h5").to_numpy()
        stored = stored.reshape(len(stored), len(truth.bodyparts), 3)
        np.testing.assert_allclose(example.points2d, stored[row, :, :2])
        reprojection_error = np.linalg.norm(example.reprojected - truth_xy, axis=1)[seen]
        assert np.median(reprojection_error) < 2.0 and reprojection_error.max() < 5.0  # 1 px ~ 0.2 mm
    assert report.validation is not None and report.validation.passed


def test_missing_stages_are_reported_not_fatal(db, session, tmp_path):
    _, key, root = session
    db["pose"].Pose3DParams.insert1({"pose3d_params": "unpopulated", "min_likelihood": 0.6, "refine": 1,
                                     "median_window": 0}, skip_duplicates=True)
    assert run_cli("report", "--subject", key["subject"], "--datetime", key["session_datetime"].isoformat(),
                   "--pose3d-params", "unpopulated", "--out", tmp_path) == 0
    page = (tmp_path / "index.html").read_text()
    notes = re.findall(r'<section id="(\w+)"><h2>[^<]*</h2><p class="missing">', page)
    assert notes == ["pose3d", "frames", "validation", "units", "encoding", "decoding"]
    assert len(_image_references(page)) == 2 + 2  # trajectories per camera, sync, calibration
    assert run_cli("report", "--subject", "nobody", "--datetime", "2020-01-01T00:00:00", "--out", tmp_path) == 1
    assert run_cli("report", root / "calibration", "--out", tmp_path) == 1  # a folder never ingested


def test_every_panel_has_a_title_axis_labels_and_units(session):
    truth, _, root = session
    report = root / "report"
    page = (report / "index.html").read_text()
    panels = {png.name: read_panels(png) for png in report.glob("*.png") if not png.name.startswith("frame_")}
    for name, found in panels.items():
        for panel in found:
            labels = [panel["xlabel"], panel["ylabel"]] + ([panel["zlabel"]] if panel["zlabel"] else [])
            assert all(re.search(r"\(.+\)$", label) for label in labels), (name, panel)  # a unit in brackets
            assert panel["title"], (name, panel)
    assert len(panels["sync.png"]) == 2 and all(p["xlabel"] == "time from session start (s)"
                                                for p in panels["sync.png"])
    assert "frame interval" in panels["sync.png"][0]["legend"]
    for camera in truth.cameras:
        assert len(panels[f"trajectories_{camera}.png"]) == 3
    pose3d = panels["pose3d.png"]
    assert len(pose3d) == 3 and pose3d[1]["xlabel"] == "reprojection error (px)"  # default Pose3D: smooth
    assert pose3d[1]["legend"] == pose3d[0]["legend"] and len(pose3d[1]["legend"]) >= 3  # one entry per part
    assert pose3d[2]["ylabel"] == "posterior sigma (mm)" and pose3d[2]["xlabel"] == "time from session start (s)"
    assert all(re.search(r"\(\d+\.\d% outliers\)$", entry) for entry in pose3d[2]["legend"])
    calibration = panels["calibration.png"]
    assert len(calibration) == 2 and all("mean residual per cell" in p["legend"] for p in calibration)
    assert panels["knob_validation.png"][0]["xlabel"] == "time from session start (s)"
    units = [n for n in panels if n.startswith("unit_")]
    assert len(units) == 3
    for name in units:
        speed, direction, *peths = panels[name]
        assert "shuffle p =" in speed["title"] and "direction tuning" in direction["title"]
        events = [p["title"] for p in peths]
        assert len(peths) >= 1 and all(t.startswith("PETH: ") for t in events) and len(set(events)) == len(events)
    assert page.count("time from session start = neural clock - ") >= 3  # sync, trajectories, knob captions
    legend = re.search(r'<p class="legend">(.*?)</p>', page).group(1)
    assert legend.count("<i style=") == len(pose3d[0]["legend"])


# appended to a copy of the page: records on <body> how many images there are and which failed to load
IMAGE_CHECK = ('<script>window.addEventListener("load", () => {const bad = [...document.images].filter('
               'i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src"));'
               'document.body.dataset.images = document.images.length; document.body.dataset.broken = bad.join(" ");'
               '});</script>')


def test_report_renders_in_a_headless_browser(session, tmp_path):
    _, _, root = session
    page = root / "report" / "index.html"
    _chromium(page, tmp_path, f"--screenshot={tmp_path / 'shot.png'}")
    shot = cv2.imread(str(tmp_path / "shot.png"))
    assert shot.shape[:2] == (2000, 1280)
    assert (shot < 200).any(axis=2).mean() > 0.04  # text and plots, not an empty page
    assert len(np.unique(shot.reshape(-1, 3), axis=0)) > 500
    check = page.with_name("_image_check.html")  # beside the page, so relative paths resolve the same
    html_text = page.read_text()
    for text, expected_broken in ((html_text, ""), (html_text.replace('src="sync.png"', 'src="gone.png"'), "gone.png")):
        check.write_text(text.replace("</body>", IMAGE_CHECK + "</body>"))
        try:
            dom = _chromium(check, tmp_path, "--virtual-time-budget=5000", "--dump-dom")
        finally:
            check.unlink()
        body = re.search(r"<body([^>]*)>", dom).group(1)
        assert f'data-images="{len(_image_references(html_text))}"' in body
        assert f'data-broken="{expected_broken}"' in body
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom
    assert "time from session start = neural clock - " in dom and 'class="legend"' in dom


def _chromium(page: Path, work: Path, *options) -> str:
    """Run headless chromium on a page with the given options (1280x2000 window); returns stdout."""
    command = [str(chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={work / 'profile'}", "--window-size=1280,2000", *options, page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_labeled_videos_of_a_session_keep_every_frame(db, session, tmp_path):
    truth, _, root = session
    assert run_cli("labeled-video", root / "session", "--out", tmp_path, "--format", "mkv") == 0
    for camera, frames in truth.cameras.items():
        assert _count_frames(tmp_path / f"{camera}_labeled.mkv") == len(frames.pulse_index)


def _count_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    n = 0
    while capture.read()[0]:
        n += 1
    capture.release()
    return n


@pytest.fixture
def grey_video(tmp_path):
    """A 12-frame 160x120 grey (value 100) FFV1 video."""
    path = tmp_path / "grey.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 30.0, (160, 120), isColor=False)
    for _ in range(12):
        writer.write(np.full((120, 160), 100, np.uint8))
    writer.release()
    return path


def test_labeled_video_draws_detections_filled_and_reprojections_hollow(grey_video, tmp_path):
    n = 12
    points = np.tile([[100.0, 60.0], [130.0, 90.0]], (n, 1, 1))
    likelihood = np.tile([1.0, 0.1], (n, 1))  # part 1 is below min_likelihood: not drawn
    reprojected = np.tile([[60.0, 100.0], [np.nan, np.nan]], (n, 1, 1))
    out = tmp_path / "labeled.mkv"
    assert write_labeled_video(grey_video, out, points, bodyparts=["paw", "digit"], reprojected=reprojected,
                               likelihood=likelihood, min_likelihood=0.6) == n
    assert _count_frames(out) == n
    capture = cv2.VideoCapture(str(out))
    _, frame = capture.read()
    capture.release()
    paw_bgr = part_colour(0)[::-1]
    assert np.abs(frame[60, 100].astype(int) - paw_bgr).max() <= 2          # filled detection
    assert np.abs(frame[90, 130].astype(int) - 100).max() <= 2              # low likelihood: untouched
    assert np.abs(frame[100, 60].astype(int) - 100).max() <= 2              # hollow: centre untouched
    ring = marker_radius(frame.shape) + marker_radius(frame.shape) // 2 + 1
    assert np.abs(frame[100, 60 + ring].astype(int) - paw_bgr).max() <= 40  # ... its ring coloured
    assert np.abs(frame[5, 150].astype(int) - 100).max() <= 2               # background untouched


def test_labeled_video_refuses_pose_of_another_length(grey_video, tmp_path):
    with pytest.raises(ValueError, match="grey.avi: video has 12 frames but points2d has 5 rows"):
        write_labeled_video(grey_video, tmp_path / "x.mp4", np.zeros((5, 1, 2)), bodyparts=["paw"])
    with pytest.raises(ValueError, match="must end in one of"):
        write_labeled_video(grey_video, tmp_path / "x.gif", np.zeros((12, 1, 2)), bodyparts=["paw"])


def test_draw_pose_returns_a_coloured_copy():
    grey = np.full((50, 80), 30, np.uint8)
    drawn = draw_pose(grey, np.array([[40.0, 25.0]]))
    assert grey.max() == 30 and drawn.shape == (50, 80, 3)
    assert tuple(drawn[25, 40]) == part_colour(0)


def test_labeled_video_legend_is_readable_beside_a_small_frame(grey_video, tmp_path):
    """160x120 (the demo's size): the names go in a strip right of the frame, each line of text at
    least 9 px high (a readable size on screen at 1x), and the frame itself is left as it was."""
    from ratpose.report.video import legend_strip

    names = ["wrist", "paw", "digit1", "digit2", "knob_marker"]
    out = tmp_path / "labeled.mkv"
    write_labeled_video(grey_video, out, np.full((12, 5, 2), np.nan), bodyparts=names)
    capture = cv2.VideoCapture(str(out))
    _, frame = capture.read()
    capture.release()
    strip = legend_strip(120, names)
    assert frame.shape == (120, 160 + strip.shape[1], 3)
    assert np.abs(frame[:, :160].astype(int) - 100).max() <= 2  # no text over the picture
    assert np.abs(frame[:, 160:].astype(int) - strip[:, :, ::-1]).max() <= 2
    for p in range(len(names)):  # 120 px / 5 names: a line of 24 px each
        band = strip[24 * p:24 * (p + 1)].astype(int)
        rows = np.flatnonzero((np.abs(band - part_colour(p)).max(axis=2) < 30).any(axis=1))
        assert rows.size and rows.max() - rows.min() + 1 >= 9, (p, rows)
