"""``ratpose rig check``: the preflight of a rig (cameras, config, a short trigger train, the disk), as lines."""
from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

import numpy as np

CHECK_S = 2.0  # length of the preflight trigger train
MAX_MISSED = 0.005  # fraction of pulses a camera may miss in the preflight


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
    from .disk import disk_write_mb_s

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


def _ring_source_lines(cfg) -> tuple[list[str], bool]:
    """A ring buffer whose policy waits for knob events needs a knob source: FAIL without one."""
    ring, knob = cfg.ring, cfg.knob
    if not ring.enabled or "knob" not in ring.policy:
        return [], True
    if knob.source == "none":
        return [f"FAIL ring buffer: policy {list(ring.policy)} keeps video around knob events, but [knob] source is "
                "\"none\": nothing would open a window (set [knob] source = \"gpio\" or \"network\", "
                "docs/rig-config.md)"], False
    where = (f"GPIO {knob.touch_gpio}" + (f", encoder GPIO {knob.encoder_a_gpio}/{knob.encoder_b_gpio}"
                                          if knob.has_encoder else "")) if knob.source == "gpio" else knob.listen
    return [f"PASS ring buffer: {ring.knob_event} events from the knob ({knob.source}: {where}) open windows"], True


def _knob_lines(cfg, folder: Path, seconds: float) -> list[str]:
    """What the knob did during the check's trigger train (its knob_events.csv and knob_angle.csv)."""
    if cfg.knob.source == "none":
        return []
    events = (folder / "knob_events.csv").read_text().splitlines()[1:]
    rows = (folder / "knob_angle.csv").read_text().splitlines()[1:]
    angles = np.array([[float(v) for v in row.split(",")[:2]] for row in rows]).reshape(-1, 2)
    touches = sum(line.endswith(",touch_on") for line in events)
    turned = f", angle {angles[:, 1].min():+.1f} to {angles[:, 1].max():+.1f} deg" if len(angles) else ""
    line = f"knob ({cfg.knob.source}) during the {seconds:g} s check: {touches} touch(es){turned}"
    if touches or (len(angles) and np.ptp(angles[:, 1]) > 0):
        return [f"INFO {line}"]
    return [f"WARN {line}: touch and turn the knob while the check runs to see it work "
            "(`ratpose rig check --knob-seconds 10` for longer)"]


def rig_check(config, cameras=None, trigger=None, disk_dir: Path | None = None, events_per_min: float = 2.0,
              knob_s: float = 5.0, on_status=None) -> tuple[list[str], bool]:
    """Preflight: every camera the SDK sees, config applied, a CHECK_S trigger train (``knob_s`` with a knob,
    ``on_status`` showing its live line: touch it and turn it), the write rate it needs against the disk
    under ``disk_dir`` (default: the working directory), a knob source for a ring buffer waiting on knob
    events; (report lines, passed)."""
    import dataclasses

    from .backends import AcquisitionError
    from .config import load_rig_config
    from .recorder import (
        build_hardware_backends,
        build_simulated_backends,
        list_connected_cameras,
        record,
    )

    rig_cfg = load_rig_config(config) if isinstance(config, (str, Path)) else config
    cfg = dataclasses.replace(rig_cfg, ring=dataclasses.replace(rig_cfg.ring, enabled=False))  # every frame kept
    try:
        present = list_connected_cameras(cfg)
    except AcquisitionError as err:
        return [f"FAIL cameras cannot be listed: {err}", "FAIL rig check"], False
    lines, ok = _camera_lines(cfg, present)
    for more, fine in (_link_lines(cfg, present), _ring_source_lines(rig_cfg)):
        lines += more
        ok &= fine
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
    seconds = max(CHECK_S, knob_s) if cfg.knob.source != "none" else CHECK_S
    if cameras is None:
        cameras, trigger = (build_simulated_backends(cfg, duration_s=seconds) if cfg.trigger.backend == "simulated"
                            else build_hardware_backends(cfg))
    with tempfile.TemporaryDirectory(prefix="ratpose-rig-check-") as tmp:
        result = record(cfg, Path(tmp) / "check", duration_s=seconds, cameras=cameras, trigger=trigger,
                        handle_sigint=False, on_status=on_status)
        sizes = {c.name: (Path(tmp) / "check" / f"{c.name}.{cfg.storage.container}") for c in cfg.cameras}
        bytes_per_frame = {name: path.stat().st_size / max(result.cameras[name].written, 1)
                           for name, path in sizes.items() if path.exists()}
        if result.ok:
            lines += _knob_lines(cfg, Path(tmp) / "check", seconds)
    for name, r in result.cameras.items():
        if r.max_writer_lag >= cfg.storage.writer_lag_warn * cfg.storage.queue_frames:
            lines.append(f"WARN {name}: the writer fell {r.max_writer_lag} frames behind in a {seconds:g} s check "
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
