"""ratpose.video, the one module that opens videos: every codec and container the project writes or
accepts, read back the same through every reading path; errors name the file."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from ratpose.ingest.session_folder import SessionFormatError, probe_video
from ratpose.pose2d.dlc import DLCError
from ratpose.pose2d.dlc.inference import _video_frame_count
from ratpose.pose2d.frames import batches, prefetch
from ratpose.report import video as report_video
from ratpose.video import VideoError, VideoWriter, count_frames, decode_gray, read_frame, read_frames, video_info

ROOT = Path(__file__).resolve().parents[1]
N, W, H, FPS = 23, 64, 48, 226.0
# (codec, container): the recorder's and compress's codecs, the simulator's MagicYUV .avi, H.264 for DLC videos
CASES = [("raw", "avi"), ("raw", "mkv"), ("ffv1", "mkv"), ("ffv1", "avi"), ("magicyuv", "avi"), ("ffvhuff", "avi"),
         ("h264", "mp4"), ("h264", "mkv"), ("h264_lossless", "mkv"), ("h265", "mkv")]
LOSSY = ("h264", "h265")


def pattern(k: int) -> np.ndarray:
    """Frame k: a smooth texture moving with k (camera-like, so lossy codecs keep it) and a block of grey 10 k."""
    yy, xx = np.mgrid[0:H, 0:W]
    image = (128 + 60 * np.sin(xx / 5 + k / 3) * np.cos(yy / 4 - k / 5)).astype(np.uint8)
    image[2:10, 2:10] = 10 * k
    return image


WRITTEN = np.stack([pattern(k) for k in range(N)])


def write(path: Path, codec: str, frames=WRITTEN) -> Path:
    with VideoWriter(path, W, H, FPS, codec=codec) as writer:
        for frame in frames:
            writer.write(frame)
    return path


class Crop:
    def cut(self, image):
        return image[10:30, 5:41]


@pytest.mark.parametrize("codec,container", CASES)
def test_every_reading_path_gives_the_same_frames(tmp_path, codec, container):
    path = write(tmp_path / f"v.{container}", codec)
    for count in ("decode", "packets"):
        info = video_info(path, count=count)
        assert (info.n_frames, info.fps, info.size) == (N, FPS, (W, H)), count
    assert count_frames(path) == N
    assert probe_video(path) == (N, W, H, FPS)  # ingest
    assert _video_frame_count(path) == N  # Pose2D's count

    frames = np.stack(list(decode_gray(path)))
    assert frames.shape == (N, H, W) and frames.dtype == np.uint8
    indices = [5, 0, N - 1, 5, 12]
    got = read_frames(path, indices)  # the report's example frames and label extract's
    assert len(got) == len(indices)
    for i, image in zip(indices, got):
        np.testing.assert_array_equal(image, frames[i])
    np.testing.assert_array_equal(read_frame(path, 13), frames[13])
    assert read_frames(path, []) == []
    fed = np.concatenate(list(prefetch(batches(decode_gray(path, threads=2), 4), 2)))  # Pose2D's feed
    np.testing.assert_array_equal(fed, frames)
    np.testing.assert_array_equal(np.stack(list(decode_gray(path, crop=Crop()))), frames[:, 10:30, 5:41])

    if codec in LOSSY:
        diff = np.abs(frames.astype(int) - WRITTEN).mean(axis=(1, 2))
        assert diff.max() < 4, diff
        nearest = [int(np.argmin(np.abs(f.astype(int) - WRITTEN).mean(axis=(1, 2)))) for f in frames]
        assert nearest == list(range(N))  # frame i is the i-th written, none dropped or repeated
    else:
        np.testing.assert_array_equal(frames, WRITTEN)


@pytest.mark.parametrize("codec,container", [("ffv1", "mkv"), ("h264", "mp4")])
def test_colour_writer_keeps_the_picture(tmp_path, codec, container):
    rgb = np.repeat(WRITTEN[..., None], 3, axis=3)
    path = tmp_path / f"c.{container}"
    with VideoWriter(path, W, H, FPS, codec=codec, colour=True) as writer:
        for frame in rgb:
            writer.write(frame)
        with pytest.raises(ValueError, match=r"expected \(48, 64, 3\) uint8"):
            writer.write(WRITTEN[0])
    assert video_info(path).n_frames == N
    diff = np.abs(np.stack(list(decode_gray(path))).astype(int) - WRITTEN)
    assert diff.mean() < (4 if codec in LOSSY else 1.5), diff.mean()


def test_writer_refuses_what_it_cannot_write(tmp_path):
    with pytest.raises(ValueError, match="container must be one of"):
        VideoWriter(tmp_path / "v.gif", W, H, FPS)
    with pytest.raises(ValueError, match="codec must be one of"):
        VideoWriter(tmp_path / "v.mkv", W, H, FPS, codec="mjpeg")
    with pytest.raises(ValueError, match="colour codec must be one of"):
        VideoWriter(tmp_path / "v.avi", W, H, FPS, codec="magicyuv", colour=True)
    with VideoWriter(tmp_path / "v.mkv", W, H, FPS) as writer, pytest.raises(ValueError, match=r"expected \(48, 64\)"):
        writer.write(np.zeros((H, W + 1), np.uint8))


def test_frames_past_the_end_are_named(tmp_path):
    path = write(tmp_path / "v.mkv", "ffv1")
    with pytest.raises(VideoError, match=rf"v.mkv: frame {N} cannot be decoded \(the video has {N} frames\)"):
        read_frames(path, [3, N])
    with pytest.raises(VideoError, match="frame -1 does not exist"):
        read_frame(path, -1)


@pytest.mark.parametrize("content", [None, b"", b"not a video at all" * 100])
def test_unreadable_videos_raise_video_error_naming_the_file(tmp_path, content):
    path = tmp_path / "broken.avi"
    if content is not None:
        path.write_bytes(content)
    calls = [lambda: video_info(path), lambda: video_info(path, count="packets"),
             lambda: video_info(path, count="header"), lambda: list(decode_gray(path)),
             lambda: read_frames(path, [0]), lambda: count_frames(path)]
    for call in calls:
        with pytest.raises(VideoError, match="broken.avi"):
            call()
    with pytest.raises(SessionFormatError, match="broken.avi"):
        probe_video(path)
    with pytest.raises(DLCError, match="broken.avi"):
        _video_frame_count(path)


def test_a_cut_short_matroska_file_keeps_a_prefix_of_frames(tmp_path):
    """The recorder's default: a recording cut short (crash, disk full) keeps the frames written before."""
    path = write(tmp_path / "v.mkv", "ffv1")
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    n = video_info(path).n_frames
    assert 0 < n < N and video_info(path, count="packets").n_frames == count_frames(path) == n
    np.testing.assert_array_equal(np.stack(list(decode_gray(path))), WRITTEN[:n])


def test_a_truncated_avi_is_refused_naming_the_file(tmp_path):
    path = write(tmp_path / "v.avi", "raw")
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])  # ends inside a frame
    with pytest.raises(VideoError, match="v.avi"):
        video_info(path, count="packets")
    with pytest.raises(SessionFormatError, match="v.avi: video cannot be opened or its frames cannot be decoded"):
        probe_video(path)


def test_only_ratpose_video_opens_videos():
    """One fact in one place: no other module of ratpose opens a video itself (PyAV or OpenCV)."""
    opening = re.compile(r"cv2\.VideoCapture|cv2\.VideoWriter|av\.open|^\s*import av\b|^\s*from av\b", re.M)
    offenders = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "ratpose").rglob("*.py"))
                 if path != ROOT / "ratpose" / "video.py" and opening.search(path.read_text())]
    assert offenders == []
