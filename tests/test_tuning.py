"""ratpose.behaviour.tuning against Poisson units with known tuning to a known behaviour."""
import numpy as np
import pandas as pd
import pytest
from scipy.signal import lfilter

from ratpose.behaviour.tuning import direction_tuning, peth, shuffle_test, tuning_curve

FPS = 226.0
DURATION_S = 600.0
ALPHA = 0.01


@pytest.fixture(scope="module")
def behaviour():
    """Frames at 226 fps (0.2 % dropped) of a paw whose horizontal velocity is an Ornstein-Uhlenbeck
    process (tau 0.5 s, 80 mm/s per component): speed ~ Rayleigh(80), direction ~ uniform."""
    rng = np.random.default_rng(0)
    n = int(DURATION_S * FPS)
    dt, tau, sd = 1 / FPS, 0.5, 80.0
    decay = np.exp(-dt / tau)
    kicks = rng.normal(0, sd * np.sqrt(1 - decay ** 2), (n, 2))
    kicks[0] = rng.normal(0, sd, 2)  # start in the stationary distribution
    velocity = lfilter([1.0], [1.0, -decay], kicks, axis=0)  # AR(1): v[i] = decay v[i-1] + kick[i]
    t = np.arange(n) * dt
    kept = rng.random(n) >= 0.002
    return {"t": t[kept], "speed": np.hypot(*velocity[kept].T),
            "direction": np.degrees(np.arctan2(velocity[kept, 1], velocity[kept, 0]))}


def poisson_spikes(t, rate_hz, seed):
    """Inhomogeneous Poisson spikes with rate constant over each frame interval (the last frame gets 1/FPS)."""
    rng = np.random.default_rng(seed)
    widths = np.diff(t, append=t[-1] + 1 / FPS)
    counts = rng.poisson(rate_hz * widths)
    frame = np.repeat(np.arange(t.size), counts)
    return np.sort(t[frame] + rng.uniform(0, 1, frame.size) * widths[frame])


def speed_rate(speed):
    return 2.0 + 30.0 * np.exp(-0.5 * ((speed - 120.0) / 30.0) ** 2)


def direction_rate(direction_deg):
    return 8.0 * (1 + 0.6 * np.cos(np.radians(direction_deg - 75.0)))


SPEED_BINS = np.arange(0.0, 260.0, 20.0)


def test_speed_tuned_unit_found_with_right_preferred_speed(behaviour):
    t, speed = behaviour["t"], behaviour["speed"]
    spikes = poisson_spikes(t, speed_rate(speed), seed=1)
    result = shuffle_test(spikes, t, speed, SPEED_BINS, n_shuffles=500, seed=2)
    assert result.p_value <= ALPHA
    assert abs(result.preferred_value - 120.0) <= 20.0  # within one 20 mm/s bin
    curve = result.curve
    valid = np.isfinite(curve.rate_hz)
    # The binned rate is the tuning curve averaged over the bin's speeds; with >= 1 s occupancy and
    # Poisson counts its error is a few Hz: compare with the mean true rate of the frames in each bin.
    in_bin = (speed >= SPEED_BINS[:-1, None]) & (speed < SPEED_BINS[1:, None])
    expected = (in_bin * speed_rate(speed)).sum(axis=1) / np.maximum(in_bin.sum(axis=1), 1)
    standard_error = np.sqrt(expected / np.maximum(curve.occupancy_s, 1e-9))
    assert (np.abs(curve.rate_hz - expected)[valid] < 4 * standard_error[valid] + 0.5).all()
    assert result.information_bits_per_spike > np.percentile(result.null, 99)


def test_untuned_units_are_not_significant(behaviour):
    t, speed = behaviour["t"], behaviour["speed"]
    p_values = [shuffle_test(poisson_spikes(t, np.full(t.size, 6.0), seed=10 + k), t, speed, SPEED_BINS,
                             n_shuffles=200, seed=k).p_value for k in range(5)]
    assert min(p_values) > ALPHA, p_values


def test_direction_tuning_recovers_preferred_direction_and_depth(behaviour):
    t, direction = behaviour["t"], behaviour["direction"]
    spikes = poisson_spikes(t, direction_rate(direction), seed=3)
    result = direction_tuning(spikes, t, direction, n_shuffles=500, seed=4)
    assert result.p_value <= ALPHA
    # ~4800 spikes: the cosine fit's angular error is ~2 deg; 30 deg bins shrink the depth by
    # sinc(15 deg) = 0.989.
    assert abs((result.preferred_deg - 75.0 + 180) % 360 - 180) < 15.0
    assert abs(result.modulation_depth - 0.6) < 0.1 and abs(result.baseline_hz - 8.0) < 0.8
    untuned = direction_tuning(poisson_spikes(t, np.full(t.size, 8.0), seed=5), t, direction, n_shuffles=500, seed=6)
    assert untuned.p_value > ALPHA and untuned.modulation_depth < 0.15


