"""Running a model on a video (whole frames or a crop, batched, dynamic cropping) into DLC's outputs."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .outputs import load_dlc_h5
from .records import DYNAMIC_THRESHOLD, DLCError, Pose2DArrays, TrainedModel
from .registry import verify_checksums
from .training import resolve_device


def _video_frame_count(video_path: Path) -> int:
    from ...video import VideoError, video_info

    try:
        return video_info(video_path, count="packets").n_frames
    except VideoError as err:
        raise DLCError(f"{video_path}: video is missing or unreadable: {str(err).removeprefix(f'{video_path}: ')}") \
            from None


def analyze_video(trained: TrainedModel, video_path: str | Path, *, batch_size: int = 8,
                  device: str = "auto", crop=None, dynamic_margin_px: int | None = None) -> Pose2DArrays:
    """2D pose of every frame of one video, computed by DeepLabCut with the model's snapshot.

    Uses ``deeplabcut.analyze_videos`` when the model sits in its DLC project, else the same DLC
    inference runner on the snapshot and pytorch_config; GPU when torch sees one (device="auto").
    With ``crop`` (a ratpose.pose2d.workspace.CropBox), the network sees only that crop and the result
    is in full-frame pixels (see analyze_crop). ``dynamic_margin_px`` turns on DeepLabCut's dynamic
    cropping inside that crop (or the full frame), batch size 1: see analyze_crop. ``batch_size=0``
    probes the fastest batch size on the device first (ratpose.pose2d.frames.fastest_batch_size).

    Parameters
    ----------
    trained : TrainedModel
    video_path : str or Path
    batch_size : int
        Frames per network call (>= 1), or 0: probe the fastest.
    device : {"auto", "cpu", "cuda"}
    crop : CropBox, optional
    dynamic_margin_px : int, optional, px

    Returns
    -------
    Pose2DArrays
        One row per frame of the video, the model's body parts, full-frame pixels.

    Raises
    ------
    DLCError
        If the video is missing or unreadable, ``batch_size`` < 0, the device is unavailable, or DeepLabCut's
        output does not match the video (frames, body parts).
    ChecksumError
        If a model file is missing or changed.
    """
    video_path = Path(video_path)
    n_frames = _video_frame_count(video_path)
    verify_checksums(trained)
    device = resolve_device(device)
    if batch_size < 0:
        raise DLCError(f"batch_size must be >= 1 (or 0: probe the fastest), got {batch_size}")
    if crop is not None or dynamic_margin_px is not None or batch_size == 0:
        pose = analyze_crop(trained, video_path, crop, batch_size=batch_size, device=device,
                            dynamic_margin_px=dynamic_margin_px)
        if pose.n_frames != n_frames:
            raise DLCError(f"{video_path}: decoded {pose.n_frames} frames, the file says {n_frames}")
        return pose
    with tempfile.TemporaryDirectory(prefix="ratpose-dlc-") as dest:
        if trained.project_config is not None and Path(trained.project_config).is_file():
            h5 = _analyze_in_project(trained, video_path, Path(dest), batch_size, device)
        else:
            h5 = _analyze_with_runner(trained, video_path, Path(dest), batch_size, device)
        return load_dlc_h5(h5, expected_bodyparts=trained.bodyparts, expected_frames=n_frames)


def analyze_crop(trained: TrainedModel, video_path: str | Path, crop, *, batch_size: int = 8,
                 device: str = "cpu", dynamic_margin_px: int | None = None) -> Pose2DArrays:
    """DLC's inference runner on ``crop`` of every frame (None: the full frame), in full-frame pixels.

    Frames are decoded ahead in a thread (bounded queue); coordinates are mapped to full-frame pixels,
    keypoints outside the crop NaN with likelihood 0.

    ``dynamic_margin_px``: DeepLabCut's DynamicCropper within the crop (for an animal that moves
    through a large workspace): after a frame where a keypoint scores >= DYNAMIC_THRESHOLD, the next
    frame is cut to the box of that frame's keypoints + the margin, its corner moved back onto the
    network's grid (input_stride); when none does, the whole crop is seen again. It works frame by
    frame, so the batch size is 1. A ``crop`` on that grid (workspace.crop_for_camera) gives the full
    frame's poses away from its edges.

    Parameters
    ----------
    trained : TrainedModel
    video_path : str or Path
    crop : CropBox or None
    batch_size : int
        Frames per network call; 0: probe the fastest.
    device : str
        A torch device ("cpu" or "cuda").
    dynamic_margin_px : int, optional, px
        Must be >= 1.

    Returns
    -------
    Pose2DArrays

    Raises
    ------
    DLCError
        If ``dynamic_margin_px`` < 1, or (``batch_size=0``) the video has no frame to decode.
    VideoError
        If the video cannot be read.
    """
    from deeplabcut.pose_estimation_pytorch.apis.utils import get_pose_inference_runner
    from deeplabcut.pose_estimation_pytorch.config import read_config_as_dict

    from ...video import decode_gray
    from ..frames import BATCH_SIZES, batches, fastest_batch_size, prefetch

    def runner_for(size: int, dynamic=None):
        return get_pose_inference_runner(model_config=read_config_as_dict(trained.pytorch_config),
                                         snapshot_path=trained.snapshot, device=device, max_individuals=1,
                                         batch_size=size, dynamic=dynamic)

    dynamic = None
    if dynamic_margin_px is not None:
        if int(dynamic_margin_px) < 1:
            raise DLCError(f"dynamic_margin_px must be >= 1 px, got {dynamic_margin_px}")
        dynamic, batch_size = _grid_dynamic_cropper(int(dynamic_margin_px), input_stride(trained)), 1
    runner = None
    if batch_size == 0:
        first = next(decode_gray(video_path, crop=crop), None)
        if first is None:
            raise DLCError(f"{video_path}: no frame to decode")
        # the runner batches what one call gives it: fed batch_size frames a call, it runs that size
        runner = runner_for(max(BATCH_SIZES))
        batch_size = fastest_batch_size(lambda frames: runner.inference(_rgb(frames)), first)
    if runner is None:
        runner = runner_for(batch_size, dynamic)
    out = []
    for batch in prefetch(batches(decode_gray(video_path, crop=crop), batch_size), maxsize=4):
        predictions = runner.inference(_rgb(batch))
        out.extend(p["bodyparts"][0] for p in predictions)  # (n_parts, 3): x, y, score of the one animal
    xyl = np.asarray(out, dtype=np.float64).reshape(-1, len(trained.bodyparts), 3)
    x, y, likelihood = xyl[..., 0], xyl[..., 1], xyl[..., 2]
    if crop is not None:
        x, y, likelihood = crop.to_full_frame(x, y, likelihood)
    return Pose2DArrays(trained.bodyparts, x, y, likelihood)


def input_stride(trained: TrainedModel) -> int:
    """The shift (px) the network's output follows exactly: its backbone's downsampling.

    That is DeepLabCut's ResNets' ``output_stride``, 16 by default; 32, the coarsest of its other backbones,
    otherwise. An image cut at a multiple of it shows the network the full frame's pixel grid.

    Parameters
    ----------
    trained : TrainedModel

    Returns
    -------
    int, px
    """
    from deeplabcut.pose_estimation_pytorch.config import read_config_as_dict

    return int(read_config_as_dict(trained.pytorch_config)["model"]["backbone"].get("output_stride", 32))


def _grid_dynamic_cropper(margin_px: int, stride: int):
    """DeepLabCut's DynamicCropper whose boxes start on the network's grid (corner moved down to a
    multiple of ``stride``), so a cropped frame is seen as the full frame would be."""
    from deeplabcut.pose_estimation_pytorch.runners.dynamic_cropping import (
        DynamicCropper,
    )

    class GridDynamicCropper(DynamicCropper):
        def _min_value(self, coordinates, maximum: int) -> int:
            value = super()._min_value(coordinates, maximum)
            return value - value % stride

    return GridDynamicCropper(DYNAMIC_THRESHOLD, margin_px)


def _rgb(frames) -> list[np.ndarray]:
    """Grey frames as the 3-channel images DLC's runner takes."""
    return [np.repeat(f[..., None], 3, axis=2) for f in frames]


