"""`ratpose serve` on a simulated database, run as a read-only user and driven by headless Chromium."""
from __future__ import annotations

import csv
import io
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import build_simulated_pipeline, chromium
from web_helpers import reader_account, running_server

from ratpose.calibration.drift import camera_drift
from ratpose.sim import SessionSettings

EVIL = "<script>alert(1)</script>"
EVIL_SESSION = {"subject": EVIL, "session_datetime": datetime(2026, 3, 4, 9, 30)}


@pytest.fixture(scope="module")
def server(db, tmp_path_factory):
    """A populated simulated session, a second bare session of subject EVIL, an injected job error, and
    the server running as a fresh read-only user; yields (base URL, session key, truth, root)."""
    root = tmp_path_factory.mktemp("web")
    config = SessionSettings(seconds=20.0, fps=30.0, size=(240, 180), seed=3, subject="rat_web", n_units=2)
    truth, key, results = build_simulated_pipeline(db, root, config)
    assert not any(r["error_list"] for r in results.values())
    raw, sync = db["raw"], db["sync"]
    raw.Subject.insert1({"subject": EVIL, "notes": EVIL})
    raw.Session.insert1({**EVIL_SESSION, "rig": "rig_b", "task": "knob", "session_dir": str(root / "evil"),
                         "trigger_rate_hz": 30.0, "notes": EVIL})
    sync.SyncQCParams.insert1({"sync_qc": "strict", "max_drop_fraction": 0.0, "max_residual_us": 1.0})
    error_key = {**key, "sync_qc": "strict"}  # a job of the pipeline's own API, marked failed
    sync.SessionSync.jobs.refresh()
    assert sync.SessionSync.jobs.reserve(error_key)
    sync.SessionSync.jobs.error(error_key, f"injected failure {EVIL}")
    with reader_account() as account, running_server(root / "cache", **account) as base:
        yield base, key, truth, root


