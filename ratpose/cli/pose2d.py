"""`ratpose train`, `ratpose model register` and `ratpose defaults`: pose models from the command line.

A model is named by its PoseModelParams row (``NAME``); ``train`` and ``register`` from a project make
a training set of the same name. Bad input is one line and exit code 1, with nothing inserted.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import shutil
import sys
from pathlib import Path

from ..errors import RatposeError
from ..pose2d.workspace import Workspace

_FORMATTER = argparse.ArgumentDefaultsHelpFormatter


def _fail(message: str) -> int:
    print(f"ERROR {message}", file=sys.stderr)
    return 1


def _pose():
    from .. import schema

    return schema.activate()["pose"]


def _make_model(pose, name: str, training_set: str, source, params: dict) -> int:
    """Insert what a model needs (a new training set when source is given), make it, print its evaluation.

    If the model cannot be made everything inserted here is deleted again.
    """
    if pose.PoseModelParams & {"pose_params": name}:
        return _fail(f"model {name!r} exists already; choose a new name")
    if source is not None and pose.TrainingSet & {"training_set": training_set}:
        return _fail(f"training set {training_set!r} exists already (training sets are never edited); choose a "
                     "new name")
    if source is not None:
        pose.register_training_set(training_set, str(Path(source.labeled_dir).resolve()), list(source.bodyparts),
                                   source.scorer, train_fraction=source.train_fraction)
    pose.PoseModelParams.insert1({"pose_params": name, **params})
    key = pose.request_model(training_set, name)
    result = pose.PoseModel.populate(key, reserve_jobs=False, suppress_errors=True)
    if not pose.PoseModel & key:
        (pose.PoseModelParams & {"pose_params": name}).delete(prompt=False, part_integrity="cascade")
        if source is not None:
            (pose.TrainingSet & {"training_set": training_set}).delete(prompt=False, part_integrity="cascade")
        messages = [str(m) for _, m in result["error_list"]] or ["no model made"]
        return _fail(f"model {name!r}: {messages[0]}")
    row = (pose.PoseModel & key).fetch1()
    errors = ", ".join(f"{k} {row[k]:.2f} px" for k in ("train_error_px", "test_error_px") if row[k] is not None)
    print(f"model {name!r} (training set {training_set!r}, {params['mode']}): {errors or 'no evaluation'}")
    return 0


def _cmd_train(args) -> int:
    from ..pose2d import sources

    pose = _pose()
    try:
        source = sources.read_training_source(args.source)
        if args.base:
            if not pose.TrainingSet & {"training_set": args.base}:
                return _fail(f"unknown training set {args.base!r} (--base)")
            base_row = (pose.TrainingSet & {"training_set": args.base}).fetch1()
            base = sources.read_training_source(base_row["labeled_dir"])
            if pose.TrainingSet & {"training_set": args.name}:
                return _fail(f"training set {args.name!r} exists already; choose a new name")
            from .. import db

            source = sources.merge_labeled(base, source, db.models_root() / "training-sets" / args.name)
    except RatposeError as err:
        return _fail(str(err))
    params = {"mode": "external"} if args.external else {
        "mode": "train", "net_type": args.net, "epochs": args.epochs, "batch_size": args.batch_size,
        "augmentation": not args.no_augmentation, "device": args.device, "init": args.init}
    failed = _make_model(pose, args.name, args.name, source, params)
    if failed and args.base:
        shutil.rmtree(source.labeled_dir)  # the merged labels of a training set that was not made
    return failed


def _cmd_register(args) -> int:
    from ..pose2d import dlc, sources

    pose = _pose()
    path = Path(args.path)
    try:
        if args.external or path.suffix in (".yaml", ".yml"):
            source = sources.read_training_source(path)
            training_set = args.name
            bodyparts = source.bodyparts
        else:
            source = None
            training_set = args.training_set
            if not training_set:
                return _fail(f"{path}: a model folder or snapshot needs --training-set (its labeled frames)")
            if not pose.TrainingSet & {"training_set": training_set}:
                return _fail(f"unknown training set {training_set!r}")
            bodyparts = pose.training_bodyparts({"training_set": training_set})
        if args.external:
            return _make_model(pose, args.name, training_set, source, {"mode": "external"})
        model_path = sources.project_model_folder(path, args.shuffle) if source is not None else path
        model = dlc.register_model(model_path)
    except RatposeError as err:
        return _fail(str(err))
    if tuple(model.bodyparts) != tuple(bodyparts):
        return _fail(f"{path}: the model predicts body parts {list(model.bodyparts)} but training set "
                     f"{training_set!r} has {list(bodyparts)}")
    return _make_model(pose, args.name, training_set, source, {"mode": "register", "model_path": str(model_path)})


def _cmd_defaults(args) -> int:
    from ..schema import calibration, raw

    pose = _pose()
    rigs = {str(r) for table in (raw.Session, calibration.CalibrationRecording) for r in table.to_arrays("rig")}
    if args.rig not in rigs:
        return _fail(f"unknown rig {args.rig!r}: no session or calibration of it (known: {sorted(rigs)})")
    models = (pose.PoseModel & {"pose_params": args.model}).proj().to_dicts()
    if len(models) != 1:
        return _fail(f"unknown model {args.model!r}: make it with `ratpose train` or `ratpose model register`")
    try:
        start = _dt.date.fromisoformat(args.from_date)
    except ValueError:
        return _fail(f"--from {args.from_date!r}: not a date (YYYY-MM-DD)")
    try:
        workspace = (None if args.workspace is None
                     else Workspace(tuple(args.workspace[:3]), tuple(args.workspace[3:])))
    except RatposeError as err:
        return _fail(f"--workspace: {err}")
    if args.dynamic_margin is not None and args.dynamic_margin < 1:
        return _fail(f"--dynamic-margin {args.dynamic_margin}: must be >= 1 px")
    pose.PoseDefaults.insert1({"rig": args.rig, "from_date": start, **models[0],
                               "workspace": None if workspace is None else workspace.corners(),
                               "dynamic_margin_px": args.dynamic_margin}, replace=True)
    crops = "" if workspace is None else f" on the crops of workspace {workspace.low}..{workspace.high} mm"
    crops += "" if args.dynamic_margin is None else f", dynamic cropping margin {args.dynamic_margin} px"
    print(f"rig {args.rig!r}: sessions from {start} get model {args.model!r}{crops} at the next `ratpose populate`")
    return 0


def _cmd_label_extract(args) -> int:
    from ..pose2d.labeling import frames_to_label, write_frames_to_label

    data = _pose().labeling_inputs(args.session, args.model, with_rig=args.outliers)
    chosen, how = frames_to_label(data["pulses"], data["pose2d"], data["videos"], args.n, rig=data["rig"],
                                  n_candidates=args.candidates, seed=args.seed)
    if args.outliers:
        print(how)
    model, session = data["model"], data["session"]
    stamp = f"{session['subject']}_{session['session_datetime']:%Y%m%d-%H%M%S}"
    write_frames_to_label(args.out, stamp, chosen, data["pulses"], data["pose2d"], data["videos"],
                          data["bodyparts"], data["scorer"], data["pcutoff"])
    print(f"wrote {len(chosen)} frames x {len(data['pulses'])} cameras to {args.out} (scorer {data['scorer']!r}, "
          f"predictions of {model['pose_params']!r} as starting labels); correct them in napari-deeplabcut, then "
          f"`ratpose train NEW --base {model['training_set']} {args.out}`")
    return 0


def add_commands(subparsers) -> None:
    """Add ``train``, ``model register``, ``defaults`` and ``label extract``."""
    train = subparsers.add_parser("train", formatter_class=_FORMATTER,
                                  help="make a training set from DLC labels and train a model on it")
    train.add_argument("name", help="name of the new training set and model")
    train.add_argument("source", type=Path, help="DLC labeled-data folder, or a DLC project's config.yaml")
    train.add_argument("--base", help="existing training set the new labels are added to (it stays unchanged)")
    train.add_argument("--net", default="resnet_18",
                       help="DLC network type (resnet_10, resnet_18, resnet_34 or one of DLC's own)")
    train.add_argument("--epochs", type=int, default=200, help="training epochs")
    train.add_argument("--batch-size", type=int, default=8, help="training batch size")
    train.add_argument("--init", default="imagenet", help="initial weights: imagenet, random or a snapshot path")
    train.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to train")
    train.add_argument("--no-augmentation", action="store_true", help="train without image augmentation")
    train.add_argument("--external", action="store_true",
                       help="make the training set only: the model is trained elsewhere, its DLC .h5 outputs lie "
                            "next to each video (as `model register --external`)")
    train.set_defaults(func=_cmd_train)

    model = subparsers.add_parser("model", help="pose models trained elsewhere")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    register = model_sub.add_parser("register", formatter_class=_FORMATTER,
                                    help="register a DLC model: a project's config.yaml, a model folder or a snapshot")
    register.add_argument("name", help="name of the model (and of the training set made from a project)")
    register.add_argument("path", type=Path, help="DLC project config.yaml, model folder or snapshot .pt")
    register.add_argument("--shuffle", type=int, default=1, help="the project's shuffle")
    register.add_argument("--training-set", help="training set of a model folder or snapshot")
    register.add_argument("--external", action="store_true",
                          help="no model files: PATH is its labeled-data folder or project; its DLC .h5 outputs "
                               "lie next to each video")
    register.set_defaults(func=_cmd_register)

    defaults = subparsers.add_parser("defaults", formatter_class=_FORMATTER,
                                     help="the model `populate` runs on every new session of a rig")
    defaults.add_argument("--rig", required=True, help="rig name (as in session.toml / calibration.toml)")
    defaults.add_argument("--model", required=True, help="model name (from `ratpose train` / `model register`)")
    defaults.add_argument("--from", dest="from_date", default="2000-01-01", help="first session date it applies to")
    defaults.add_argument("--workspace", type=float, nargs=6, metavar=("X0", "Y0", "Z0", "X1", "Y1", "Z1"),
                          help="the box (mm, calibration frame: low then high corner) body parts can be in: "
                          "Pose2D infers on its projection in each camera (default: full frames)")
    defaults.add_argument("--dynamic-margin", type=int, metavar="PX",
                          help="DeepLabCut's dynamic cropping: each frame cut to the previous frame's keypoints "
                          "+ PX (batch size 1)")
    defaults.set_defaults(func=_cmd_defaults)

    label = subparsers.add_parser("label", help="frames to label next (DeepLabCut labeled-data)")
    label_sub = label.add_subparsers(dest="label_command", required=True)
    extract = label_sub.add_parser("extract", formatter_class=_FORMATTER,
                                   help="pick frames of an ingested session and write them as DLC labeled-data, "
                                        "the current predictions as starting labels")
    extract.add_argument("session", type=Path, help="ingested session folder")
    extract.add_argument("--out", type=Path, required=True, help="labeled-data folder to write (one folder per video)")
    extract.add_argument("--n", type=int, default=50, help="frames to pick (each seen by every camera)")
    extract.add_argument("--outliers", action="store_true",
                         help="pick the frames where cameras disagree in 3D, the likelihood drops or the 3D "
                              "trajectory jumps (needs Pose3D) instead of k-means on the images")
    extract.add_argument("--model", help="model whose predictions are used (default: the session's only one)")
    extract.add_argument("--candidates", type=int, default=2000, help="frames k-means chooses from (evenly spaced)")
    extract.add_argument("--seed", type=int, default=0, help="k-means seed")
    extract.set_defaults(func=_cmd_label_extract)
