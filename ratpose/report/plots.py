"""The report's figures (matplotlib Agg, no pyplot): each function draws one PNG at ``path`` and returns it.

Times are seconds from the session start t0_s (a neural-clock time; the page's captions give it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from ..figures import new_figure, save
from ..poses import per_point, positions
from .data import CameraSync, CameraTrack, UnitPlot
from .video import part_colour

TIME_LABEL = "time from session start (s)"


def _colour(index: int) -> tuple[float, float, float]:
    return tuple(c / 255 for c in part_colour(index))


def plot_trajectories(track: CameraTrack, bodyparts, path, min_likelihood: float = 0.6, t0_s: float = 0.0) -> Path:
    """x, y (confident detections only) and likelihood of every body part over time, one camera."""
    figure = new_figure(12, 6)
    axes = figure.subplots(3, 1, sharex=True)
    confident = track.likelihood >= min_likelihood
    time = track.time_s - t0_s
    for p, part in enumerate(bodyparts):
        colour = _colour(p)
        for ax, values in zip(axes[:2], (track.x, track.y)):
            ax.plot(time, np.where(confident[:, p], values[:, p], np.nan), color=colour, lw=0.8, label=part)
        axes[2].plot(time, track.likelihood[:, p], color=colour, lw=0.6)
    axes[0].set_ylabel("x (px)")
    axes[1].set_ylabel("y (px, down)")
    axes[1].invert_yaxis()
    axes[2].axhline(min_likelihood, color="k", ls="--", lw=0.8)
    axes[2].set_ylabel("likelihood (0-1)")
    axes[2].set_ylim(-0.05, 1.05)
    for ax in axes:
        ax.set_xlabel(TIME_LABEL)
    axes[0].legend(loc="upper right", fontsize=8, ncol=len(bodyparts))
    axes[0].set_title(f"{track.camera}: {len(track.time_s)} frames, detections with likelihood >= "
                      f"{min_likelihood:g} ({confident.mean():.1%})", fontsize=10)
    axes[1].set_title("y", fontsize=9)
    axes[2].set_title(f"likelihood (dashed: cutoff {min_likelihood:g})", fontsize=9)
    return save(figure, path)


def plot_trajectory_3d(pose: xr.Dataset, bodyparts, path, t0_s: float = 0.0) -> Path:
    """3D paths of every body part (mm, calibration frame), histograms of their reprojection errors and,
    for the smooth method, each part's posterior sigma over time with its fraction of 2D outliers
    (``pose``: ``ratpose.poses``' form)."""
    points, reprojection = positions(pose, bodyparts), per_point(pose, "reprojection_error_px", bodyparts)
    sigma_mm, outlier = per_point(pose, "sigma_mm", bodyparts), per_point(pose, "outlier", bodyparts)
    time_s = pose.time.values
    n_panels = 2 if sigma_mm is None else 3
    figure = new_figure(6 * n_panels, 5.5)
    ax = figure.add_subplot(1, n_panels, 1, projection="3d")
    errors = figure.add_subplot(1, n_panels, 2)
    for p, part in enumerate(bodyparts):
        xyz = points[:, p]
        ax.plot(xyz[:, 0], xyz[:, 1], xyz[:, 2], color=_colour(p), lw=0.6, label=part)
        error = reprojection[:, p]
        errors.hist(error[np.isfinite(error)], bins=50, histtype="step", color=_colour(p), label=part)
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    ax.set_zlabel("z (mm)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"3D trajectories ({len(time_s)} frames)", fontsize=10)
    errors.set_xlabel("reprojection error (px)")
    errors.set_ylabel("frames (count)")
    errors.legend(loc="upper right", fontsize=8)
    errors.set_title("reprojection error per body part", fontsize=10)
    if sigma_mm is not None:
        sigma = figure.add_subplot(1, n_panels, 3)
        for p, part in enumerate(bodyparts):
            sigma.plot(time_s - t0_s, sigma_mm[:, p], color=_colour(p), lw=0.6,
                       label=f"{part} ({outlier[:, p].mean():.1%} outliers)")
        sigma.set_yscale("log")
        sigma.set_xlabel(TIME_LABEL)
        sigma.set_ylabel("posterior sigma (mm)")
        sigma.legend(loc="upper right", fontsize=8)
        sigma.set_title("3D uncertainty (2D outlier fraction per part)", fontsize=10)
    return save(figure, path)


def plot_sync(cameras: list[CameraSync], path, t0_s: float = 0.0) -> Path:
    """Per camera: interval between delivered frames over time (clipped at 4x the median), dropped pulses marked."""
    figure = new_figure(12, 1.2 + 2.2 * len(cameras))
    axes = np.atleast_1d(figure.subplots(len(cameras), 1, sharex=True, squeeze=False)[:, 0])
    for ax, cam in zip(axes, cameras):
        interval_ms = 1e3 * np.diff(cam.time_s)
        ax.plot(cam.time_s[1:] - t0_s, interval_ms, color="k", lw=0.6, label="frame interval")
        if cam.dropped_s.size:
            ax.plot(cam.dropped_s - t0_s, np.zeros_like(cam.dropped_s), "|", color="tab:red", ms=14, mew=1.5,
                    label="dropped pulse")
        ax.set_ylabel("interval (ms)")
        ax.set_xlabel(TIME_LABEL)
        ax.set_ylim(-0.5, 4 * np.median(interval_ms) if interval_ms.size else 1.0)
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title(f"{cam.camera}: {len(cam.time_s)} frames, {cam.dropped_s.size} dropped "
                     f"({cam.lost_in_transfer} lost in transfer, {cam.missed_trigger} missed trigger), "
                     f"drift {cam.drift_ppm:.1f} ppm, clock-fit residual RMS {1e6 * cam.residual_rms_s:.2f} us, "
                     f"max {1e6 * cam.residual_max_s:.2f} us", fontsize=9)
    return save(figure, path)


def plot_unit(unit: UnitPlot, path) -> Path:
    """A unit's speed tuning, direction tuning (bins with data only) and one PETH panel per event."""
    n_panels = 2 + max(1, len(unit.peths))
    figure = new_figure(3.2 * n_panels, 3.4)
    axes = figure.subplots(1, n_panels, squeeze=False)[0]
    speed, direction = axes[:2]
    speed.plot(unit.speed_centres, unit.speed_rate_hz, "o-", color="k")
    speed.set_xlabel("paw speed (mm/s)")
    speed.set_ylabel("rate (Hz)")
    speed.set_title(f"speed tuning, shuffle p = {_p_text(unit.speed_p_value)}", fontsize=9)
    direction.set_xlabel("movement direction (deg)")
    direction.set_ylabel("rate (Hz)")
    rate = None if unit.direction_rate_hz is None else np.asarray(unit.direction_rate_hz, dtype=float)
    if rate is not None and np.isfinite(rate).any():
        centres = np.asarray(unit.direction_centres, dtype=float)
        ok = np.isfinite(rate)
        # a line only between neighbouring bins that both have data
        direction.plot(centres, np.where(ok, rate, np.nan), "-", color="k")
        direction.plot(centres[ok], rate[ok], "o", color="k")
        direction.set_title(f"direction tuning, shuffle p = {_p_text(unit.direction_p_value)}\n"
                            f"({ok.sum()} of {ok.size} bins with data)", fontsize=9)
    else:
        direction.set_title("direction tuning: no data", fontsize=9)
    peth_axes = axes[2:]
    for e, (ax, (event, (centres, rate, sem))) in enumerate(zip(peth_axes, unit.peths.items())):
        ax.plot(centres, rate, color=_colour(e), lw=1)
        ax.fill_between(centres, rate - sem, rate + sem, color=_colour(e), alpha=0.2, lw=0)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_title(f"PETH: {event} (mean +- SEM)", fontsize=9)
    for ax in peth_axes:
        ax.set_xlabel("time from event (s)")
        ax.set_ylabel("rate (Hz)")
    if not unit.peths:
        peth_axes[0].set_title("PETH: no events", fontsize=9)
    figure.suptitle(f"unit {unit.unit_id} (tetrode {unit.tetrode}, {unit.n_spikes} spikes)"
                    + (f"\n{unit.test_note}" if unit.test_note else ""), fontsize=10)
    return save(figure, path)


def _p_text(p_value: float | None) -> str:
    return "not run" if p_value is None else f"{p_value:.3g}"


def plot_encoding_filters(units: list[dict], lags_s, path) -> Path:
    """Each unit's history filters (velocity x/y/z, supination) against lag (ms), +-2 SE bands; a row per unit."""
    groups = [g for g in ("velocity", "supination") if g in units[0]["filters"]]
    columns = [(g, c) for g in groups for c in range(np.asarray(units[0]["filters"][g]).shape[1])]
    figure = new_figure(2.6 * len(columns), 1.9 * len(units))
    axes = figure.subplots(len(units), len(columns), squeeze=False)
    lags_ms = 1e3 * np.asarray(lags_s, float)
    for row, unit in zip(axes, units):
        for ax, (group, c) in zip(row, columns):
            weight = np.asarray(unit["filters"][group], float)[:, c]
            band = 2 * np.asarray(unit["filter_se"][group], float)[:, c]
            ax.plot(lags_ms, weight, color="k", lw=1)
            ax.fill_between(lags_ms, weight - band, weight + band, color="0.6", alpha=0.4, lw=0)
            ax.axhline(0, color="0.5", lw=0.5)
            name = group if group == "supination" else f"{group} {'xyz'[c]}"
            ax.set_title(f"unit {unit['unit_id']}: {name}" + (" (tuned)" if unit["tuned"] else ""), fontsize=8)
            ax.set_xlabel("lag (ms)", fontsize=8)
            ax.set_ylabel("weight (log rate / unit)", fontsize=8)
    return save(figure, path)


def plot_decoding(decoding: dict, path, t0_s: float = 0.0, window_s: float = 20.0) -> Path:
    """The pose's value and the held-out linear decoding of each variable over ``window_s`` of the session."""
    times = np.asarray(decoding["bin_times_s"], float)
    names = list(decoding["predicted"])
    figure = new_figure(10, 1.8 * len(names))
    axes = figure.subplots(len(names), 1, squeeze=False)[:, 0]
    scored = np.flatnonzero(np.isfinite(np.asarray(decoding["predicted"][names[0]], float)))
    start = times[scored[0]] if scored.size else times[0]
    shown = (times >= start) & (times < start + window_s)
    units = {"paw_vx": "mm/s", "paw_vy": "mm/s", "paw_vz": "mm/s", "supination_deg": "deg"}
    for ax, name in zip(axes, names):
        ax.plot(times[shown] - t0_s, np.asarray(decoding["actual"][name], float)[shown], color="k", lw=0.8,
                label="pose")
        ax.plot(times[shown] - t0_s, np.asarray(decoding["predicted"][name], float)[shown], color="C1", lw=0.8,
                label=f"decoded (R2 {decoding['linear_r2'][name]:.2f})")
        ax.set_ylabel(f"{name} ({units.get(name, '')})", fontsize=8)
        ax.set_title(f"{name}: the pose's value and its held-out linear decoding from the units", fontsize=8)
        ax.legend(loc="upper right", fontsize=7)
        ax.set_xlabel(TIME_LABEL, fontsize=8)
    return save(figure, path)