def _dom(url: str, work: Path) -> str:
    """The page's DOM after loading in headless Chromium."""
    command = [str(chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={work / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _rows(dom: str) -> list[str]:
    return re.findall(r'<tr class="session">(.*?)</tr>', dom, re.S)


def test_sessions_page_lists_filters_and_escapes(server, tmp_path):
    base, key, truth, _ = server
    dom = _dom(base + "/", tmp_path)
    rows = _rows(dom)
    assert len(rows) == 2 and "2 of 2 sessions" in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and EVIL not in dom
    populated = next(r for r in rows if "rat_web" in r)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", populated, re.S)
    n_frames = sum(len(c.pulse_index) for c in truth.cameras.values())
    assert f"{n_frames} ({len(truth.cameras)} cameras)" in cells[4]
    assert cells[5] == "PASS" and cells[8] in ("PASS", "FAIL") and cells[9] == "2"
    assert float(cells[3]) == pytest.approx(20.0, abs=0.2)
    assert 50.0 < float(cells[7].rstrip("%")) <= 100.0
    for query, expected in (("?subject=rat_web", ["rat_web"]), ("?rig=rig_b", [EVIL]), ("?qc=pending", [EVIL]),
                            ("?from=2026-03-04&to=2026-03-04", [EVIL]), ("?from=2099-01-01", [])):
        shown = [re.search(r'datetime=[^"]*">(.*?)</a>', r).group(1) for r in _rows(_dom(base + "/" + query, tmp_path))]
        assert shown == [s.replace("<", "&lt;").replace(">", "&gt;") for s in expected], query
    ascending = _rows(_dom(base + "/?sort=units", tmp_path))
    descending = _rows(_dom(base + "/?sort=units&desc=1", tmp_path))
    assert "rat_web" in ascending[1] and "rat_web" in descending[0]
    assert httpx.get(base + "/?from=yesterday").status_code == 400


def test_session_page_shows_the_report_and_refreshes_it(db, server, tmp_path):
    base, key, truth, _ = server
    params = {"subject": key["subject"], "datetime": key["session_datetime"].isoformat()}
    page = httpx.get(base + "/session", params=params, timeout=30).text
    assert 'title="session report"' in page and page.count('class="export"') == 2
    assert page.count('class="video"') == len(truth.cameras)
    first = httpx.get(base + "/session/report", params=params, timeout=120)
    assert first.status_code == 307
    dom = _dom(first.headers["location"], tmp_path)
    for section in ("qc", "sync", "calibration", "trajectories", "pose3d", "frames", "validation", "units"):
        assert f'<section id="{section}">' in dom
    assert "Not available" not in dom
    images = re.findall(r'<img src="([^"]+)"', dom)
    assert images and all(httpx.get(httpx.URL(first.headers["location"]).join(i)).status_code == 200 for i in images)
    assert (httpx.get(base + "/session/report", params=params, timeout=120).headers["location"]
            == first.headers["location"])
    (db["analysis"].KnobValidation & key).delete(prompt=False)  # a stage's rows change: the report is redrawn
    again = httpx.get(base + "/session/report", params=params, timeout=120).headers["location"]
    assert again != first.headers["location"]
    assert 'id="validation"><h2>Knob validation</h2><p class="missing">' in httpx.get(again, timeout=30).text


def test_exports_download_the_sessions_pose(server):
    base, key, truth, root = server
    params = {"subject": key["subject"], "datetime": key["session_datetime"].isoformat(), "training_set": "sim",
              "pose_params": "external", "pose3d_params": "default", "format": "csv"}
    response = httpx.get(base + "/session/export", params=params, timeout=60)
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    lines = list(csv.reader(io.StringIO(response.text)))
    common = set.intersection(*(set(c.pulse_index) for c in truth.cameras.values()))
    assert len(lines) - 3 == pytest.approx(len(common), abs=len(common) * 0.05)  # 3 header rows (Anipose CSV)
    response = httpx.get(base + "/session/export", params={**params, "format": "nwb"}, timeout=60)
    assert response.status_code == 200 and response.content[:8] == b"\x89HDF\r\n\x1a\n"
    assert httpx.get(base + "/session/export", params={**params, "pose_params": "nope"}).status_code == 404
    name = f"rat_web_{key['session_datetime']:%Y%m%d_%H%M%S}.nwb"
    assert response.headers["content-disposition"] == f'attachment; filename="{name}"'
    exports = root / "cache" / "exports"
    for _ in range(50):  # each export is deleted once sent
        if not any(exports.iterdir()):
            break
        time.sleep(0.1)
    assert not any(exports.iterdir())


def test_pipeline_page_lists_the_injected_error(server, tmp_path):
    base, _, _, _ = server
    dom = _dom(base + "/pipeline", tmp_path)
    assert '<meta http-equiv="refresh"' in dom
    errors = re.findall(r"<li>(.*?)</li>", re.search(r'<ul id="errors">(.*?)</ul>', dom, re.S).group(1), re.S)
    assert len(errors) == 1
    assert "SessionSync" in errors[0] and "sync_qc=strict" in errors[0] and "subject=rat_web" in errors[0]
    assert "injected failure &lt;script&gt;alert(1)&lt;/script&gt;" in errors[0] and EVIL not in dom
    row = re.search(r"<tr><td>SessionSync</td>(.*?)</tr>", dom, re.S).group(1)
    # done, pending (errors not counted twice), reserved, error
    assert [int(v) for v in re.findall(r">(\d+)<", row)] == [1, 0, 0, 1]


def test_rigs_models_and_units_pages(server, tmp_path):
    base, key, truth, _ = server
    rigs = _dom(base + "/rigs", tmp_path)
    assert rigs.count("first calibration") == len(truth.cameras)
    models = _dom(base + "/models", tmp_path)
    assert "<td>sim</td><td>external</td>" in models
    units = _dom(base + "/units", tmp_path)
    assert len(re.findall(r"<tr><td>rat_web</td>", units)) == 2


def test_camera_drift_measures_a_known_move():
    angle = np.radians(2.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    before = {"K": np.diag([800.0, 800.0, 1.0]), "R": np.eye(3), "t": np.array([-100.0, 0.0, 0.0])}
    after = {"K": np.diag([808.0, 808.0, 1.0]), "R": rotation, "t": rotation @ np.array([-103.0, -4.0, 0.0])}
    drift = camera_drift(before, after)
    assert drift["baseline_mm"] == pytest.approx(5.0)  # centre (100, 0, 0) -> (103, 4, 0)
    assert drift["rotation_deg"] == pytest.approx(2.0)
    assert drift["focal_pct"] == pytest.approx(1.0)
