"""Acquisition: simulated rig -> recorder -> session folder, checked against the simulator's truth."""
from __future__ import annotations

import errno
import os
import signal
import threading
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import av
import numpy as np
import pytest

from ratpose.acquisition import (
    CameraSettings,
    RigConfigError,
    RigSettings,
    load_rig_config,
    record,
    rig_config_from_dict,
)
from ratpose.acquisition.recorder import build_simulated_backends, default_writer
from ratpose.acquisition.ring_buffer import EventWindows, FrameRing, RingSegmenter, kept_fraction, merge_windows
from ratpose.acquisition.simulated import SimulatedKnob
from ratpose.ingest.session_folder import read_session_folder
from ratpose.sync import align_frames
from ratpose.video import VideoWriter, count_frames, resolve_codec

ROOT = Path(__file__).resolve().parents[1]
W, H, RATE = 160, 128, 200.0


def stamped(pulse_index: int, time_s: float, camera: str) -> np.ndarray:
    """Content that carries its pulse index in the first pixels (readable back from a lossless video)."""
    image = np.full((H, W), 40, np.uint8)
    image[0, :4] = np.frombuffer(np.uint32(pulse_index).tobytes(), np.uint8)
    x = int(20 + 100 * (0.5 + 0.5 * np.sin(time_s)))
    image[50:70, x:x + 20] = 220
    return image


def read_stamps(video: Path) -> np.ndarray:
    with av.open(str(video)) as c:
        return np.array([np.frombuffer(f.to_ndarray(format="gray")[0, :4].tobytes(), np.uint32)[0]
                         for f in c.decode(video=0)], dtype=np.int64)


def make_config(duration_s=6.0, ring=None, codec="ffv1", realtime=False, **sim_cams):
    cams = sim_cams or {"cam0": {"loss_rate": 0.01, "miss_rate": 0.01, "drift_ppm": 30.0},
                        "cam1": {"loss_rate": 0.02, "drift_ppm": -40.0, "clock_offset_ns": 123_456_789}}
    doc = {"session": {"timezone": "Asia/Tokyo"}, "trigger": {"backend": "simulated", "rate_hz": RATE},
           "storage": {"codec": codec, "queue_frames": 64},
           "camera": [{"name": "cam0", "role": "primary", "roi": [0, 0, W, H], "exposure_us": 1000},
                      {"name": "cam1", "role": "secondary", "roi": [0, 0, W, H], "exposure_us": 1000}],
           # start 1 s before the uint32 tick counter wraps
           "simulation": {"duration_s": duration_s, "start_tick_us": 2**32 - 1_000_000, "realtime": realtime,
                          "seed": 3, "camera": cams}}
    if ring:
        doc["ring_buffer"] = {"enabled": True, **ring}
    return rig_config_from_dict(doc)


def run(cfg, tmp_path, name="s", sources=(), content=stamped, **kwargs):
    cams, trig = build_simulated_backends(cfg, content=content)
    for cam, unplug in kwargs.pop("unplug", {}).items():
        next(c for c in cams if c.name == cam).unplug_after_frames = unplug
    result = record(cfg, tmp_path / name, cameras=cams, trigger=trig, event_sources=sources, **kwargs)
    return result, trig.truth


def check_camera(session, truth, name):
    """frames.csv and video agree with the simulator; align_frames recovers every frame's pulse exactly."""
    cam = next(c for c in session.cameras if c.name == name)
    stamps = read_stamps(cam.video)
    assert len(stamps) == cam.n_frames == len(cam.frame_id)
    t = truth.cameras[name]
    rows = np.searchsorted(t.frame_id, cam.frame_id)
    np.testing.assert_array_equal(t.frame_id[rows], cam.frame_id)  # every row is a real delivered frame
    np.testing.assert_array_equal(t.camera_ts_ns[rows], cam.camera_ts_ns)
    np.testing.assert_array_equal(t.pulse_index[rows], stamps)  # video frame i is frames.csv row i
    alignment = align_frames(cam.frame_id, cam.camera_ts_ns, session.tick_us, rate_hz=session.trigger_rate_hz)
    np.testing.assert_array_equal(alignment.pulse_index, stamps)
    return stamps


# --- ring buffer pieces -------------------------------------------------------------------------------

