"""Clock simulator and frame-to-pulse alignment against simulated ground truth."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratpose.sim.clocks import CameraClockSettings, simulate_clocks
from ratpose.sync import align_frames, match_cameras, sync_qc, unwrap_ticks

RATE = 226.0
# ~88 s of triggers: at 100 ppm the camera clock slips 8.8 ms (2 periods), so ignoring drift would fail.
N_PULSES = 20_000


def align(truth, name, **kw):
    cam = truth.cameras[name]
    return align_frames(cam.frame_id, cam.camera_ts_ns, truth.tick_us, rate_hz=RATE, **kw)


def in_span(indices, cam):
    """Truth pulse indices strictly between the camera's first and last delivered frame."""
    return indices[(indices > cam.pulse_index[0]) & (indices < cam.pulse_index[-1])]


def check_against_truth(truth, name, cfg):
    cam = truth.cameras[name]
    result = align(truth, name)
    np.testing.assert_array_equal(result.pulse_index, cam.pulse_index)
    # time_s is the neural time of the assigned pulse; the tick resolution is 1 us.
    np.testing.assert_allclose(result.time_s, truth.pulse_time_s[cam.pulse_index], rtol=0, atol=1e-6)
    # 100 ns timestamp noise over ~88 s bounds the slope error to ~1e-9; 0.1 ppm is a 100x margin.
    assert abs(result.drift_ppm - cfg.drift_ppm) < 0.1
    # Offset = camera reading at neural time 0 (+ strobe delay for a secondary); extrapolating the fit
    # back to 0 from up to 4300 s multiplies the ~1e-9 slope error, so allow 10 us.
    delay_s = cfg.strobe_delay_us * 1e-6 if cfg.role == "secondary" else 0.0
    assert abs(result.clock_offset_s - (cfg.clock_offset_ns / 1e9 + delay_s)) < 10e-6
    assert result.first_pulse == cam.pulse_index[0] and result.last_pulse == cam.pulse_index[-1]
    assert result.lost_in_transfer == len(in_span(cam.lost_pulses, cam))
    assert result.missed_trigger == len(in_span(cam.missed_pulses, cam))
    expected_dropped = np.union1d(in_span(cam.lost_pulses, cam), in_span(cam.missed_pulses, cam))
    np.testing.assert_array_equal(result.dropped_pulses, expected_dropped)
    # Simulated timestamps have 100 ns noise and exact ticks: residuals must be a few 100 ns at most.
    assert result.residual_rms_s < 0.3e-6 and result.residual_max_s < 1.5e-6
    return result


def test_unwrap_multiple_wraps_exact():
    rng = np.random.default_rng(3)
    steps = rng.integers(1, 2**31 + 1, size=100)  # up to half a wrap period: any of them may span a wrap
    steps[7] = 2**31
    unwrapped = 4_000_000_000 + np.concatenate([[0], np.cumsum(steps)])
    assert unwrapped[-1] > 10 * 2**32  # many wraps
    ticks = (unwrapped % 2**32).astype(np.uint32)
    assert ticks[8] < ticks[7]  # the longest step spans a wrap
    np.testing.assert_array_equal(unwrap_ticks(ticks), unwrapped / 1e6)
    assert unwrap_ticks(np.array([7], dtype=np.uint32))[0] == 7e-6
    assert unwrap_ticks(np.array([], dtype=np.uint32)).size == 0


@pytest.mark.parametrize("ticks, match", [
    (np.array([1, -2]), r"\[0, 2\*\*32\)"),
    (np.array([1, 2**32]), r"\[0, 2\*\*32\)"),
    (np.array([1.0, 2.5]), "non-integer"),
    (np.array([[1, 2]]), "1-D"),
    (np.array(["a"]), "integer array"),
])
def test_unwrap_rejects_bad_ticks(ticks, match):
    with pytest.raises(ValueError, match=match):
        unwrap_ticks(ticks)