def test_direction_bins_wrap_around(behaviour):
    t = behaviour["t"]
    hovering = t < DURATION_S / 2
    # First half: flipping between +179 and -179 deg every frame; second half: the OU directions.
    direction = np.where(hovering, np.where(np.arange(t.size) % 2 == 0, 179.0, -179.0), behaviour["direction"])
    curve = direction_tuning(poisson_spikes(t, np.full(t.size, 5.0), seed=7), t, direction, n_bins=12,
                             n_shuffles=10).curve
    # Interpolating unit vectors (not raw angles, whose midpoints would be 0 deg) keeps the wrap:
    # all hovering time lands in the two bins at +-180 deg. Tolerance: a few frames at the switch.
    edge_bins = (np.abs(behaviour["direction"]) >= 150.0) & ~hovering
    expected_edge_s = (hovering.sum() + edge_bins.sum()) / FPS / 0.998
    assert abs(curve.occupancy_s[[0, 11]].sum() - expected_edge_s) < 1.0
    assert abs(curve.occupancy_s[1:11].sum() - (~hovering & ~edge_bins).sum() / FPS / 0.998) < 1.0


def test_occupancy_excludes_gaps_and_shuffles_are_reproducible(behaviour):
    t, speed = behaviour["t"], behaviour["speed"]
    hole = (t > 100.0) & (t < 110.0)
    spikes = poisson_spikes(t, speed_rate(speed), seed=8)
    curve = tuning_curve(spikes, t[~hole], speed[~hole], SPEED_BINS)
    speeds_covered = speed[~hole] < SPEED_BINS[-1]
    # Occupancy = time with a known speed inside the bins: the session minus the 10 s hole and the
    # ~0.5 % of time above 260 mm/s, to within a few frames.
    expected = (DURATION_S - 10.0) * speeds_covered.mean()
    assert abs(curve.occupancy_s.sum() - expected) < 0.5
    # Spikes in the hole are not counted.
    assert curve.spike_counts.sum() <= ((spikes < 100.0) | (spikes > 110.0)).sum()
    first = shuffle_test(spikes, t, speed, SPEED_BINS, n_shuffles=50, seed=9)
    again = shuffle_test(spikes, t, speed, SPEED_BINS, n_shuffles=50, seed=9)
    np.testing.assert_array_equal(first.null, again.null)
    assert curve.spike_counts.sum() > 0 and first.curve.spike_counts.sum() > curve.spike_counts.sum()


def test_tuning_rejects_bad_input(behaviour):
    t, speed = behaviour["t"], behaviour["speed"]
    with pytest.raises(ValueError, match="variable must have shape"):
        tuning_curve([1.0], t, speed[:-1], 5)
    with pytest.raises(ValueError, match="spike_times must be sorted"):
        tuning_curve([2.0, 1.0], t, speed, 5)


def test_too_short_a_recording_gives_the_curve_and_says_the_test_did_not_run(behaviour):
    short = behaviour["t"] < 8.0
    t, speed = behaviour["t"][short], behaviour["speed"][short]
    spikes = poisson_spikes(t, speed_rate(speed), seed=11)
    result = shuffle_test(spikes, t, speed, SPEED_BINS, min_shift_s=5.0, min_occupancy_s=0.2)
    assert result.note == "not enough data: a recording of 8.0 s is too short for shifts of at least 5 s each way"
    assert np.isnan(result.p_value) and result.null.size == 0 and np.isnan(result.preferred_value)
    assert abs(result.curve.occupancy_s.sum() - 8.0 * (speed < SPEED_BINS[-1]).mean()) < 0.1
    assert result.curve.spike_counts.sum() == ((spikes < t[-1]) & (np.interp(spikes, t, speed) < SPEED_BINS[-1])).sum()
    # long enough: the same call runs the test
    assert shuffle_test(spikes, t, speed, SPEED_BINS, min_shift_s=2.0, min_occupancy_s=0.2, n_shuffles=20).note == ""


