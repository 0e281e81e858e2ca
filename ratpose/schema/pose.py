"""Pose: DeepLabCut training sets and models, 2D pose per camera, 3D pose per session."""
from __future__ import annotations

import datetime
import os
import tempfile
from dataclasses import fields
from pathlib import Path

import datajoint as dj
import numpy as np
import xarray as xr

from .. import db
from ..copies import inside_name, stage_files, verified_folder
from ..errors import InputError, NotFoundError
from ..pose2d.dlc import TrainSettings, input_stride
from ..pose2d.estimate import (
    fit_pose_model,
    model_from_row,
    model_to_row,
    pose2d_for_video,
    relocate_model_row,
)
from ..pose2d.workspace import Workspace, crop_for_camera
from ..pose3d import Pose3DSettings, reconstruct
from ..poses import pose_dataset
from . import calibration, raw, sync
from .transaction import OneTransactionMake

schema = dj.Schema()

DEVICE_VARIABLE = "RATPOSE_DEVICE"  # set by `ratpose worker --device`: where Pose2D tasks with device 'auto' run


@schema
class BodyPart(dj.Lookup):
    definition = """
    bodypart : varchar(32)
    """


@schema
class TrainingSet(dj.Manual):
    definition = """  # labeled frames in DeepLabCut's format (labeled-data/<video>/CollectedData_<scorer>.h5)
    training_set : varchar(64)
    ---
    labeled_dir : varchar(1024)
    scorer : varchar(64)
    train_fraction = 0.8 : float64
    split_seed = 0 : int32
    """

    class BodyPart(dj.Part):
        definition = """
        -> master
        -> BodyPart
        ---
        part_index : int16     # column order of the body parts
        """


@schema
class PoseModelParams(dj.Lookup):
    definition = """  # how to get a model: train it here, register one trained elsewhere, or external (outputs only)
    pose_params : varchar(32)
    ---
    mode : enum('train', 'register', 'external')
    net_type = 'resnet_18' : varchar(32)
    epochs = 200 : int32
    batch_size = 8 : int16
    augmentation = 1 : bool
    device = 'auto' : varchar(16)      # auto: GPU when torch sees one
    init = 'imagenet' : varchar(1024)  # imagenet | random | path of an initial snapshot
    model_path = '' : varchar(1024)    # register mode: DLC model folder or snapshot
    """


@schema
class PoseModelRequest(dj.Manual):
    definition = """  # the (training set, parameters) pairs to make models of: never their cross product
    -> TrainingSet
    -> PoseModelParams
    """


