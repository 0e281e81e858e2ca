"""The recorder and hardware backends against strict fakes of PySpin and pigpio (tests/strict_sdks.py)."""
from __future__ import annotations

import errno
import gc
import os
import re
import signal
import threading
import time

import numpy as np
import pytest
import tomllib
from strict_sdks import StrictRig, make_pigpio

from ratpose.acquisition import CameraSettings, record, rig_config_from_dict
from ratpose.acquisition.backends import CameraError
from ratpose.acquisition.recorder import build_hardware_backends, default_writer
from ratpose.ingest.session_folder import read_session_folder
from ratpose.video import decode_gray

RATE, W, H = 100.0, 160, 128


def config(ring=None):
    doc = {"trigger": {"backend": "pigpio", "rate_hz": RATE, "gpio": 4},
           "storage": {"codec": "ffv1", "queue_frames": 64},
           "camera": [{"name": "cam0", "role": "primary", "serial": "21000001", "roi": [0, 0, W, H],
                       "exposure_us": 1000, "trigger_line": "Line3", "strobe_line": "Line1"},
                      {"name": "cam1", "role": "secondary", "serial": "21000002", "roi": [0, 0, W, H],
                       "exposure_us": 1000, "trigger_line": "Line3"}]}
    if ring:
        doc["ring_buffer"] = {"enabled": True, **ring}
    return rig_config_from_dict(doc)


@pytest.fixture
def rig(monkeypatch):
    rig = StrictRig()
    rig.install(monkeypatch)
    return rig


def open_files_under(folder):
    gc.collect()
    fds = os.listdir("/proc/self/fd")
    return [p for fd in fds if (p := os.path.realpath(f"/proc/self/fd/{fd}")).startswith(str(folder))]


def go(rig, tmp_path, duration_s=1.0, **kw):
    cfg = config()
    cams, trig = build_hardware_backends(cfg)
    result = record(cfg, tmp_path / "s", duration_s=duration_s, cameras=cams, trigger=trig, **kw)
    status = tomllib.loads((tmp_path / "s" / "session.toml").read_text())["recording"]
    assert status["status"] == result.status
    assert open_files_under(tmp_path) == []
    assert rig.system is None and rig.release_errors == 0  # one System, released once, no references left
    assert rig.end_while_waiting == 0  # EndAcquisition never ran under a waiting GetNextImage
    return result, status


def test_normal_stop_writes_every_frame_and_stats(rig, tmp_path):
    result, status = go(rig, tmp_path, 1.0)
    assert result.status == "completed", result.message
    assert rig.instances == 1 and rig.user_set_loads == 2
    session = read_session_folder(result.session_dir)
    for cam, fake in zip(session.cameras, rig.cameras):
        # every exposed frame reached the file: nothing left in the stream when acquisition ended
        assert cam.n_frames == fake.frame_id + 1 == rig.pulses_sent
        np.testing.assert_array_equal(cam.frame_id, np.arange(cam.n_frames))
        pixels = [int(f[0, 0]) for f in decode_gray(cam.video)]  # copied out before the buffer went back
        assert pixels == [i % 251 for i in range(cam.n_frames)]
        assert fake.held == 0
        assert status["cameras"][cam.name]["missed_triggers"] == 0
        assert status["cameras"][cam.name]["stream"] == {"lost": 0, "dropped": 0, "incomplete": 0}
    assert rig.discarded == 0
    for fake in rig.cameras:  # the clean start: the rig config applied on top of the Default user set
        n = {k: v.value for k, v in fake.nodes.items()}
        assert (n["ExposureAuto"], n["ExposureTime"], n["GainAuto"]) == ("Off", 1000.0, "Off")
        assert (n["Width"], n["Height"]) == (W, H)
        assert (n["TriggerSource"], n["TriggerActivation"], n["TriggerOverlap"]) == ("Line3", "RisingEdge", "ReadOut")
        assert fake.stream_nodes["StreamBufferHandlingMode"].value == "OldestFirst"
        assert all(fake.chunks[c] for c in ("FrameID", "Timestamp", "ExposureTime"))
    assert rig.cameras[0].line["Line1"]["source"] == "ExposureActive" and rig.cameras[0].line["Line2"]["v33"]
    tick = read_session_folder(result.session_dir).tick_us
    assert tick[0] > tick[-1]  # the Pi's uint32 tick wrapped during the recording
    assert all(c.nodes["TriggerMode"].value == "Off" or not c.initialized for c in rig.cameras)


