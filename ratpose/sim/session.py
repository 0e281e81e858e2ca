"""Write a complete simulated session folder (docs/session-format.md) and its ground truth."""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tomli_w
from tqdm import tqdm

from ..errors import InputError
from ..video import VideoWriter
from .cameras import LENS_MM, PIXEL_SIZE_UM, rig_and_lab_frame
from .clocks import TICK_WRAP, CameraClockSettings, simulate_clocks
from .neural import default_units, knob_angle_log, knob_events, simulate_spikes
from .render import (
    SensorNoise,
    in_image,
    random_occlusions,
    render_background,
    render_frame,
)
from .scene import make_scene
from .truth import GroundTruth

CAMERA_MODEL = "Blackfly S BFS-U3-16S2M"
EXPOSURE_US = 2000.0
_CAMERA_NAME = "cam{}"


@dataclass(frozen=True)
class SessionSettings:
    """Knobs of a simulated session (simple types only, so a CLI can fill them).

    size is (width, height) in pixels; drift_ppm is the primary camera's clock drift (secondaries get
    a different one); wrap starts the Pi's tick counter so it wraps mid-session; noise_std is the sensor's
    read noise in DN on top of its shot noise and fixed pattern (``SensorNoise``; 0: noise-free frames).

    Attributes
    ----------
    seconds : float, s
        Must be > 0.
    fps : float, frames/s
        Trigger rate, in (0, 1000].
    size : tuple of int, (width, height), px
        At least 16x16.
    n_cameras : int
        1..4.
    seed : int
    loss_rate, miss_rate : float
        Probability that a camera loses an exposed frame in transfer / misses a trigger, in [0, 0.5).
    drift_ppm : float, ppm
    armed_after_pulses : int
        Pulses before the primary is armed (each secondary 2 more).
    wrap : bool
    noise_std : float, DN
    occlusion_rate_hz : float, Hz
        Occlusion episodes per keypoint and camera.
    n_units : int
        Simulated units (``default_units``).
    knob_rate_hz : float, Hz
        Sample rate of the knob angle log.
    subject, rig, task, session_datetime : str
        Written to session.toml.
    subject_date_of_birth : str
        ISO date, written to session.toml's [subject_info] (as is ``subject_sex``).
    progress : bool
        Show progress bars.

    Raises
    ------
    InputError
        On construction, if a value is out of range.
    """

    seconds: float = 5.0
    fps: float = 100.0
    size: tuple[int, int] = (160, 128)
    n_cameras: int = 2
    seed: int = 0
    loss_rate: float = 0.002
    miss_rate: float = 0.001
    drift_ppm: float = 30.0
    armed_after_pulses: int = 3
    wrap: bool = False
    noise_std: float = 2.0
    occlusion_rate_hz: float = 0.2
    n_units: int = 6
    knob_rate_hz: float = 100.0
    subject: str = "rat01"
    subject_sex: str = "M"  # session.toml [subject_info]: what DANDI requires of a subject (with species)
    subject_date_of_birth: str = "2026-08-25"
    rig: str = "sim-rig-1"
    task: str = "knob-supination"
    session_datetime: str = "2026-11-24T10:00:00"
    progress: bool = False

    def __post_init__(self):
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))
        problems = []
        if not self.seconds > 0:
            problems.append(f"seconds must be > 0 (got {self.seconds})")
        if not 0 < self.fps <= 1000:
            problems.append(f"fps must be in (0, 1000] (got {self.fps})")
        if not 1 <= self.n_cameras <= 4:
            problems.append(f"n_cameras must be 1..4 (got {self.n_cameras})")
        if not (0 <= self.loss_rate < 0.5 and 0 <= self.miss_rate < 0.5):
            problems.append(f"loss_rate/miss_rate must be in [0, 0.5) (got {self.loss_rate}, {self.miss_rate})")
        if min(self.size) < 16:
            problems.append(f"size must be at least 16x16 (got {self.size})")
        if self.noise_std < 0 or self.occlusion_rate_hz < 0 or self.n_units < 0 or self.armed_after_pulses < 0:
            problems.append("noise_std, occlusion_rate_hz, n_units and armed_after_pulses must be >= 0")
        if problems:
            raise InputError("invalid SessionSettings: " + "; ".join(problems))

    @property
    def n_pulses(self) -> int:
        return max(int(round(self.seconds * self.fps)), 2)

    @classmethod
    def full_size(cls, **overrides) -> "SessionSettings":
        """The real rig's format: 1440x1080 Mono8 at 226 fps.

        Parameters
        ----------
        **overrides
            Other fields to set.

        Returns
        -------
        SessionSettings
        """
        return cls(**{"size": (1440, 1080), "fps": 226.0, "progress": True, **overrides})


