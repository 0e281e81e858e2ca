"""A long 226 fps, 2-camera, 10-body-part session through the database: time and peak memory per stage.

Raw rows are inserted directly (no video is rendered: the Recording rows point to placeholder video
names), 2D pose is loaded from DLC-format .h5 files, the calibration is the simulator's true rig.
Stages: SyncedFrames, SessionSync, SessionCalibration, PoseModel, Pose2D (load), Pose3D,
KnobValidation, MovementEvents, UnitTuning. Peak memory is the process's peak RSS during each stage
(/proc/self/clear_refs resets it between stages).

Run: python benchmarks/bench_scale.py --minutes 20   (default 120: the full 2-hour session)
Needs the database (DJ_HOST/DJ_USER/DJ_PASS); uses a private schema prefix that is dropped at the end.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

import numpy as np

FPS = 226.0
SIZE = (1440, 1080)
EXTRA_OFFSET_MM = np.array([2.0, -1.5, 1.0])  # body parts 6-10: the first five shifted by this
CHUNK_S = 300.0
STAGES = ("SyncedFrames", "SessionSync", "SessionCalibration", "PoseModel", "Pose2D", "Pose3D",
          "KnobValidation", "MovementEvents", "UnitTuning")


def rss_mb() -> tuple[float, float]:
    """(current, peak since the last reset) resident memory of this process in MB."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def measure(name: str, fn, report: list):
    """Run fn() and append (name, seconds, RSS before, peak RSS, RSS after) to report."""
    reset_peak()
    before, _ = rss_mb()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    after, peak = rss_mb()
    report.append((name, seconds, before, peak, after))
    print(f"{name:<20} {seconds:8.1f} s   RSS {before:7.0f} -> peak {peak:7.0f} -> {after:7.0f} MB", flush=True)
    return result


