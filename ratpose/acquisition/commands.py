"""`ratpose record`, `ratpose rig check` and `ratpose compress`: wired into ratpose.cli with add_commands()."""
from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

import av
import numpy as np
import tomli_w

CHECK_S = 2.0  # length of the preflight trigger train
MAX_MISSED = 0.005  # fraction of pulses a camera may miss in the preflight


def _status_printer(folder: Path):
    def show(line: str) -> None:
        free = shutil.disk_usage(folder if folder.exists() else folder.parent).free / 1e9
        print(f"\r{line} | disk {free:.0f} GB free", end="", file=sys.stderr, flush=True)
    return show


def _cmd_record(args) -> int:
    from .config import RigConfigError, load_rig_config
    from .recorder import record

    try:
        cfg = load_rig_config(args.config)
    except RigConfigError as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    if cfg.ring.enabled and not {"manual", "motion"} & set(cfg.ring.policy):  # no knob source from here
        print(f"WARNING {args.config}: the ring buffer is on with policy {list(cfg.ring.policy)} but no event "
              "source is connected: no segment will be kept, nothing will be written", file=sys.stderr)
    result = record(cfg, args.session_dir, duration_s=args.duration, on_status=_status_printer(args.session_dir),
                    save_user_set=args.save_user_set)
    print(file=sys.stderr)
    for name, r in result.cameras.items():
        print(f"{name}: {r.written} frames written to {result.session_dir / (name + '.' + cfg.storage.container)}"
              f" ({r.transfer_lost} lost in transfer, {r.incomplete} incomplete, {r.queue_dropped} dropped by the "
              f"queue, {r.ring_dropped} outside ring segments, {r.missed_triggers} missed triggers)")
    if cfg.ring.enabled:
        kept_s = float(np.sum(np.diff(result.segments, axis=1))) if len(result.segments) else 0.0
        print(f"ring buffer: {len(result.segments)} segment(s) kept ({kept_s:.1f} s around "
              f"{len(result.events)} event(s)), listed in {result.session_dir / 'segments.csv'}"
              + ("" if len(result.segments) else ": no event came, so no frame was written"))
    print(f"{result.status}{': ' + result.message if result.message else ''} ({result.n_pulses} pulses, "
          f"{result.wall_s:.1f} s) -> {result.session_dir}")
    if result.ok and args.ingest:
        from .. import schema
        from ..ingest.session_folder import read_session_folder

        key, _ = schema.activate()["raw"].insert_session(read_session_folder(result.session_dir))
        print(f"ingested: {result.session_dir} -> {key}")
    return 0 if result.ok else 1


def _camera_lines(cfg, present: list[dict]) -> tuple[list[str], bool]:
    """Every camera the SDK sees, flagged against the config: (lines, every configured camera is there)."""
    names = {c.serial: c for c in cfg.cameras}
    lines = [f"INFO the SDK sees {len(present)} camera(s)"]
    for info in present:
        cam = names.get(info.get("serial"))
        ident = ", ".join(f"{k} {v}" for k, v in info.items())
        lines.append(f"INFO   {ident}: " + (f"{cam.name} ({cam.role})" if cam else "not in the config"))
        if cam is None:
            lines.append(f"WARN serial {info.get('serial')} ({info.get('model', '?')}) is connected but not "
                         "configured: it will not record")
    ok = True
    seen = {info.get("serial") for info in present}
    for cam in cfg.cameras:
        if cam.serial not in seen:
            ok = False
            lines.append(f"FAIL {cam.name}: serial {cam.serial or '(none)'} is not connected (connected: "
                         f"{', '.join(sorted(str(s) for s in seen)) or 'none'})")
    return lines, ok


