"""Reading videos: grey frames in file order (PyAV, FFmpeg's threads) and what a video holds.

``decode_gray`` is the reader the stages share (Pose2D inference, calibration from board videos,
the codec benchmark); ``video_info`` counts frames by decoding when the container does not say.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv")


class VideoError(ValueError):
    """A video cannot be opened or decoded."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds: decodable frames, frame rate (frames/s) and size (width, height) in px."""

    n_frames: int
    fps: float
    size: tuple[int, int]


def decode_gray(path: str | Path, *, crop=None, threads: int = 0) -> Iterator[np.ndarray]:
    """Frames of a video as (height, width) uint8 arrays, in file order; with ``crop`` (an object with
    ``cut(image)``, e.g. ``ratpose.pose2d.CropBox``) the cut part only.

    ``threads``: decoder threads (0 = FFmpeg's choice); frame threading for H.264, slices for FFV1.
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        for frame in container.decode(stream):
            image = _luma(frame)
            yield np.ascontiguousarray(crop.cut(image)) if crop is not None else image


_FULL_RANGE_LUMA = ("gray", "yuvj420p", "yuvj422p", "yuvj444p")


def _luma(frame: av.VideoFrame) -> np.ndarray:
    """The grey image of a decoded frame: its first plane as is where that plane holds full-range
    luma (Mono8, H.264 of Mono8 decodes as yuvj420p), skipping swscale's copy (H.264 342 -> 546 frames/s);
    otherwise (limited-range YUV, other formats) swscale's grey conversion."""
    name = frame.format.name
    if name in _FULL_RANGE_LUMA or (name.startswith("yuv") and getattr(frame, "color_range", 0) == 2):
        plane = frame.planes[0]
        return np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)[:, :frame.width]
    return frame.to_ndarray(format="gray")


def video_info(path: str | Path) -> VideoInfo:
    """Frames, rate and size of a video; the frames counted by decoding (container counts can lie).

    Raises VideoError naming the file when it cannot be opened or holds no decodable frame.
    """
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            n_frames, size = 0, None
            for frame in container.decode(stream):
                n_frames += 1
                size = size or (frame.width, frame.height)
    except (av.FFmpegError, IndexError, OSError) as exc:
        raise VideoError(f"{path}: cannot be read as a video ({exc})") from None
    if not n_frames:
        raise VideoError(f"{path}: holds no decodable frame")
    return VideoInfo(n_frames, fps, size)
