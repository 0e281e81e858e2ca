"""ratpose.behaviour.kinematics against analytic trajectories (pure numpy, no database)."""
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import brentq

from ratpose.behaviour import KnobModel
from ratpose.behaviour.kinematics import (
    as_intervals,
    detect_events,
    interval_index,
    movement_direction,
    paw_arrivals,
    pose_at,
    speed,
    turn_intervals,
    velocity,
)

FPS = 226.0


def frame_times(duration_s, seed=0, drop_fraction=0.0):
    """Frame times at FPS with sub-microsecond jitter and randomly dropped frames."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * FPS)) / FPS + rng.uniform(-2e-6, 2e-6, int(duration_s * FPS))
    return t[rng.random(t.size) >= drop_fraction]


def linear_pose(t, n_parts=4):
    """Points moving on straight lines, (n, n_parts, 3): exactly representable by linear interpolation."""
    offsets = np.arange(n_parts * 3, dtype=float).reshape(n_parts, 3)
    slopes = np.linspace(-40.0, 70.0, n_parts * 3).reshape(n_parts, 3)
    return offsets + slopes * t[:, None, None], offsets, slopes


def test_pose_at_exact_on_linear_data_with_one_dropped_frame_bridged():
    t = frame_times(5.0, drop_fraction=0.0)
    t = np.delete(t, [100, 300, 301])  # one single drop (bridged) and one double drop (not bridged)
    points, offsets, slopes = linear_pose(t)
    rng = np.random.default_rng(1)
    query = rng.uniform(t[0], t[-1], 20_000)
    got = pose_at(query, t, points)
    truth = offsets + slopes * query[:, None, None]
    double_gap = (query > t[298]) & (query < t[299])  # old frames 299 and 302 are now 298 and 299
    assert np.isnan(got[double_gap]).all() and double_gap.sum() > 0
    # Linear data are reproduced to rounding error (values ~300 mm, float64).
    np.testing.assert_allclose(got[~double_gap], truth[~double_gap], rtol=0, atol=1e-9)
    single_gap = (query > t[99]) & (query < t[100])
    assert single_gap.sum() > 0


def test_pose_at_nan_outside_over_gaps_and_next_to_missing_points():
    t = np.arange(10) / FPS
    t[6:] += 0.1  # a 100 ms hole between frames 5 and 6
    points = np.column_stack([t, 2 * t, -t]) * 1000.0
    points[2] = np.nan
    query = np.array([t[0] - 1e-3, t[1] + 1e-3, t[3] - 1e-3, t[1], t[3], t[5], t[5] + 0.05, t[6], t[-1], t[-1] + 1e-3])
    got = pose_at(query, t, points)
    expected_nan = [True, True, True, False, False, False, True, False, False, True]
    np.testing.assert_array_equal(np.isnan(got).any(axis=1), expected_nan)
    np.testing.assert_allclose(got[[3, 4, 5, 7, 8]], points[[1, 3, 5, 6, 9]], atol=1e-12)
    assert np.isfinite(pose_at(np.array([t[5] + 0.05]), t, points, max_gap_s=0.2)).all()


def test_pose_at_rejects_bad_input():
    t = np.arange(5.0)
    with pytest.raises(ValueError, match="pose_times_s must be strictly increasing"):
        pose_at([1.0], t[::-1], np.zeros((5, 3)))
    with pytest.raises(ValueError, match="points3d must have one row per pose time"):
        pose_at([1.0], t, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="max_gap_s"):
        pose_at([1.0], t, np.zeros((5, 3)), max_gap_s=0.0)


def test_speed_constant_and_not_fooled_by_a_jump_across_a_gap():
    t = frame_times(3.0, seed=2, drop_fraction=0.01)
    v = np.array([100.0, -50.0, 20.0])
    points = t[:, None] * v
    hole = (t > 1.0) & (t < 1.05)
    t, points = t[~hole], points[~hole]
    points[t >= 1.05] += 100.0  # the paw "jumps" 173 mm over the 50 ms hole: no frame may see it
    points[500] = np.nan
    s = speed(t, points)
    # A constant velocity survives gap-aware differencing and normalised smoothing to rounding error.
    np.testing.assert_allclose(s[np.isfinite(s)], np.linalg.norm(v), rtol=1e-9)
    assert np.isnan(s[500]) and np.isfinite(s).mean() > 0.99


def test_speed_on_a_circle_matches_analytic_speed():
    t = frame_times(4.0, seed=3, drop_fraction=0.02)
    radius, omega = 20.0, 2 * np.pi * 1.5
    points = radius * np.column_stack([np.cos(omega * t), np.sin(omega * t), np.zeros_like(t)])
    s = speed(t, points, smooth_s=0.005)
    inner = (t > 0.1) & (t < 3.9)
    # Gaussian smoothing (sigma 5 ms) shrinks a rotating velocity by exp(-(omega sigma)^2 / 2) = 0.9989
    # and central differences by 0.9998; next to dropped frames the kernel (over frame index) spans
    # more time, which rotates the averaged vectors further: allow 0.5 %, and 0.15 % for the median.
    np.testing.assert_allclose(s[inner], radius * omega, rtol=5e-3)
    assert abs(np.median(s[inner]) / (radius * omega) - 1) < 1.5e-3


def test_movement_direction_in_the_horizontal_plane():
    t = frame_times(2.0, seed=4)
    heading = np.radians(30.0)
    # World frame = camera frame: up is -y here; reference (1, 0, 0) is direction 0.
    points = 80.0 * t[:, None] * np.array([np.cos(heading), -7.0, np.sin(heading)])
    direction = movement_direction(t, points, up=(0, -1, 0), reference=(1, 0, 0))
    # Turning x by h about up = -y (right hand) gives cos h x + sin h (up x x) = (cos h, 0, sin h).
    np.testing.assert_allclose(direction, 30.0, atol=1e-6)
    slow = movement_direction(t, points, up=(0, -1, 0), min_speed_mm_s=81.0)
    assert np.isnan(slow).all()
    with pytest.raises(ValueError, match="parallel"):
        movement_direction(t, points, up=(1, 0, 0), reference=(1, 0, 0))


def test_interval_helpers():
    intervals = as_intervals([[0.0, 1.0], [2.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(interval_index([-1, 0, 0.5, 1.5, 2.0, 3.5, 4.0, 5.0], intervals),
                                  [-1, 0, 0, -1, 1, 2, 2, -1])
    with pytest.raises(ValueError, match="touch_intervals must be sorted and non-overlapping"):
        as_intervals([[0.0, 2.0], [1.0, 3.0]])
    with pytest.raises(ValueError, match="ends before it starts"):
        as_intervals([[1.0, 0.0]])


def minimum_jerk(tau):
    tau = np.clip(tau, 0.0, 1.0)
    return tau ** 3 * (10 - 15 * tau + 6 * tau ** 2)


def minimum_jerk_speed(tau):
    tau = np.clip(tau, 0.0, 1.0)
    return 30 * tau ** 2 * (1 - tau) ** 2


class ReachTrials:
    """Reach (minimum jerk) from a rest point 50 mm from a knob to its rim, hold, turn, return."""

    knob = KnobModel(centre=[0.0, 0.0, 0.0], radius_mm=10.0, axis=[0.0, 0.0, 1.0])
    rest = np.array([60.0, 0.0, 0.0])
    rim = np.array([10.0, 0.0, 0.0])
    reach_s, turn_s, turn_deg = 0.3, 0.25, 60.0

    def __init__(self, n_trials=6, period_s=2.0):
        self.reach_starts = 0.5 + period_s * np.arange(n_trials)
        self.touch_on = self.reach_starts + self.reach_s + 0.005
        self.turn_on = self.touch_on + 0.1
        self.touch_off = self.turn_on + self.turn_s + 0.15
        self.touch_intervals = np.column_stack([self.touch_on, self.touch_off])
        self.duration_s = period_s * n_trials + 0.5

    def paw(self, t):
        k = np.clip(np.searchsorted(self.reach_starts, t, side="right") - 1, 0, None)
        out_s = minimum_jerk((t - self.reach_starts[k]) / self.reach_s)
        back_s = minimum_jerk((t - self.touch_off[k]) / self.reach_s)
        s = (out_s - back_s)[:, None]
        return self.rest + s * (self.rim - self.rest)

    def angle(self, t):
        k = np.clip(np.searchsorted(self.turn_on, t, side="right") - 1, 0, None)
        turning = np.clip((t - self.turn_on[k]) / self.turn_s, 0, 1)
        return np.where(t < self.touch_off[k], self.turn_deg * turning, 0.0)


def test_detect_events_recovers_analytic_event_times():
    trials = ReachTrials()
    t = frame_times(trials.duration_s, seed=5, drop_fraction=0.01)
    angle_t = np.arange(0.0, trials.duration_s, 1e-3)
    threshold, arrival_mm, turn_threshold = 50.0, 5.0, 2.0
    events = detect_events(t, trials.paw(t), trials.knob, trials.touch_intervals, angle_t, trials.angle(angle_t),
                           speed_threshold_mm_s=threshold, arrival_distance_mm=arrival_mm,
                           turn_threshold_deg=turn_threshold, smooth_s=0.0)
    table = events.pivot(index="trial", columns="event", values="time_s")
    assert len(table) == len(trials.reach_starts) and not table.isna().any().any()
    assert (np.diff(events["time_s"]) >= 0).all()

    distance = np.linalg.norm(trials.rest - trials.rim)
    onset_tau = brentq(lambda x: minimum_jerk_speed(x) * distance / trials.reach_s - threshold, 0, 0.5)
    arrival_tau = brentq(lambda x: minimum_jerk(x) - (1 - arrival_mm / distance), 0, 1)
    # Finite differences at 226 fps place a speed crossing within about a frame (4.4 ms); position
    # crossings are linearly interpolated (error << 1 ms); angle ramps are exact at 1 kHz sampling.
    np.testing.assert_allclose(table["reach_onset"], trials.reach_starts + onset_tau * trials.reach_s, atol=4.4e-3)
    np.testing.assert_allclose(table["paw_arrival"], trials.reach_starts + arrival_tau * trials.reach_s, atol=5e-4)
    np.testing.assert_allclose(table["touch"], trials.touch_on, atol=1e-12)
    np.testing.assert_allclose(table["release"], trials.touch_off, atol=1e-12)
    rate = trials.turn_deg / trials.turn_s
    np.testing.assert_allclose(table["turn_start"], trials.turn_on + turn_threshold / rate, atol=1e-6)
    np.testing.assert_allclose(table["turn_end"], trials.turn_on + trials.turn_s - turn_threshold / rate, atol=1e-6)

    smoothed = detect_events(t, trials.paw(t), trials.knob, trials.touch_intervals, angle_t, trials.angle(angle_t))
    onsets = smoothed[smoothed["event"] == "reach_onset"]["time_s"].to_numpy()
    # 20 ms Gaussian smoothing of a convex speed rise moves its threshold crossing earlier by < 15 ms.
    np.testing.assert_allclose(onsets, trials.reach_starts + onset_tau * trials.reach_s, atol=15e-3)


def test_events_left_out_when_paw_never_arrives_or_knob_never_turns():
    trials = ReachTrials(n_trials=2)
    t = frame_times(trials.duration_s, seed=6)
    far_knob = KnobModel(centre=[0.0, 0.0, 30.0], radius_mm=10.0)  # 20 mm from the paw at the rim
    angle_t = np.arange(0.0, trials.duration_s, 1e-3)
    events = detect_events(t, trials.paw(t), far_knob, trials.touch_intervals, angle_t, np.zeros_like(angle_t))
    assert set(events["event"]) == {"reach_onset", "touch", "release"}
    assert len(events) == 3 * 2
    np.testing.assert_array_equal(paw_arrivals(t, far_knob.distance(trials.paw(t)), trials.touch_intervals),
                                  [np.nan, np.nan])
    assert np.isnan(turn_intervals(angle_t, np.zeros_like(angle_t), trials.touch_intervals)).all()


def test_velocity_shape_and_errors():
    t = frame_times(1.0)
    points = np.zeros((t.size, 2, 3))
    assert velocity(t, points).shape == points.shape
    with pytest.raises(ValueError, match="points3d must have shape"):
        velocity(t, np.zeros((t.size, 2)))
    with pytest.raises(ValueError, match="times_s must be finite"):
        speed(np.array([0.0, np.nan]), np.zeros((2, 3)))


def test_detect_events_on_simulated_scene():
    sim = pytest.importorskip("ratpose.sim.scene")
    neural = pytest.importorskip("ratpose.sim.neural")
    scene = sim.make_scene(0.0, 30.0, seed=3)
    t = frame_times(30.0, seed=5, drop_fraction=0.002)
    paw = scene.keypoints(t)[:, sim.BODYPARTS.index("paw")]
    touches = scene.touch_intervals(0.0, 30.0)
    touches = touches[np.isfinite(touches).all(axis=1)]
    angle_t, angle = neural.knob_angle_log(scene, 0.0, 30.0)  # 100 Hz, 0.09 deg steps
    knob = scene.knob()
    events = detect_events(t, paw, knob, touches, angle_t, angle, arrival_distance_mm=scene.touch_margin_mm)
    table = events.pivot(index="trial", columns="event", values="time_s")
    assert len(table) == len(touches) and not table.isna().any().any()

    # Truth from the scene's analytic curves on a 0.1 ms grid, with the same event definitions.
    fine = np.arange(0.0, 30.0, 1e-4)
    # the detector's speed is that of the velocity Gaussian-smoothed over 20 ms (sigma): so is the truth's
    true_speed = np.linalg.norm(gaussian_filter1d(scene.paw_velocity(fine), 0.02 / 1e-4, axis=0), axis=1)
    true_angle = scene.knob_angle(fine)

    def first_after(start, condition):
        i = np.searchsorted(fine, start)
        return fine[i + np.argmax(condition[i:])]

    def last_rise_before(end, above):
        rises = fine[1:][above[1:] & ~above[:-1]]
        return rises[np.searchsorted(rises, end) - 1]

    reach = np.array([last_rise_before(on, true_speed >= 50.0) for on in touches[:, 0]])
    turn_start = np.array([first_after(on, np.abs(true_angle) >= 2.0) for on in touches[:, 0]])
    # The same smoothing on frames with drops puts the crossing within 2 frames; the 100 Hz angle log,
    # linearly interpolated and quantised to 0.09 deg, puts the 2 deg crossing within a few ms (seen: < 1 ms).
    np.testing.assert_allclose(table["reach_onset"], reach, atol=2 / FPS)
    np.testing.assert_allclose(table["turn_start"], turn_start, atol=3e-3)
    # The sim's touch is the paw within touch_margin_mm of the knob ball: arrival == touch onset.
    np.testing.assert_allclose(table["paw_arrival"], table["touch"], atol=1e-3)


def test_forelimb_kinematics_on_the_simulated_hand_follow_the_knob_and_the_reach():
    """Supination is the hand's roll (the knob's angle during turns, sign from the knob's axis), the aperture
    the digits' distance, the reach phase the simulator's reach; no database, the scene's exact keypoints."""
    from ratpose.behaviour.forelimb import PHASE_NAMES, agreement_with_knob, forelimb_kinematics
    from ratpose.sim.scene import BODYPARTS, make_scene

    scene = make_scene(0.0, 60.0, seed=3)
    t = frame_times(60.0, seed=2)
    points = scene.keypoints(t)
    angle = scene.knob_angle(t)
    touches = scene.touch_intervals(0.0, 60.0)
    events = detect_events(t, points[:, BODYPARTS.index("paw")], scene.knob(), touches, t, angle)
    table = forelimb_kinematics(t, {n: points[:, i] for i, n in enumerate(BODYPARTS)}, scene.up, events)
    turns = turn_intervals(t, angle, touches)
    correlation, slope = agreement_with_knob(t, table.supination_deg.to_numpy(), t, angle, turns)
    forearm = np.nanmean(points[:, BODYPARTS.index("paw")] - points[:, BODYPARTS.index("wrist")], axis=0)
    sign = np.sign(np.dot(forearm, scene.knob_axis))
    assert correlation * sign > 0.999 and abs(slope - sign) < 0.02
    idle = np.zeros(len(t), bool)
    for trial in scene.bounds:
        idle |= (t >= trial[0]) & (t < trial[1])
    assert np.abs(table.supination_deg.to_numpy()[idle]).max() < 1.0       # palm down between trials
    aperture = np.linalg.norm(points[:, BODYPARTS.index("digit2")] - points[:, BODYPARTS.index("digit1")], axis=1)
    np.testing.assert_allclose(table.aperture_mm, aperture)
    assert table.aperture_mm.max() > 1.3 * table.aperture_mm.min()         # the digits open during the reach
    true_speed = np.linalg.norm(scene.paw_velocity(t), axis=1)   # the 20 ms smoothing rounds the fastest peaks
    assert np.median(np.abs(table.paw_speed.to_numpy() - true_speed)) < 8.0
    assert np.corrcoef(table.paw_speed.to_numpy()[1:-1], true_speed[1:-1])[0, 1] > 0.95
    truth_reach = np.zeros(len(t), bool)
    for trial in scene.bounds:
        truth_reach |= (t >= trial[1]) & (t < trial[2])
    found = table.phase.to_numpy() == PHASE_NAMES.index("reach")
    # the reach phase is the simulated reach up to contact (the simulator's slow approach after it is contact)
    assert (found & truth_reach).sum() > 0.9 * found.sum() and found.sum() > 0.4 * truth_reach.sum()
    first_found = t[np.flatnonzero(found[1:] & ~found[:-1]) + 1]
    assert all(np.min(np.abs(first_found - start)) < 0.02 for start in scene.bounds[1:-1, 1] if start < t[-1])
    assert set(np.unique(table.phase)) >= {PHASE_NAMES.index(p) for p in ("rest", "reach", "contact", "turn")}