def test_incomplete_images_are_not_gaps(monkeypatch, tmp_path):
    rig = StrictRig(**{"21000002": {"incomplete_every": 10}})
    rig.install(monkeypatch)
    result, status = go(rig, tmp_path, 1.0)
    assert result.status == "completed", result.message
    r = result.cameras["cam1"]
    n = rig.cameras[1].frame_id + 1
    assert r.incomplete == n // 10 and r.transfer_lost == 0 and r.written == n - n // 10
    assert status["cameras"]["cam1"]["stream"]["incomplete"] == n // 10 and r.missed_triggers == 0


def accounted(status, n_pulses):
    """Every pulse is accounted for per camera in session.toml."""
    for name, cam in status["cameras"].items():
        assert sum(cam["pulses"].values()) == n_pulses, (name, cam["pulses"], n_pulses)


@pytest.mark.parametrize("unplug_as", ["timeout", "error"])
def test_unplugged_secondary_is_named_and_the_primary_records_on(monkeypatch, tmp_path, unplug_as):
    """A pulled cable shows up as GetNextImage timeouts only (or -1010 after a reset): detected from the
    trigger within camera_stall_s, the primary keeps recording to the planned end, the run is not completed."""
    rig = StrictRig(**{"21000002": {"unplug_after": 60, "unplug_as": unplug_as}})
    rig.install(monkeypatch)
    result, status = go(rig, tmp_path, 3.0)
    assert result.status == "camera_error" and "camera 'cam1' stopped delivering after frame 59" in result.message
    assert not result.ok
    stop = status["cameras"]["cam1"]["stopped"]
    session = read_session_folder(result.session_dir)  # the frames before the pull are kept and ingestible
    pulse_s = np.cumsum(np.r_[0, (np.diff(session.tick_us.astype(np.int64)) % 2**32)]) / 1e6
    assert stop["last_frame_id"] == 59 and abs(stop["time_s"] - pulse_s[59]) < 0.025
    assert abs(stop["pulses_logged"] - 60) <= 2
    r0, r1 = result.cameras["cam0"], result.cameras["cam1"]
    assert pulse_s[-1] >= 3.0 - 1 / RATE and r0.written == result.n_pulses  # the primary to the planned end
    assert r1.written == 60 and not r0.stopped
    after = status["cameras"]["cam1"]["pulses"]["after_camera_stopped"]
    assert abs(after - (result.n_pulses - 60)) <= 2 and f"{after} of {result.n_pulses} triggers" in result.message
    accounted(status, result.n_pulses)
    cam1 = next(c for c in session.cameras if c.name == "cam1")
    assert cam1.n_frames == 60 and [int(f[0, 0]) for f in decode_gray(cam1.video)] == list(range(60))


def test_unplugged_secondary_is_detected_within_a_second(monkeypatch, tmp_path):
    """The stop is seen while recording (the status line says so), not only at the end."""
    rig = StrictRig(**{"21000002": {"unplug_after": 60}})
    rig.install(monkeypatch)
    lines = []
    result, _ = go(rig, tmp_path, 3.0, on_status=lines.append)
    flagged = [i for i, line in enumerate(lines) if "cam1: STOPPED after frame 59" in line]
    assert flagged and flagged[0] <= 1, lines  # status lines come each second; the pull was at 0.6 s


