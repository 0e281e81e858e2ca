"""Encoding and decoding on simulated recordings with known filters: what issue 39 asks, measured.

    python benchmarks/bench_encoding.py              # 10 minutes x 30 units, then 60 minutes x 30 units (timing)
    python benchmarks/bench_encoding.py --minutes 10 --no-hour

Prints, for the 10-minute session (a third of the units tuned to velocity, a third to supination, a third
untuned): sensitivity and false-positive rate of ``tuned``, the recovered filters' correlation with the truth
and their size ratio per tuned kind, the linear decoder's R^2 per variable against the ceiling of the same
decoder on the simulator's true expected counts, the Bayesian decoder's and the knob-during-turns R^2; then
the wall time of encoding + decoding an hour-long session on this machine.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from ratpose.behaviour.decoding import DECODED, DecodingSettings, decode_session, wiener_decode
from ratpose.behaviour.encoding import EncodingSettings, encode_session
from ratpose.behaviour.kinematics import detect_events
from ratpose.poses import position_of
from ratpose.sim.recording import simulate_recording
from ratpose.timeseries import session_timeseries


def timeseries_of(recording):
    times = recording.poses.time.values
    events = detect_events(times, position_of(recording.poses, "paw"), recording.scene.knob(),
                           recording.touch_intervals, recording.angle_time_s, recording.angle_deg)
    return session_timeseries(recording.poses, recording.spike_times, recording.unit_table,
                              recording.touch_intervals, events, up=recording.scene.up)


def filter_scores(recording, results, settings):
    scores = {"velocity": [], "supination": []}
    for unit, result in zip(recording.units, results):
        if unit.kind not in scores:
            continue
        kernel = unit.filter(settings.lags_s)
        truth = kernel[:, None] * np.asarray(unit.axis)[None] if unit.kind == "velocity" else kernel[:, None]
        found = result.filters[unit.kind]
        scores[unit.kind].append((np.corrcoef(truth.ravel(), found.ravel())[0, 1],
                                  np.linalg.norm(found) / np.linalg.norm(truth)))
    return scores


def ceiling(recording, decoded, settings):
    """The linear decoder's R^2 on the simulator's true expected counts (no Poisson noise), same bins and targets."""
    targets = np.column_stack([decoded.actual[c] for c in DECODED])
    expected = recording.rates(decoded.bin_times_s).T * settings.bin_s
    return dict(zip(DECODED, wiener_decode(expected, targets, np.isfinite(targets).all(axis=1), settings)[0]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--units", type=int, default=30)
    parser.add_argument("--no-hour", action="store_true", help="skip the hour-long timing")
    args = parser.parse_args()
    encoding, decoding = EncodingSettings(), DecodingSettings()

    start = time.perf_counter()
    recording = simulate_recording(args.minutes * 60.0, args.units, seed=1)
    timeseries = timeseries_of(recording)
    simulated = time.perf_counter() - start
    start = time.perf_counter()
    results = encode_session(timeseries, encoding)
    encoded = time.perf_counter() - start
    start = time.perf_counter()
    decoded = decode_session(timeseries, recording.angle_time_s, recording.angle_deg, decoding)
    decode_s = time.perf_counter() - start

    kinds = np.array([u.kind for u in recording.units])
    tuned = np.array([r.tuned for r in results])
    print(f"{args.minutes:g} min, {args.units} units: simulated in {simulated:.1f} s, encoded in {encoded:.1f} s, "
          f"decoded in {decode_s:.1f} s")
    print(f"tuned found: sensitivity {tuned[kinds != 'untuned'].mean():.2f} "
          f"(velocity {tuned[kinds == 'velocity'].mean():.2f}, supination {tuned[kinds == 'supination'].mean():.2f}),"
          f" untuned found tuned {tuned[kinds == 'untuned'].mean():.2f} (alpha {encoding.alpha})")
    for kind, pairs in filter_scores(recording, results, encoding).items():
        correlation, size = np.array(pairs).T
        print(f"{kind} filters: correlation median {np.median(correlation):.2f} (min {correlation.min():.2f}, "
              f">= 0.9 in {np.mean(correlation >= 0.9):.0%}); size ratio median {np.median(size):.2f} "
              f"(within 20 % in {np.mean(np.abs(size - 1) <= 0.2):.0%})")
    top = ceiling(recording, decoded, decoding)
    for variable in DECODED:
        print(f"linear decoding {variable}: R^2 {decoded.linear_r2[variable]:.3f}, ceiling {top[variable]:.3f}, "
              f"x{decoded.linear_r2[variable] / top[variable]:.2f}; Kalman R^2 {decoded.kalman_r2[variable]:.3f}")
    print(f"Bayesian decoding supination: R^2 {decoded.bayesian_r2['supination_deg']:.3f}; "
          f"knob angle during turns (linear): R^2 {decoded.knob_turns_r2:.3f}")
    if not args.no_hour:
        long = simulate_recording(3600.0, args.units, seed=2)
        hour = timeseries_of(long)
        start = time.perf_counter()
        encode_session(hour, encoding)
        decode_session(hour, long.angle_time_s, long.angle_deg, decoding)
        spent = time.perf_counter() - start
        print(f"hour-long session, {args.units} units: encoding + decoding {spent:.0f} s "
              f"(x{spent / 600:.2f} of the 10-minute budget)")


if __name__ == "__main__":
    main()
