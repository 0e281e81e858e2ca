"""The knob reaches the recorder live: on the Pi's GPIOs through pigpio (strict fake, scripted knob) or over
the network; events and angle against the script, ring windows around the touches, the clock checked."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import tomllib
from strict_sdks import ScriptedKnob, StrictRig

from ratpose.acquisition import record, rig_config_from_dict
from ratpose.acquisition.config import KnobSettings, RigConfigError
from ratpose.acquisition.knob_gpio import GpioKnob, tick_time_s
from ratpose.acquisition.knob_network import NetworkKnobSource, decode_event, encode_event, send_event
from ratpose.acquisition.pulse_matcher import PulseLog
from ratpose.acquisition.recorder import build_hardware_backends
from ratpose.acquisition.ring_buffer import merge_windows
from ratpose.errors import InputError
from ratpose.ingest.session_folder import read_session_folder
from ratpose.sync import unwrap_ticks

RATE, W, H = 100.0, 64, 48
CPR = 2400
BOUNCE_US = 1500


def config(ring=None, knob=None):
    doc = {"trigger": {"backend": "pigpio", "rate_hz": RATE, "gpio": 4},
           "storage": {"codec": "ffv1", "queue_frames": 64},
           "camera": [{"name": "cam0", "role": "primary", "serial": "21000001", "roi": [0, 0, W, H],
                       "exposure_us": 1000, "trigger_line": "Line3", "strobe_line": "Line1"},
                      {"name": "cam1", "role": "secondary", "serial": "21000002", "roi": [0, 0, W, H],
                       "exposure_us": 1000, "trigger_line": "Line3"}],
           "knob": {"source": "gpio", "counts_per_rev": CPR, **(knob or {})}}
    if ring:
        doc["ring_buffer"] = {"enabled": True, **ring}
    return rig_config_from_dict(doc)


def record_with(monkeypatch, tmp_path, knob: ScriptedKnob, duration_s: float, ring=None, knob_settings=None):
    rig = StrictRig(knob=knob)
    rig.install(monkeypatch)
    cfg = config(ring, knob_settings)
    cams, trig = build_hardware_backends(cfg)
    result = record(cfg, tmp_path / "s", duration_s=duration_s, cameras=cams, trigger=trig)
    assert result.status == "completed", result.message
    first_s = read_session_folder(result.session_dir).tick_us[0] / 1e6  # the script's 0 on the neural clock
    return result, first_s


def test_record_keeps_the_windows_around_each_touch_and_writes_touches_and_angle(monkeypatch, tmp_path):
    """Touches with contact bounce (one before the uint32 tick wraps at 0.5 s), turns while touched; the default
    ring policy (knob, touch_on) keeps exactly the merged windows around the scripted touches."""
    touches = [(0.30, 0.45), (1.20, 1.45), (1.50, 1.80), (3.10, 3.40)]
    knob = ScriptedKnob(touches, turns=[(1.22, 1.42, 30.0), (1.55, 1.75, -45.0), (3.15, 3.35, 12.0)],
                        counts_per_rev=CPR, bounce_us=BOUNCE_US)
    ring = {"pre_s": 0.25, "post_s": 0.2, "latency_s": 0.1}
    result, first_s = record_with(monkeypatch, tmp_path, knob, 4.0, ring)
    folder = result.session_dir
    events = pd.read_csv(folder / "knob_events.csv")
    assert list(events.event) == ["touch_on", "touch_off"] * len(touches)  # bounce: one touch each
    truth = np.asarray(touches).ravel() + first_s
    # each edge is where the contact became steady (glitch filter): within its bounce, never before the contact
    late = events.time_s.to_numpy() - truth
    assert np.all(late >= -10e-6) and np.all(late <= BOUNCE_US * 1e-6 + 10e-6), late
    expected = merge_windows(events.time_s[::2], ring["pre_s"], ring["post_s"])
    assert len(expected) == 3  # the second and third touches' windows merge
    np.testing.assert_allclose(result.segments, expected, atol=1e-9)
    angle = pd.read_csv(folder / "knob_angle.csv")
    assert np.all(np.diff(angle.time_s) > 0) and len(angle) > 0.9 * 4.0 * 100
    true_angle = knob.angle_deg(angle.time_s.to_numpy() - first_s)
    assert np.abs(angle.angle_deg - true_angle).max() <= 360 / CPR  # within one encoder count
    session = read_session_folder(folder)  # it ingests; each camera kept the frames of the windows' pulses
    pulse_s = unwrap_ticks(session.tick_us)
    in_windows = sum(int(((pulse_s >= a) & (pulse_s <= b)).sum()) for a, b in expected)
    for cam in session.cameras:
        assert abs(cam.n_frames - in_windows) <= len(expected), (cam.name, cam.n_frames, in_windows)
    warnings = tomllib.loads((folder / "session.toml").read_text())["recording"].get("warnings", [])
    assert not [w for w in warnings if "knob" in w], warnings


def test_an_encoder_turned_faster_than_the_sampling_is_reported(monkeypatch, tmp_path):
    """90 deg in 2 ms (3 us per count): pigpio sees A and B change in one 5 us sample; the recording says so."""
    knob = ScriptedKnob([(0.2, 0.6)], turns=[(0.3, 0.302, 90.0)], counts_per_rev=CPR)
    result, _ = record_with(monkeypatch, tmp_path, knob, 1.0)
    warnings = tomllib.loads((result.session_dir / "session.toml").read_text())["recording"]["warnings"]
    assert any("faster than pigpio's 5 us sampling" in w for w in warnings), warnings


# --- the decoding itself, edge by edge ------------------------------------------------------------------

def _knob(**settings):
    pulses = PulseLog()
    pulses.append(2**32 - 1000)  # the first pulse 1 ms before the tick wraps
    return GpioKnob(KnobSettings(source="gpio", **settings), pulses), pulses


def test_contact_bounce_is_one_touch_and_a_release_is_final_after_the_debounce_time():
    knob, pulses = _knob(glitch_us=0, debounce_us=20_000)
    t0 = 2**32 - 1000
    for dt, level in ((100, 0), (600, 1), (900, 0), (1500, 1), (1800, 0)):  # contact, with bounce
        knob._on_touch(17, level, (t0 + dt) % 2**32)
    knob._on_touch(17, 1, (t0 + 50_000) % 2**32)  # released 50 ms later (after the wrap)
    start = tick_time_s(pulses, t0)
    events = knob.poll(start + 0.060)
    assert [e for _, e in events] == ["touch_on"]  # the release is not final yet (20 ms debounce)
    assert events[0][0] == pytest.approx(start + 100e-6, abs=1e-9)
    assert knob.report.bounces == 2
    events = knob.poll(start + 0.071)
    assert events == [(pytest.approx(start + 0.050, abs=1e-9), "touch_off")]


def test_the_glitch_filter_delay_is_taken_off_the_edge_time():
    knob, pulses = _knob(glitch_us=300)
    t0 = 2**32 - 1000
    knob._on_touch(17, 0, (t0 + 2_300) % 2**32)  # pigpio stamps it 300 us after it began
    assert knob.poll(tick_time_s(pulses, t0) + 1) == [(pytest.approx(tick_time_s(pulses, t0) + 0.002), "touch_on")]


def test_quadrature_steps_count_up_and_down_and_ambiguous_samples_are_counted():
    knob, pulses = _knob()
    t0 = 2**32 - 1000
    # A is the high bit: 00 -> 01 -> 11 -> 10 counts up (B rises, A rises, B falls)
    for dt, gpio, level in ((10, 23, 1), (20, 22, 1), (30, 23, 0), (40, 23, 1)):  # +1 +1 +1 then back -1
        knob._on_encoder(gpio, level, (t0 + dt) % 2**32)
    samples = knob.poll_angle(tick_time_s(pulses, t0) + 1.0)
    assert knob.report.counts == 2 and knob.report.ambiguous_steps == 0
    assert samples[-1, 1] == pytest.approx(2 * 360 / 2400)
    knob._on_encoder(22, 0, (t0 + 2000) % 2**32)  # A and B in the same 5 us sample: 11 -> 00
    knob._on_encoder(23, 0, (t0 + 2000) % 2**32)
    knob.poll_angle(tick_time_s(pulses, t0) + 2.0)
    assert knob.report.ambiguous_steps == 1 and knob.report.counts == 2 - 2  # taken as the last step's way (-1)
    assert "faster than pigpio" in knob.report.warnings(knob.settings)[0]


def test_ticks_unwrap_next_to_the_latest_pulse():
    pulses = PulseLog()
    for tick in (2**32 - 20, 2**32 - 10, 5):  # the last pulse after the wrap
        pulses.append(tick)
    assert tick_time_s(pulses, 2**32 - 15) == pytest.approx((2**32 - 15) / 1e6)
    assert tick_time_s(pulses, 30) == pytest.approx((2**32 + 30) / 1e6)
    assert tick_time_s(PulseLog(), 30) is None


@pytest.mark.parametrize("knob, message", [
    ({"source": "serial"}, "source must be gpio, network or none"),
    ({"touch_pull": "strong"}, "touch_pull"),
    ({"touch_gpio": 4}, "the trigger's output"),
    ({"encoder_b_gpio": 22}, "distinct"),
    ({"encoder_a_gpio": -1}, "both"),
    ({"glitch_us": 400_000}, "glitch_us"),
    ({"counts_per_rev": 0}, "counts_per_rev"),
    ({"wiring": 1}, "unknown key"),
])
def test_a_knob_config_that_cannot_work_is_refused_naming_the_key(knob, message):
    with pytest.raises(RigConfigError, match=message):
        config(knob=knob)


def test_a_gpio_knob_needs_the_pigpio_trigger():
    with pytest.raises(RigConfigError, match="needs \\[trigger\\] backend"):
        rig_config_from_dict({"trigger": {"backend": "simulated"}, "camera": [{"name": "cam0", "role": "primary"}],
                              "knob": {"source": "gpio"}})


# --- the network source --------------------------------------------------------------------------------

def test_network_events_arrive_and_the_clock_is_checked():
    pulses = PulseLog()
    pulses.append(10_000_000)  # the latest pulse: 10.0 s on the neural clock
    source = NetworkKnobSource("127.0.0.1:0", latency_s=0.25, pulses=pulses)
    source.start()
    try:
        address = f"127.0.0.1:{source.port}"
        send_event(address, "touch_on", 9.9)         # on time
        send_event(address, "angle", 9.95, 12.5)
        send_event(address, "touch_off", 9.5)        # 0.5 s old: late (and before the touch_on: out of order)
        send_event(address, "touch_off", 9.97)
        send_event(address, "touch_on", 12.0)        # 2 s ahead: not the neural clock
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b'{"event": "touch_on"}', ("127.0.0.1", source.port))
        deadline = time.monotonic() + 5
        while source.report.received < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        source.stop()
    assert source.poll(10.0) == [(9.9, "touch_on"), (9.97, "touch_off")]
    np.testing.assert_array_equal(source.poll_angle(10.0), [[9.95, 12.5]])
    report = source.report
    assert (report.received, report.late, report.future, report.malformed, report.out_of_order) == (6, 1, 1, 1, 1)
    text = " ".join(report.warnings(0.25))
    assert "later than latency_s" in text and "ahead of the trigger's clock" in text and "malformed" in text


def test_record_with_network_knob_events_keeps_their_windows(monkeypatch, tmp_path, capsys):
    """A real-time system sends touches over UDP (`ratpose knob send`) on the neural clock while the strict
    fakes record: the windows open around them and the files list them."""
    import socket
    import threading

    from ratpose.cli import main

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rig = StrictRig()
    rig.install(monkeypatch)
    first_s = (2**32 - 500_000) / 1e6  # the fake Pi's first pulse tick, on the neural clock
    ring = {"pre_s": 0.3, "post_s": 0.2, "latency_s": 0.2}
    cfg = config(ring, {"source": "network", "listen": f"127.0.0.1:{port}"})
    sent = [(0.6, "touch_on"), (0.9, "touch_off"), (1.5, "touch_on"), (1.7, "touch_off")]

    def real_time_system():
        start = time.monotonic()
        for at, event in sent:
            time.sleep(max(0.0, at + 0.05 - (time.monotonic() - start)))  # told 50 ms after it happened
            assert main(["knob", "send", event, "--time-s", str(first_s + at), "--to", f"127.0.0.1:{port}"]) == 0

    sender = threading.Thread(target=real_time_system)
    cams, trig = build_hardware_backends(cfg)
    sender.start()
    result = record(cfg, tmp_path / "s", duration_s=2.5, cameras=cams, trigger=trig)
    sender.join()
    assert result.status == "completed", result.message
    events = pd.read_csv(result.session_dir / "knob_events.csv")
    assert list(events.event) == [e for _, e in sent]
    np.testing.assert_allclose(events.time_s, [first_s + at for at, _ in sent], atol=1e-6)
    np.testing.assert_allclose(result.segments, merge_windows(events.time_s[::2], ring["pre_s"], ring["post_s"]))
    assert "sent touch_on" in capsys.readouterr().out


@pytest.mark.parametrize("data, message", [
    (b"\xff", "UTF-8 JSON"), (b"[1]", "event"), (b'{"event": "push", "time_s": 1}', "event"),
    (b'{"event": "touch_on", "time_s": "1"}', "time_s"), (b'{"event": "angle", "time_s": 1}', "angle_deg"),
    (b'{"event": "touch_on", "time_s": NaN}', "time_s"),
])
def test_a_malformed_message_says_what_is_wrong(data, message):
    with pytest.raises(InputError, match=message):
        decode_event(data)
    assert decode_event(encode_event("angle", 3.5, -2.0)) == ("angle", 3.5, -2.0)


# --- rig check ----------------------------------------------------------------------------------------

def test_rig_check_shows_the_knob_live_and_reports_what_it_saw(monkeypatch, tmp_path):
    from ratpose.acquisition.rig_check import rig_check

    knob = ScriptedKnob([(0.5, 0.9), (1.6, 2.0)], turns=[(0.6, 0.8, 20.0)], counts_per_rev=CPR)
    rig = StrictRig(knob=knob)
    rig.install(monkeypatch)
    cfg = config()
    live = []
    lines, ok = rig_check(cfg, *build_hardware_backends(cfg), disk_dir=tmp_path, knob_s=2.5, on_status=live.append)
    assert ok, lines
    seen = [line for line in lines if line.startswith("INFO knob (gpio) during the 2.5 s check: 2 touch(es), angle")]
    assert seen and float(seen[0].split(" to ")[1].split()[0]) == pytest.approx(20.0, abs=360 / CPR), lines
    assert any("knob: touch GPIO17=" in line and "encoder GPIO22=" in line for line in live), live


def test_rig_check_warns_when_the_knob_did_nothing_and_fails_a_knob_policy_without_a_source(monkeypatch, tmp_path):
    import dataclasses

    from ratpose.acquisition.config import KnobSettings
    from ratpose.acquisition.rig_check import rig_check

    rig = StrictRig(knob=ScriptedKnob())
    rig.install(monkeypatch)
    cfg = config()
    lines, ok = rig_check(cfg, *build_hardware_backends(cfg), disk_dir=tmp_path, knob_s=2.0)
    assert ok and any(line.startswith("WARN knob (gpio) during the 2 s check: 0 touch(es)") for line in lines), lines
    ring = dataclasses.replace(cfg.ring, enabled=True)  # the default policy waits for knob touches
    silent = dataclasses.replace(cfg, ring=ring, knob=KnobSettings())
    lines, ok = rig_check(silent, *build_hardware_backends(silent), disk_dir=tmp_path)
    assert not ok and any(line.startswith("FAIL ring buffer: policy ['knob']") for line in lines), lines
    assert lines[-1].startswith("FAIL rig check")


# --- the whole way: a recorded session with the knob on the Pi passes the knob check ----------------------

@pytest.mark.slow
def test_a_session_recorded_with_the_knob_on_the_pi_passes_knob_validation(clean_db, monkeypatch, tmp_path):
    """The simulator's scene drives the scripted knob (its touches, with bounce, and its angle through the
    encoder) while the strict fakes record with the default ring policy; the session ingests, its 2D is the
    scene seen by the calibrated rig at the recorded frames' pulses, and KnobValidation passes."""
    from ratpose import schema
    from ratpose.export import to_dlc_h5
    from ratpose.schema.jobs import populate
    from ratpose.sim import BODYPARTS, SessionSettings, write_rig_dataset

    seconds = 14.0
    truth = write_rig_dataset(tmp_path / "sim", SessionSettings(seconds=seconds, size=(160, 128), seed=4),
                              n_labeled=4, calibration_size=(640, 512))  # boards rendered 4x finer
    scene, s0 = truth.scene, float(truth.pulse_time_s[0])
    touches = scene.touch_intervals(s0, s0 + seconds - 1.0) - s0
    touches = touches[np.isfinite(touches).all(axis=1)]
    assert len(touches) >= 3
    knob = ScriptedKnob(touches, angle=lambda t: scene.knob_angle(s0 + t), angle_span_s=(0.0, seconds),
                        counts_per_rev=CPR)
    rig = StrictRig(knob=knob)
    rig.install(monkeypatch)
    doc = {"session": {"subject": "rat_knob", "rig": truth.config["rig"]},
           "trigger": {"backend": "pigpio", "rate_hz": RATE, "gpio": 4},
           "storage": {"codec": "ffv1", "queue_frames": 128},
           "ring_buffer": {"enabled": True, "pre_s": 1.0, "post_s": 0.5},
           "knob": {"source": "gpio", "counts_per_rev": CPR},
           "camera": [{"name": "cam0", "role": "primary", "serial": "21000001", "roi": [0, 0, 160, 128],
                       "exposure_us": 1000, "trigger_line": "Line3", "strobe_line": "Line1"},
                      {"name": "cam1", "role": "secondary", "serial": "21000002", "roi": [0, 0, 160, 128],
                       "exposure_us": 1000, "trigger_line": "Line3"}]}
    cfg = rig_config_from_dict(doc)
    cams, trig = build_hardware_backends(cfg)
    result = record(cfg, tmp_path / "s", duration_s=seconds, cameras=cams, trigger=trig)
    assert result.status == "completed", result.message
    events = pd.read_csv(result.session_dir / "knob_events.csv")
    assert (events.event == "touch_on").sum() == len(touches)

    db = clean_db
    raw, calib, pose, sync, analysis = (db[s] for s in ("raw", "calib", "pose", "sync", "analysis"))
    session, _ = raw.insert_session(read_session_folder(result.session_dir))
    calib.register_calibration(tmp_path / "sim" / "calibration")
    pose.register_training_set("sim", str(tmp_path / "sim" / "labeled"), list(BODYPARTS), "sim")
    pose.PoseModelParams.insert1({"pose_params": "external", "mode": "external"}, skip_duplicates=True)
    pose.request_model("sim", "external")
    tables = schema.computed_tables(db)
    first = populate({n: tables[n] for n in ("SyncedFrames", "SessionSync", "Calibration", "SessionCalibration",
                                             "PoseModel")})
    assert all(not r["error_list"] for r in first.values()), first
    assert calib.session_calibration_key(session) is not None
    pulse_s = unwrap_ticks((raw.TriggerLog & session).fetch1("tick_us"))
    outputs = {}
    for camera in ("cam0", "cam1"):  # what DeepLabCut finds in each recorded frame: the scene at its pulse
        pulses = (sync.SyncedFrames & session & {"camera": camera}).fetch1("pulse_index")
        xy = truth.rig[camera].project(scene.keypoints(s0 + pulse_s[pulses] - pulse_s[0]))
        outputs[camera] = str(to_dlc_h5(tmp_path / f"{camera}DLC_sim.h5", xy, list(BODYPARTS), scorer="DLC_sim",
                                        likelihood=np.ones(xy.shape[:2])))
    pose.schedule_pose2d(session, {"training_set": "sim", "pose_params": "external"}, mode="load", dlc_h5=outputs)
    analysis.set_knob(calib.session_calibration_key(session), scene.knob(), up=scene.up)
    results = populate(tables)
    assert all(not r["error_list"] for r in results.values()), results
    row = (analysis.KnobValidation & session).fetch1()
    assert row["passed"], row["failed_checks"]
    assert row["n_touches"] == len(touches)