def _link_lines(cfg, present: list[dict]) -> tuple[list[str], bool]:
    """USB speed and the link throughput limit against what each configured camera streams."""
    by_serial = {info.get("serial"): info for info in present}
    lines, ok = [], True
    for cam in cfg.cameras:
        info = by_serial.get(cam.serial, {})
        need = cam.width * cam.height * (2 if cam.pixel_format.endswith("16") else 1) * cfg.trigger.rate_hz
        speed = info.get("usb_speed")
        if speed not in (None, "simulated") and "SuperSpeed" not in str(speed):
            ok = False
            lines.append(f"FAIL {cam.name}: USB link is {speed}, not USB3 SuperSpeed (needs {need / 1e6:.0f} MB/s)")
        limit = info.get("link_limit_bytes_s")
        if isinstance(limit, int):
            fits = limit >= need
            ok &= fits
            lines.append(f"{'PASS' if fits else 'FAIL'} {cam.name}: link throughput limit {limit / 1e6:.0f} MB/s, "
                         f"the stream needs {need / 1e6:.0f} MB/s")
    return lines, ok


def _storage_lines(cfg, bytes_per_frame: dict[str, float], disk_dir: Path, events_per_min: float,
                   disk_bytes: float = 256e6) -> tuple[list[str], bool]:
    """The write rate the rig needs (measured bytes/frame of the check's own frames x rate, and with the ring
    buffer the share of time its windows keep at ``events_per_min`` Poisson events) against the disk's
    sustained speed under ``disk_dir``."""
    from .writers import disk_write_mb_s

    need = sum(bytes_per_frame.values()) * cfg.trigger.rate_hz / 1e6
    per_frame = ", ".join(f"{name} {b / 1e6:.3f}" for name, b in bytes_per_frame.items())
    lines = [f"INFO storage: {cfg.storage.codec} at {cfg.trigger.rate_hz:g} Hz, MB/frame measured on the check's "
             f"frames: {per_frame}; {need:.3g} MB/s while recording"]
    ring, kept = cfg.ring, 1.0
    if ring.enabled:
        kept = 1 - math.exp(-events_per_min / 60 * (ring.pre_s + ring.post_s))  # Poisson events' merged windows
        lines.append(f"INFO ring buffer (pre {ring.pre_s:g} s, post {ring.post_s:g} s) at {events_per_min:g} "
                     "events/min "
                     f"keeps ~{100 * kept:.0f}% of the time: {need * kept:.3g} MB/s on average, {need:.3g} MB/s "
                     f"during a window ({need * kept * 3600 / 1e3:.3g} GB/h)")
    else:
        lines.append(f"INFO no ring buffer: {need * 3600 / 1e3:.3g} GB per hour")
    try:
        speed = disk_write_mb_s(disk_dir, disk_bytes)
    except OSError as err:
        return lines + [f"FAIL disk under {disk_dir}: cannot write there ({err})"], False
    ok = speed >= need
    free_h = shutil.disk_usage(disk_dir).free / 1e6 / max(need * kept, 1e-9) / 3600
    lines.append(f"{'PASS' if ok else 'FAIL'} disk under {disk_dir}: {_plain(speed)} MB/s sustained (fsync) "
                 f"{'>=' if ok else '<'} {_plain(need)} MB/s needed; free space for ~{_plain(free_h)} h")
    return lines, ok


