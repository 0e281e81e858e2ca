"""`ratpose serve` under load: N browsers at once on 1,000 sessions while a worker writes, page times and errors.

Synthetic rows under a private prefix; the server runs as a read-only account, as in the lab. Each client
browses back to back for --seconds (sessions list with filters, sorts and pages, a session's page, units,
pipeline) while a writer thread inserts and deletes sync QC rows (what populate does). Printed for
--list-max-age 0 (every request reads the database) and the default 2 s side by side: p50 / p95 / max
page time, requests, errors, and pages whose session count was wrong.

Run: PYTHONPATH=. python benchmarks/bench_serve.py [--clients 10 --seconds 20]   (target: p95 < 1 s at 10)
"""
from __future__ import annotations

import argparse
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta

import numpy as np

N_SESSIONS, N_CAMERAS, N_UNITS = 1000, 2, 8


def _fill(raw, sync) -> list[dict]:
    keys = [{"subject": f"rat{i % 20:02d}", "session_datetime": datetime(2026, 1, 1) + timedelta(hours=7 * i)}
            for i in range(N_SESSIONS)]
    raw.Subject.insert([{"subject": f"rat{i:02d}"} for i in range(20)])
    raw.Camera.insert([{"camera": f"cam{c}"} for c in range(N_CAMERAS)])
    raw.Session.insert([{**k, "rig": f"rig{i % 3}", "task": "knob", "session_dir": f"/data/s{i}",
                         "trigger_rate_hz": 200.0} for i, k in enumerate(keys)])
    empty = np.zeros(0, np.int64)
    raw.Recording.insert([{**k, "camera": f"cam{c}", "role": "primary" if c == 0 else "secondary",
                           "video_file": f"cam{c}.mkv", "n_frames": 120000, "fps": 200.0, "width": 1440,
                           "height": 1080, "frame_id": empty, "camera_ts_ns": empty}
                          for k in keys for c in range(N_CAMERAS)])
    raw.TriggerLog.insert([{**k, "n_pulses": 120000, "tick_us": empty} for k in keys])
    raw.Unit.insert([{**k, "unit_id": u, "tetrode": u % 4, "n_spikes": 0, "spike_times": empty}
                     for k in keys for u in range(N_UNITS)])
    sync.SessionSync.insert([_sync_row(k, i) for i, k in enumerate(keys)], allow_direct_insert=True)
    return keys


def _sync_row(key: dict, i: int) -> dict:
    return {**key, "sync_qc": "default", "n_cameras": N_CAMERAS, "n_common_frames": 120000, "passed": i % 10 != 0}


def _targets(keys: list[dict], rng: random.Random) -> tuple[str, dict]:
    """(path, query) of the next page a browsing user opens."""
    kind = rng.choice(["list", "list", "filter", "session", "units", "pipeline"])
    if kind == "list":
        return "/", {"sort": rng.choice(["subject", "units", "session_datetime"]), "page": str(rng.randint(1, 10))}
    if kind == "filter":
        return "/", {"subject": f"rat{rng.randint(0, 19):02d}", "qc": rng.choice(["pass", "fail", "pending"])}
    if kind == "session":
        key = rng.choice(keys)
        return "/session", {"subject": key["subject"], "datetime": key["session_datetime"].isoformat()}
    return f"/{kind}", {}


def _load(base: str, keys: list[dict], clients: int, seconds: float) -> dict:
    import httpx

    times, errors, wrong = [], [], [0]
    stop = time.monotonic() + seconds

    def browse(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=base, timeout=30) as client:
            while time.monotonic() < stop:
                path, params = _targets(keys, rng)
                start = time.perf_counter()
                try:
                    response = client.get(path, params=params)
                except httpx.HTTPError as err:
                    errors.append(repr(err))
                    continue
                times.append(time.perf_counter() - start)
                if response.status_code != 200:
                    errors.append(f"{path} {response.status_code}")
                elif path == "/" and "subject" not in params and f" of {N_SESSIONS} sessions" not in response.text:
                    wrong[0] += 1

    threads = [threading.Thread(target=browse, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t = np.array(times)
    return {"p50": np.percentile(t, 50), "p95": np.percentile(t, 95), "max": t.max(), "n": len(t),
            "errors": len(errors), "wrong": wrong[0], "examples": errors[:3]}


def _writer(sync, keys: list[dict], stop: threading.Event) -> None:
    """A worker's writes meanwhile: sync QC rows of random sessions deleted and inserted again."""
    rng = random.Random(7)
    while not stop.is_set():
        i = rng.randrange(len(keys))
        (sync.SessionSync & keys[i]).delete_quick()
        sync.SessionSync.insert1(_sync_row(keys[i], i), allow_direct_insert=True)
        time.sleep(0.05)


def _serve(env: dict, max_age: float, cache: str):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "ratpose.cli", "serve", "--port", str(port), "--cache-dir",
                                cache, "--list-max-age", str(max_age)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT)
    import httpx

    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(base + "/pipeline", timeout=30)
            return process, base
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("bench_serve: the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    os.environ["RATPOSE_DB_PREFIX"] = f"rpbench_{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("RATPOSE_STORE", tempfile.mkdtemp(prefix="rpbench-store-"))
    import datajoint as dj

    from ratpose import schema
    from ratpose.schema import grants

    dj.config.safemode = False
    modules = schema.activate()
    raw, sync = modules["raw"], modules["sync"]
    user, password = f"rp_bench_{secrets.token_hex(3)}", secrets.token_urlsafe(12)
    results = {}
    try:
        keys = _fill(raw, sync)
        grants.grant(user, "readonly", password=password)
        env = {**os.environ, "DJ_USER": user, "DJ_PASS": password}
        for max_age in (0.0, 2.0):
            process, base = _serve(env, max_age, tempfile.mkdtemp(prefix="rpbench-cache-"))
            stop = threading.Event()
            writer = threading.Thread(target=_writer, args=(sync, keys, stop))
            writer.start()
            try:
                results[max_age] = _load(base, keys, args.clients, args.seconds)
            finally:
                stop.set()
                writer.join()
                process.terminate()
                process.wait(timeout=10)
    finally:
        dj.conn().query("DROP USER IF EXISTS %s@%s", args=(user, "%"))
        for module in reversed(list(modules.values())):
            module.schema.drop(prompt=False)
    print(f"ratpose serve, {N_SESSIONS} sessions, {args.clients} clients back to back for {args.seconds:.0f} s, "
          f"a writer meanwhile:")
    for max_age, r in results.items():
        print(f"  --list-max-age {max_age:g}: p50 {r['p50']:.3f} s, p95 {r['p95']:.3f} s, max {r['max']:.3f} s, "
              f"{r['n']} requests, {r['errors']} errors, {r['wrong']} wrong counts {r['examples'] or ''}")
    fresh, shared = results[0.0], results[2.0]
    print(f"  ratio (2 s / 0): p50 x{shared['p50'] / fresh['p50']:.2f}, p95 x{shared['p95'] / fresh['p95']:.2f}, "
          f"throughput x{shared['n'] / fresh['n']:.2f}; target p95 < 1 s: "
          f"{'met' if shared['p95'] < 1 and not shared['errors'] else 'NOT met'}")


if __name__ == "__main__":
    main()