def test_no_occupied_bin_or_no_spike_is_not_a_significant_result(behaviour):
    """Without a bin with enough occupancy, or without a spike in one, there is nothing to test: p is NaN
    (an information of NaN against its null used to give p = 1 / (1 + n_shuffles), 'significant')."""
    t, speed = behaviour["t"], behaviour["speed"]
    spikes = poisson_spikes(t, speed_rate(speed), seed=12)
    too_fast = shuffle_test(spikes, t, speed, [1000.0, 2000.0, 3000.0], n_shuffles=50)
    assert np.isnan(too_fast.p_value) and np.isnan(too_fast.information_bits_per_spike)
    assert too_fast.note == "not enough data: 0 bin(s) with at least 1 s occupancy, the test needs 1"
    silent = shuffle_test([], t, speed, SPEED_BINS, n_shuffles=50)
    assert np.isnan(silent.p_value) and silent.note.endswith("no spikes in the bins with at least 1 s occupancy")
    assert silent.curve.occupancy_s.sum() > 500.0 and (silent.curve.rate_hz[silent.curve.occupancy_s >= 1] == 0).all()


def test_direction_over_fewer_than_three_bins_keeps_its_curve(behaviour):
    t = behaviour["t"]
    forward_back = np.where(np.arange(t.size) // 500 % 2 == 0, 10.0, -170.0)  # two directions only
    result = direction_tuning(poisson_spikes(t, np.full(t.size, 5.0), seed=13), t, forward_back, n_shuffles=20)
    assert result.note == "not enough data: 2 bin(s) with at least 1 s occupancy, the test needs 3"
    assert np.isnan([result.p_value, result.preferred_deg, result.modulation_depth]).all()
    assert np.isfinite(result.curve.rate_hz).sum() == 2 and result.curve.occupancy_s.sum() > 590.0


def test_peth_counts_and_rates():
    events = np.arange(200) * 3.0 + 5.0
    fixed = np.sort(np.concatenate([events + 0.105, events - 0.505]))
    result = peth(fixed, events, window=(-1.0, 1.0), bin_s=0.01)
    assert result.counts.shape == (200, 200)
    hit = np.flatnonzero(result.counts.sum(axis=0))
    np.testing.assert_array_equal(hit, [49, 110])  # -0.505 s falls in [-0.51, -0.50), 0.105 in [0.10, 0.11)
    np.testing.assert_allclose(result.rate_hz[hit], 100.0)

    rng = np.random.default_rng(0)
    bumps = np.concatenate([e + rng.uniform(0, 0.1, rng.poisson(5.0)) for e in events])  # 50 Hz for 100 ms
    background = np.sort(rng.uniform(0, events[-1] + 5, rng.poisson(5.0 * (events[-1] + 5))))  # 5 Hz
    result = peth(np.sort(np.concatenate([bumps, background])), events, window=(-0.5, 0.5), bin_s=0.02)
    in_bump = (result.bin_centres_s > 0) & (result.bin_centres_s < 0.1)
    # 200 trials: SE of a 5-bin mean of the 55 Hz bump ~ sqrt(55 * 0.1 * 200) / (0.1 * 200) = 1.7 Hz.
    assert abs(result.rate_hz[in_bump].mean() - 55.0) < 7.0
    assert abs(result.rate_hz[~in_bump].mean() - 5.0) < 1.0
    assert result.sem_hz.shape == (50,) and np.isfinite(result.sem_hz).all()
    with pytest.raises(ValueError, match="whole number of bins"):
        peth(fixed, events, window=(-1.0, 1.0), bin_s=0.03)


def test_on_simulated_units():
    scene_module = pytest.importorskip("ratpose.sim.scene")
    neural = pytest.importorskip("ratpose.sim.neural")
    from ratpose.behaviour.kinematics import speed as paw_speed

    scene = scene_module.make_scene(0.0, 240.0, seed=2)
    t = np.arange(0.0, 240.0, 1 / FPS)
    paw = scene.keypoints(t)[:, scene_module.BODYPARTS.index("paw")]
    units = (neural.UnitModel(1, 1, "speed", base_hz=3.0, gain_hz=40.0, preferred_speed_mm_s=60.0,
                              speed_width_mm_s=20.0),
             neural.UnitModel(2, 1, "untuned", base_hz=5.0))
    ids, times = neural.simulate_spikes(units, scene, 0.0, 240.0, np.random.default_rng(3))
    speed = paw_speed(t, paw)
    bins = np.arange(0.0, 140.0, 15.0)
    tuned = shuffle_test(times[ids == 1], t, speed, bins, n_shuffles=300, seed=4, min_occupancy_s=0.5)
    assert tuned.p_value <= ALPHA and abs(tuned.preferred_value - 60.0) <= 15.0
    untuned = shuffle_test(times[ids == 2], t, speed, bins, n_shuffles=300, seed=5, min_occupancy_s=0.5)
    assert untuned.p_value > ALPHA


def test_direction_units_of_the_simulated_knob_task_are_found_in_24_s():
    """The demo's session: reaches and withdrawals move the paw forward and back (two narrow arcs of
    directions), where a cosine fit is ill-conditioned; the vector-strength test still finds the
    simulator's direction units from true kinematics and leaves the untuned ones alone."""
    from ratpose.behaviour import AnalysisSettings
    from ratpose.behaviour.analyses import analyse_unit
    from ratpose.sim.neural import default_units, simulate_spikes
    from ratpose.sim.scene import BODYPARTS, make_scene

    scene, units = make_scene(0.0, 24.0, seed=0), default_units(6, seed=0)
    ids, times = simulate_spikes(units, scene, 0.0, 24.0, np.random.default_rng(0))
    t = np.arange(0.0, 24.0, 1 / 30)
    paw = scene.keypoints(t)[:, BODYPARTS.index("paw")]
    events = pd.DataFrame(columns=["trial", "event", "time_s"])
    results = {u.unit_id: analyse_unit(times[ids == u.unit_id], t, paw, scene.knob(), scene.up, events,
                                       AnalysisSettings()) for u in units}
    covered = results[1].direction.curve.occupancy_s > 0
    assert covered.sum() <= 4  # forward and back only
    for unit in units:
        direction = results[unit.unit_id].direction
        if unit.kind == "direction":
            assert direction.p_value < 0.01, unit
            # the highest rate is on the true preference's side (forward or back)
            best = direction.curve.bin_centres[np.nanargmax(direction.curve.rate_hz)]
            assert abs((best - unit.preferred_direction_deg + 180) % 360 - 180) < 90, unit
        elif unit.kind == "untuned":  # 4 null tests: p <= 0.005 for any by chance 2 % of the time
            assert direction.p_value > 0.005 and results[unit.unit_id].speed.p_value > 0.005, unit


def test_unit_analysis_of_a_short_session_notes_both_tests_not_run():
    from ratpose.behaviour import AnalysisSettings
    from ratpose.behaviour.analyses import analyse_unit
    from ratpose.sim.neural import default_units, simulate_spikes
    from ratpose.sim.scene import BODYPARTS, make_scene

    scene, units = make_scene(0.0, 8.0, seed=0), default_units(6, seed=0)
    ids, times = simulate_spikes(units, scene, 0.0, 8.0, np.random.default_rng(0))
    t = np.arange(0.0, 8.0, 1 / 30)
    paw = scene.keypoints(t)[:, BODYPARTS.index("paw")]
    busiest = np.bincount(ids).argmax()
    result = analyse_unit(times[ids == busiest], t, paw, scene.knob(), scene.up,
                          pd.DataFrame(columns=["trial", "event", "time_s"]), AnalysisSettings())
    assert result.test_note == ("speed and direction tests not run: not enough data: a recording of 8.0 s is too "
                                "short for shifts of at least 5 s each way")
    assert np.isnan(result.speed.p_value) and np.isnan(result.direction.p_value)
    assert np.nansum(result.speed.curve.spike_counts) > 0 and len(result.speed_at_spike) == (ids == busiest).sum()


def test_short_session_stores_unit_tuning_without_p_values(db, tmp_path, capsys):
    """An 8 s session, too short for 5 s shifts each way: UnitTuning stores every unit with its curves, null
    p-values and the reason, and the session report shows them."""
    from conftest import build_simulated_pipeline

    from ratpose.cli import main as cli
    from ratpose.sim import SessionSettings

    config = SessionSettings(seconds=8.0, fps=30.0, size=(320, 240), seed=3, n_units=2, subject="rat_short")
    _, session, results = build_simulated_pipeline(db, tmp_path, config)
    assert not any(r["error_list"] for r in results.values()), results
    rows = (db["analysis"].UnitTuning & session).to_dicts()
    assert len(rows) == 2
    for row in rows:
        assert row["speed_p_value"] is None and row["direction_p_value"] is None
        assert row["test_note"].startswith("speed and direction tests not run: not enough data: a recording of ")
        assert row["test_note"].endswith(" s is too short for shifts of at least 5 s each way")
        assert np.nansum(row["speed_occupancy_s"]) > 5.0 and row["n_spikes"] > 0
    assert cli(["report", str(tmp_path / "session"), "--out", str(tmp_path / "report")]) == 0, capsys.readouterr()
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<td>units (speed-tuned at p &lt; 0.01)</td><td>2 (0)</td>" in page
    assert all((tmp_path / "report" / f"unit_{row['unit_id']}.png").is_file() for row in rows)
