"""Videos: the one module that opens them (PyAV on FFmpeg). Frame i is the i-th frame decoded in file order.

``decode_gray`` iterates grey frames (Pose2D inference, calibration from board videos, compression, benchmarks);
``read_frames``/``read_frame`` pick frames by index; ``video_info``/``count_frames`` say what a video holds;
``VideoWriter`` writes grey (Mono8) frames with the rig's codecs, or RGB ones (labeled videos).
Matroska (.mkv) is the recorder's default container: it stays readable when a recording is cut short (AVI
needs its index at the end, MP4 its moov atom), which matters for disk-full and crash recovery.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv")


class VideoError(InputError):
    """A video cannot be opened or decoded."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds: frames, frame rate (frames/s), size (width, height) in px, codec (FFmpeg's name).

    Attributes
    ----------
    n_frames : int
        Frames in the video (how they are counted: see ``video_info``).
    fps : float, frames/s
        Frame rate (0 where the container gives none).
    size : tuple of int, (width, height), px
    codec : str
        FFmpeg's name of the codec, e.g. "ffv1" (default "").
    """

    n_frames: int
    fps: float
    size: tuple[int, int]
    codec: str = ""


_AV_ERRORS = (av.FFmpegError, OSError)


def _video_stream(container, path):
    if not container.streams.video:
        raise VideoError(f"{path}: holds no video stream")
    return container.streams.video[0]


def decode_gray(path: str | Path, *, crop=None, threads: int = 0) -> Iterator[np.ndarray]:
    """Frames of a video in file order (the i-th yielded is frame i).

    Parameters
    ----------
    path : str or Path
    crop : object with ``cut(image)``, optional
        e.g. ``ratpose.pose2d.CropBox``: only the cut part of each frame.
    threads : int
        Decoder threads (0 = FFmpeg's choice): frame threading for H.264, slices for FFV1.

    Yields
    ------
    numpy.ndarray
        (height, width) uint8; raises VideoError naming the file when it cannot be opened or decoded.
    """
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            stream.thread_type = "AUTO"
            stream.thread_count = threads
            for frame in container.decode(stream):
                image = _luma(frame)
                yield np.ascontiguousarray(crop.cut(image)) if crop is not None else image
    except _AV_ERRORS as exc:
        raise VideoError(f"{path}: cannot be read as a video ({exc})") from None


def read_frames(path: str | Path, indices: Iterable[int]) -> list[np.ndarray]:
    """Frames at ``indices`` (any order, repeats allowed), decoded in file order up to the last one wanted.

    Parameters
    ----------
    path : str or Path
    indices : iterable of int

    Returns
    -------
    list of numpy.ndarray
        (height, width) uint8 copies, in the order of ``indices``; VideoError names the file and the first
        frame it does not hold.
    """
    wanted = [int(i) for i in indices]
    if not wanted:
        return []
    if min(wanted) < 0:
        raise VideoError(f"{path}: frame {min(wanted)} does not exist (frames count from 0)")
    keep, last, got, n = set(wanted), max(wanted), {}, 0
    with closing(decode_gray(path)) as frames:
        for n, image in enumerate(frames, start=1):
            if n - 1 in keep:
                got[n - 1] = image.copy()
            if n - 1 == last:
                break
    missing = min(keep - got.keys(), default=None)
    if missing is not None:
        raise VideoError(f"{path}: frame {missing} cannot be decoded (the video has {n} frames)")
    return [got[i] for i in wanted]


def read_frame(path: str | Path, index: int) -> np.ndarray:
    """Frame ``index`` of a video, (height, width) uint8 (``read_frames`` of one).

    Parameters
    ----------
    path : str or Path
    index : int
        Frame index, counted from 0 in file order.

    Returns
    -------
    numpy.ndarray, (height, width) uint8

    Raises
    ------
    VideoError
        Naming the file, when it cannot be read or does not hold frame ``index``.
    """
    return read_frames(path, [index])[0]


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


def video_info(path: str | Path, *, count: str = "decode") -> VideoInfo:
    """Frames, rate, size and codec of a video.

    Parameters
    ----------
    path : str or Path
    count : {"decode", "packets", "header"}
        How frames are counted. "decode": by decoding them all (exact; container counts can lie).
        "packets", for long videos: the demuxed packets (no decoding), with the first frame and those from
        the last keyframe on decoded (the end of a truncated file does not); where that end disagrees, by
        decoding. "header": what the container says (0 where it does not), nothing else read.

    Returns
    -------
    VideoInfo
        VideoError names the file when it cannot be opened or (unless "header") holds no decodable frame.
    """
    if count not in ("decode", "packets", "header"):
        raise InputError(f"count must be 'decode', 'packets' or 'header', got {count!r}")
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            fps, codec = float(stream.average_rate or stream.guessed_rate or 0), stream.codec_context.name
            header = VideoInfo(stream.frames, fps, (stream.codec_context.width, stream.codec_context.height), codec)
        if count == "header":
            return header
        n_frames, size = (count == "packets" and _count_packets(path)) or _count_decoded(path)
    except _AV_ERRORS as exc:
        raise VideoError(f"{path}: cannot be read as a video ({exc})") from None
    if not n_frames:
        raise VideoError(f"{path}: holds no decodable frame")
    return VideoInfo(n_frames, fps, size, codec)


def _count_decoded(path) -> tuple[int, tuple[int, int] | None]:
    with av.open(str(path)) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        n_frames, size = 0, None
        for frame in container.decode(stream):
            n_frames += 1
            size = size or (frame.width, frame.height)
        return n_frames, size


def _count_packets(path) -> tuple[int, tuple[int, int]] | None:
    """(packets, size of the first frame) if the frames from the last keyframe on decode, one per packet."""
    with av.open(str(path)) as container:
        stream = _video_stream(container, path)
        n, size, key_pts, tail = 0, None, None, 0
        for packet in container.demux(stream):
            if not packet.size:
                continue
            n += 1
            if packet.is_keyframe:
                key_pts, tail = packet.pts, 0
            tail += 1
            if size is None:
                for frame in packet.decode():
                    size = (frame.width, frame.height)
        if key_pts is None or size is None:
            return None
        try:
            container.seek(key_pts, stream=stream)
            stream.codec_context.flush_buffers()
            decoded = sum(1 for frame in container.decode(stream) if frame.pts is None or frame.pts >= key_pts)
        except av.FFmpegError:
            return None
        return (n, size) if decoded == tail else None


def count_frames(path: str | Path) -> int:
    """Packets a video holds (demuxed, nothing decoded: fast; a recording cut short counts what was written).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    int
        VideoError names the file when it cannot be opened.
    """
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            return sum(1 for packet in container.demux(stream) if packet.size)
    except _AV_ERRORS as exc:
        raise VideoError(f"{path}: cannot be read as a video ({exc})") from None


# --------------------------------------------------------------------------------------------------
# writing

# codec name -> (FFmpeg encoder, pixel format it encodes, extra options)
CODECS = {
    "raw": ("rawvideo", "gray", {}),
    "ffv1": ("ffv1", "gray", {"level": "3", "slices": "4", "slicecrc": "1"}),
    # no B-frames: packets then come in display order, so a file cut short still holds a prefix of frames;
    # tune fastdecode (no CABAC, no deblocking): decodes ~2x faster (1440x1080 on 2 cores: 845 vs 347-453
    # frames/s, where Pose2D on a GPU needs 2 x 226) for ~1.5x the bytes at the same CRF
    "h264": ("libx264", "gray", {"bf": "0", "tune": "fastdecode"}),
    # lossless H.264 (qp 0; x264 picks High 4:4:4 Predictive, which keeps Mono8 exactly; OpenCV/DLC read it)
    "h264_lossless": ("libx264", "gray", {"bf": "0", "qp": "0"}),
    "h265": ("libx265", "gray", {"x265-params": "log-level=error:bframes=0"}),
    # fast lossless intra codecs made for capture (Huffman coding of median-predicted pixels)
    "magicyuv": ("magicyuv", "gray", {"pred": "median"}),
    "ffvhuff": ("ffvhuff", "gray", {"pred": "median"}),
    "h264_nvenc": ("h264_nvenc", "yuv420p", {"bf": "0"}),
}
# RGB frames (labeled videos): H.264 4:2:0 plays in browsers (even sizes only), FFV1 keeps every pixel
COLOUR_CODECS = {"h264": ("libx264", "yuv420p", {}), "ffv1": ("ffv1", "bgr0", {})}
AVI_ONLY = ("magicyuv", "ffvhuff")  # FFmpeg's Matroska muxer has no tag for them
CONTAINERS = ("mkv", "avi", "mp4")
# Mono8 pixels are 0..255: flag streams full range, else decoders (OpenCV, DLC) stretch 16..235 to 0..255
FULL_RANGE = 2  # AVCOL_RANGE_JPEG


@lru_cache(maxsize=None)
def nvenc_available() -> bool:
    """True if h264_nvenc can actually open (an NVIDIA GPU and driver are present).

    Returns
    -------
    bool
        Whether a small test frame encodes with h264_nvenc; the answer is cached for the process.
    """
    try:
        ctx = av.CodecContext.create("h264_nvenc", "w")
        ctx.width, ctx.height, ctx.pix_fmt = 256, 256, "yuv420p"
        ctx.time_base = Fraction(1, 30)
        ctx.open()
        ctx.encode(av.VideoFrame.from_ndarray(np.zeros((256, 256), np.uint8), format="gray").reformat(
            format="yuv420p"))
        return True
    except Exception:  # any failure (no codec, no device, no driver) means: not usable
        return False


def resolve_codec(codec: str) -> str:
    """The codec to use: ``codec`` itself, or libx264 ('h264') when NVENC is asked for but unusable.

    Parameters
    ----------
    codec : str
        One of CODECS.

    Returns
    -------
    str
        A key of CODECS; "h264" (with a warning logged) where "h264_nvenc" is asked for but not usable here.

    Raises
    ------
    InputError
        If ``codec`` is not one of CODECS.
    """
    if codec not in CODECS:
        raise InputError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
    if codec == "h264_nvenc" and not nvenc_available():
        log.warning("h264_nvenc is not usable here (no NVIDIA GPU/driver); falling back to libx264")
        return "h264"
    return codec


class VideoWriter:
    """Writes frames to one video file; frame i of the file is the i-th write.

    Parameters
    ----------
    path : str or Path
        Ends in one of CONTAINERS (.mkv, .avi, .mp4).
    width, height : int
    fps : float
    codec : str
        One of CODECS (grey frames), or of COLOUR_CODECS with ``colour``.
    crf, preset : int, str
        Quality (0..51) and speed of the H.264/H.265/NVENC encoders.
    threads : int
        Encoder threads (0 = FFmpeg's choice).
    sync_every_s : float
        > 0: flush the file to the disk (fdatasync) that often: the data is safe from a crash, and a disk
        slower than the frames shows as writer lag at once, not when the page cache is full.
    extra_options : dict, optional
        FFmpeg encoder options over the codec's own (e.g. FFV1 ``slices``).
    colour : bool
        Frames are (height, width, 3) RGB, not (height, width) grey.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float, codec: str = "ffv1",
                 crf: int = 18, preset: str = "veryfast", threads: int = 0, sync_every_s: float = 0.0,
                 extra_options: dict[str, str] | None = None, colour: bool = False):
        self.path = Path(path)
        if self.path.suffix.lstrip(".") not in CONTAINERS:
            raise InputError(f"{self.path}: container must be one of {CONTAINERS}")
        if not 0 <= crf <= 51:
            raise InputError(f"crf must be in 0..51, got {crf}")
        if colour and codec not in COLOUR_CODECS:
            raise InputError(f"colour codec must be one of {sorted(COLOUR_CODECS)}, got {codec!r}")
        self.codec = codec if colour else resolve_codec(codec)
        encoder, pix_fmt, options = (COLOUR_CODECS if colour else CODECS)[self.codec]
        options = dict(options)
        if self.codec in ("h264", "h265"):
            options.update(crf=str(crf), preset=preset)
        elif self.codec == "h264_lossless":
            options.update(preset=preset)
        elif self.codec == "h264_nvenc":
            options.update(rc="vbr", cq=str(crf), preset="p4")
        options.update(extra_options or {})
        self.width, self.height, self.colour = int(width), int(height), bool(colour)
        self._container = av.open(str(self.path), mode="w")
        try:
            self._stream = self._container.add_stream(encoder, rate=Fraction(fps).limit_denominator(1000))
            self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, pix_fmt
            self._stream.thread_count = threads
            if not colour:
                self._stream.codec_context.color_range = FULL_RANGE
            self._stream.options = options
        except Exception:
            self._container.close()
            raise
        self._sync_every_s = float(sync_every_s)
        # the muxer opens the file on its first packet; this descriptor is the same file (inode) for fdatasync
        self._sync_fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644) if self._sync_every_s > 0 else None
        self._synced_at = time.monotonic()
        self._convert = pix_fmt if pix_fmt != ("rgb24" if colour else "gray") else None
        self._raw = self.codec == "raw"
        self._time_base = 1 / Fraction(fps).limit_denominator(1000)
        self.n_frames = 0
        self._closed = False

    def write(self, image: np.ndarray) -> None:
        """Encode one frame: (height, width) uint8 grey, or (height, width, 3) uint8 RGB with ``colour``.

        Parameters
        ----------
        image : numpy.ndarray, (height, width) or (height, width, 3) uint8
            The frame, of the writer's size.

        Raises
        ------
        InputError
            If the frame's shape or dtype is not the writer's.
        """
        shape = (self.height, self.width, 3) if self.colour else (self.height, self.width)
        if image.shape != shape or image.dtype != np.uint8:
            raise InputError(f"{self.path}: frame is {image.shape} {image.dtype}, expected {shape} uint8")
        if self._raw:  # a rawvideo packet is the image's bytes: one copy, then written without the GIL
            packet = av.Packet(np.ascontiguousarray(image).data)
            packet.stream = self._stream
            packet.pts = packet.dts = self.n_frames
            packet.time_base = self._time_base
            self._container.mux(packet)
        else:
            self._encode(image)
        self.n_frames += 1
        if self._sync_fd is not None and time.monotonic() - self._synced_at >= self._sync_every_s:
            os.fdatasync(self._sync_fd)  # what the muxer handed to the kernel is on the disk
            self._synced_at = time.monotonic()

    def _encode(self, image: np.ndarray) -> None:
        if self.colour:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if self._convert:
                frame = frame.reformat(format=self._convert)
        else:
            frame = av.VideoFrame.from_ndarray(image, format="gray")
            frame.color_range = FULL_RANGE
            if self._convert:
                frame = frame.reformat(format=self._convert, src_color_range=FULL_RANGE,
                                       dst_color_range=FULL_RANGE)
        frame.pts = self.n_frames
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        """Flush the encoder and finish the file; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self._raw:
                self._container.mux(self._stream.encode(None))
        finally:
            self._container.close()
            if self._sync_fd is not None:
                try:
                    os.fdatasync(self._sync_fd)
                finally:
                    os.close(self._sync_fd)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