def _pulse_train(n, rate_hz, start_us, seed=0):
    """Unwrapped integer us times of a jittered pulse train (20 us std) and its uint32 ticks."""
    rng = np.random.default_rng(seed)
    unwrapped = start_us + np.rint(np.arange(n) * 1e6 / rate_hz + rng.normal(0, 20, n)).astype(np.int64)
    return unwrapped, (unwrapped % 2**32).astype(np.uint32)


@pytest.mark.parametrize("wraps", [1, 2])
def test_unwrap_accepts_real_wraps(wraps):
    # 10 Hz for just over `wraps` wrap periods, starting 1 s before the counter wraps
    unwrapped, ticks = _pulse_train(int(wraps * 2**32 / 1e5) - 20, 10.0, 2**32 - 1_000_000)
    assert np.sum(np.diff(ticks.astype(np.int64)) < 0) == wraps
    np.testing.assert_array_equal(unwrap_ticks(ticks), unwrapped / 1e6)


def test_unwrap_accepts_a_wrap_during_a_pause():
    unwrapped, _ = _pulse_train(200, 226.0, 2**32 - 50_000)
    unwrapped[12:] += 100_000  # a 0.1 s pause (22 periods, like the start pattern's) across the wrap
    ticks = (unwrapped % 2**32).astype(np.uint32)
    assert ticks[12] < ticks[11]
    np.testing.assert_array_equal(unwrap_ticks(ticks), unwrapped / 1e6)


BACKWARD = {  # (edit of a 226 Hz train's ticks, pulse index of the refused step)
    "swapped": (lambda t: t[[*range(40), 41, 40, *range(42, len(t))]], 41),
    "1 s back": (lambda t: np.concatenate([t[:100], t[100:] - 1_000_000]), 100),
    "40 min back": (lambda t: np.concatenate([t[:100], t[100:] - 2_400_000_000]), 100),  # < half a wrap
    "back at the first step": (lambda t: np.concatenate([t[:1] + 5_000, t[1:]]), 1),
}


@pytest.mark.parametrize("case", BACKWARD)
def test_unwrap_refuses_backward_ticks_that_are_no_wrap(case):
    edit, index = BACKWARD[case]
    _, ticks = _pulse_train(2_000, RATE, 3_000_000_000)
    bad = edit(ticks.astype(np.int64))
    with pytest.raises(ValueError, match=rf"ticks go backwards at pulse index {index}: tick {bad[index]} after "
                                         rf"{bad[index - 1]} is no counter wrap"):
        unwrap_ticks(bad)
    with pytest.raises(ValueError, match="ticks go backwards"):  # alignment unwraps the same way
        align_frames(np.arange(10), np.arange(10) * 4_424_779, bad)