@schema
class PoseModel(dj.Computed):
    depends_on_machine = True   # key_source: what this machine sees (schema.jobs.prepare)
    definition = """  # a DeepLabCut model: files, checksums and evaluation (px)
    -> PoseModelRequest
    ---
    model_dir : varchar(1024)
    snapshot : varchar(1024)
    pytorch_config : varchar(1024)
    project_config : varchar(1024)    # '' when the model is not inside its DLC project
    checksums : <blob>                # file (relative to model_dir) -> sha256
    train_indices : <blob>
    test_indices : <blob>
    shuffle : int16
    trainset_index : int16
    train_error_px = null : float64
    test_error_px = null : float64
    train_error_pcutoff_px = null : float64
    test_error_pcutoff_px = null : float64
    pcutoff = null : float64
    """

    @property
    def key_source(self):
        """Requests this machine can make: external models (no files) and those whose labeled frames (train) or
        model files (register) it sees; a worker without them leaves the request to a machine that has them."""
        rows = (PoseModelRequest * TrainingSet.proj("labeled_dir") * PoseModelParams.proj("mode", "model_path"))
        return super().key_source & [
            {k: r[k] for k in ("training_set", "pose_params")} for r in rows.to_dicts()
            if r["mode"] == "external" or Path(r["labeled_dir" if r["mode"] == "train" else "model_path"]).exists()]

    def make_fetch(self, key):
        training = (TrainingSet & key).fetch1()
        bodyparts = training_bodyparts(key)
        params = (PoseModelParams & key).fetch1()
        return training, bodyparts, params

    def make_compute(self, key, training, bodyparts, params):
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")  # a retrain never reuses a folder
        workdir = db.models_root() / f"{key['training_set']}-{key['pose_params']}" / stamp
        train_params = TrainSettings(net_type=params["net_type"], epochs=int(params["epochs"]),
                                   batch_size=int(params["batch_size"]), augmentation=bool(params["augmentation"]),
                                   device=params["device"], init=params["init"], seed=int(training["split_seed"]))
        return (fit_pose_model(mode=params["mode"], labeled_dir=training["labeled_dir"], workdir=str(workdir),
                               bodyparts=bodyparts, scorer=training["scorer"],
                               train_fraction=float(training["train_fraction"]), seed=int(training["split_seed"]),
                               params=train_params, model_path=params["model_path"]),)

    class Files(dj.Part):
        definition = """  # the model's checksummed files in the object store, for machines that do not see model_dir
        -> master
        ---
        files : <object@ratpose>      # a folder: paths relative to model_dir (PoseModel.checksums)
        """

    def make_insert(self, key, fitted):
        evaluation = fitted.evaluation
        errors = {} if evaluation is None else {
            "train_error_px": evaluation.train_rmse, "test_error_px": evaluation.test_rmse,
            "train_error_pcutoff_px": evaluation.train_rmse_pcutoff,
            "test_error_pcutoff_px": evaluation.test_rmse_pcutoff, "pcutoff": evaluation.pcutoff}
        row = model_to_row(fitted.model)
        self.insert1({**key, **row,
                      **{k: (None if v is None or not np.isfinite(v) else float(v)) for k, v in errors.items()}})
        if row["model_dir"]:
            with tempfile.TemporaryDirectory(prefix="ratpose-model-") as staging:
                stage_files({inside_name(rel): Path(row["model_dir"]) / rel for rel in row["checksums"]}, Path(staging))
                self.Files.insert1({**key, "files": staging})


@schema
class Pose2DTask(dj.Manual):
    definition = """  # which model runs on which camera recording, and how
    -> sync.SyncedFrames
    -> PoseModel
    ---
    mode = 'infer' : enum('infer', 'load')   # load: read an existing DLC .h5 for this video
    dlc_h5 = '' : varchar(1024)    # load mode: the output file, absolute or relative to the session folder
    batch_size = 8 : int16        # 0: the fastest on the device, found by a short probe
    device = 'auto' : varchar(16)
    workspace = null : <blob>     # infer mode: (low, high) corners (mm, calibration frame) of the box the network
                                  # looks at, cropped per camera; null = full frames
    dynamic_margin_px = null : int16  # infer mode: DeepLabCut's dynamic cropping (margin, px) in the crop; null = off
    """


@schema
class PoseDefaults(dj.Manual):
    definition = """  # the model every session of a rig recorded from a date on gets (`ratpose defaults`)
    rig : varchar(64)
    from_date : date
    ---
    -> PoseModel
    workspace = null : <blob>         # (low, high) mm, calibration frame: Pose2D infers on its per-camera crops
    dynamic_margin_px = null : int16  # DeepLabCut's dynamic cropping margin (px); null = off
    """