def test_merge_windows_matches_brute_force():
    rng = np.random.default_rng(1)
    events = rng.uniform(0, 100, 30)
    windows = merge_windows(events, 5.0, 2.0)
    grid = np.linspace(-10, 110, 120_001)
    inside_truth = np.any((grid[:, None] >= events - 5.0) & (grid[:, None] <= events + 2.0), axis=1)
    idx = np.searchsorted(windows[:, 0], grid, side="right") - 1
    inside = (idx >= 0) & (grid <= windows[np.maximum(idx, 0), 1])
    np.testing.assert_array_equal(inside, inside_truth)
    assert np.all(windows[1:, 0] > windows[:-1, 1])  # disjoint and sorted
    np.testing.assert_allclose(merge_windows([10.0, 12.0, 30.0], 5, 2), [[5, 14], [25, 32]])
    assert kept_fraction([10.0, 12.0, 30.0], 5, 2, 100.0) == pytest.approx(0.16)
    with pytest.raises(ValueError):
        merge_windows([1.0], -1, 2)


def test_ring_segmenter_keeps_exactly_the_windows():
    windows = EventWindows(pre_s=0.5, post_s=0.2, latency_s=0.0)
    kept = []
    ring = FrameRing(80, 4, 6)
    pushed = {}
    seg = RingSegmenter(ring, windows, lambda img, fid, ts, exp: kept.append((fid, int(img[0, 0]), img is pushed[fid])))
    times = np.arange(400) / 100.0
    for i, t in enumerate(times):
        if i in (150, 170, 330):  # 150 and 170 overlap -> one merged window
            windows.add(t, "knob")
        windows.advance(t)
        pushed[i] = np.full((4, 6), i % 256, np.uint8)
        seg.push(pushed[i], i, 1000 * i, 1.0, t)
    windows.advance(np.inf)
    seg.flush()
    assert all(k[2] for k in kept)  # images are kept by reference, not copied
    assert ring.images == [None] * 80  # a released frame is let go
    expected = [i for i, t in enumerate(times)
                if any(times[e] - 0.5 - 1e-9 <= t <= times[e] + 0.2 + 1e-9 for e in (150, 170, 330))]
    assert [k[0] for k in kept] == expected
    assert [k[1] for k in kept] == [i % 256 for i in expected]  # the image travels with its metadata
    assert len(windows.windows) == 2
    assert seg.kept + seg.dropped == 400


# --- writers ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("codec,container,min_psnr", [("raw", "avi", np.inf), ("ffv1", "mkv", np.inf),
                                                      ("h264", "mkv", 38.0), ("h265", "mkv", 36.0)])
def test_writers_roundtrip(tmp_path, codec, container, min_psnr):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W]  # smooth camera-like texture plus sensor noise
    base = (100 + 60 * np.sin(xx / 9.0) * np.cos(yy / 7.0) + rng.normal(0, 2, (H, W))).astype(np.uint8)
    frames = [np.roll(base, 3 * i, axis=1) for i in range(12)]
    path = tmp_path / f"v.{container}"
    writer = VideoWriter(path, W, H, RATE, codec=codec, crf=16)
    for f in frames:
        writer.write(f)
    writer.close()
    assert count_frames(path) == 12
    with av.open(str(path)) as c:
        decoded = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    assert len(decoded) == 12
    mse = np.mean([(a.astype(float) - b) ** 2 for a, b in zip(decoded, frames)])
    psnr = np.inf if mse == 0 else 10 * np.log10(255**2 / mse)
    assert psnr >= min_psnr  # lossless: exact; CRF 16: visually lossless (> 36 dB)
    with pytest.raises(ValueError, match="expected"):
        VideoWriter(tmp_path / f"w.{container}", W, H, RATE, codec=codec).write(np.zeros((H, W + 1), np.uint8))


def test_nvenc_falls_back_to_libx264_without_gpu():
    from ratpose.video import nvenc_available
    assert resolve_codec("h264_nvenc") == ("h264_nvenc" if nvenc_available() else "h264")
    with pytest.raises(ValueError, match="codec must be one of"):
        resolve_codec("mjpeg")


# --- config -------------------------------------------------------------------------------------------

def test_example_config_loads_and_bad_configs_are_named():
    cfg = load_rig_config(ROOT / "examples" / "rig.toml")
    assert [c.role for c in cfg.cameras] == ["primary", "secondary"]
    assert cfg.primary.strobe_line and cfg.cameras[1].trigger_line
    with pytest.raises(RigConfigError, match="exposure_us"):
        RigSettings(cameras=(CameraSettings(name="cam0", exposure_us=5000.0),),
                  trigger=cfg.trigger)  # 5 ms does not fit in a 226 Hz period (4425 us)
    with pytest.raises(RigConfigError, match="unknown key"):
        rig_config_from_dict({"camera": [{"name": "cam0", "exposure": 100}]})
    with pytest.raises(RigConfigError, match=r"\[session\] time zone 'Mars/Olympus' is not an IANA"):
        rig_config_from_dict({"session": {"timezone": "Mars/Olympus"}, "camera": [{"name": "cam0"}]})
    assert load_rig_config(ROOT / "examples" / "rig.toml").session.timezone == "Europe/London"
    with pytest.raises(RigConfigError, match="exactly one camera"):
        rig_config_from_dict({"camera": [{"name": "a", "role": "secondary"}]})
    with pytest.raises(RigConfigError, match="not valid TOML"):
        bad = ROOT / "tests" / "_bad_rig.toml"
        try:
            bad.write_text("[camera\n")
            load_rig_config(bad)
        finally:
            bad.unlink()