def test_simulator_truth_is_consistent():
    cfgs = [CameraClockSettings("cam0", loss_rate=0.02, miss_rate=0.01, armed_after_pulses=5, first_frame_id=7),
            CameraClockSettings("cam1", role="secondary", strobe_delay_us=12.0, miss_rate=0.01, loss_rate=0.02,
                              drift_ppm=-40.0, clock_offset_ns=-10**15)]
    truth = simulate_clocks(N_PULSES, RATE, cfgs, start_tick_us=2**32 - 30_000_000, seed=4)
    ticks = truth.tick_us.astype(np.int64)
    assert truth.tick_us.dtype == np.uint32 and np.sum(np.diff(ticks) < 0) == 1  # one wrap at ~30 s
    np.testing.assert_array_equal(unwrap_ticks(truth.tick_us), truth.pulse_time_s)
    # Regular intervals jitter around the period (20 us std) and the start pattern is irregular.
    regular = np.diff(truth.pulse_time_s[20:]) * 1e6 - 1e6 / RATE
    assert abs(regular.mean()) < 1.0 and 15 < regular.std() < 35
    assert np.diff(truth.pulse_time_s[:8]).std() * RATE > 0.5
    cam0, cam1 = truth.cameras["cam0"], truth.cameras["cam1"]
    # Each FrameID jump of k hides exactly k-1 lost frames; missed pulses include the 5 before arming.
    assert cam0.frame_id[0] == 7 + np.sum(cam0.lost_pulses < cam0.pulse_index[0])
    assert np.sum(np.diff(cam0.frame_id) - 1) == len(in_span(cam0.lost_pulses, cam0))
    np.testing.assert_array_equal(cam0.missed_pulses[:5], np.arange(5))
    # Rates: binomial counts over ~20k pulses, 5-sigma bounds.
    n = N_PULSES - 5
    assert abs(len(cam0.lost_pulses) - 0.02 * 0.99 * n) < 5 * np.sqrt(0.02 * n)
    assert abs(len(cam0.missed_pulses) - 5 - 0.01 * n) < 5 * np.sqrt(0.01 * n)
    # The secondary only exposes pulses the primary exposed.
    primary_exposed = np.union1d(cam0.pulse_index, cam0.lost_pulses)
    assert np.all(np.isin(np.union1d(cam1.pulse_index, cam1.lost_pulses), primary_exposed))
    # Camera clock: offset + drifted exposure time (+ strobe delay) with ~100 ns noise.
    exposure_s = (cam1.camera_ts_ns - cfgs[1].clock_offset_ns) / 1e9 / (1 - 40e-6)
    error = exposure_s - truth.pulse_time_s[cam1.pulse_index] - 12e-6
    assert np.abs(error).max() < 1e-6


CASES = {
    "clean": {},
    "lost_in_transfer": {"loss_rate": 0.02},
    "missed_triggers": {"miss_rate": 0.02},
    "drift_plus_100ppm": {"drift_ppm": 100.0},
    "drift_minus_100ppm_huge_offset": {"drift_ppm": -100.0, "clock_offset_ns": 2**62},
    "negative_offset": {"clock_offset_ns": -7 * 10**17, "first_frame_id": 123_456},
    "pre_arm_inside_start_pattern": {"armed_after_pulses": 3},
    "pre_arm_after_pattern": {"armed_after_pulses": 1_500},
}


@pytest.mark.parametrize("case", CASES)
def test_align_single_condition(case):
    cfg = CameraClockSettings("cam0", **CASES[case])
    truth = simulate_clocks(N_PULSES, RATE, [cfg], seed=11)
    result = check_against_truth(truth, "cam0", cfg)
    if "rate" in case:
        assert result.lost_in_transfer + result.missed_trigger > 200  # the case really drops frames


def test_align_across_tick_wrap():
    cfg = CameraClockSettings("cam0")
    truth = simulate_clocks(N_PULSES, RATE, [cfg], start_tick_us=2**32 - 40_000_000, seed=12)
    assert truth.tick_us[0] > truth.tick_us[-1]  # wrapped ~40 s in
    result = check_against_truth(truth, "cam0", cfg)
    assert result.time_s[-1] > 2**32 / 1e6


def test_align_pre_arm_identified_by_jitter_alone():
    cfg = CameraClockSettings("cam0", armed_after_pulses=777, miss_rate=0.01)
    truth = simulate_clocks(N_PULSES, RATE, [cfg], start_pattern=False, jitter_us=5.0, seed=13)
    check_against_truth(truth, "cam0", cfg)


def test_align_pre_arm_identified_by_start_pattern_without_jitter():
    cfg = CameraClockSettings("cam0", armed_after_pulses=4)
    truth = simulate_clocks(N_PULSES, 200.0, [cfg], jitter_us=0.0, seed=14)
    cam = truth.cameras["cam0"]
    result = align_frames(cam.frame_id, cam.camera_ts_ns, truth.tick_us, rate_hz=200.0)
    np.testing.assert_array_equal(result.pulse_index, cam.pulse_index)
    assert result.first_pulse == 4