@schema
class Pose2D(dj.Computed):
    depends_on_machine = True   # key_source: sessions this machine reaches (schema.jobs.prepare)
    definition = """  # 2D pose per video frame, aligned row-for-row with SyncedFrames
    -> Pose2DTask
    ---
    n_frames : int64
    crop_x0 = null : int32        # the crop the network saw (full-frame pixels); null = the full frame
    crop_y0 = null : int32
    crop_width = null : int32
    crop_height = null : int32
    """

    class BodyPart(dj.Part):
        definition = """
        -> master
        -> BodyPart
        ---
        x : <blob@ratpose>           # float64 (n_frames,) px, as DeepLabCut writes it
        y : <blob@ratpose>
        likelihood : <blob@ratpose>  # float32 (n_frames,)
        """

    @classmethod
    def schedule(cls) -> int:
        """Pose2DTask rows for synced recordings not yet scheduled, from their rig's PoseDefaults."""
        rows = []
        for frames in ((sync.SyncedFrames - Pose2DTask) & raw.reachable_sessions()).proj().to_dicts():
            defaults = rig_defaults(frames)
            if defaults is not None:
                model = {k: defaults[k] for k in PoseModel.primary_key}
                mode = _task_mode(frames, model)
                crops = ({"workspace": defaults["workspace"], "dynamic_margin_px": defaults["dynamic_margin_px"]}
                         if mode["mode"] == "infer" else {})
                rows.append({**frames, **model, **mode, **crops})
        Pose2DTask.insert(rows, skip_duplicates=True)
        return len(rows)

    @property
    def key_source(self):
        """Pose2DTask rows of sessions whose videos this machine reaches (``raw.reachable_sessions``): a worker
        without a session's data root leaves it to one that has it, instead of failing it."""
        return super().key_source & raw.reachable_sessions()

    def make_fetch(self, key):
        task = (Pose2DTask & key).fetch1()
        model_row = (PoseModel & key).fetch1()
        bodyparts = training_bodyparts(key)
        camera = None
        if task["workspace"] is not None and task["mode"] == "infer":
            rig = calibration.session_rig(key)
            if rig is None or key["camera"] not in rig.names:
                raise InputError(f"{key}: a workspace crop needs the session's calibration of camera {key['camera']}")
            camera = rig[key["camera"]]
        if task["mode"] == "load":   # the output is read, the video is not needed here
            where = raw.describe_location((raw.Session & key).proj("data_root", "session_dir").fetch1())
            video = f"{where}/{(raw.Recording & key).fetch1('video_file')}"
            if task["dlc_h5"] and not Path(task["dlc_h5"]).is_absolute():
                task["dlc_h5"] = str(raw.session_file(key, task["dlc_h5"]))
        else:
            video = raw.video_path(key)
            model_row = model_on_this_machine(model_row)
        if task["device"] == "auto":
            task["device"] = os.environ.get(DEVICE_VARIABLE, "auto")
        return task, model_row, bodyparts, video, int((sync.SyncedFrames & key).fetch1("n_frames")), camera

    def make_compute(self, key, task, model_row, bodyparts, video, n_frames, camera):
        model = model_from_row(model_row, bodyparts)
        crop = None
        if camera is not None and model is not None:   # on the network's grid: the full frame's poses
            crop = crop_for_camera(camera, Workspace(*np.asarray(task["workspace"])), stride=input_stride(model))
        return (pose2d_for_video(mode=task["mode"], model=model, video=video,
                                 n_frames=n_frames, bodyparts=bodyparts, dlc_h5=task["dlc_h5"],
                                 batch_size=int(task["batch_size"]), device=task["device"], crop=crop,
                                 dynamic_margin_px=task["dynamic_margin_px"]), crop)

    def make_insert(self, key, pose, crop):
        self.insert1({**key, "n_frames": len(pose.x), **({} if crop is None else crop.to_dict())})
        self.BodyPart.insert([{**key, "bodypart": part, "x": pose.x[:, p].astype(np.float64),
                               "y": pose.y[:, p].astype(np.float64),
                               "likelihood": pose.likelihood[:, p].astype(np.float32)}
                              for p, part in enumerate(pose.bodyparts)])


@schema
class Pose3DParams(dj.Lookup):
    definition = """  # triangulation settings (ratpose.pose3d.Pose3DSettings)
    pose3d_params : varchar(32)
    ---
    min_likelihood : float64
    max_reprojection_px = null : float64  # null: no fixed limit (smooth judges each 2D by its camera's noise)
    refine : bool
    median_window : int16
    method = 'smooth' : enum('linear', 'smooth')  # smooth: ratpose.pose3d.smooth, all frames jointly
    accel_mm_s2 = null : float64        # smooth: acceleration prior (std); null: learned per part per session
    limb_sigma_mm = null : float64      # smooth: limb-length prior (std); null: learned per limb per session
    limbs = '' : varchar(1000)          # smooth: segments 'partA-partB,...' ('' = none)
    """
    contents = [("default", 0.1, None, 1, 0, "smooth", None, None, "")]
    #: the per-frame triangulation (NaN where fewer than 2 cameras trust a point): insert1 it to compare
    LINEAR = {"pose3d_params": "linear", "min_likelihood": 0.6, "max_reprojection_px": 10.0, "refine": 1,
              "median_window": 0, "method": "linear"}


