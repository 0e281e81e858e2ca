"""Sessions page of `ratpose serve` for 1,000 sessions (synthetic rows under a private prefix): time and queries.

Run: PYTHONPATH=. python benchmarks/bench_serve.py   (target: < 1 s)
"""
from __future__ import annotations

import os
import tempfile
import time
import uuid
from datetime import datetime, timedelta

import numpy as np

N_SESSIONS, N_CAMERAS, N_UNITS = 1000, 2, 8


def main() -> None:
    os.environ["RATPOSE_DB_PREFIX"] = f"rpbench_{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("RATPOSE_STORE", tempfile.mkdtemp(prefix="rpbench-store-"))
    import datajoint as dj
    from starlette.testclient import TestClient

    from ratpose import schema
    from ratpose.web.commands import build_app

    dj.config.safemode = False
    modules = schema.activate()
    raw, sync = modules["raw"], modules["sync"]
    try:
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
        sync.SessionSync.insert([{**k, "sync_qc": "default", "n_cameras": N_CAMERAS, "n_common_frames": 120000,
                                  "passed": i % 10 != 0} for i, k in enumerate(keys)], allow_direct_insert=True)
        client = TestClient(build_app())
        connection = dj.conn()
        original, count = connection.query, [0]

        def counting(*args, **kwargs):
            count[0] += 1
            return original(*args, **kwargs)

        connection.query = counting
        client.get("/")  # warm up (headings are cached by DataJoint)
        count[0] = 0
        start = time.perf_counter()
        response = client.get("/?sort=subject")
        elapsed = time.perf_counter() - start
        assert response.status_code == 200 and response.text.count('<tr class="session">') == N_SESSIONS
        print(f"sessions page, {N_SESSIONS} sessions: {elapsed:.3f} s, {count[0]} queries, "
              f"{len(response.content) / 1e6:.1f} MB HTML (target < 1 s)")
    finally:
        for module in reversed(list(modules.values())):
            module.schema.drop(prompt=False)


if __name__ == "__main__":
    main()
