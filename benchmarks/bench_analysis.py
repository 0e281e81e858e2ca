"""Benchmark the pose x spikes analysis: python benchmarks/bench_analysis.py

1. pose_at: 1 million spike times on a 1-hour 226 fps pose of 10 body parts (0.1 % frames dropped),
   against np.interp per coordinate (30 calls, no gap handling) as a reference.
2. speed() of that pose.
3. One unit (~10 Hz for an hour): tuning curve, shuffle_test and direction_tuning with 1000 shuffles.
Times are the best of a few repeats: wall clock (this machine's load included) and, for pose_at,
also process CPU time, which is less sensitive to other jobs on a shared machine.
"""
from __future__ import annotations

import time

import numpy as np

from ratpose.behaviour.kinematics import movement_direction, pose_at, speed
from ratpose.behaviour.tuning import direction_tuning, shuffle_test, tuning_curve

FPS, HOURS, N_PARTS, N_QUERIES, N_SHUFFLES = 226.0, 1.0, 10, 1_000_000, 1000


def best_of(repeats, function, clock=time.perf_counter):
    times = []
    for _ in range(repeats):
        start = clock()
        result = function()
        times.append(clock() - start)
    return min(times), result


def main():
    rng = np.random.default_rng(0)
    n_frames = int(HOURS * 3600 * FPS)
    t = np.arange(n_frames) / FPS
    t = t[rng.random(n_frames) >= 0.001]
    # Smooth random walks (mm) for every body part.
    points = np.cumsum(rng.normal(0, 0.5, (t.size, N_PARTS, 3)), axis=0)
    points[rng.random(t.size) < 0.01, 3] = np.nan
    spikes = np.sort(rng.uniform(t[0], t[-1], N_QUERIES))
    print(f"pose: {t.size:,} frames x {N_PARTS} parts ({HOURS:g} h at {FPS:g} fps); {N_QUERIES:,} query times")

    seconds, _ = best_of(3, lambda: pose_at(spikes, t, points))
    cpu_seconds, _ = best_of(3, lambda: pose_at(spikes, t, points), clock=time.process_time)
    flat = points.reshape(t.size, -1)
    reference, _ = best_of(2, lambda: np.stack([np.interp(spikes, t, flat[:, k]) for k in range(flat.shape[1])], 1))
    print(f"pose_at:            {seconds:7.3f} s  {N_QUERIES / seconds / 1e6:6.2f} M queries/s  "
          f"(CPU {cpu_seconds:.3f} s; np.interp x {flat.shape[1]}, no gap handling: {reference:.3f} s; "
          f"ratio {seconds / reference:.2f})")
    shuffled = rng.permutation(spikes)
    seconds_unsorted, _ = best_of(3, lambda: pose_at(shuffled, t, points))
    print(f"pose_at unsorted:   {seconds_unsorted:7.3f} s  (ratio to sorted {seconds_unsorted / seconds:.2f})")

    seconds, paw_speed = best_of(2, lambda: speed(t, points[:, 1]))
    seconds_all, _ = best_of(1, lambda: speed(t, points))
    print(f"speed (1 part):     {seconds:7.3f} s  {t.size / seconds / 1e6:6.2f} M frames/s;  "
          f"all {N_PARTS} parts: {seconds_all:.3f} s")

    # A unit tuned to paw speed, ~10 Hz mean rate: thinning of a homogeneous Poisson train.
    paw_speed = speed(t, points[:, 1], smooth_s=0.05)
    direction = movement_direction(t, points[:, 1], smooth_s=0.05)
    candidates = np.sort(rng.uniform(t[0], t[-1], rng.poisson(20.0 * t[-1])))
    at = np.clip(np.searchsorted(t, candidates) - 1, 0, t.size - 1)
    level = np.nanpercentile(paw_speed, [50, 95])
    accept = np.nan_to_num(paw_speed[at]) / level[1] + 0.2 > rng.random(candidates.size)
    unit = candidates[accept]
    bins = np.linspace(0.0, level[1], 11)
    print(f"unit: {unit.size:,} spikes ({unit.size / t[-1]:.1f} Hz)")
    seconds_curve, _ = best_of(3, lambda: tuning_curve(unit, t, paw_speed, bins))
    seconds_test, test = best_of(2, lambda: shuffle_test(unit, t, paw_speed, bins, n_shuffles=N_SHUFFLES, seed=1))
    print(f"tuning_curve:       {seconds_curve:7.3f} s")
    print(f"shuffle_test x{N_SHUFFLES}: {seconds_test:7.3f} s  "
          f"({1e3 * (seconds_test - seconds_curve) / N_SHUFFLES:.2f} ms "
          f"per shuffle; ratio to one curve {seconds_test / seconds_curve:.1f}); p = {test.p_value:.4f}")
    seconds_dir, tuned = best_of(2, lambda: direction_tuning(unit, t, direction, n_shuffles=N_SHUFFLES, seed=2))
    print(f"direction_tuning x{N_SHUFFLES}: {seconds_dir:7.3f} s  p = {tuned.p_value:.3f}")


if __name__ == "__main__":
    main()
