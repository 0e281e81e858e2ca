"""Labeled videos and frames: DLC detections as filled circles, reprojected 3D points as hollow ones,
one colour per body part (the same colours as the report's plots)."""
from __future__ import annotations

from contextlib import closing
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..video import VideoWriter, decode_gray, video_info

# matplotlib's tab10, RGB
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
FONT = cv2.FONT_HERSHEY_SIMPLEX
# output suffix -> ratpose.video.COLOUR_CODECS: mp4 H.264 plays in browsers, mkv/avi FFV1 are lossless
ENCODERS = {".mp4": "h264", ".mkv": "ffv1", ".avi": "ffv1"}


def part_colour(index: int) -> tuple[int, int, int]:
    """RGB colour (0..255) of the body part at ``index``."""
    return PALETTE[index % len(PALETTE)]


def marker_radius(image_shape) -> int:
    """Marker radius in pixels for an image of this shape (about 1 % of its width, at least 3)."""
    return max(3, round(image_shape[1] / 100))


def draw_pose(image: np.ndarray, points2d, reprojected=None, likelihood=None,
              min_likelihood: float = 0.6) -> np.ndarray:
    """RGB copy of a grey or RGB ``image`` with detections as filled circles, reprojected points as hollow ones.

    Detections below ``min_likelihood`` and NaNs are skipped; one colour per body part (``part_colour``).

    Parameters
    ----------
    image : numpy.ndarray, (h, w) or (h, w, 3) uint8
    points2d : array_like, (n_parts, 2), px
        Detections.
    reprojected : array_like, (n_parts, 2), optional, px
        Reprojected 3D points.
    likelihood : array_like, (n_parts,), optional
    min_likelihood : float

    Returns
    -------
    numpy.ndarray, (h, w, 3) uint8
    """
    rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image.copy()
    points2d = np.asarray(points2d, float)
    shown = np.isfinite(points2d).all(axis=1)
    if likelihood is not None:
        shown &= np.asarray(likelihood, float) >= min_likelihood
    radius = marker_radius(rgb.shape)
    for layer, filled in ((points2d, True), (reprojected, False)):
        if layer is None:
            continue
        layer = np.asarray(layer, float)
        for p, point in enumerate(layer):
            if not np.isfinite(point).all() or (filled and not shown[p]):
                continue
            centre = (round(point[0]), round(point[1]))
            thickness = -1 if filled else max(1, radius // 3)
            cv2.circle(rgb, centre, radius + (0 if filled else radius // 2 + 1), part_colour(p), thickness,
                       lineType=cv2.LINE_AA if not filled else cv2.LINE_8)
    return rgb


def _check_per_frame(name: str, values, n_frames: int, video_path) -> np.ndarray | None:
    if values is None:
        return None
    values = np.asarray(values, float)
    if values.shape[0] != n_frames:
        raise InputError(f"{video_path}: video has {n_frames} frames but {name} has {values.shape[0]} rows")
    return values


def write_labeled_video(video_path, out_path, points2d, *, bodyparts, reprojected=None, likelihood=None,
                        min_likelihood: float = 0.6) -> int:
    """Copy a video with each frame's pose drawn on it (``draw_pose``); returns the frames written.

    The body part names are written in their colours in a strip right of the frame (``legend_strip``). The
    output's suffix picks the codec: .mp4 H.264 (browser-playable), .mkv/.avi lossless FFV1
    (``ratpose.video.VideoWriter``).

    Parameters
    ----------
    video_path : str or Path
    out_path : str or Path
        Ends in .mp4, .mkv or .avi.
    points2d : array_like, (n_frames, n_parts, 2), px
        One row per frame of the video.
    bodyparts : sequence of str
        One name per part.
    reprojected : array_like, (n_frames, n_parts, 2), optional, px
    likelihood : array_like, (n_frames, n_parts), optional
    min_likelihood : float

    Returns
    -------
    int
        Frames written.

    Raises
    ------
    InputError
        If ``out_path`` has another suffix, an array's rows differ from the video's frames, the names do not fit
        ``points2d``, or a frame cannot be decoded.
    VideoError
        If the video cannot be read.
    """
    out_path = Path(out_path)
    if out_path.suffix not in ENCODERS:
        raise InputError(f"{out_path}: labeled video must end in one of {sorted(ENCODERS)}")
    info = video_info(video_path, count="packets")
    n_frames, fps = info.n_frames, info.fps or 30.0
    points2d = _check_per_frame("points2d", points2d, n_frames, video_path)
    reprojected = _check_per_frame("reprojected", reprojected, n_frames, video_path)
    likelihood = _check_per_frame("likelihood", likelihood, n_frames, video_path)
    if points2d.shape[1] != len(bodyparts):
        raise InputError(f"{video_path}: points2d has {points2d.shape[1]} body parts, names given for {len(bodyparts)}")
    codec = ENCODERS[out_path.suffix]
    legend = legend_strip(info.size[1], bodyparts)
    even = 2 if codec == "h264" else 1  # H.264 in 4:2:0 needs even sizes
    width, height = (info.size[0] + legend.shape[1]) // even * even, info.size[1] // even * even
    written = 0
    with VideoWriter(out_path, width, height, fps, codec=codec, colour=True) as writer, \
            closing(decode_gray(video_path)) as frames:
        for i, grey in enumerate(islice(frames, n_frames)):
            rgb = draw_pose(grey, points2d[i], None if reprojected is None else reprojected[i],
                            None if likelihood is None else likelihood[i], min_likelihood)
            writer.write(np.hstack([rgb, legend])[:height, :width])
            written += 1
    if written < n_frames:
        raise InputError(f"{video_path}: frame {written} of {n_frames} cannot be decoded")
    return written


def legend_strip(height: int, bodyparts) -> np.ndarray:
    """Black RGB strip (height, width, 3) with the body part names in their colours, one per line:
    text 9-20 px high whatever the video's size, so the legend stays readable on small videos and
    covers none of the frame."""
    line = int(np.clip(height // max(len(bodyparts), 1), 14, 32))
    scale = 0.6 * line / 24
    width = max([cv2.getTextSize(str(name), FONT, scale, 1)[0][0] for name in bodyparts] + [0]) + 10
    strip = np.zeros((height, width + width % 2, 3), np.uint8)
    for p, name in enumerate(bodyparts):
        cv2.putText(strip, str(name), (5, line * p + (line + cv2.getTextSize("A", FONT, scale, 1)[0][1]) // 2),
                    FONT, scale, part_colour(p), 1, cv2.LINE_AA)
    return strip
