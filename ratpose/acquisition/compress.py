"""Lossless re-encoding of a session's raw videos, verified frame by frame (``ratpose compress``)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import tomli_w
import tomllib

from ..errors import DataError, InputError
from ..video import VideoWriter, count_frames, decode_gray, video_info

# lossless codec -> the compressed file's name ending (benchmarks/bench_codecs.py: MagicYUV encodes 4x faster
# than FFV1 on 2 cores for 8 % more bytes; x264 qp 0 is as slow as FFV1 and larger)
LOSSLESS = {"magicyuv": "magicyuv.avi", "ffv1": "ffv1.mkv", "h264_lossless": "h264-lossless.mkv"}


def _digest(image: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest()


def _first_mismatch(digests: list[bytes], frames) -> int | None:
    """The first frame whose digest is not the raw frame's (also one missing or extra), or None."""
    count = 0
    for count, image in enumerate(frames, start=1):
        if count > len(digests) or _digest(image) != digests[count - 1]:
            return count - 1
    return None if count == len(digests) else count


def compress_session(folder: Path, codec: str = "magicyuv", progress: bool = False) -> list[str]:
    """Re-encode raw videos of a session losslessly, verified frame by frame; the folder then names the
    new files and the raw ones are gone.

    Parameters
    ----------
    folder : Path
        A session folder (its session.toml names the videos).
    codec : str
        One of LOSSLESS.
    progress : bool
        Show a bar per video with an ETA.

    Returns
    -------
    list of str
        What was done, a line per video.
    """
    from tqdm import tqdm

    if codec not in LOSSLESS:
        raise InputError(f"codec must be one of {sorted(LOSSLESS)} (lossless), got {codec!r}")
    toml_path = folder / "session.toml"
    doc = tomllib.loads(toml_path.read_text())
    done = []
    for cam in doc["camera"]:
        raw = folder / cam["video"]
        info = video_info(raw, count="header")
        if info.codec != "rawvideo":
            continue
        out = raw.with_name(f"{raw.stem}.{LOSSLESS[codec]}")
        part = out.with_name(out.stem + ".part" + out.suffix)
        writer = VideoWriter(part, *info.size, info.fps or 1, codec=codec, preset="ultrafast")
        bar = tqdm(total=count_frames(raw), desc=f"{raw.name} -> {codec}", unit="frame", disable=not progress)
        digests = []  # the raw video is decoded once: each frame's digest checks the new file
        with bar:
            for image in decode_gray(raw):
                writer.write(image)
                digests.append(_digest(image))
                bar.update()
        writer.close()
        wrong = _first_mismatch(digests, decode_gray(part))
        if wrong is not None:
            part.unlink()
            raise DataError(f"{raw}: frame {wrong} differs after {codec} encoding; raw video kept")
        n = len(digests)
        os.replace(part, out)
        cam["video"] = out.name
        tmp = toml_path.with_name("session.toml.part")
        tmp.write_text(tomli_w.dumps(doc))
        os.replace(tmp, toml_path)  # the folder now points at the FFV1 file; only then the raw one goes
        raw.unlink()
        done.append(f"{raw.name} -> {out.name}: {n} frames verified identical")
    return done