def test_unplugged_primary_stops_the_recording(monkeypatch, tmp_path):
    """Without the primary's strobe the secondary has no trigger: both stop, the run ends early."""
    rig = StrictRig(**{"21000001": {"unplug_after": 50}})
    rig.install(monkeypatch)
    result, status = go(rig, tmp_path, 10.0)
    assert result.status == "camera_error" and "every camera stopped delivering" in result.message
    assert "camera 'cam0' stopped delivering after frame 49" in result.message
    assert result.n_pulses < 3 * RATE  # stopped about camera_stall_s after the last camera went quiet
    assert [r.written for r in result.cameras.values()] == [50, 50]
    accounted(status, result.n_pulses)
    read_session_folder(result.session_dir)


class SlowOrFullDisk:
    """A video writer on a disk that is slow (``delay_s`` per frame) or fills up after ``space`` frames."""

    def __init__(self, inner, delay_s=0.0, space=None):
        self.inner, self.delay_s, self.space = inner, delay_s, space

    def write(self, image):
        if self.space is not None and self.inner.n_frames >= self.space:
            raise OSError(errno.ENOSPC, "No space left on device")
        time.sleep(self.delay_s)
        self.inner.write(image)

    def close(self):
        self.inner.close()


def test_a_disk_too_slow_stops_before_a_frame_is_lost(rig, tmp_path):
    """The writer of cam1 manages 60 frames/s of the 100 Hz trigger: a warning, then a clean stop with every
    delivered frame written (the camera's own buffers hold the rest while the drain writes them)."""
    def factory(path, width, height, fps, storage):
        inner = default_writer(path, width, height, fps, storage)
        return SlowOrFullDisk(inner, delay_s=1 / 60) if path.stem == "cam1" else inner

    result, status = go(rig, tmp_path, 20.0, writer_factory=factory)
    assert result.status == "disk_too_slow" and "camera 'cam1': the disk cannot keep up" in result.message
    assert any("disk cannot keep up" in w and "s of buffer left" in w for w in status["warnings"])
    assert result.n_pulses < 5 * RATE  # 64 frames of queue fill at 40 frames/s: stopped within seconds
    for name, r in result.cameras.items():
        assert r.queue_dropped == 0 and r.written == r.delivered == result.n_pulses, name
        assert status["cameras"][name]["pulses"]["lost_by_ratpose"] == 0
    assert 0.9 * 64 <= result.cameras["cam1"].max_writer_lag <= 64
    accounted(status, result.n_pulses)
    read_session_folder(result.session_dir)


def test_a_full_disk_stops_cleanly_and_the_folder_reads(rig, tmp_path):
    def factory(path, width, height, fps, storage):
        inner = default_writer(path, width, height, fps, storage)
        return SlowOrFullDisk(inner, space=120) if path.stem == "cam0" else inner

    result, status = go(rig, tmp_path, 20.0, writer_factory=factory)
    assert result.status == "disk_full" and "No space left" in result.message
    session = read_session_folder(result.session_dir)
    assert [c.n_frames for c in session.cameras][0] == 120 and result.n_pulses < 5 * RATE
    assert status["cameras"]["cam0"]["pulses"]["lost_by_ratpose"] == result.n_pulses - 120
    accounted(status, result.n_pulses)


def test_node_errors_carry_genicam_codes(rig):
    cam = rig.cameras[0]
    cam.Init()
    width = rig.pyspin.CIntegerPtr(cam.GetNodeMap().GetNode("Width"))
    with pytest.raises(rig.pyspin.SpinnakerException) as err:
        width.SetValue(1441)
    assert err.value.errorcode == -2002  # OutOfRangeException
    cam.BeginAcquisition()
    with pytest.raises(rig.pyspin.SpinnakerException) as err:
        width.SetValue(640)
    assert err.value.errorcode == -2006  # AccessException: the ROI is frozen while streaming


def test_failed_pigpio_wave_is_a_trigger_error(rig, monkeypatch, tmp_path):
    rig.pigpio.state.fail_wave = True
    result, status = go(rig, tmp_path, 1.0)
    assert result.status == "trigger_error" and "No more CBs" in result.message
    assert status["status"] == "trigger_error"