def _clock_configs(config: SessionSettings, rng: np.random.Generator) -> list[CameraClockSettings]:
    configs = []
    for i in range(config.n_cameras):
        configs.append(CameraClockSettings(
            name=_CAMERA_NAME.format(i), role="primary" if i == 0 else "secondary",
            clock_offset_ns=int(rng.integers(10**9, 10**12)),
            drift_ppm=config.drift_ppm if i == 0 else -0.6 * config.drift_ppm + 5.0 * i,
            loss_rate=config.loss_rate, miss_rate=config.miss_rate,
            armed_after_pulses=config.armed_after_pulses + 2 * i, strobe_delay_us=12.0 if i else 0.0,
            first_frame_id=int(rng.integers(0, 1000)), timestamp_jitter_ns=200.0))
    return configs


def _start_tick(config: SessionSettings, rng: np.random.Generator) -> int:
    if config.wrap:  # wrap about a third into the session
        return TICK_WRAP - int(config.seconds * 1e6 / 3) - 1
    return int(rng.integers(10**6, 10**9))


def _write_csv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _write_video(path: Path, frames, size: tuple[int, int], fps: float, n_frames: int, progress: bool) -> None:
    """Lossless MagicYUV Mono8 .avi (ratpose.video's writer; what `ratpose compress` writes) with an exact frame
    count; OpenCV and DeepLabCut read it too. It encodes ~2.3x and decodes ~4x faster than FFV1 for ~5 % more
    bytes (README, bench_codecs), which is most of a simulated session's time."""
    with VideoWriter(path, *size, fps, codec="magicyuv") as writer:
        for frame in tqdm(frames, total=n_frames, desc=path.name, disable=not progress, unit="frame"):
            writer.write(frame)


def _background_seed(seed: int, camera_index: int) -> int:
    return seed + 7919 * camera_index


def session_backgrounds(truth: GroundTruth) -> list[np.ndarray]:
    """The static float backgrounds (one per camera) that a written session's frames were drawn on.

    Parameters
    ----------
    truth : GroundTruth
        The session's ground truth (its config's seed and noise_std).

    Returns
    -------
    list of numpy.ndarray, (h, w) float32
        In the rig's camera order.
    """
    seed = int(truth.config["seed"])
    sensor = SensorNoise.with_read_noise(float(truth.config["noise_std"]))
    return [render_background(cam, truth.scene, seed=_background_seed(seed, c), sensor=sensor)
            for c, cam in enumerate(truth.rig)]