def simulate(minutes: float, n_units: int, folder: Path, seed: int = 0):
    """Clocks, trajectory, DLC .h5 per camera, knob log and spikes; returns (SessionData, rig, scene, h5 paths)."""
    import pandas as pd

    from ratpose.ingest.session_folder import CameraData, SessionData
    from ratpose.sim import BODYPARTS, default_units, dlc_dataframe, make_scene, rig_and_lab_frame, simulate_spikes
    from ratpose.sim.clocks import TICK_WRAP, CameraClockSettings, simulate_clocks
    from ratpose.sim.neural import knob_angle_log, knob_events

    rng = np.random.default_rng(seed)
    n_pulses = int(round(minutes * 60 * FPS))
    rig, R_lab, t_lab = rig_and_lab_frame(SIZE, 2)
    cameras = [CameraClockSettings("cam0", drift_ppm=30.0, loss_rate=2e-3, miss_rate=1e-3, armed_after_pulses=3,
                                 clock_offset_ns=10**11),
               CameraClockSettings("cam1", role="secondary", drift_ppm=-13.0, loss_rate=2e-3, miss_rate=1e-3,
                                 armed_after_pulses=5, strobe_delay_us=12.0, clock_offset_ns=3 * 10**11)]
    # the tick counter wraps 10 minutes in, as it does in most sessions longer than 71.6 minutes
    clocks = simulate_clocks(n_pulses, FPS, cameras, start_tick_us=TICK_WRAP - 600_000_000, seed=seed)
    t = clocks.pulse_time_s
    t_start, t_end = float(t[0]), float(t[-1]) + 1 / FPS
    scene = make_scene(t_start, t_end, seed=seed, lab_to_world_R=R_lab, lab_to_world_t=t_lab)
    bodyparts = (*BODYPARTS, *(f"{b}_2" for b in BODYPARTS))
    h5 = {}
    for c, cam in enumerate(rig):
        pulses = clocks.cameras[cam.name].pulse_index
        chunks = []
        for part in np.array_split(pulses, max(1, int(np.ceil((t_end - t_start) / CHUNK_S)))):
            xyz = scene.keypoints(t[part])
            xyz = np.concatenate([xyz, xyz + EXTRA_OFFSET_MM], axis=1)
            chunks.append((cam.project(xyz.reshape(-1, 3)).reshape(len(part), len(bodyparts), 2)
                           + rng.normal(0, 0.5, (len(part), len(bodyparts), 2))).astype(np.float32))
        points = np.concatenate(chunks)
        del chunks
        likelihood = rng.uniform(0.9, 1.0, points.shape[:2]).astype(np.float32)
        h5[cam.name] = folder / f"{cam.name}DLC_bench.h5"
        dlc_dataframe(points[..., 0], points[..., 1], likelihood, bodyparts, "DLC_bench").to_hdf(
            h5[cam.name], key="df_with_missing", mode="w")
        del points, likelihood
    event_times, _ = knob_events(scene.touch_intervals(t_start, t_end))
    event_times = event_times[: len(event_times) // 2 * 2]
    angle_t, angle = knob_angle_log(scene, t_start, t_end)
    units = default_units(n_units, seed=seed)
    edges = np.arange(t_start, t_end, CHUNK_S).tolist() + [t_end]
    spikes = [simulate_spikes(units, scene, a, b, rng) for a, b in zip(edges[:-1], edges[1:])]
    spike_ids = np.concatenate([s[0] for s in spikes])
    spike_times = np.concatenate([s[1] for s in spikes])
    camera_data = tuple(
        CameraData(name=cam.name, role=cfg.role, serial=str(21000001 + c), model="bench", pixel_size_um=3.45,
                   lens_mm=12.5, video=folder / f"{cam.name}.avi", n_frames=len(clocks.cameras[cam.name].frame_id),
                   width=SIZE[0], height=SIZE[1], fps=FPS, frame_id=clocks.cameras[cam.name].frame_id,
                   camera_ts_ns=clocks.cameras[cam.name].camera_ts_ns, exposure_us=None)
        for c, (cam, cfg) in enumerate(zip(rig, cameras)))
    data = SessionData(
        path=folder, subject="rat_bench", session_datetime=dt.datetime(2026, 11, 24, 10),
        rig="bench-rig", task="knob-supination", notes="bench_scale", trigger_rate_hz=FPS, cameras=camera_data,
        tick_us=clocks.tick_us, touch_on_s=event_times[0::2], touch_off_s=event_times[1::2], angle_time_s=angle_t,
        angle_deg=angle, force_mn=None,
        units=pd.DataFrame({"unit_id": [u.unit_id for u in units], "tetrode": [u.tetrode for u in units]}),
        spike_times={u.unit_id: np.sort(spike_times[spike_ids == u.unit_id]) for u in units})
    return data, rig, scene, bodyparts, h5


def insert_calibration(modules, rig, rig_name: str) -> dict:
    """The true rig as a Calibration (direct insert: no calibration images at this scale)."""
    from ratpose.calibration import CharucoBoard

    calib, raw = modules["calib"], modules["raw"]
    key = {"rig": rig_name, "calibration_date": dt.datetime(2026, 11, 23)}
    calib.CalibrationRecording.insert1({**key, "calib_dir": "", "board": CharucoBoard(9, 7, 4.0, 3.0).to_dict(),
                                        "camera_names": list(rig.names)})
    calib.Calibration.insert1({**key, "rms_px": 0.0, "n_joint_instants": 0, "converged": True},
                              allow_direct_insert=True)
    empty = np.zeros((0, 2))
    raw.Camera.insert([{"camera": name} for name in rig.names], skip_duplicates=True)
    calib.Calibration.Camera.insert(
        [{**key, "camera": cam.name, "camera_order": i, "width": cam.size[0], "height": cam.size[1],
          "camera_matrix": cam.K, "distortion": cam.dist, "rotation": cam.R, "translation": cam.t, "rms_px": 0.0,
          "p95_px": 0.0, "n_shared_views": 0, "n_single_views": 0, "coverage": 1.0, "corners": empty,
          "residuals": empty} for i, cam in enumerate(rig)], allow_direct_insert=True)
    return key


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=120.0)
    parser.add_argument("--units", type=int, default=6)
    parser.add_argument("--keep", action="store_true", help="keep the schemas and files (prefix is printed)")
    args = parser.parse_args(argv)
    os.environ.setdefault("DJ_HOST", "127.0.0.1")
    os.environ.setdefault("DJ_USER", "root")
    os.environ.setdefault("DJ_PASS", "")
    os.environ["RATPOSE_DB_PREFIX"] = f"rpbench_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    os.environ["RATPOSE_STORE"] = str(work / "store")
    os.environ["RATPOSE_MODELS"] = str(work / "models")

    import datajoint as dj

    from ratpose import schema
    from ratpose.schema.jobs import populate

    print(f"{args.minutes:g} min at {FPS:g} fps, 2 cameras, 10 body parts, {args.units} units; "
          f"prefix {os.environ['RATPOSE_DB_PREFIX']}, files in {work}")
    report = []
    data, rig, scene, bodyparts, h5 = measure("simulate", lambda: simulate(args.minutes, args.units, work), report)
    n_frames = [c.n_frames for c in data.cameras]
    dj.config.safemode = False
    modules = schema.activate()
    raw, pose, analysis = modules["raw"], modules["pose"], modules["analysis"]
    try:
        session, _ = measure("insert raw", partial(raw.insert_session, data), report)
        del data  # the session's arrays are in the database now: free them before the populate
        calibration_key = insert_calibration(modules, rig, "bench-rig")
        analysis.set_knob(calibration_key, scene.knob(), up=scene.up)
        pose.register_training_set("bench", str(work / "labeled"), list(bodyparts), "bench")
        pose.PoseModelParams.insert1({"pose_params": "external", "mode": "external"})
        pose.request_model("bench", "external")
        tables = schema.computed_tables(modules)
        for name in STAGES:
            if name == "Pose2D":
                pose.schedule_pose2d(session, {"training_set": "bench", "pose_params": "external"}, mode="load",
                                     dlc_h5={c: str(p) for c, p in h5.items()})
            result = measure(name, lambda: populate({name: tables[name]}, reserve_jobs=False)[name], report)
            if result["error_list"] or not len(tables[name]()):
                raise RuntimeError(f"{name}: {result['error_list'] or 'nothing computed'}")
        one_camera = {**session, "training_set": "bench", "pose_params": "external", "camera": "cam0"}
        measure("Pose2D fetch (1 camera)", lambda: pose.pose2d_arrays(one_camera, bodyparts), report)
        n3d = (pose.Pose3D & session).fetch1("n_frames")
        frame_mb = max(n_frames) * len(bodyparts) * 3 * 4 / 2**20
        print(f"\nframes per camera {n_frames}, 3D frames {n3d}; one camera's 2D pose as float32: {frame_mb:.0f} MB")
        print(f"{'stage':<20} {'s':>8} {'peak - before (MB)':>19}")
        for name, seconds, before, peak, _ in report:
            print(f"{name:<20} {seconds:8.1f} {peak - before:19.0f}")
    finally:
        if not args.keep:
            for module in reversed(list(modules.values())):
                module.schema.drop(prompt=False)
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