def test_align_everything_together_two_cameras():
    cfgs = [CameraClockSettings("cam0", drift_ppm=100.0, clock_offset_ns=987_654_321_987_654_321, loss_rate=0.01,
                              miss_rate=0.01, armed_after_pulses=2, first_frame_id=50),
            CameraClockSettings("cam1", role="secondary", drift_ppm=-60.0, clock_offset_ns=3, loss_rate=0.01,
                              miss_rate=0.01, armed_after_pulses=900, strobe_delay_us=25.0)]
    truth = simulate_clocks(N_PULSES, RATE, cfgs, start_tick_us=2**32 - 20_000_000, seed=15)
    results = {cfg.name: check_against_truth(truth, cfg.name, cfg) for cfg in cfgs}
    common, rows = match_cameras({name: r.pulse_index for name, r in results.items()})
    expected = np.intersect1d(truth.cameras["cam0"].pulse_index, truth.cameras["cam1"].pulse_index)
    np.testing.assert_array_equal(common, expected)
    for name, r in results.items():
        np.testing.assert_array_equal(r.pulse_index[rows[name]], common)
    assert len(common) > 0.9 * (N_PULSES - 900)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), drift=st.floats(-100, 100), armed=st.integers(0, 3000),
       loss=st.floats(0, 0.05), miss=st.floats(0, 0.05), pattern=st.booleans(), jitter=st.floats(10, 40),
       start=st.integers(0, 2**32 - 1), rate=st.sampled_from([30.0, 100.0, 226.0]))
def test_align_random_conditions(seed, drift, armed, loss, miss, pattern, jitter, start, rate):
    cfg = CameraClockSettings("cam0", drift_ppm=drift, armed_after_pulses=armed, loss_rate=loss, miss_rate=miss,
                            clock_offset_ns=seed * 10**9)
    truth = simulate_clocks(5_000, rate, [cfg], start_tick_us=start, jitter_us=jitter,
                            start_pattern=pattern, seed=seed)
    cam = truth.cameras["cam0"]
    result = align_frames(cam.frame_id, cam.camera_ts_ns, truth.tick_us, rate_hz=rate)
    np.testing.assert_array_equal(result.pulse_index, cam.pulse_index)
    assert result.missed_trigger == len(in_span(cam.missed_pulses, cam))
    assert result.lost_in_transfer == len(in_span(cam.lost_pulses, cam))
    assert abs(result.drift_ppm - drift) < 0.1


def test_align_follows_changing_drift():
    """The clock map is fitted locally, so a drift that changes during the session is followed."""
    cfg = CameraClockSettings("cam0", drift_ppm=0.0, miss_rate=0.01)
    truth = simulate_clocks(N_PULSES, RATE, [cfg], seed=19)
    cam = truth.cameras["cam0"]
    t = truth.pulse_time_s[cam.pulse_index] - truth.pulse_time_s[cam.pulse_index[0]]
    # Drift ramps 50 -> 52 ppm over ~88 s (80 ppm/h, far faster than a real oscillator changes).
    camera_ts = cam.camera_ts_ns + np.rint((50e-6 * t + 1e-6 * t**2 / t[-1]) * 1e9).astype(np.int64)
    result = align_frames(cam.frame_id, camera_ts, truth.tick_us)
    np.testing.assert_array_equal(result.pulse_index, cam.pulse_index)
    assert abs(result.drift_ppm - 51.0) < 0.1  # the best line through 50 + 2 t/T ppm has slope 51 ppm
    # Within one 30 s fit window the quadratic leaves at most k L^2/6 = 1.7 us (k = 1e-6/88 s).
    assert result.residual_max_s < 3e-6


def _keep_ends(truth, name, seconds):
    """Frames of the first and last `seconds` only, as a ring-buffer recorder would save them."""
    cam = truth.cameras[name]
    t = truth.pulse_time_s[cam.pulse_index]
    keep = (t < t[0] + seconds) | (t > t[-1] - seconds)
    return cam.frame_id[keep], cam.camera_ts_ns[keep], cam.pulse_index[keep]