# --- recordings ---------------------------------------------------------------------------------------

def test_record_continuous_session_is_valid_and_syncs(tmp_path):
    cfg = make_config(duration_s=6.0)
    t0 = 2**32 / 1e6 - 1.0
    knob = SimulatedKnob([t0 + 1.0, t0 + 3.0], [t0 + 1.5, t0 + 3.5], start_s=t0)
    result, truth = run(cfg, tmp_path, sources=[knob])
    assert result.status == "completed", result.message
    session = read_session_folder(result.session_dir)
    np.testing.assert_array_equal(session.tick_us, truth.tick_us)  # every pulse, wrapping included
    assert session.tick_us[-1] < session.tick_us[0]
    assert session.timezone == "Asia/Tokyo"  # the rig's zone, and session_datetime is local time there
    tokyo_now = datetime.now(ZoneInfo("Asia/Tokyo")).replace(tzinfo=None)
    assert timedelta(0) <= tokyo_now - session.session_datetime < timedelta(minutes=5)
    for name in ("cam0", "cam1"):
        stamps = check_camera(session, truth, name)
        np.testing.assert_array_equal(stamps, truth.cameras[name].pulse_index)  # nothing else lost
        report = result.cameras[name]
        assert report.transfer_lost == len(truth.cameras[name].lost_pulses) > 0
        assert report.queue_dropped == 0
    np.testing.assert_allclose(session.touch_on_s, [t0 + 1.0, t0 + 3.0])
    span_s = truth.pulse_time_s[-1] - t0  # angle sampled at 100 Hz from t0 to the last pulse
    assert len(session.angle_time_s) == int(span_s * 100) + 1
    assert session.angle_deg.max() > 55


def test_ring_buffer_keeps_event_windows_with_full_preroll(tmp_path):
    pre, post = 1.0, 0.5
    cfg = make_config(duration_s=8.0, ring={"pre_s": pre, "post_s": post, "latency_s": 0.1, "policy": ["knob"]})
    t0 = 2**32 / 1e6 - 1.0
    on = np.array([t0 + 1.5, t0 + 2.2, t0 + 6.0])  # the first two windows overlap and merge
    result, truth = run(cfg, tmp_path, sources=[SimulatedKnob(on, on + 0.3)])
    assert result.status == "completed", result.message
    np.testing.assert_allclose(result.segments, [[on[0] - pre, on[1] + post], [on[2] - pre, on[2] + post]])
    session = read_session_folder(result.session_dir)
    for name in ("cam0", "cam1"):
        stamps = check_camera(session, truth, name)  # sync still exact across the gaps between segments
        t = truth.cameras[name]
        pulse_time = truth.pulse_time_s[t.pulse_index]
        inside = np.zeros(len(pulse_time), bool)
        for a, b in result.segments:
            inside |= (pulse_time >= a) & (pulse_time <= b)
        # exactly the delivered frames inside the windows: full pre-roll, nothing else
        np.testing.assert_array_equal(stamps, t.pulse_index[inside])
        assert result.cameras[name].ring_dropped == (~inside).sum()
    assert (tmp_path / "s" / "segments.csv").read_text().count("\n") == 3


def test_motion_policy_detects_movement_onset(tmp_path):
    moving = [(2.0, 2.4), (5.0, 5.3)]  # seconds after the first pulse, blob moves only then
    t0 = 2**32 / 1e6 - 1.0

    def content(pulse_index, time_s, camera):
        image = stamped(pulse_index, 0.0, camera)
        rel = time_s - t0
        for a, b in moving:
            if a <= rel <= b:
                image[50:70] = 40
                x = int(20 + 200 * (rel - a))
                image[50:70, x:x + 20] = 220
        return image

    cfg = make_config(duration_s=7.0, ring={"pre_s": 0.5, "post_s": 0.5, "policy": ["motion"],
                                            "motion_roi": [0, 40, W, 40], "motion_threshold": 2.0})
    result, truth = run(cfg, tmp_path, content=content)
    assert result.status == "completed", result.message
    onsets = np.array([t for t, s in result.events if s == "motion"]) - t0
    # the first frame that differs from its predecessor: within one frame of the onset (+ a missed pulse)
    np.testing.assert_allclose(onsets, [a for a, _ in moving], atol=2.5 / RATE)
    read_session_folder(result.session_dir)