def test_no_message_ends_the_listener_and_touches_stay_alternating():
    """A huge number, deep nesting, an event before the first pulse, a repeated touch: each is counted and
    dropped, and the listener still takes the next good event (knob_events.csv stays ingestible)."""
    import socket

    pulses = PulseLog()
    source = NetworkKnobSource("127.0.0.1:0", latency_s=0.25, pulses=pulses)
    source.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            def send(data):
                sock.sendto(data, ("127.0.0.1", source.port))
            send(encode_event("touch_on", 1.0))  # no trigger pulse yet: no clock to check it against
            deadline = time.monotonic() + 5
            while source.report.received < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            pulses.append(10_000_000)
            send(b'{"event": "touch_on", "time_s": 1' + b"0" * 400 + b"}")
            send(b"[" * 1000 + b"]" * 1000)
            send(encode_event("touch_on", 9.9))
            send(encode_event("touch_on", 9.95))  # its touch_off was lost
            send(encode_event("touch_off", 9.97))
            while source.report.received < 6 and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        source.stop()
    assert source.poll(10.0) == [(9.9, "touch_on"), (9.97, "touch_off")]
    report = source.report
    assert (report.received, report.malformed, report.before_first_pulse, report.out_of_order) == (6, 2, 1, 1)


def test_knob_send_to_an_unknown_host_is_one_line(capsys):
    from ratpose.cli import main

    assert main(["knob", "send", "touch_on", "--time-s", "1", "--to", "nosuchhost.invalid:5556"]) == 1
    assert capsys.readouterr().err.startswith("ERROR knob send --to nosuchhost.invalid:5556:")