@schema
class Pose3D(OneTransactionMake, dj.Computed):
    definition = """  # 3D pose (mm, calibration frame) per pulse seen by every calibrated camera, neural clock
    -> calibration.SessionCalibration
    -> PoseModel
    -> Pose3DParams
    ---
    n_frames : int64
    pulse_index : <blob@ratpose>     # int64 (n_frames,)
    time_s : <blob@ratpose>          # float64 (n_frames,), neural clock
    cameras : <blob>                 # camera names in calibration order
    limb_sigma_mm = null : <blob>    # float64 (n_limbs,) limb-length prior used (smooth; learned or given)
    """

    class BodyPart(dj.Part):
        definition = """
        -> master
        -> BodyPart
        ---
        xyz : <blob@ratpose>                 # float64 (n_frames, 3) mm, NaN = not triangulated
        reprojection_error : <blob@ratpose>  # float32 (n_frames,) px
        n_cameras : <blob@ratpose>           # uint8 (n_frames,)
        sigma_mm = null : <blob@ratpose>     # float32 (n_frames,) posterior std of the 3D point (smooth)
        outlier_cameras = null : <blob@ratpose>  # uint16 (n_frames,) bit c: camera c's 2D judged wrong
        fraction_triangulated : float64
        median_error_px = null : float64     # raw px over every camera that saw the point (qc_error)
        p95_error_px = null : float64
        accel_prior_mm_s2 = null : float64    # acceleration prior used (smooth; learned or given)
        held_out_error_px = null : <blob>     # float32 (n_cameras,) median px in each camera when it is left out
        """

    @property
    def key_source(self):
        # every recording of the session has 2D pose of that model
        sessions_models = (calibration.SessionCalibration * PoseModel).proj()
        missing = sessions_models * raw.Recording.proj() - Pose2D.proj()
        return (sessions_models - missing.proj()) * Pose3DParams.proj()

    def make_fetch(self, key):
        rig = calibration.session_rig(key)
        frames = {r["camera"]: (r["pulse_index"], r["time_s"])
                  for r in (sync.SyncedFrames & key).proj("pulse_index", "time_s").to_dicts()}
        bodyparts = training_bodyparts(key)
        pose2d = {camera: pose2d_arrays({**key, "camera": camera}, bodyparts) for camera in frames}
        params = (Pose3DParams & key).fetch1()
        settings = Pose3DSettings(**{f.name: params[f.name] for f in fields(Pose3DSettings)})
        return rig, frames, pose2d, bodyparts, settings

    def make_compute(self, key, rig, frames, pose2d, bodyparts, settings):
        return reconstruct(rig, frames, pose2d, settings, bodyparts), bodyparts, rig.names

    def make_insert(self, key, result, bodyparts, cameras):
        self.insert1({**key, "n_frames": len(result.pulse_index), "pulse_index": result.pulse_index,
                      "time_s": result.time_s, "cameras": list(cameras), "limb_sigma_mm": result.limb_sigma_mm})
        tri = result.triangulation
        self.BodyPart.insert([{**key, "bodypart": part, "xyz": result.points3d[:, p].astype(np.float64),
                               "reprojection_error": tri.reprojection_error[:, p].astype(np.float32),
                               "n_cameras": tri.n_cameras[:, p].astype(np.uint8),
                               **_uncertainty(result, p), **_nan_to_none(result.part_summary(p))}
                              for p, part in enumerate(bodyparts)])


def training_bodyparts(key: dict) -> tuple[str, ...]:
    """Body parts of a training set (and so of its models and poses), in column order."""
    return tuple((TrainingSet.BodyPart & key).to_arrays("bodypart", order_by="part_index"))


def _stack_parts(part_table, key: dict, bodyparts, attributes) -> list[np.ndarray]:
    """Per attribute, the per-body-part arrays of a BodyPart part table stacked on axis 1 (given order)."""
    parts = {r["bodypart"]: r for r in (part_table & key).to_dicts()}
    return [np.stack([parts[b][a] for b in bodyparts], axis=1) for a in attributes]


