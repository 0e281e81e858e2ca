"""Recorder throughput at full size (1440x1080 Mono8) and storage saved by the pre-event ring buffer.

Run: python benchmarks/bench_recorder.py [--seconds S] [--codecs raw,ffv1,h264] [--dir DIR]

Part 1 records simulated cameras as fast as possible (the trigger waits for the recorder) and reports
sustained frames/s per camera; the rig needs 226 fps per camera (2 x 226 fps with two cameras). Raw
video needs 351 MB/s per camera, so it first measures how fast the disk under DIR takes data: a raw
figure below 226 fps next to a disk below the MB/s needed is the disk's limit, not the recorder's (a
RAM disk, --dir /dev/shm, shows the recorder's own).
Part 2 estimates an hour of recording with Poisson knob touches: the fraction kept by 5 s pre / 2 s post
windows and the disk it takes, from the bytes/frame each codec produced in part 1.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ratpose.acquisition.config import rig_config_from_dict
from ratpose.acquisition.recorder import build_simulated_backends, record
from ratpose.acquisition.ring_buffer import kept_fraction
from ratpose.acquisition.simulated import MovingBlob, SimulatedKnob

W, H, RATE = 1440, 1080, 226.0
RAW_BYTES_PER_S = W * H * RATE  # 351 MB/s per camera


class FrameBank:
    """Precomputed camera-like frames (moving blob, per-frame sensor noise sigma 3 DN), cycled, so the
    benchmark measures the recorder, not the simulator. Real rat footage compresses less than this."""

    def __init__(self, n: int = 48):
        blob, rng = MovingBlob(W, H, seed=1), np.random.default_rng(1)
        self.frames = [np.clip(blob(i, i / RATE * 20, "bench") + rng.normal(0, 3, (H, W)), 0, 255).astype(np.uint8)
                       for i in range(n)]

    def __call__(self, pulse_index, time_s, camera):
        return self.frames[pulse_index % len(self.frames)]


class NullWriter:
    """Discards frames: measures the capture/queue/ring pipeline without encoding or disk."""

    def __init__(self, *args):
        self.n_frames = 0

    def write(self, image):
        self.n_frames += 1

    def close(self):
        pass


def disk_write_mb_s(folder: Path, n_bytes: float = 1e9) -> float:
    """Sustained write speed into ``folder``: frame-sized blocks, then fsync, as MB/s."""
    block = np.full(W * H, 7, np.uint8).data
    path = folder / "disk-speed.bin"
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for _ in range(int(n_bytes // len(block))):
            os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    dt = time.perf_counter() - t0
    size = path.stat().st_size
    path.unlink()
    return size / dt / 1e6


def bench_one(n_cams: int, codec: str, seconds: float, ring: bool, bank: FrameBank, tmp: Path) -> dict:
    cams = [{"name": f"cam{i}", "role": "primary" if i == 0 else "secondary", "exposure_us": 2000}
            for i in range(n_cams)]
    doc = {"trigger": {"backend": "simulated", "rate_hz": RATE},
           "storage": {"codec": "raw" if codec == "null" else codec, "crf": 18, "preset": "veryfast", "queue_frames": 64},
           "camera": cams, "simulation": {"duration_s": seconds, "jitter_us": 20.0}}
    if ring:
        doc["ring_buffer"] = {"enabled": True, "pre_s": 1.0, "post_s": 0.5, "latency_s": 0.1}
    cfg = rig_config_from_dict(doc)
    cameras, trigger = build_simulated_backends(cfg, content=bank)
    sources = []
    if ring:  # touches every ~1.5 s so about all frames are kept and encoded: worst case for the ring
        t0 = trigger.truth.pulse_time_s[0]
        on = t0 + np.arange(0.5, seconds, 1.5)
        sources = [SimulatedKnob(on, on + 0.2)]
    out = tmp / f"{n_cams}-{codec}-{ring}"
    extra = {"writer_factory": NullWriter} if codec == "null" else {}
    result = record(cfg, out, cameras=cameras, trigger=trigger, event_sources=sources, handle_sigint=False, **extra)
    wall = result.recording_s  # setup (opening files, pre-faulting the ring) is not part of the rate
    if not result.ok:
        raise RuntimeError(f"{n_cams} camera(s) {codec}: {result.status} {result.message}")
    written = sum(r.written for r in result.cameras.values())
    size = sum(f.stat().st_size for f in out.glob("cam*.*") if not f.name.endswith(".csv"))
    shutil.rmtree(out)
    return {"fps_per_cam": written / n_cams / wall, "bytes_per_frame": size / max(written, 1), "written": written}


def storage_part(bytes_per_frame: dict[str, float]) -> None:
    print("\n== ring buffer: one simulated hour, 2 cameras, pre 5 s / post 2 s ==")
    hour = 3600.0
    print(f"{'touches/min':>11} {'kept':>7} {'saved':>7} " + " ".join(f"{c + ' GB/h':>12}" for c in bytes_per_frame))
    full = {c: 2 * RATE * hour * b / 1e9 for c, b in bytes_per_frame.items()}
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
    parser.add_argument("--seconds", type=float, default=2.0, help="simulated seconds per configuration")
    parser.add_argument("--codecs", default="raw,ffv1,h264", help="comma-separated: raw,ffv1,h264,h265,h264_nvenc")
    parser.add_argument("--dir", type=Path, default=None, help="where the videos go (default: the temp folder)")
    args = parser.parse_args()
    codecs = ["null"] + args.codecs.split(",")
    print(f"machine: {os.cpu_count()} CPU(s); frames {W}x{H} Mono8; target {RATE:.0f} fps per camera "
          f"({RAW_BYTES_PER_S / 1e6:.0f} MB/s raw each)")
    bank = FrameBank()
    bytes_per_frame = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench_recorder_", dir=args.dir))
    try:
        disk = None
        if "raw" in codecs:
            disk = disk_write_mb_s(tmp)
            print(f"disk under {tmp.parent}: {disk:.0f} MB/s sustained (1 GB written, fsync); raw needs "
                  f"{RAW_BYTES_PER_S / 1e6:.0f} MB/s for 1 camera, {2 * RAW_BYTES_PER_S / 1e6:.0f} MB/s for 2")
        print(f"\n== sustained throughput ({args.seconds:g} simulated s each, as fast as possible) ==")
        print("(codec 'null' discards frames: the pipeline alone, without encoding or disk)")
        print(f"{'cameras':>7} {'codec':>10} {'ring':>5} {'fps/cam':>9} {'x needed':>9} {'MB/frame':>9}  keeps up?")
        for n_cams in (1, 2):
            for codec in codecs:
                for ring in ((False, True) if codec in ("null", "raw") else (False,)):
                    r = bench_one(n_cams, codec, args.seconds, ring, bank, tmp)
                    if codec != "null":
                        bytes_per_frame.setdefault(codec, r["bytes_per_frame"])
                    ratio = r["fps_per_cam"] / RATE
                    verdict = "YES" if ratio >= 1 else "no"
                    if codec == "raw" and ratio < 1 and disk < n_cams * RAW_BYTES_PER_S / 1e6:
                        verdict += f" [disk-bound: {disk:.0f} MB/s < {n_cams * RAW_BYTES_PER_S / 1e6:.0f} needed]"
                    print(f"{n_cams:7d} {codec:>10} {str(ring):>5} {r['fps_per_cam']:9.1f} {ratio:9.2f} "
                          f"{r['bytes_per_frame'] / 1e6:9.3f}  {verdict} ({n_cams} x 226 fps)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    storage_part(bytes_per_frame)


if __name__ == "__main__":
    main()