def test_align_bridges_long_gap():
    cfg = CameraClockSettings("cam0", drift_ppm=-90.0, armed_after_pulses=3)
    truth = simulate_clocks(200_000, RATE, [cfg], seed=20)  # 14.7 min, gap of ~14.4 min
    frame_ids, camera_ts, pulses = _keep_ends(truth, "cam0", 10.0)
    result = align_frames(frame_ids, camera_ts, truth.tick_us)
    np.testing.assert_array_equal(result.pulse_index, pulses)
    assert result.lost_in_transfer == len(result.dropped_pulses) > 190_000  # unsaved frames count as lost


def test_align_refuses_gap_too_long_to_bridge():
    """Beyond ~18 min at 226 Hz a 1 ppm change of drift could shift frames by a quarter period."""
    truth = simulate_clocks(300_000, RATE, [CameraClockSettings("cam0", armed_after_pulses=3)], seed=21)
    frame_ids, camera_ts, _ = _keep_ends(truth, "cam0", 10.0)
    with pytest.raises(ValueError, match=r"camera gap of 1307\.\d+ s before frame \d+ is too long"):
        align_frames(frame_ids, camera_ts, truth.tick_us)


def test_ambiguous_offset_raises():
    """A jitter-free regular train without start pattern cannot say which pulse the first frame had."""
    cfg = CameraClockSettings("cam0", armed_after_pulses=50)
    truth = simulate_clocks(5_000, 200.0, [cfg], jitter_us=0.0, start_pattern=False, seed=16)
    cam = truth.cameras["cam0"]
    with pytest.raises(ValueError, match=r"ambiguous alignment.*51 different first pulses"):
        align_frames(cam.frame_id, cam.camera_ts_ns, truth.tick_us)


@pytest.fixture(scope="module")
def small():
    truth = simulate_clocks(2_000, RATE, [CameraClockSettings("cam0", armed_after_pulses=10)], seed=17)
    cam = truth.cameras["cam0"]
    return cam.frame_id, cam.camera_ts_ns, truth.tick_us


def _swap(a, i):
    a = a.copy()
    a[[i, i + 1]] = a[[i + 1, i]]
    return a


@pytest.mark.parametrize("mutate, match", [
    (lambda f, c, t: (f[:0], c[:0], t), "empty input"),
    (lambda f, c, t: (f, c, t[:0]), "empty input"),
    (lambda f, c, t: (f, c[:-1], t), r"differ in length"),
    (lambda f, c, t: (_swap(f, 100), c, t), "frame_ids must be strictly increasing: frame 101"),
    (lambda f, c, t: (f, _swap(c, 200), t), "camera_ts_ns must be strictly increasing: frame 201"),
    (lambda f, c, t: (f, c, t[:1000]), r"more frames \(1990\) than trigger pulses \(1000\)"),
    (lambda f, c, t: (f[:300] + np.where(np.arange(300) >= 150, 200, 0), c[:300], t[:400]),
     "span 500 FrameIDs but the trigger log has only 400"),
    (lambda f, c, t: (f, c.astype(float) + 0.5, t), "camera_ts_ns must hold integers"),
    (lambda f, c, t: (f, c, np.repeat(t, 2)), "repeated ticks"),
    (lambda f, c, t: (f, np.round(c[0] + (c - c[0]) * 1.01).astype(np.int64), t),
     "frames cannot be placed: the camera interval between frames 0 and 1"),
    (lambda f, c, t: (np.where(np.arange(len(f)) > 300, f + 2, f)[:-5], c[:-5], t),
     "FrameID advances by 3 between frames 300 and 301 but their camera times span only 1 pulses"),
])
def test_align_rejects_bad_input(small, mutate, match):
    with pytest.raises(ValueError, match=match):
        align_frames(*mutate(*small))


def test_align_rejects_wrong_rate(small):
    with pytest.raises(ValueError, match=r"median rate 22[56]\.\d+ Hz does not match rate_hz=100"):
        align_frames(*small, rate_hz=100.0)


