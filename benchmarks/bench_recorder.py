"""Recorder throughput at full size (1440x1080 Mono8), measured as a disk sees it, and the ring buffer's savings.

Run: python benchmarks/bench_recorder.py [--seconds 60] [--cameras 2] [--codecs raw,ffv1,h264] [--dir DIR]

Frames are the simulator's rig views with a sensor's noise (shot, read, fixed pattern; ratpose.sim.SensorNoise),
precomputed and cycled, so the benchmark measures the recorder, not the renderer.
Part 1: the capture/queue/ring pipeline alone (a writer that discards frames).
Part 2: sustained writing, each codec twice for ``--seconds`` of wall time: with the page cache alone
(``sync_every_s = 0``: the kernel takes GBs before the disk is touched, so short runs measure memory) and
with fdatasync every second (the recorder's default, what an hour of recording gets). Per-second frame
rates are printed; the disk's own sustained speed (1 GB, fsync) stands beside them. The rig needs 226 fps
per camera.
Part 3: an hour with Poisson knob touches: the fraction kept by 5 s pre / 2 s post windows and the disk
it takes, from the bytes/frame each codec produced in part 2.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ratpose.acquisition.config import rig_config_from_dict
from ratpose.acquisition.disk import disk_write_mb_s
from ratpose.acquisition.recorder import Recorder, build_simulated_backends, default_writer
from ratpose.acquisition.ring_buffer import kept_fraction
from ratpose.acquisition.simulated import SimulatedKnob
from ratpose.sim import make_scene, render_background, render_frame, rig_and_lab_frame

W, H, RATE = 1440, 1080, 226.0
RAW_BYTES_PER_S = W * H * RATE  # 351 MB/s per camera


class FrameBank:
    """The simulated rig's views of a reaching paw (``n`` frames per camera), with sensor noise, cycled."""

    def __init__(self, n_cameras: int, n: int = 48):
        rig, R, t = rig_and_lab_frame((W, H), max(n_cameras, 2))
        scene = make_scene(0.0, 10.0, seed=1, lab_to_world_R=R, lab_to_world_t=t)
        times = np.linspace(1.0, 1.0 + n / RATE * 8, n)  # every 8th frame of a reach: the paw moves
        rng = np.random.default_rng(1)
        self.frames = {}
        for c, cam in enumerate(rig[:n_cameras]):
            background = render_background(cam, scene, seed=c)
            uv = cam.project(scene.keypoints(times))
            self.frames[f"cam{c}"] = [render_frame(background, p, np.isfinite(p[:, 0]), rng=rng) for p in uv]

    def __call__(self, pulse_index, time_s, camera):
        frames = self.frames[camera]
        return frames[pulse_index % len(frames)]


class TimedWriter:
    """Wraps a writer (or discards frames with ``inner=None``) and keeps the wall time of every write."""

    def __init__(self, inner, times: list):
        self.inner, self.times, self.n_frames = inner, times, 0

    def write(self, image):
        if self.inner is not None:
            self.inner.write(image)
        self.n_frames += 1
        self.times.append(time.perf_counter())

    def close(self):
        if self.inner is not None:
            self.inner.close()


def bench_one(n_cams: int, codec: str, wall_s: float, ring: bool, sync: bool, bank: FrameBank, tmp: Path) -> dict:
    """Record as fast as the writers take frames for ``wall_s`` seconds; frames/s per camera, per second."""
    cams = [{"name": f"cam{i}", "role": "primary" if i == 0 else "secondary", "exposure_us": 2000}
            for i in range(n_cams)]
    doc = {"trigger": {"backend": "simulated", "rate_hz": RATE},
           "storage": {"codec": "raw" if codec == "null" else codec, "crf": 18, "preset": "veryfast",
                       "queue_frames": 64, "sync_every_s": 1.0 if sync else 0.0},
           "camera": cams, "simulation": {"duration_s": 10 * wall_s, "jitter_us": 20.0}}
    if ring:
        doc["ring_buffer"] = {"enabled": True, "pre_s": 1.0, "post_s": 0.5, "latency_s": 0.1}
    cfg = rig_config_from_dict(doc)
    cameras, trigger = build_simulated_backends(cfg, content=bank)
    sources = []
    if ring:  # touches every ~1.5 s so about all frames are kept and encoded: worst case for the ring
        t0 = trigger.truth.pulse_time_s[0]
        on = t0 + np.arange(0.5, 10 * wall_s, 1.5)
        sources = [SimulatedKnob(on, on + 0.2)]
    out = tmp / f"{n_cams}-{codec}-{ring}-{sync}"
    times: list[float] = []

    def factory(*args):
        return TimedWriter(None if codec == "null" else default_writer(*args), times)

    rec = Recorder(cfg, out, cameras, trigger, event_sources=sources, writer_factory=factory, backpressure=True)
    timer = threading.Timer(wall_s, rec.request_stop, args=("benchmark time is up",))
    timer.start()
    result = rec.run()
    timer.cancel()
    if not result.ok:
        raise RuntimeError(f"{n_cams} camera(s) {codec}: {result.status} {result.message}")
    written = sum(r.written for r in result.cameras.values())
    size = sum(f.stat().st_size for f in out.glob("cam*.*") if not f.name.endswith(".csv"))
    shutil.rmtree(out)
    t = np.asarray(times) - min(times)
    per_s = np.bincount(t.astype(int))[:int(t[-1])] / n_cams  # whole seconds only
    return {"fps_per_cam": written / n_cams / result.recording_s, "per_s": per_s,
            "bytes_per_frame": size / max(written, 1)}


