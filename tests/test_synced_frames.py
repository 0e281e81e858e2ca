"""SyncedFrames in the database recovers the simulator's true pulse of every frame."""
from __future__ import annotations

import numpy as np
import pytest

from ratpose import schema
from ratpose.ingest.session_folder import read_session_folder
from ratpose.schema.jobs import populate
from ratpose.sim import SessionSettings, write_session


@pytest.mark.parametrize("config", [
    SessionSettings(seconds=2.0, fps=100.0, seed=11, subject="rat_sync", loss_rate=0.01, miss_rate=0.005),
    SessionSettings(seconds=2.0, fps=226.0, seed=12, subject="rat_wrap", wrap=True, drift_ppm=95.0,
                  armed_after_pulses=17),
], ids=["drops", "wrap-drift-prearm"])
def test_synced_frames_match_truth(clean_db, tmp_path, config):
    truth = write_session(tmp_path / "s", config)
    key, _ = clean_db["raw"].insert_session(read_session_folder(tmp_path / "s"))
    results = populate(schema.computed_tables({s: clean_db[s] for s in ("raw", "sync")}))
    assert all(not r["error_list"] for r in results.values()), results
    synced = clean_db["sync"].SyncedFrames
    for camera, frames in truth.cameras.items():
        row = (synced & key & {"camera": camera}).to_dicts()[0]
        np.testing.assert_array_equal(row["pulse_index"], frames.pulse_index)
        assert np.max(np.abs(row["time_s"] - truth.pulse_time_s[frames.pulse_index])) < 1e-6
        def in_span(p):
            return p[(p >= frames.pulse_index[0]) & (p <= frames.pulse_index[-1])]
        assert row["lost_in_transfer"] == len(in_span(frames.lost_pulses))
        assert row["missed_trigger"] == len(in_span(frames.missed_pulses))
    drift = (synced & key & {"camera": "cam0"}).fetch1("drift_ppm")
    assert abs(drift - config.drift_ppm) < 1.0
    session_qc = (clean_db["sync"].SessionSync & key).to_dicts()[0]
    common = np.intersect1d(truth.cameras["cam0"].pulse_index, truth.cameras["cam1"].pulse_index)
    assert session_qc["n_common_frames"] == len(common)


def test_a_recording_whose_camera_stopped_ingests_and_says_so(clean_db, tmp_path):
    """A camera unplugged mid-recording: the folder ingests, SyncedFrames places its frames before the stop
    and SessionSync names the loss."""
    from ratpose.acquisition import record, rig_config_from_dict
    from ratpose.acquisition.recorder import build_simulated_backends
    cfg = rig_config_from_dict({
        "session": {"subject": "rat_unplug"}, "trigger": {"backend": "simulated", "rate_hz": 100.0},
        "storage": {"codec": "ffv1"}, "simulation": {"duration_s": 6.0},
        "camera": [{"name": c, "role": r, "roi": [0, 0, 64, 48], "exposure_us": 1000}
                   for c, r in (("cam0", "primary"), ("cam1", "secondary"))]})
    cameras, trigger = build_simulated_backends(cfg)
    cameras[1].unplug_after_frames = 150
    result = record(cfg, tmp_path / "s", cameras=cameras, trigger=trigger, handle_sigint=False)
    assert result.status == "camera_error"
    key, _ = clean_db["raw"].insert_session(read_session_folder(tmp_path / "s"))
    results = populate(schema.computed_tables({s: clean_db[s] for s in ("raw", "sync")}))
    assert all(not r["error_list"] for r in results.values()), results
    truth = trigger.truth.cameras["cam1"]
    row = (clean_db["sync"].SyncedFrames & key & {"camera": "cam1"}).to_dicts()[0]
    np.testing.assert_array_equal(row["pulse_index"], truth.pulse_index[:150])
    session_qc = (clean_db["sync"].SessionSync & key).to_dicts()[0]
    assert not session_qc["passed"]
    assert f"cam1: frames end {row['n_pulses'] - 1 - row['last_pulse']} pulses before" in session_qc["problems"]
    assert "cam0" not in session_qc["problems"]