def test_frame_far_from_any_pulse_cannot_be_placed(small):
    frame_ids, camera_ts, ticks = small
    shifted = camera_ts.copy()
    shifted[1500:] += 1_000_000  # 1 ms: between pulses, after the first pulse is already identified
    with pytest.raises(ValueError, match="frames cannot be placed: frame 1500 is"):
        align_frames(frame_ids, shifted, ticks)


def test_match_cameras_rows_and_errors():
    common, rows = match_cameras({"a": np.array([1, 3, 4, 8]), "b": np.array([0, 3, 8, 9]),
                                  "c": np.array([3, 5, 8])})
    np.testing.assert_array_equal(common, [3, 8])
    assert {k: v.tolist() for k, v in rows.items()} == {"a": [1, 3], "b": [1, 2], "c": [0, 2]}
    with pytest.raises(ValueError, match="at least one camera"):
        match_cameras({})
    with pytest.raises(ValueError, match=r"pulse_indices\['b'\] must be strictly increasing"):
        match_cameras({"a": np.array([1, 2]), "b": np.array([2, 2])})


def test_sync_qc_flags_drops_and_residuals():
    good = simulate_clocks(5_000, RATE, [CameraClockSettings("cam0", loss_rate=0.001)], seed=18)
    bad = simulate_clocks(5_000, RATE, [CameraClockSettings("cam0", loss_rate=0.04, miss_rate=0.02)], seed=18)
    assert sync_qc(align(good, "cam0"), max_drop_fraction=0.01, max_residual_s=20e-6) == []
    problems = sync_qc(align(bad, "cam0"), max_drop_fraction=0.01, max_residual_s=20e-6)
    assert len(problems) == 1 and "pulses dropped" in problems[0] and "lost in transfer" in problems[0]
    tight = sync_qc(align(good, "cam0"), max_drop_fraction=0.01, max_residual_s=1e-9)
    assert len(tight) == 1 and "from their pulse" in tight[0]


def test_pulse_rows_finds_each_pulses_frame_or_none():
    """The one pulse -> frame lookup: any order of frames, pulses without a frame, an empty camera."""
    from ratpose.sync import pulse_rows
    rng = np.random.default_rng(0)
    frame_pulses = rng.permutation(np.flatnonzero(rng.random(400) > 0.3))  # a camera's frames, shuffled
    pulses = rng.integers(-5, 410, 300)
    rows, found = pulse_rows(frame_pulses, pulses)
    expected = {int(p): i for i, p in enumerate(frame_pulses)}
    np.testing.assert_array_equal(rows, [expected.get(int(p), -1) for p in pulses])
    np.testing.assert_array_equal(found, [int(p) in expected for p in pulses])
    rows, found = pulse_rows([], [1, 2])
    assert rows.tolist() == [-1, -1] and not found.any()


def test_pulse_slots_put_pulses_on_one_rate_past_the_start_pattern_and_pauses():
    """The Pi's train: its irregular start pattern, 20 us jitter, then a pause of 3 periods (a wave restarted)."""
    from ratpose.sim.clocks import _START_INTERVALS, _pulse_offsets_us
    from ratpose.sync import pulse_slots

    rate = 226.0
    times = 4000.0 + _pulse_offsets_us(5000, rate, 20.0, True, np.random.default_rng(4)) / 1e6
    times[3000:] += 3 / rate  # 3 slots without a pulse
    slots, kept, start, period = pulse_slots(times, rate)
    pattern = len(_START_INTERVALS)
    np.testing.assert_array_equal(kept, np.arange(5000) >= pattern)
    np.testing.assert_array_equal(np.diff(slots), np.where(np.arange(pattern + 1, 5000) == 3000, 4, 1))
    assert abs(period * rate - 1) < 1e-6
    assert np.abs(start + slots * period - times[kept]).max() < 100e-6  # 20 us jitter: within 5 sigma
