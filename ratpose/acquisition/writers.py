"""Grey (Mono8) video writers on FFmpeg through PyAV: raw, lossless FFV1, lossy H.264/H.265, NVENC.

Matroska (.mkv) is the default container: it stays readable when a recording is cut short (AVI
needs its index at the end, MP4 its moov atom), which matters for disk-full and crash recovery.
"""
from __future__ import annotations

import logging
import os
import time
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

log = logging.getLogger(__name__)

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
LOSSY = ("h264", "h265", "h264_nvenc")  # the others keep every pixel
AVI_ONLY = ("magicyuv", "ffvhuff")  # FFmpeg's Matroska muxer has no tag for them
CONTAINERS = ("mkv", "avi", "mp4")
# Mono8 pixels are 0..255: flag streams full range, else decoders (OpenCV, DLC) stretch 16..235 to 0..255
FULL_RANGE = 2  # AVCOL_RANGE_JPEG


@lru_cache(maxsize=None)
def nvenc_available() -> bool:
    """True if h264_nvenc can actually open (an NVIDIA GPU and driver are present)."""
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
    """The codec to use: ``codec`` itself, or libx264 ('h264') when NVENC is asked for but unusable."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
    if codec == "h264_nvenc" and not nvenc_available():
        log.warning("h264_nvenc is not usable here (no NVIDIA GPU/driver); falling back to libx264")
        return "h264"
    return codec


class VideoWriter:
    """Writes (height, width) uint8 frames to one video file; frame i of the file is the i-th write."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float, codec: str = "ffv1",
                 crf: int = 18, preset: str = "veryfast", threads: int = 0, sync_every_s: float = 0.0,
                 extra_options: dict[str, str] | None = None):
        """``sync_every_s`` > 0 flushes the file to the disk (fdatasync) that often: the data is safe from a
        crash, and a disk slower than the frames shows as writer lag at once, not when the page cache is full.
        ``extra_options``: FFmpeg encoder options over the codec's own (e.g. FFV1 ``slices``)."""
        self.path = Path(path)
        if self.path.suffix.lstrip(".") not in CONTAINERS:
            raise ValueError(f"{self.path}: container must be one of {CONTAINERS}")
        if not 0 <= crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {crf}")
        self.codec = resolve_codec(codec)
        encoder, pix_fmt, options = CODECS[self.codec]
        options = dict(options)
        if self.codec in ("h264", "h265"):
            options.update(crf=str(crf), preset=preset)
        elif self.codec == "h264_lossless":
            options.update(preset=preset)
        elif self.codec == "h264_nvenc":
            options.update(rc="vbr", cq=str(crf), preset="p4")
        options.update(extra_options or {})
        self.width, self.height = int(width), int(height)
        self._container = av.open(str(self.path), mode="w")
        try:
            self._stream = self._container.add_stream(encoder, rate=Fraction(fps).limit_denominator(1000))
            self._stream.width, self._stream.height, self._stream.pix_fmt = self.width, self.height, pix_fmt
            self._stream.thread_count = threads
            self._stream.codec_context.color_range = FULL_RANGE
            self._stream.options = options
        except Exception:
            self._container.close()
            raise
        self._sync_every_s = float(sync_every_s)
        # the muxer opens the file on its first packet; this descriptor is the same file (inode) for fdatasync
        self._sync_fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644) if self._sync_every_s > 0 else None
        self._synced_at = time.monotonic()
        self._convert = pix_fmt != "gray"
        self._raw = self.codec == "raw"
        self._time_base = 1 / Fraction(fps).limit_denominator(1000)
        self.n_frames = 0
        self._closed = False

    def write(self, image: np.ndarray) -> None:
        """Encode one grey frame."""
        if image.shape != (self.height, self.width) or image.dtype != np.uint8:
            raise ValueError(f"{self.path}: frame is {image.shape} {image.dtype}, expected "
                             f"({self.height}, {self.width}) uint8")
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
        frame = av.VideoFrame.from_ndarray(image, format="gray")
        frame.color_range = FULL_RANGE
        if self._convert:
            frame = frame.reformat(format=self._stream.pix_fmt, src_color_range=FULL_RANGE,
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


def count_video_frames(path: str | Path) -> int:
    """Number of frames a video really holds (demuxed packets; fast, no decoding)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def disk_write_mb_s(folder: str | Path, n_bytes: float = 1e9, block_bytes: int = 1440 * 1080) -> float:
    """Sustained write speed of the disk under ``folder`` in MB/s: ``n_bytes`` in frame-sized blocks, then
    fsync (the page cache alone would show memory speed)."""
    block = np.full(block_bytes, 7, np.uint8).data
    path = Path(folder) / f".ratpose-disk-speed-{os.getpid()}.bin"
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(max(int(n_bytes // block_bytes), 1)):
            os.write(fd, block)
        os.fsync(fd)
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return size / (time.perf_counter() - t0) / 1e6