def test_disk_full_leaves_valid_folder_and_reports(tmp_path):
    class FillingDisk:
        def __init__(self, inner, limit):
            self.inner, self.limit = inner, limit

        def write(self, image):
            if self.inner.n_frames >= self.limit:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.inner.write(image)

        def close(self):
            self.inner.close()

    def factory(path, width, height, fps, storage):
        inner = default_writer(path, width, height, fps, storage)
        return FillingDisk(inner, 300) if path.stem == "cam1" else inner

    result, truth = run(make_config(duration_s=6.0), tmp_path, writer_factory=factory)
    assert result.status == "disk_full" and "No space left" in result.message
    assert result.n_pulses < len(truth.tick_us)  # the recording stopped early
    session = read_session_folder(result.session_dir)
    assert next(c for c in session.cameras if c.name == "cam1").n_frames == 300
    for name in ("cam0", "cam1"):
        check_camera(session, truth, name)


def test_camera_unplugged_mid_run(tmp_path):
    result, truth = run(make_config(duration_s=6.0), tmp_path, unplug={"cam0": 400})
    assert result.status == "camera_error" and "camera 'cam0' stopped delivering" in result.message
    session = read_session_folder(result.session_dir)
    assert next(c for c in session.cameras if c.name == "cam0").n_frames == 400
    assert result.n_pulses == len(truth.tick_us)  # the other camera recorded to the end
    for name in ("cam0", "cam1"):
        check_camera(session, truth, name)


def test_ctrl_c_stops_cleanly(tmp_path):
    cfg = make_config(duration_s=30.0, realtime=True)
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    result, truth = run(cfg, tmp_path)
    timer.join()
    assert result.status == "interrupted" and "SIGINT" in result.message
    assert 0.5 * RATE < result.n_pulses < 5 * RATE  # about 1 s of a 30 s real-time recording
    session = read_session_folder(result.session_dir)
    for name in ("cam0", "cam1"):
        check_camera(session, truth, name)


# --- hardware backends against fake SDKs (PySpin / pigpio are not installable here) --------------------

def test_pyspin_missing_gives_clear_error(monkeypatch):
    from ratpose.acquisition.backends import CameraError
    from ratpose.acquisition.pyspin_camera import PySpinCamera
    monkeypatch.setitem(__import__("sys").modules, "PySpin", None)
    with pytest.raises(CameraError, match="Spinnaker SDK"):
        PySpinCamera("1", "cam0").configure(CameraSettings(name="cam0"), 226.0)


def test_pigpio_trigger_builds_the_simulators_pulse_train(monkeypatch):
    from ratpose.acquisition.config import TriggerSettings
    from ratpose.acquisition.pigpio_trigger import PigpioTrigger
    from ratpose.sim.clocks import simulate_clocks

    class FakePi:
        connected = True

        def __init__(self, host, port):
            self.waves, self.pending, self.chain, self.callbacks = [], [], None, []

        def wave_add_generic(self, pulses):
            self.pending += pulses

        def wave_create(self):
            self.waves.append(self.pending)
            self.pending = []
            return len(self.waves) - 1

        def wave_chain(self, chain):
            self.chain = chain

        def callback(self, gpio, edge, fn):
            self.callbacks.append(fn)
            return type("CB", (), {"cancel": lambda _: None})()

        set_mode = write = wave_clear = wave_tx_stop = wave_delete = stop = lambda self, *a: None

    pis = []
    fake = type("pigpio", (), {"OUTPUT": 1, "RISING_EDGE": 0,
                               "pulse": staticmethod(lambda on, off, us: (on, off, us)),
                               "pi": staticmethod(lambda h, p: pis.append(FakePi(h, p)) or pis[-1])})
    monkeypatch.setitem(__import__("sys").modules, "pigpio", fake)
    trigger = PigpioTrigger(TriggerSettings(gpio=18, rate_hz=226.0, pulse_width_us=100))
    ticks = []
    trigger.start(ticks.append)
    pi = pis[0]
    assert pi.chain == [0, 255, 0, 1, 255, 3]  # start wave once, regular wave looped forever
    for wave in pi.waves:
        assert all(p[0] == 1 << 18 and p[2] == 100 for p in wave[0::2])  # 100 us high on GPIO 18
    intervals = [[a[2] + b[2] for a, b in zip(w[0::2], w[1::2])] for w in pi.waves]
    assert sum(intervals[1]) == 1_000_000  # 226 pulses per exact second: the mean rate is exact
    sim = np.diff(simulate_clocks(len(intervals[0]) + 1, 226.0, (), jitter_us=0.0).tick_us.astype(np.int64))
    np.testing.assert_array_equal(intervals[0], sim)  # same start pattern as the simulator
    pi.callbacks[0](18, 1, 4_294_967_000)
    assert ticks == [4_294_967_000]
    trigger.stop()
    trigger.close()
    with pytest.raises(ValueError, match="pulse_width_us"):
        PigpioTrigger(TriggerSettings(rate_hz=1000.0, pulse_width_us=1000))