def _analyze_in_project(trained: TrainedModel, video: Path, dest: Path, batch_size: int, device: str) -> Path:
    import deeplabcut
    from deeplabcut.pose_estimation_pytorch.apis.utils import get_model_snapshots
    from deeplabcut.pose_estimation_pytorch.task import Task

    snapshots = get_model_snapshots("all", trained.model_dir / "train", Task.BOTTOM_UP)
    snapshots = [Path(s.path).resolve() for s in snapshots]
    deeplabcut.analyze_videos(str(trained.project_config), [str(video)], shuffle=trained.shuffle,
                              trainingsetindex=trained.trainset_index, snapshot_index=snapshots.index(trained.snapshot),
                              device=device, destfolder=str(dest), batch_size=batch_size)
    return _single_h5(dest, video)


def _analyze_with_runner(trained: TrainedModel, video: Path, dest: Path, batch_size: int, device: str) -> Path:
    from deeplabcut.pose_estimation_pytorch.apis.utils import get_pose_inference_runner
    from deeplabcut.pose_estimation_pytorch.apis.videos import (
        VideoIterator,
        create_df_from_prediction,
        video_inference,
    )
    from deeplabcut.pose_estimation_pytorch.config import read_config_as_dict

    model_cfg = read_config_as_dict(trained.pytorch_config)
    runner = get_pose_inference_runner(model_config=model_cfg, snapshot_path=trained.snapshot, device=device,
                                       max_individuals=1, batch_size=batch_size)
    predictions = video_inference(video=VideoIterator(video), pose_runner=runner)
    create_df_from_prediction(predictions=predictions, dlc_scorer=f"DLC_{trained.snapshot.stem}", multi_animal=False,
                              model_cfg=model_cfg, output_path=dest, output_prefix=video.stem)
    return _single_h5(dest, video)


def _single_h5(dest: Path, video: Path) -> Path:
    found = sorted(dest.glob(f"{video.stem}*.h5"))
    if len(found) != 1:
        raise DLCError(f"DeepLabCut wrote {len(found)} .h5 outputs for {video} (expected 1): {found}")
    return found[0]