def _plain(value: float) -> str:
    """Three significant digits without an exponent (1234 MB/s, not 1.23e+03)."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def rig_check(config, cameras=None, trigger=None, disk_dir: Path | None = None,
              events_per_min: float = 2.0) -> tuple[list[str], bool]:
    """Preflight: every camera the SDK sees, config applied, a CHECK_S trigger train, the write rate it needs
    against the disk under ``disk_dir`` (default: the working directory); (report lines, passed)."""
    import dataclasses

    from .backends import AcquisitionError
    from .config import load_rig_config
    from .recorder import build_hardware_backends, build_simulated_backends, list_connected_cameras, record

    rig_cfg = load_rig_config(config) if isinstance(config, (str, Path)) else config
    cfg = dataclasses.replace(rig_cfg, ring=dataclasses.replace(rig_cfg.ring, enabled=False))  # every frame kept
    try:
        present = list_connected_cameras(cfg)
    except AcquisitionError as err:
        return [f"FAIL cameras cannot be listed: {err}", "FAIL rig check"], False
    lines, ok = _camera_lines(cfg, present)
    link, link_ok = _link_lines(cfg, present)
    lines += link
    ok &= link_ok
    period_us = 1e6 / cfg.trigger.rate_hz
    for settings in cfg.cameras:
        fits = settings.exposure_us < period_us
        ok &= fits
        lines.append(f"{'PASS' if fits else 'FAIL'} {settings.name}: exposure {settings.exposure_us:g} us in a "
                     f"{period_us:.0f} us period ({period_us - settings.exposure_us:.0f} us left for readout)")
    if not ok:
        for backend in cameras or ():
            backend.close()
        if trigger is not None:
            trigger.close()
        return lines + ["FAIL rig check: no trigger train until the lines above are fixed"], False
    if cameras is None:
        cameras, trigger = (build_simulated_backends(cfg, duration_s=CHECK_S) if cfg.trigger.backend == "simulated"
                            else build_hardware_backends(cfg))
    with tempfile.TemporaryDirectory(prefix="ratpose-rig-check-") as tmp:
        result = record(cfg, Path(tmp) / "check", duration_s=CHECK_S, cameras=cameras, trigger=trigger,
                        handle_sigint=False)
        sizes = {c.name: (Path(tmp) / "check" / f"{c.name}.{cfg.storage.container}") for c in cfg.cameras}
        bytes_per_frame = {name: path.stat().st_size / max(result.cameras[name].written, 1)
                           for name, path in sizes.items() if path.exists()}
    for name, r in result.cameras.items():
        if r.max_writer_lag >= cfg.storage.writer_lag_warn * cfg.storage.queue_frames:
            lines.append(f"WARN {name}: the writer fell {r.max_writer_lag} frames behind in a {CHECK_S:g} s check "
                         f"(queue {cfg.storage.queue_frames}): {cfg.storage.codec} may not keep up at "
                         f"{cfg.trigger.rate_hz:g} Hz on this computer")
    if bytes_per_frame:
        storage, storage_ok = _storage_lines(rig_cfg, bytes_per_frame, Path(disk_dir or Path.cwd()), events_per_min)
        lines += storage
        ok &= storage_ok
    if not result.ok:
        lines.append(f"FAIL recording: {result.status}: {result.message}")
        if result.status != "camera_error":  # a camera that stopped still gets its line below
            return lines, False
        ok = False
    for settings in cfg.cameras:
        r = result.cameras[settings.name]
        good = r.delivered > 0 and not r.stopped and r.missed_triggers <= MAX_MISSED * result.n_pulses
        ok &= good
        what = "followed the primary's strobe" if settings.role == "secondary" else "followed the trigger"
        lines.append(f"{'PASS' if good else 'FAIL'} {settings.name}: {r.exposed()} frames for {result.n_pulses} "
                     f"pulses ({r.missed_triggers} missed, {r.transfer_lost} lost, {r.incomplete} incomplete)"
                     f"{': ' + what if good else ''}")
    lines.append("PASS rig check" if ok else "FAIL rig check")
    return lines, ok


def _cmd_rig_check(args) -> int:
    from .config import RigConfigError

    try:
        lines, ok = rig_check(args.config, disk_dir=args.dir, events_per_min=args.events_per_min)
    except (RigConfigError, ValueError) as err:
        print(f"ERROR {err}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0 if ok else 1


def _frames(path: Path):
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="gray")


# lossless codec -> the compressed file's name ending (benchmarks/bench_codecs.py: MagicYUV encodes 4x faster
# than FFV1 on 2 cores for 8 % more bytes; x264 qp 0 is as slow as FFV1 and larger)
LOSSLESS = {"magicyuv": "magicyuv.avi", "ffv1": "ffv1.mkv", "h264_lossless": "h264-lossless.mkv"}


def compress_session(folder: Path, codec: str = "magicyuv", progress: bool = False) -> list[str]:
    """Re-encode raw videos of a session losslessly (``codec`` one of LOSSLESS), verified frame by frame;
    returns what was done. ``progress`` shows a bar per video with an ETA."""
    from tqdm import tqdm

    from .writers import VideoWriter, count_video_frames

    if codec not in LOSSLESS:
        raise ValueError(f"codec must be one of {sorted(LOSSLESS)} (lossless), got {codec!r}")
    toml_path = folder / "session.toml"
    doc = tomllib.loads(toml_path.read_text())
    done = []
    for cam in doc["camera"]:
        raw = folder / cam["video"]
        with av.open(str(raw)) as c:
            stream = c.streams.video[0]
            if stream.codec_context.name != "rawvideo":
                continue
            width, height = stream.codec_context.width, stream.codec_context.height
            fps = float(stream.average_rate or 1)
        out = raw.with_name(f"{raw.stem}.{LOSSLESS[codec]}")
        part = out.with_name(out.stem + ".part" + out.suffix)
        writer = VideoWriter(part, width, height, fps, codec=codec, preset="ultrafast")
        bar = tqdm(total=count_video_frames(raw), desc=f"{raw.name} -> {codec}", unit="frame", disable=not progress)
        with bar:
            for image in _frames(raw):
                writer.write(image)
                bar.update()
        writer.close()
        n = 0
        for a, b in zip(_frames(raw), _frames(part), strict=True):
            if not np.array_equal(a, b):
                part.unlink()
                raise ValueError(f"{raw}: frame {n} differs after {codec} encoding; raw video kept")
            n += 1
        os.replace(part, out)
        cam["video"] = out.name
        tmp = toml_path.with_name("session.toml.part")
        tmp.write_text(tomli_w.dumps(doc))
        os.replace(tmp, toml_path)  # the folder now points at the FFV1 file; only then the raw one goes
        raw.unlink()
        done.append(f"{raw.name} -> {out.name}: {n} frames verified identical")
    return done


def _cmd_compress(args) -> int:
    try:
        done = compress_session(args.session_dir, args.codec, progress=sys.stderr.isatty())
    except (OSError, ValueError, KeyError, tomllib.TOMLDecodeError) as err:
        print(f"ERROR {args.session_dir}: {err}", file=sys.stderr)
        return 1
    print("\n".join(done) or f"{args.session_dir}: no raw video to compress")
    return 0


def add_commands(sub) -> None:
    rec = sub.add_parser("record", help="record a session from the rig (or its simulation) into a folder")
    rec.add_argument("--config", type=Path, required=True, help="rig TOML (see docs/rig-config.md)")
    rec.add_argument("session_dir", type=Path)
    rec.add_argument("--duration", type=float, help="seconds on the trigger clock (default: until Ctrl-C)")
    rec.add_argument("--ingest", action="store_true", help="ingest the folder when the recording is done")
    rec.add_argument("--save-user-set", action="store_true", help="save the applied settings to UserSet1")
    rec.set_defaults(func=_cmd_record)
    rig = sub.add_parser("rig", help="rig tools")
    rig_sub = rig.add_subparsers(dest="rig_command", required=True)
    check = rig_sub.add_parser("check", help="preflight: cameras, config, a 2 s trigger train, pass/fail")
    check.add_argument("--config", type=Path, required=True)
    check.add_argument("--dir", type=Path, default=None,
                       help="where sessions will be recorded: its disk's speed is measured (default: here)")
    check.add_argument("--events-per-min", type=float, default=2.0,
                       help="expected ring-buffer events per minute, for the average write rate (default 2)")
    check.set_defaults(func=_cmd_rig_check)
    comp = sub.add_parser("compress", help="re-encode a session's raw videos losslessly, verified frame by frame")
    comp.add_argument("session_dir", type=Path)
    comp.add_argument("--codec", choices=list(LOSSLESS), default="magicyuv",
                      help="magicyuv (default: the fastest), ffv1 (8 %% smaller, 4x slower), h264_lossless; "
                           "see the README's codec figures")
    comp.set_defaults(func=_cmd_compress)