def _cli_config(tmp_path, extra=""):
    path = tmp_path / "rig.toml"
    path.write_text('[trigger]\nbackend = "simulated"\nrate_hz = 100\n[simulation]\nduration_s = 2.5\nrealtime = true\n'
                    '[[camera]]\nname = "cam0"\nrole = "primary"\nroi = [0, 0, 64, 48]\nexposure_us = 1000\n'
                    '[[camera]]\nname = "cam1"\nrole = "secondary"\nroi = [0, 0, 64, 48]\nexposure_us = 1000\n'
                    + extra)
    return path


def test_record_command_shows_live_status_and_what_was_written(tmp_path, capsys):
    import re
    import shutil

    from ratpose.cli import main
    assert main(["record", "--config", str(_cli_config(tmp_path)), str(tmp_path / "s")]) == 0
    captured = capsys.readouterr()
    status = [s for s in captured.err.split("\r") if "pulses |" in s]
    assert len(status) >= 2  # one line a second over a 2.5 s recording, rewritten in place
    pattern = (r"(\d+) pulses \| cam0: (\d+) frames (\d+) fps, (\d+) dropped, (\d+) missed, queue (\d+)/256 \| "
               r"cam1: (\d+) frames (\d+) fps, (\d+) dropped, (\d+) missed, queue (\d+)/256 \| disk (\d+) GB free")
    last = None
    for line in status:
        m = re.fullmatch(pattern, line.strip())
        assert m, line
        n, *cams, free = [int(g) for g in m.groups()]
        for frames, fps, dropped, missed, fill in (cams[:5], cams[5:]):
            assert 0 < frames <= n and 40 <= fps <= 120 and dropped == 0 and fill <= 256  # the start pattern pauses
            assert missed <= 2  # a frame between its pulse and the camera's queue is not missed
        assert abs(free - shutil.disk_usage(tmp_path).free / 1e9) < 5
        last = (n, cams)
    assert last[0] < 250 and last[1][0] >= 100 and 80 <= last[1][1] <= 120
    session = read_session_folder(tmp_path / "s")
    for cam in session.cameras:
        assert f"{cam.name}: {cam.n_frames} frames written to {tmp_path / 's' / (cam.name + '.mkv')} (0 lost in " \
               f"transfer, 0 incomplete, 0 dropped by the queue, 0 outside ring segments, 0 missed triggers)" \
               in captured.out
        assert cam.n_frames == 250
    assert re.search(r"^completed \(250 pulses, [\d.]+ s\) -> " + re.escape(str(tmp_path / "s")) + "$",
                     captured.out, re.M), captured.out
    assert "WARNING" not in captured.err


def test_record_command_warns_when_the_ring_has_no_event_source(tmp_path, capsys):
    from ratpose.cli import main
    cfg = _cli_config(tmp_path, '[ring_buffer]\nenabled = true\npre_s = 0.5\npost_s = 0.2\npolicy = ["knob"]\n')
    assert main(["record", "--config", str(cfg), str(tmp_path / "s")]) == 0
    captured = capsys.readouterr()
    assert f"WARNING {cfg}: the ring buffer is on with policy ['knob'] but [knob] source is \"none\": no " \
           "segment will be kept, nothing will be written" in captured.err
    assert "0 segment(s) kept" in captured.err  # the status line counts the ring's segments
    assert "cam0: 0 frames written" in captured.out and "250 outside ring segments" in captured.out
    assert f"ring buffer: 0 segment(s) kept (0.0 s around 0 event(s)), listed in {tmp_path / 's' / 'segments.csv'}: " \
           "no event came, so no frame was written" in captured.out
    assert (tmp_path / "s" / "segments.csv").read_text() == "start_s,end_s\n"