def test_unreachable_pigpiod_is_a_trigger_error(rig, tmp_path):
    rig.pigpio.state.connected = False
    result, status = go(rig, tmp_path, 1.0)
    assert result.status == "trigger_error" and "cannot reach pigpiod at localhost:8888" in result.message
    assert rig.pulses_sent == 0 and all(p.stopped for p in rig.pigpio.state.pis)


def test_trigger_that_cannot_be_stopped_ends_the_drain(rig, tmp_path):
    rig.pigpio.state.lose_link_at_stop = True
    try:
        result, status = go(rig, tmp_path, 1.0)
    finally:
        for pi in rig.pigpio.state.pis:
            pi.running.clear()  # power the fake Pi off
    assert result.status == "trigger_error" and "stopping the trigger failed" in result.message
    assert any("frames kept coming after the trigger was stopped" in w for w in status["warnings"])
    for r in result.cameras.values():  # a bounded drain: at most rate_hz frames past the last logged pulse
        assert result.n_pulses <= r.written <= result.n_pulses + RATE + 1


def test_ctrl_c_is_interrupted(rig, tmp_path):
    timer = threading.Timer(0.8, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    result, _ = go(rig, tmp_path, 30.0)
    timer.join()
    assert result.status == "interrupted" and 0.3 * RATE < result.n_pulses < 3 * RATE
    session = read_session_folder(result.session_dir)
    assert [c.n_frames for c in session.cameras] == [rig.pulses_sent] * 2


def test_secondary_needs_the_strobe_pullup(monkeypatch, tmp_path):
    rig = StrictRig()
    rig.install(monkeypatch)
    cfg = config()
    cams = list(cfg.cameras)
    import dataclasses
    cams[0] = dataclasses.replace(cams[0], strobe_pullup="external")  # but the rig has none
    cfg = dataclasses.replace(cfg, cameras=tuple(cams))
    c, t = build_hardware_backends(cfg)
    result = record(cfg, tmp_path / "s", duration_s=1.0, cameras=c, trigger=t)
    assert result.cameras["cam1"].delivered == 0 and result.cameras["cam1"].missed_triggers == result.n_pulses
    assert result.status == "camera_error" and "camera 'cam1' stopped delivering after frame -1" in result.message


def test_roi_increments_and_buffer_mode_are_refused_clearly(rig):
    from ratpose.acquisition.pyspin_camera import PySpinCamera
    cam = PySpinCamera("21000001", "cam0")
    with pytest.raises(ValueError, match=r"Width=1430 .*steps of 16.*\[1424, 1440\]"):
        cam.configure(CameraSettings(name="cam0", width=1430, height=1080, exposure_us=1000), 200.0)
    cam.close()
    with pytest.raises(ValueError, match="OldestFirst"):
        PySpinCamera("21000001", "cam0").configure(CameraSettings(name="cam0", buffer_handling="NewestFirst"), 1.0)
    with pytest.raises(ValueError, match="exceeds the camera"):
        cam.configure(CameraSettings(name="cam0", exposure_us=4000), 300.0)
    cam.close()
    with pytest.raises(CameraError, match="no camera with serial 999"):
        PySpinCamera("999", "cam0").configure(CameraSettings(name="cam0"), 200.0)
    assert rig.system is None and rig.release_errors == 0


def test_get_next_image_before_begin_is_not_a_timeout(rig):
    cam = rig.cameras[0]
    cam.Init()
    with pytest.raises(rig.pyspin.SpinnakerException) as err:
        cam.GetNextImage(10)
    assert err.value.errorcode == -1010


def test_rig_check_on_strict_fakes_and_simulation(rig, tmp_path, capsys):
    from ratpose.acquisition.rig_check import rig_check
    from ratpose.cli import main
    cfg = config()
    lines, ok = rig_check(cfg, *build_hardware_backends(cfg), disk_dir=tmp_path)
    assert ok, lines
    assert any("serial 21000002" in l and "SuperSpeed" in l and "link_limit_bytes_s 380000000" in l for l in lines)
    assert any(l.startswith("PASS cam1") and "followed the primary's strobe" in l for l in lines)
    assert rig.system is None and rig.release_errors == 0
    # without a pull-up the secondary never sees the strobe: the check fails, exit code 1
    import dataclasses
    cams = (dataclasses.replace(cfg.cameras[0], strobe_pullup="external"), cfg.cameras[1])
    lines, ok = rig_check(dataclasses.replace(cfg, cameras=cams), *build_hardware_backends(cfg), disk_dir=tmp_path)
    assert not ok and any(l.startswith("FAIL cam1") for l in lines)
    sim = tmp_path / "rig.toml"
    sim.write_text('[trigger]\nbackend = "simulated"\nrate_hz = 100\n[simulation]\nduration_s = 2\n'
                   '[storage]\ncodec = "raw"\n'
                   '[[camera]]\nname = "cam0"\nrole = "primary"\nroi = [0, 0, 64, 48]\nexposure_us = 1000\n'
                   '[[camera]]\nname = "cam1"\nrole = "secondary"\nroi = [0, 0, 64, 48]\nexposure_us = 1000\n')
    assert main(["rig", "check", "--config", str(sim), "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PASS rig check" in out and "200 pulses" in out
    # the write rate from the check's own frames: 2 cameras x 100 Hz x 64x48 raw bytes (+ container) each
    need = float(re.search(r"; ([\d.]+) MB/s while recording", out).group(1))
    assert need == pytest.approx(2 * 100 * 64 * 48 / 1e6, rel=0.05)
    assert re.search(rf"PASS disk under {re.escape(str(tmp_path))}: [\d.]+ MB/s sustained \(fsync\) >= ", out)
    assert "INFO the SDK sees 2 camera(s)" in out and out.count("(simulated)") == 2 and "WARN" not in out


def _record_raw(tmp_path, duration_s: float):
    """A simulated one-camera session of raw video in tmp_path/s; its camera's folder entry."""
    from ratpose.cli import main

    cfg_path = tmp_path / "rig.toml"
    cfg_path.write_text('[trigger]\nbackend = "simulated"\nrate_hz = 100\n[storage]\ncodec = "raw"\ncontainer = "avi"\n'
                        f'[simulation]\nduration_s = {duration_s}\n'
                        '[[camera]]\nname = "cam0"\nrole = "primary"\nroi = [0, 0, 64, 48]\nexposure_us = 1000\n')
    assert main(["record", "--config", str(cfg_path), str(tmp_path / "s")]) == 0
    return read_session_folder(tmp_path / "s").cameras[0]


def test_compress_is_lossless_and_atomic(tmp_path, capsys):
    from ratpose.cli import main

    before = _record_raw(tmp_path, 1)
    raw_frames = list(decode_gray(before.video))
    assert main(["compress", str(tmp_path / "s")]) == 0
    after = read_session_folder(tmp_path / "s").cameras[0]
    assert after.video.name == "cam0.magicyuv.avi" and not before.video.exists()
    new_frames = list(decode_gray(after.video))
    assert len(new_frames) == len(raw_frames) == after.n_frames > 50
    assert all(np.array_equal(a, b) for a, b in zip(raw_frames, new_frames))
    assert "frames verified identical" in capsys.readouterr().out


@pytest.mark.parametrize("fault", ["pixel", "dropped"])
def test_compress_keeps_the_raw_video_when_the_new_file_differs(tmp_path, capsys, monkeypatch, fault):
    """A codec that changes one pixel, or loses the last frame, is caught: exit 1 naming the frame, raw kept."""
    from ratpose.acquisition import compress
    from ratpose.cli import main

    before = _record_raw(tmp_path, 0.5)
    n_frames = before.n_frames
    write, written = compress.VideoWriter.write, []

    def faulty(self, image):
        written.append(1)
        if fault == "pixel" and len(written) == 7:
            image = image.copy()
            image[3, 5] ^= 1
        if fault == "dropped" and len(written) == n_frames:
            return None
        return write(self, image)

    monkeypatch.setattr(compress.VideoWriter, "write", faulty)
    assert main(["compress", str(tmp_path / "s")]) == 1
    wrong = 6 if fault == "pixel" else n_frames - 1
    assert f"frame {wrong} differs after magicyuv encoding; raw video kept" in capsys.readouterr().err
    assert before.video.exists() and read_session_folder(tmp_path / "s").cameras[0].video == before.video
    assert not list((tmp_path / "s").glob("*.part.*"))


def test_rig_check_lists_every_camera_and_flags_the_config(monkeypatch, tmp_path):
    import dataclasses

    from ratpose.acquisition.rig_check import rig_check
    rig = StrictRig(("21000001", "21000002", "21000003"))
    rig.install(monkeypatch)
    cfg = config()
    lines, ok = rig_check(cfg, *build_hardware_backends(cfg), disk_dir=tmp_path)
    assert ok, lines
    assert "INFO the SDK sees 3 camera(s)" in lines
    for serial, who in (("21000001", "cam0 (primary)"), ("21000002", "cam1 (secondary)"),
                        ("21000003", "not in the config")):
        assert any(l.startswith(f"INFO   serial {serial}, model Blackfly S BFS-U3-16S2M, firmware 1707.1.6.0, "
                                f"usb_speed SuperSpeed, link_limit_bytes_s 380000000: {who}") for l in lines), lines
    assert any(l.startswith("WARN serial 21000003") and "not configured" in l for l in lines)
    assert any(l.startswith("PASS cam0: link throughput limit 380 MB/s, the stream needs 2 MB/s") for l in lines)
    assert not rig.cameras[2].initialized  # read for its link limit, then de-initialised
    assert rig.system is None and rig.release_errors == 0
    # a configured serial that is not plugged in: FAIL, and no trigger train is sent
    sent = rig.pulses_sent
    missing = dataclasses.replace(cfg, cameras=(cfg.cameras[0], dataclasses.replace(cfg.cameras[1], serial="21000009")))
    lines, ok = rig_check(missing, *build_hardware_backends(missing), disk_dir=tmp_path)
    assert not ok and rig.pulses_sent == sent
    assert any(l.startswith("FAIL cam1: serial 21000009 is not connected (connected: 21000001, 21000002, 21000003)")
               for l in lines), lines
    assert lines[-1].startswith("FAIL rig check")
    # a link throughput limit below what the ROI at this rate streams
    rig.cameras[0].nodes["DeviceLinkThroughputLimit"].value = 1_000_000
    lines, ok = rig_check(cfg, *build_hardware_backends(cfg), disk_dir=tmp_path)
    assert not ok and any(l.startswith("FAIL cam0: link throughput limit 1 MB/s") for l in lines), lines
    assert rig.system is None and rig.release_errors == 0
    assert open_files_under(tmp_path) == []


def test_rig_check_fails_a_disk_slower_than_the_rig(rig, monkeypatch, tmp_path):
    from ratpose.acquisition import disk
    from ratpose.acquisition.rig_check import rig_check
    monkeypatch.setattr(disk, "disk_write_mb_s", lambda folder, n_bytes: 0.001)  # a 1 kB/s disk
    cfg = config()  # FFV1 of the fake's flat 160x128 frames at 100 Hz on two cameras: tens of kB/s
    lines, ok = rig_check(cfg, *build_hardware_backends(cfg), disk_dir=tmp_path)
    assert not ok and lines[-1] == "FAIL rig check"
    assert any(re.match(rf"FAIL disk under {re.escape(str(tmp_path))}: 0.001 MB/s sustained \(fsync\) < [\d.]+ MB/s", l)
               for l in lines), lines


def test_rig_check_without_pyspin_is_one_fail_line(monkeypatch):
    import sys

    from ratpose.acquisition.rig_check import rig_check
    monkeypatch.setitem(sys.modules, "PySpin", None)  # import fails as when the SDK is not installed
    lines, ok = rig_check(config())
    assert not ok and lines[0].startswith("FAIL cameras cannot be listed: PySpin is not installed")