def _row(n_cams, codec, ring, sync, r) -> str:
    ratio = r["fps_per_cam"] / RATE
    per_s = r["per_s"]
    spread = (f"{per_s.min():7.0f} {np.median(per_s):7.0f} {per_s[-10:].mean():7.0f}" if len(per_s)
              else f"{'-':>7} {'-':>7} {'-':>7}")
    writes = "discarded" if codec == "null" else "fdatasync" if sync else "page cache"
    return (f"{n_cams:7d} {codec:>6} {str(ring):>5} {writes:>10} "
            f"{r['fps_per_cam']:8.1f} {ratio:8.2f} {spread} {r['bytes_per_frame'] / 1e6:8.3f}  "
            f"{'YES' if ratio >= 1 else 'no'}")


def storage_part(bytes_per_frame: dict[str, float], n_cams: int) -> None:
    print(f"\n== ring buffer: one simulated hour, {n_cams} cameras, pre 5 s / post 2 s ==")
    hour = 3600.0
    print(f"{'touches/min':>11} {'kept':>7} {'saved':>7} " + " ".join(f"{c + ' GB/h':>12}" for c in bytes_per_frame))
    full = {c: n_cams * RATE * hour * b / 1e9 for c, b in bytes_per_frame.items()}
    print(f"{'(no ring)':>11} {'100.0%':>7} {'0.0%':>7} " + " ".join(f"{full[c]:12.1f}" for c in bytes_per_frame))
    for rate in (0.5, 2.0, 6.0, 12.0):
        fractions = []
        for seed in range(5):
            knob = SimulatedKnob.random(0.0, hour, rate, touch_s=1.0, seed=seed)
            fractions.append(kept_fraction(knob.on, 5.0, 2.0, hour))
        f = float(np.mean(fractions))
        print(f"{rate:11.1f} {100 * f:6.1f}% {100 * (1 - f):6.1f}% "
              + " ".join(f"{full[c] * f:12.1f}" for c in bytes_per_frame))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="wall seconds per configuration of part 2")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--codecs", default="raw,ffv1,h264", help="comma-separated: raw,ffv1,h264,h265,h264_nvenc")
    parser.add_argument("--dir", type=Path, default=None, help="where the videos go (default: the temp folder)")
    args = parser.parse_args()
    n = args.cameras
    print(f"machine: {os.cpu_count()} CPU(s); frames {W}x{H} Mono8; target {RATE:.0f} fps per camera "
          f"({RAW_BYTES_PER_S / 1e6:.0f} MB/s raw each); dirty page limit {_dirty_limit()}")
    bank = FrameBank(n)
    bytes_per_frame = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench_recorder_", dir=args.dir))
    header = (f"{'cameras':>7} {'codec':>6} {'ring':>5} {'writes':>10} {'fps/cam':>8} {'x needed':>8} "
              f"{'min/s':>7} {'med/s':>7} {'last10s':>7} {'MB/frame':>8}  keeps up?")
    try:
        disk = disk_write_mb_s(tmp)
        print(f"disk under {tmp.parent}: {disk:.0f} MB/s sustained (1 GB written, fsync); raw needs "
              f"{n * RAW_BYTES_PER_S / 1e6:.0f} MB/s for {n} camera(s), i.e. the disk allows "
              f"{disk * 1e6 / (W * H) / n:.0f} raw fps/camera")
        print("\n== 1. the pipeline alone (10 s, frames discarded) ==\n" + header)
        for ring in (False, True):
            print(_row(n, "null", ring, False, bench_one(n, "null", 10.0, ring, False, bank, tmp)), flush=True)
        print(f"\n== 2. sustained writing ({args.seconds:g} s each; fps per second: slowest, median, last 10 s) ==\n"
              + header)
        for codec in args.codecs.split(","):
            for sync in (False, True):
                r = bench_one(n, codec, args.seconds, False, sync, bank, tmp)
                bytes_per_frame.setdefault(codec, r["bytes_per_frame"])
                print(_row(n, codec, False, sync, r), flush=True)
                print(f"{'':>7} per second: " + " ".join(f"{v:.0f}" for v in r["per_s"]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    storage_part(bytes_per_frame, n)


def _dirty_limit() -> str:
    try:
        ratio = int(Path("/proc/sys/vm/dirty_ratio").read_text())
        mem_kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines()
                          if l.startswith("MemAvailable")).split()[1])
        return f"{ratio}% of available memory, ~{ratio / 100 * mem_kb / 1e6:.1f} GB"
    except (OSError, ValueError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    main()