def write_session(path, config: SessionSettings = SessionSettings()) -> GroundTruth:
    """Simulate a session and write it to the folder ``path`` (created; existing session files are overwritten).

    The ground truth goes to path/ground_truth/ and is returned.

    Parameters
    ----------
    path : str or Path
    config : SessionSettings

    Returns
    -------
    GroundTruth
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    rig, R_lab, t_lab = rig_and_lab_frame(config.size, config.n_cameras)
    clocks = simulate_clocks(config.n_pulses, config.fps, _clock_configs(config, rng),
                             start_tick_us=_start_tick(config, rng), seed=config.seed)
    t = clocks.pulse_time_s
    t_start, t_end = float(t[0]), float(t[-1]) + 1.0 / config.fps
    scene = make_scene(t_start, t_end, seed=config.seed, lab_to_world_R=R_lab, lab_to_world_t=t_lab)
    points3d = scene.keypoints(t)
    points2d = rig.project(points3d)  # (C, N, P, 2)
    occluded = random_occlusions(len(t), len(rig), config.fps, config.occlusion_rate_hz, rng)
    visible = np.moveaxis(in_image(points2d, config.size), 0, 1) & ~occluded  # (N, C, P)

    cameras_toml = []
    sensor = SensorNoise.with_read_noise(config.noise_std)
    for c, cam in enumerate(rig):
        frames = clocks.cameras[cam.name]
        background = render_background(cam, scene, seed=_background_seed(config.seed, c), sensor=sensor)
        frame_rng = np.random.default_rng([config.seed, c])
        images = (render_frame(background, points2d[c, p], visible[p, c], sensor, frame_rng)
                  for p in frames.pulse_index)
        _write_video(path / f"{cam.name}.avi", images, config.size, config.fps, len(frames.pulse_index),
                     config.progress)
        _write_csv(path / f"{cam.name}.frames.csv", ["frame_id", "camera_ts_ns", "exposure_us"],
                   zip(frames.frame_id.tolist(), frames.camera_ts_ns.tolist(), [EXPOSURE_US] * len(frames.frame_id)))
        cameras_toml.append({"name": cam.name, "role": "primary" if c == 0 else "secondary",
                             "serial": str(21000001 + c), "model": CAMERA_MODEL, "pixel_size_um": PIXEL_SIZE_UM,
                             "lens_mm": LENS_MM, "video": f"{cam.name}.avi"})

    _write_csv(path / "trigger.csv", ["tick_us"], ((int(v),) for v in clocks.tick_us))
    touches = scene.touch_intervals(t_start, t_end)
    event_times, event_names = knob_events(touches)
    _write_csv(path / "knob_events.csv", ["time_s", "event"], zip([f"{v:.6f}" for v in event_times], event_names))
    angle_t, angle = knob_angle_log(scene, t_start, t_end, config.knob_rate_hz)
    _write_csv(path / "knob_angle.csv", ["time_s", "angle_deg"],
               zip([f"{v:.6f}" for v in angle_t], [f"{v:.4f}" for v in angle]))
    units = default_units(config.n_units, seed=config.seed)
    spike_ids, spike_times = simulate_spikes(units, scene, t_start, t_end, rng)
    if units:
        _write_csv(path / "units.csv", ["unit_id", "tetrode"], ((u.unit_id, u.tetrode) for u in units))
        _write_csv(path / "spikes.csv", ["unit_id", "time_s"],
                   zip(spike_ids.tolist(), [f"{v:.6f}" for v in spike_times]))
    meta = {"format_version": 1, "subject": config.subject, "session_datetime": config.session_datetime,
            "rig": config.rig, "task": config.task, "notes": f"simulated by ratpose.sim, seed {config.seed}",
            "trigger_rate_hz": float(config.fps), "camera": cameras_toml,
            "subject_info": {"species": "Rattus norvegicus", "sex": config.subject_sex,
                             "date_of_birth": config.subject_date_of_birth}}
    (path / "session.toml").write_text(tomli_w.dumps(meta))

    truth = GroundTruth(config=asdict(config), rig=rig, scene=scene, tick_us=clocks.tick_us, pulse_time_s=t,
                        points3d=points3d, visible=visible, knob_angle_deg=scene.knob_angle(t),
                        cameras=clocks.cameras, touch_intervals=touches, units=units,
                        spike_unit_id=spike_ids, spike_time_s=spike_times)
    truth.save(path)
    return truth


def write_rig_dataset(root, config: SessionSettings = SessionSettings(), *, n_labeled: int = 100,
                      board=None, n_shared: int = 10, n_single: int = 24,
                      calibration_size: tuple[int, int] | None = None) -> GroundTruth:
    """Everything the demo needs under ``root``: session/, calibration/ and labeled/<video>/.

    session/ is ``write_session``'s; calibration/ holds ChArUco views of the same rig (``ratpose.sim.boards``);
    labeled/<video>/ DLC labeled frames of the same size.
    ``calibration_size`` renders the calibration at a k-times larger resolution than the session (the
    session then stands for k x k binned recording). Returns the session's ground truth (its rig, rescaled
    to the calibration size, is the calibration's truth).

    Parameters
    ----------
    root : str or Path
    config : SessionSettings
    n_labeled : int
        Labeled frames.
    board : CharucoBoard or Checkerboard, optional
        Default a 9 x 7 ChArUco board of 4 mm squares.
    n_shared : int
        Calibration instants every camera sees.
    n_single : int
        Single-camera calibration views per camera.
    calibration_size : tuple of int, (width, height), optional, px

    Returns
    -------
    GroundTruth
    """
    from ratpose.calibration import CharucoBoard

    from .boards import simulate_calibration_views, write_calibration_folder
    from .labeled import write_labeled_frames

    root = Path(root)
    truth = write_session(root / "session", config)
    board = board if board is not None else CharucoBoard(9, 7, 4.0, 3.0)  # fills ~60 % of the 60 mm field of view
    frames, single = simulate_calibration_views(truth.rig, board, n_shared, n_single, seed=config.seed,
                                                image_size=calibration_size)
    write_calibration_folder(root / "calibration", config.rig, board, frames, single, date=config.session_datetime[:10])
    write_labeled_frames(root / "labeled" / "sim", n_labeled, config.size, seed=config.seed + 1)
    return truth