def pose2d_arrays(key: dict, bodyparts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y, likelihood (n_frames, n_parts) of one camera's Pose2D, body parts in the given order."""
    return tuple(_stack_parts(Pose2D.BodyPart, key, bodyparts, ("x", "y", "likelihood")))


def _uncertainty(result, p: int) -> dict:
    """Pose3D.BodyPart's sigma_mm, outlier_cameras bit mask and acceleration prior of part p (None for the
    linear method) and its held-out-camera errors (None with fewer than 3 cameras)."""
    held_out = None if result.held_out_error_px is None else result.held_out_error_px[:, p].astype(np.float32)
    if result.sigma_mm is None:
        return {"sigma_mm": None, "outlier_cameras": None, "accel_prior_mm_s2": None, "held_out_error_px": held_out}
    camera_bit = np.arange(len(result.outliers), dtype=np.uint16)[:, None]
    bits = (result.outliers[:, :, p].astype(np.uint16) << camera_bit).sum(axis=0, dtype=np.uint16)
    return {"sigma_mm": result.sigma_mm[:, p].astype(np.float32), "outlier_cameras": bits,
            "accel_prior_mm_s2": float(result.accel_mm_s2[p]), "held_out_error_px": held_out}


def _nan_to_none(values: dict) -> dict:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in values.items()}


def register_training_set(name: str, labeled_dir: str, bodyparts: list[str], scorer: str,
                          train_fraction: float = 0.8, split_seed: int = 0) -> dict:
    """Insert a TrainingSet with its body parts (idempotent for identical content)."""
    key = {"training_set": name}
    with TrainingSet.connection.transaction:
        BodyPart.insert([{"bodypart": b} for b in bodyparts], skip_duplicates=True)
        if not TrainingSet & key:
            TrainingSet.insert1({**key, "labeled_dir": str(labeled_dir), "scorer": scorer,
                                 "train_fraction": train_fraction, "split_seed": split_seed})
            TrainingSet.BodyPart.insert([{**key, "bodypart": b, "part_index": i} for i, b in enumerate(bodyparts)])
    return key


def schedule_pose2d(session_key: dict, model_key: dict, *, mode: str = "infer", dlc_h5: dict | None = None,
                    batch_size: int = 8, device: str = "auto", workspace=None, dynamic_margin_px=None) -> int:
    """Add Pose2DTask rows for every synced recording of a session (dlc_h5: camera -> .h5 in load mode;
    workspace: a ratpose.pose2d.workspace.Workspace to infer on its per-camera crops; dynamic_margin_px:
    DeepLabCut's dynamic cropping in the crop or frame)."""
    box = None if workspace is None else workspace.corners()
    rows = [{**k, **model_key, "mode": mode, "dlc_h5": (dlc_h5 or {}).get(k["camera"], ""),
             "batch_size": batch_size, "device": device, "workspace": box, "dynamic_margin_px": dynamic_margin_px}
            for k in (sync.SyncedFrames & session_key).proj().to_dicts()]
    Pose2DTask.insert(rows, skip_duplicates=True)
    return len(rows)


def model_on_this_machine(row: dict) -> dict:
    """A PoseModel row whose paths are on this machine: as trained when model_dir is here, else this machine's
    copy of the model's files from the store (fetched once, each file checked against its sha256)."""
    if not row["model_dir"] or Path(row["model_dir"]).is_dir():
        return row
    copy = (PoseModel.Files & {k: row[k] for k in PoseModel.primary_key}).to_dicts()
    if not copy:
        raise NotFoundError(f"model {row['model_dir']} is not on this machine and the store holds no copy of it "
                            "(train or register it again, or mount its folder here)")
    checksums = {inside_name(rel): digest for rel, digest in row["checksums"].items()}
    folder = verified_folder(db.cache_root() / "models", checksums, raw.object_fetcher(copy[0]["files"], checksums))
    return relocate_model_row(row, folder)


def rig_defaults(session_key: dict) -> dict | None:
    """The rig's PoseDefaults row in force on the session's date (model, workspace), or None."""
    rig, when = (raw.Session & session_key).fetch1("rig", "session_datetime")
    rows = (PoseDefaults & {"rig": rig} & f"from_date <= '{when.date()}'").to_dicts(order_by="from_date DESC",
                                                                                     limit=1)
    return rows[0] if rows else None


