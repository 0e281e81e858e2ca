"""Labeled videos and frames: DLC detections as filled circles, reprojected 3D points as hollow ones,
one colour per body part (the same colours as the report's plots)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

# matplotlib's tab10, RGB
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
# output suffix -> (FFmpeg encoder, pixel format): mp4 plays in browsers, mkv/avi are lossless
FONT = cv2.FONT_HERSHEY_SIMPLEX
ENCODERS = {".mp4": ("libx264", "yuv420p"), ".mkv": ("ffv1", "bgr0"), ".avi": ("ffv1", "bgr0")}


def part_colour(index: int) -> tuple[int, int, int]:
    """RGB colour (0..255) of the body part at ``index``."""
    return PALETTE[index % len(PALETTE)]


def marker_radius(image_shape) -> int:
    """Marker radius in pixels for an image of this shape (about 1 % of its width, at least 3)."""
    return max(3, round(image_shape[1] / 100))


def draw_pose(image: np.ndarray, points2d, reprojected=None, likelihood=None,
              min_likelihood: float = 0.6) -> np.ndarray:
    """RGB copy of a grey or RGB ``image`` with detections (n_parts, 2) drawn as filled circles and
    reprojected points (n_parts, 2) as hollow ones; detections below ``min_likelihood`` and NaNs are skipped."""
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


def read_frames(video_path, indices) -> list[np.ndarray]:
    """Grey frames at the given row indices of a video (sorted reading; ValueError naming the file)."""
    capture = cv2.VideoCapture(str(video_path))
    if not capture.isOpened():
        raise ValueError(f"{video_path}: video is missing or cannot be opened")
    frames = {}
    try:
        for index in sorted({int(i) for i in indices}):
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, frame = capture.read()
            if not ok:
                raise ValueError(f"{video_path}: frame {index} cannot be decoded")
            frames[index] = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    finally:
        capture.release()
    return [frames[int(i)] for i in indices]


def _check_per_frame(name: str, values, n_frames: int, video_path) -> np.ndarray | None:
    if values is None:
        return None
    values = np.asarray(values, float)
    if values.shape[0] != n_frames:
        raise ValueError(f"{video_path}: video has {n_frames} frames but {name} has {values.shape[0]} rows")
    return values


def write_labeled_video(video_path, out_path, points2d, *, bodyparts, reprojected=None, likelihood=None,
                        min_likelihood: float = 0.6) -> int:
    """Copy a video with each frame's pose drawn on it (``draw_pose``); returns the frames written.

    points2d / reprojected: (n_frames, n_parts, 2) px, likelihood (n_frames, n_parts); the body part
    names are written in their colours in a strip right of the frame (``legend_strip``). The output's suffix picks the codec:
    .mp4 H.264 (browser-playable), .mkv/.avi lossless FFV1.
    """
    out_path = Path(out_path)
    if out_path.suffix not in ENCODERS:
        raise ValueError(f"{out_path}: labeled video must end in one of {sorted(ENCODERS)}")
    capture = cv2.VideoCapture(str(video_path))
    if not capture.isOpened():
        raise ValueError(f"{video_path}: video is missing or cannot be opened")
    n_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    points2d = _check_per_frame("points2d", points2d, n_frames, video_path)
    reprojected = _check_per_frame("reprojected", reprojected, n_frames, video_path)
    likelihood = _check_per_frame("likelihood", likelihood, n_frames, video_path)
    if points2d.shape[1] != len(bodyparts):
        raise ValueError(f"{video_path}: points2d has {points2d.shape[1]} body parts, names given for {len(bodyparts)}")
    encoder, pix_fmt = ENCODERS[out_path.suffix]
    legend = legend_strip(int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), bodyparts)
    written = 0
    with av.open(str(out_path), mode="w") as container:
        stream = container.add_stream(encoder, rate=Fraction(fps).limit_denominator(1000))
        stream.pix_fmt = pix_fmt
        if encoder == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
        try:
            for i in range(n_frames):
                ok, frame = capture.read()
                if not ok:
                    raise ValueError(f"{video_path}: frame {i} of {n_frames} cannot be decoded")
                grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                rgb = draw_pose(grey, points2d[i], None if reprojected is None else reprojected[i],
                                None if likelihood is None else likelihood[i], min_likelihood)
                rgb = np.hstack([rgb, legend])
                if i == 0:  # H.264 in 4:2:0 needs even sizes
                    crop = 2 if encoder == "libx264" else 1
                    stream.width, stream.height = rgb.shape[1] // crop * crop, rgb.shape[0] // crop * crop
                video_frame = av.VideoFrame.from_ndarray(rgb[:stream.height, :stream.width], format="rgb24")
                container.mux(stream.encode(video_frame))
                written += 1
            container.mux(stream.encode(None))
        finally:
            capture.release()
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
