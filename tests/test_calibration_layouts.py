"""`ratpose calibrate` on the folders and videos labs already have: Anipose/sleap-anipose, DeepLabCut 3D,
images named by camera, board videos; --out/--report without a database; --import-dlc3d.

Real outside data (../shared/data) where it exists; simulated board videos where the truth must be known.
"""
from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import scipy.io

from ratpose.calibration import Checkerboard, calibrate_rig, detect_views, load_rig
from ratpose.calibration.coverage import choose_instants, view_features
from ratpose.cli import main as cli
from ratpose.ingest.calibration_folder import CalibrationFolderError
from ratpose.ingest.calibration_layouts import read_calibration
from ratpose.rig import Rig
from ratpose.sim.boards import scale_rig, simulate_calibration_views

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SLEAP = DATA / "sleap-anipose-minimal"
STEREO = DATA / "stereo-checkerboard"
# held-out px of the chosen lens model per camera, measured on these images rewritten into ratpose's layout
SLEAP_HELDOUT_PX = {"back": 0.202, "mid": 0.166, "side": 0.434, "top": 0.172}
needs_sleap = pytest.mark.skipif(not SLEAP.is_dir(), reason=f"{SLEAP} absent")
needs_stereo = pytest.mark.skipif(not STEREO.is_dir(), reason=f"{STEREO} absent")