def _task_mode(frames_key: dict, model_key: dict) -> dict:
    """Infer with a model that has files; for an external model load the DLC .h5 next to the video."""
    if (PoseModelParams & model_key).fetch1("mode") != "external":
        return {"mode": "infer"}
    found = raw.dlc_outputs_beside((raw.Recording & frames_key).fetch1("video_file"),
                                   raw.session_file_names(frames_key))
    return {"mode": "load", "dlc_h5": found[0] if len(found) == 1 else ""}


def request_model(training_set: str, pose_params: str) -> dict:
    """Ask for the PoseModel of one (training set, parameters) pair; returns its key."""
    key = {"training_set": training_set, "pose_params": pose_params}
    PoseModelRequest.insert1(key, skip_duplicates=True)
    return key


def session_model(session: dict, name: str | None) -> dict:
    """The PoseModel key of the session's Pose2D (the one named, or its only one)."""
    pairs = {(r["training_set"], r["pose_params"]) for r in (Pose2D & session).proj().to_dicts()}
    present = sorted({p for _, p in pairs})
    when = f"session {session['subject']} {session['session_datetime']:%Y-%m-%d %H:%M}"
    if not present:
        raise InputError(f"{when}: no 2D pose yet; run `ratpose populate`")
    if name is not None and name not in present:
        raise InputError(f"{when}: no 2D pose of model {name!r} (it has {present})")
    if name is None and len(present) > 1:
        raise InputError(f"{when}: 2D pose of several models {present}; give --model")
    training_set, pose_params = sorted(pair for pair in pairs if pair[1] == (name or present[0]))[0]
    return {"training_set": training_set, "pose_params": pose_params}


def labeling_inputs(session_dir, model: str | None, *, with_rig: bool = False) -> dict:
    """What ``ratpose label extract`` picks frames from: the session (found by its folder) and its model's
    key, body parts, scorer, pcutoff (0.6 if the model has none), and per camera the frames' pulses, the 2D
    pose and the video path; the session's rig with ``with_rig`` (else None)."""
    session = raw.find_session(session_dir=session_dir)
    model_key = session_model(session, model)
    bodyparts = training_bodyparts(model_key)
    pcutoff = (PoseModel & model_key).fetch1("pcutoff")
    cameras = sorted((Pose2D & session & model_key).to_arrays("camera"))
    return {"session": session, "model": model_key, "bodyparts": bodyparts,
            "scorer": (TrainingSet & model_key).fetch1("scorer"), "pcutoff": 0.6 if pcutoff is None else float(pcutoff),
            "pulses": {c: (sync.SyncedFrames & session & {"camera": c}).fetch1("pulse_index") for c in cameras},
            "pose2d": {c: pose2d_arrays({**session, **model_key, "camera": c}, bodyparts) for c in cameras},
            "videos": {c: raw.video_path({**session, "camera": c}) for c in cameras},
            "rig": calibration.session_rig(session) if with_rig else None}


def fetch_pose3d(key: dict) -> xr.Dataset:
    """One Pose3D as a movement poses dataset (``ratpose.poses``: position, reprojection_error_px and n_cameras,
    with the smooth method sigma_mm and outlier; time on the neural clock with pulse_index; keypoints in the
    training set's order); attrs ``source_key`` (the Pose3D key) and ``session_datetime``."""
    master = (Pose3D & key).to_dicts()
    if len(master) != 1:
        raise NotFoundError(f"expected one Pose3D for {key}, found {len(master)}")
    pose3d_key = {k: master[0][k] for k in Pose3D.primary_key}
    bodyparts = training_bodyparts(pose3d_key)
    smooth = (Pose3DParams & pose3d_key).fetch1("method") == "smooth"
    xyz, error, n_cameras, *uncertainty = _stack_parts(
        Pose3D.BodyPart, pose3d_key, bodyparts,
        ("xyz", "reprojection_error", "n_cameras") + (("sigma_mm", "outlier_cameras") if smooth else ()))
    sigma, outliers = uncertainty if smooth else (None, None)
    poses = pose_dataset(xyz, bodyparts, master[0]["time_s"], pulse_index=master[0]["pulse_index"],
                         reprojection_error_px=error, n_cameras=n_cameras, sigma_mm=sigma,
                         outlier=None if outliers is None else np.asarray(outliers) > 0)
    poses.attrs.update(source_key=pose3d_key, session_datetime=master[0]["session_datetime"])
    return poses