def run_ratpose(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """The installed command in a folder with no database configuration and an unreachable server."""
    env = {**os.environ, "DJ_HOST": "127.0.0.1:9"}
    env.pop("RATPOSE_CONFIG", None)
    return subprocess.run([str(Path(sys.executable).with_name("ratpose")), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def heldout_table(stdout: str) -> dict[str, tuple[str, float, float]]:
    """camera -> (lens model, held-out px, OpenCV default's held-out px) from ``ratpose calibrate``'s table."""
    rows = re.findall(r"^(\w+)\s+(\w+)\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+([\d.]+)", stdout, re.M)
    return {cam: (model, float(a), float(b)) for cam, model, a, b in rows if cam != "camera"}


@pytest.fixture(scope="module")
def sleap_out(tmp_path_factory):
    """`ratpose calibrate` on the untouched sleap-anipose folder, --out and --report, no database."""
    if not SLEAP.is_dir():
        pytest.skip(f"{SLEAP} absent")
    work = tmp_path_factory.mktemp("sleap_out")
    done = run_ratpose(["calibrate", str(SLEAP), "--out", "calibration.toml", "--report", "qc/report.html"], work)
    assert done.returncode == 0, done.stdout + done.stderr
    return work, done.stdout


def test_untouched_sleap_anipose_folder_calibrates_without_a_database(sleap_out):
    work, stdout = sleap_out
    assert f"read {SLEAP} (layout: sleap-anipose): images per camera: back 21, mid 21, side 21, top 21" in stdout
    table = heldout_table(stdout)
    assert set(table) == set(SLEAP_HELDOUT_PX)
    for cam, expected in SLEAP_HELDOUT_PX.items():
        assert abs(table[cam][1] / expected - 1) < 0.05, (cam, table[cam], expected)
    page = (work / "qc" / "report.html").read_text()
    assert "held-out (px)" in page and all(cam in page for cam in SLEAP_HELDOUT_PX)
    assert cv2.imread(str(work / "qc" / "report.png")) is not None


def test_out_is_read_by_aniposelib_and_projects_identically(sleap_out):
    from aniposelib.cameras import CameraGroup

    work, _ = sleap_out
    ours = load_rig(work / "calibration.toml")
    theirs = CameraGroup.load(str(work / "calibration.toml"))
    assert theirs.get_names() == ours.names
    # board-distance points spread in front of the first camera
    rng = np.random.default_rng(3)
    world = ours[0].center + rng.uniform(-150, 150, (200, 3)) + 700 * ours[0].R[2]
    theirs_px = theirs.project(world)
    for c, cam in enumerate(ours):
        assert np.abs(theirs_px[c] - cam.project(world)).max() < 1e-6


@needs_sleap
def test_sleap_anipose_board_videos_calibrate_as_its_images_do(sleap_out):
    """The same folder from its board videos (H.264, 2.9 Mbit/s: corners move by compression)."""
    work, _ = sleap_out
    material = read_calibration(SLEAP, "sleap", "2022-02-24", media="videos")
    assert (material.layout, material.media) == ("sleap-anipose", "videos")
    assert {cam: len(frames) for cam, frames in material.frames.items()} == dict.fromkeys(SLEAP_HELDOUT_PX, 21)
    rig, report = calibrate_rig(material.frames, material.board, material.intrinsics_frames)
    images = load_rig(work / "calibration.toml")
    for cam, expected in SLEAP_HELDOUT_PX.items():
        quality = report.cameras[cam]
        print(cam, quality.lens_model, round(quality.heldout_px[quality.lens_model], 3), "images", expected)
        assert quality.heldout_px[quality.lens_model] < 1.5 * expected  # measured 1.10-1.38x: lossy video
        assert abs(rig[cam].K[0, 0] / images[cam].K[0, 0] - 1) < 0.01
    for a, b in (("back", "mid"), ("back", "side"), ("mid", "top")):
        video_mm = np.linalg.norm(rig[a].center - rig[b].center)
        image_mm = np.linalg.norm(images[a].center - images[b].center)
        assert abs(video_mm / image_mm - 1) < 0.01, (a, b, video_mm, image_mm)


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 30) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "gray"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="gray")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def board_videos(tmp_path_factory):
    """An Anipose folder of two cameras' board videos (board.toml, <camera>/board.mkv); camera b's video
    starts 3 frames early (a camera started first): 40 instants the truth knows."""
    from test_calibration import BOARD, SIZE, blackfly_rig

    truth_rig = blackfly_rig()
    frames, _ = simulate_calibration_views(truth_rig, BOARD, 40, 0, seed=11, image_size=SIZE)
    folder = tmp_path_factory.mktemp("videos")
    (folder / "board.toml").write_text(f"board_x = {BOARD.squares_x}\nboard_y = {BOARD.squares_y}\n"
                                       f"square_length = {BOARD.square_mm}\nmarker_length = {BOARD.marker_mm}\n"
                                       "marker_bits = 4\ndict_size = 50\n")
    names = list(frames)
    for lead, cam in zip((0, 3), names):
        (folder / f"cam {cam}").mkdir()
        blank = [np.full_like(frames[cam][0], 40)] * lead
        _write_video(folder / f"cam {cam}" / "board.mkv", blank + frames[cam])
    return folder, scale_rig(truth_rig, SIZE), names


def test_board_videos_of_different_lengths_need_frame_offsets(board_videos):
    folder, truth, names = board_videos
    with pytest.raises(CalibrationFolderError, match=r"board videos differ \(cam cam0 40 frames at 30 fps, cam cam1 "
                                                     r"43 frames at 30 fps\); .*frame_offsets.toml"):
        read_calibration(folder, "rig", "2026-01-02")
    (folder / "frame_offsets.toml").write_text('[frame_offsets]\n"cam cam0" = 0\n"cam cam1" = 3\n')
    try:
        material = read_calibration(folder, "rig", "2026-01-02")
    finally:
        (folder / "frame_offsets.toml").unlink()
    assert (material.layout, material.media, material.camera_names) == ("anipose", "videos", ["cam_cam0", "cam_cam1"])
    # 40 instants, at most 12 kept: chosen for coverage and tilt, the calibration still matches the truth
    rig, report = calibrate_rig(material.frames, material.board, max_instants=12)
    assert report.n_joint_instants <= 12
    for est, true in zip(rig, truth):
        np.testing.assert_allclose(np.diag(est.K)[:2], np.diag(true.K)[:2], rtol=0.01)
    baseline = np.linalg.norm(truth[1].center - truth[0].center)
    assert abs(np.linalg.norm(rig[1].center - rig[0].center) / baseline - 1) < 0.01


def test_anipose_project_calibration_folder_with_videos_named_by_cam_regex(board_videos, tmp_path):
    """Anipose's own layout: config.toml at the project root ([calibration] board, [triangulation] cam_regex),
    the board videos in <session>/calibration/ named by camera."""
    from test_calibration import BOARD

    folder, _, _ = board_videos
    (tmp_path / "config.toml").write_text(
        f"[calibration]\nboard_type = 'charuco'\nboard_size = [{BOARD.squares_x}, {BOARD.squares_y}]\n"
        f"board_marker_bits = 4\nboard_marker_dict_number = 50\nboard_marker_length = {BOARD.marker_mm}\n"
        f"board_square_side_length = {BOARD.square_mm}\n\n[triangulation]\ncam_regex = '-cam([A-Z])'\n")
    calibration = tmp_path / "session1" / "calibration"
    calibration.mkdir(parents=True)
    for letter, cam in (("A", "cam0"), ("B", "cam1")):
        shutil.copy(folder / f"cam {cam}" / "board.mkv", calibration / f"calib-cam{letter}.mkv")
    (calibration / "frame_offsets.toml").write_text("[frame_offsets]\nA = 0\nB = 3\n")
    material = read_calibration(calibration, "rig", "2026-01-02")
    assert (material.layout, material.media, material.camera_names) == ("anipose", "videos", ["a", "b"])
    assert material.board.to_dict() == {**BOARD.to_dict(), "legacy": True}
    assert {cam: len(frames) for cam, frames in material.frames.items()} == {"a": 40, "b": 40}
    assert "../../config.toml" in material.checksums and "calib-camB.mkv" in material.checksums
    shared = detect_views(material.frames, material.board).shared
    # the offset skips camera b's 3 blank lead frames: the board is in every sampled frame of both cameras
    assert sum(d is not None for d in shared["a"]) == sum(d is not None for d in shared["b"]) == 40


def test_chosen_instants_cover_more_than_the_first_ones(board_videos):
    from test_calibration import BOARD

    folder, _, _ = board_videos
    (folder / "frame_offsets.toml").write_text('[frame_offsets]\n"cam cam0" = 0\n"cam cam1" = 3\n')
    try:
        material = read_calibration(folder, "rig", "2026-01-02")
    finally:
        (folder / "frame_offsets.toml").unlink()
    shared = detect_views(material.frames, BOARD).shared

    def covered(instants):
        return len({(cam, *f) for i in instants for cam in shared if shared[cam][i] is not None
                    for f in view_features(shared[cam][i], BOARD)})

    chosen = choose_instants(shared, BOARD, 10)
    assert len(chosen) == 10 and chosen == sorted(set(chosen))
    firsts = [i for i in range(len(shared["cam_cam0"])) if shared["cam_cam0"][i] is not None][:10]
    assert covered(chosen) > covered(firsts)
    assert choose_instants(shared, BOARD, 100) == [i for i in range(40) if any(shared[c][i] is not None
                                                                                for c in shared)]


def _bouguet_agrees(rig: Rig, names: dict[str, str]) -> None:
    for ours, theirs in names.items():
        ref = scipy.io.loadmat(STEREO / f"Calib_Results_{theirs}.mat")
        fc, fc_error = ref["fc"].ravel(), ref["fc_error"].ravel()  # the toolbox's 3-sigma
        assert np.all(np.abs(np.diag(rig[ours].K)[:2] - fc) < fc_error), (ours, np.diag(rig[ours].K)[:2], fc)


@needs_stereo
def test_classic_stereo_folder_and_a_dlc3d_project_calibrate_from_their_own_layouts(tmp_path):
    assert cli(["calibrate", str(STEREO), "--checkerboard", "9x6", "--square-mm", "30", "--out",
                str(tmp_path / "stereo.toml")]) == 0
    _bouguet_agrees(load_rig(tmp_path / "stereo.toml"), {"left": "left", "right": "right"})
    # the same images as DeepLabCut 3D keeps them (its stereo_example.zip): calibration_images/camera-N-MM.jpg
    project = tmp_path / "dlc3d"
    (project / "calibration_images").mkdir(parents=True)
    (project / "config.yaml").write_text("Task: stereo\nscorer: lab\ncamera_names:\n- camera-1\n- camera-2\n"
                                         "trainingsetindex_camera-1: 0\ntrainingsetindex_camera-2: 0\n")
    for i in range(1, 15):
        for n, side in ((1, "left"), (2, "right")):
            shutil.copy(STEREO / f"{side}{i:02d}.jpg", project / "calibration_images" / f"camera-{n}-{i:02d}.jpg")
    material = read_calibration(project, "stereo", "2010-01-01", Checkerboard(9, 6, 30.0))
    assert (material.layout, material.camera_names) == ("dlc3d", ["camera_1", "camera_2"])
    rig, _ = calibrate_rig(material.frames, material.board, lens_model="k1k2p")
    _bouguet_agrees(rig, {"camera_1": "left", "camera_2": "right"})
    with pytest.raises(CalibrationFolderError, match="does not say which board it shows"):
        read_calibration(project, "stereo", "2010-01-01")


def test_folder_in_no_known_layout_gets_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("board photos are on the other disk\n")
    assert cli(["calibrate", str(tmp_path), "--out", str(tmp_path / "c.toml")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ERROR {tmp_path}: not a calibration folder in a layout ratpose reads; expected a "
                          "ratpose calibration folder") and "\n" not in err
    assert not (tmp_path / "c.toml").exists()


@needs_stereo
def test_import_dlc3d_stereo_calibration(clean_db, tmp_path, capsys):
    """A DeepLabCut 3D project's camera_matrix/stereo_params.pickle, as its calibrate_cameras writes it
    (board in square units), imported with the board's square size."""
    board = Checkerboard(9, 6, 30.0)
    obj = [board.object_points[:, :2].copy() / 30.0] * 14  # DeepLabCut's object points: squares
    obj = [np.c_[o, np.zeros(len(o))].astype(np.float32) for o in obj]
    img = {}
    for side in ("left", "right"):
        img[side] = []
        for i in range(1, 15):
            gray = cv2.imread(str(STEREO / f"{side}{i:02d}.jpg"), cv2.IMREAD_GRAYSCALE)
            ok, corners = cv2.findChessboardCorners(gray, (9, 6))
            assert ok
            img[side].append(cv2.cornerSubPix(gray, corners, (11, 11), (-1, -1),
                                              (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3)))
    mono = {side: cv2.calibrateCamera(obj, img[side], (640, 480), None, None)[1:3] for side in img}
    _, K1, d1, K2, d2, R, T, _, _ = cv2.stereoCalibrate(obj, img["left"], img["right"], *mono["left"],
                                                        *mono["right"], (640, 480), flags=cv2.CALIB_FIX_INTRINSIC)
    project = tmp_path / "dlc3d"
    (project / "camera_matrix").mkdir(parents=True)
    (project / "config.yaml").write_text("camera_names:\n- camera-1\n- camera-2\n")
    with open(project / "camera_matrix" / "stereo_params.pickle", "wb") as fh:
        pickle.dump({"camera-1-camera-2": {"cameraMatrix1": K1, "cameraMatrix2": K2, "distCoeffs1": d1,
                                           "distCoeffs2": d2, "R": R, "T": T, "image_shape": [(640, 480)] * 2}}, fh)
    args = ["calibrate", "--import-dlc3d", str(project), "--rig", "stereo", "--date", "2010-01-01"]
    assert cli(args) == 1 and "--square-mm" in capsys.readouterr().err
    assert cli([*args, "--square-mm", "30"]) == 0
    assert "imported from dlc3d" in capsys.readouterr().out
    calib = clean_db["calib"]
    rows = {r["camera"]: r for r in (calib.Calibration.Camera & {"rig": "stereo"}).to_dicts()}
    assert set(rows) == {"camera_1", "camera_2"}
    np.testing.assert_allclose(rows["camera_2"]["translation"], T.ravel() * 30.0)
    np.testing.assert_allclose(rows["camera_1"]["camera_matrix"], K1)
    assert cli([*args, "--square-mm", "30"]) == 0  # idempotent
    assert len(calib.CalibrationRecording & {"rig": "stereo"}) == 1


def _anipose_folder(root: Path) -> Path:
    root.mkdir()
    (root / "board.toml").write_text("board_x = 5\nboard_y = 4\nsquare_length = 4.0\nmarker_length = 3.0\n"
                                     "marker_bits = 4\ndict_size = 50\n")
    for cam in ("left", "right"):
        (root / cam).mkdir()
        for i in range(3):
            cv2.imwrite(str(root / cam / f"{cam}-{i}.png"), np.full((48, 64), 30 * i, np.uint8))
    return root


@pytest.mark.parametrize("damage, message", [
    (lambda r: (r / "right" / "right-1.png").write_bytes(b"not a png"), "right-1.png: unreadable image"),
    (lambda r: cv2.imwrite(str(r / "right" / "right-2.png"), np.zeros((10, 10), np.uint8)),
     "right-2.png: image is 10x10 but right-0.png is 64x48"),
    (lambda r: cv2.imwrite(str(r / "left" / "left-01.png"), np.zeros((48, 64), np.uint8)),
     "left-01.png: number 1 already used by left-1.png"),
    (lambda r: (r / "right" / "board.mp4").write_bytes(b"\x00" * 1000), "board.mp4: cannot be read as a video"),
    (lambda r: (r / "left" / "outside.png").symlink_to(r.parent / "elsewhere.png"), "points outside"),
    (lambda r: [f.unlink() for f in (r / "right").iterdir()] and (r / "right" / "notes.txt").write_text("x"),
     "only camera folder 'left' holds images or videos (without any: ['right']); a rig calibration needs 2"),
], ids=["corrupt image", "image size", "number twice", "corrupt video", "link outside", "camera emptied"])
def test_damaged_foreign_folder_is_refused_in_one_line_naming_the_file(tmp_path, capsys, damage, message):
    folder = _anipose_folder(tmp_path / "calib")
    cv2.imwrite(str(tmp_path / "elsewhere.png"), np.zeros((48, 64), np.uint8))
    damage(folder)
    media = "videos" if (folder / "right" / "board.mp4").exists() else "auto"
    if media == "videos":
        shutil.copy(folder / "right" / "board.mp4", folder / "left" / "board.mp4")
    args = ["calibrate", str(folder), "--media", media, "--out", str(tmp_path / "out.toml")]
    assert cli(args) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err
    assert not (tmp_path / "out.toml").exists()
