"""Reading DeepLabCut pose outputs: files written by DeepLabCut's own writer come back unchanged."""
from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from ratpose.pose2d import dlc, labeling, sources

BODYPARTS = ["wrist", "paw", "digit1", "digit2", "knob_marker"]
N_FRAMES = 25


def _model_cfg(bodyparts, individuals=("individual_1",)):
    return {"metadata": {"bodyparts": list(bodyparts), "unique_bodyparts": [], "individuals": list(individuals)}}


def _write_dlc_output(out_dir, seed: int, **options):
    """Random single-animal poses written by deeplabcut's create_df_from_prediction; returns them."""
    from deeplabcut.pose_estimation_pytorch.apis.videos import create_df_from_prediction

    rng = np.random.default_rng(seed)
    poses = np.concatenate([rng.uniform(0, 160, (N_FRAMES, 1, len(BODYPARTS), 2)),
                            rng.uniform(0, 1, (N_FRAMES, 1, len(BODYPARTS), 1))], axis=-1)
    create_df_from_prediction(predictions=[{"bodyparts": p} for p in poses], dlc_scorer="DLC_test",
                              multi_animal=False, model_cfg=_model_cfg(BODYPARTS), output_path=out_dir,
                              output_prefix="clipDLC_test", **options)
    return poses


@pytest.fixture
def dlc_output(tmp_path):
    """A single-animal video output written by deeplabcut's create_df_from_prediction."""
    poses = _write_dlc_output(tmp_path, seed=3)
    return tmp_path / "clipDLC_test.h5", poses[:, 0]


def test_roundtrip_of_deeplabcut_writer(dlc_output):
    path, poses = dlc_output
    pose = dlc.load_dlc_h5(path, expected_bodyparts=BODYPARTS, expected_frames=N_FRAMES)
    assert pose.bodyparts == tuple(BODYPARTS) and pose.n_frames == N_FRAMES
    np.testing.assert_array_equal(pose.x, poses[..., 0])
    np.testing.assert_array_equal(pose.y, poses[..., 1])
    np.testing.assert_array_equal(pose.likelihood, poses[..., 2])
    np.testing.assert_array_equal(pose.xy, poses[..., :2])


def test_expected_order_is_applied(dlc_output):
    path, poses = dlc_output
    order = BODYPARTS[::-1]
    pose = dlc.load_dlc_h5(path, expected_bodyparts=order)
    assert pose.bodyparts == tuple(order)
    np.testing.assert_array_equal(pose.x, poses[:, ::-1, 0])


def test_multi_animal_output_with_one_individual(tmp_path):
    from deeplabcut.pose_estimation_pytorch.apis.videos import create_df_from_prediction

    poses = np.random.default_rng(4).uniform(0, 1, (N_FRAMES, 1, len(BODYPARTS), 3))
    create_df_from_prediction(predictions=[{"bodyparts": p} for p in poses], dlc_scorer="DLC_ma",
                              multi_animal=True, model_cfg=_model_cfg(BODYPARTS, ["rat"]), output_path=tmp_path,
                              output_prefix="ma")
    pose = dlc.load_dlc_h5(tmp_path / "ma.h5")
    np.testing.assert_array_equal(pose.likelihood, poses[:, 0, :, 2])


def test_mismatched_bodyparts_raise(dlc_output):
    path, _ = dlc_output
    with pytest.raises(dlc.DLCError, match=r"missing \['nose'\], extra \['knob_marker'\]"):
        dlc.load_dlc_h5(path, expected_bodyparts=BODYPARTS[:-1] + ["nose"])
    with pytest.raises(dlc.DLCError, match="do not match"):
        dlc.load_dlc_h5(path, expected_bodyparts=BODYPARTS[:-1])


def test_mismatched_frame_count_raises(dlc_output):
    path, _ = dlc_output
    with pytest.raises(dlc.DLCError, match=f"{N_FRAMES} frames, expected {N_FRAMES + 1}"):
        dlc.load_dlc_h5(path, expected_frames=N_FRAMES + 1)


def test_bad_files_raise(tmp_path):
    with pytest.raises(dlc.DLCError, match="no such DLC output"):
        dlc.load_dlc_h5(tmp_path / "absent.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"garbage")
    with pytest.raises(dlc.DLCError, match="junk.h5"):
        dlc.load_dlc_h5(junk)
    labels = pd.DataFrame(np.zeros((2, 2)), columns=pd.MultiIndex.from_product(
        [["sim"], ["paw"], ["x", "y"]], names=["scorer", "bodyparts", "coords"]))
    labels.to_hdf(tmp_path / "CollectedData_sim.h5", key="df_with_missing")
    with pytest.raises(dlc.DLCError, match="labels file"):
        dlc.load_dlc_h5(tmp_path / "CollectedData_sim.h5")


def test_csv_written_by_deeplabcut_reads_like_its_h5(tmp_path):
    poses = _write_dlc_output(tmp_path, seed=4, save_as_csv=True)
    pose = dlc.load_dlc_h5(tmp_path / "clipDLC_test.csv", expected_bodyparts=BODYPARTS, expected_frames=N_FRAMES)
    np.testing.assert_allclose(pose.xy, poses[:, 0, :, :2], rtol=0, atol=1e-12)  # DLC writes ~16 decimals
    np.testing.assert_allclose(pose.likelihood, poses[:, 0, :, 2], rtol=0, atol=1e-15)


@pytest.fixture
def sleap_labels(tmp_path):
    """SLEAP predictions of one track written by sleap-io (.slp) and as SLEAP's analysis .h5."""
    sio = pytest.importorskip("sleap_io")
    rng = np.random.default_rng(5)
    points = rng.uniform(0, 160, (N_FRAMES, len(BODYPARTS), 2))
    scores = rng.uniform(0.1, 1, (N_FRAMES, len(BODYPARTS)))
    skeleton, track = sio.Skeleton(list(BODYPARTS)), sio.Track("rat")  # sio turns its list into Nodes
    video = sio.Video(filename=str(tmp_path / "cam0.mp4"), open_backend=False)
    frames = [sio.LabeledFrame(video=video, frame_idx=i, instances=[sio.PredictedInstance.from_numpy(
        points[i], skeleton=skeleton, point_scores=scores[i], score=1.0, track=track)]) for i in range(N_FRAMES)]
    labels = sio.Labels(labeled_frames=frames, videos=[video], skeletons=[skeleton], tracks=[track])
    sio.save_slp(labels, str(tmp_path / "cam0.slp"))
    sio.save_analysis_h5(labels, str(tmp_path / "cam0.analysis.h5"))
    return tmp_path, points, scores


@pytest.mark.parametrize("name", ["cam0.slp", "cam0.analysis.h5"])
def test_sleap_predictions_load_as_pose2d(sleap_labels, name):
    pytest.importorskip("movement")
    from ratpose.pose2d import sleap

    folder, points, scores = sleap_labels
    assert sleap.is_sleap_file(folder / name)
    order = BODYPARTS[::-1]
    pose = sleap.load_sleap(folder / name, expected_bodyparts=order, expected_frames=N_FRAMES + 3)
    assert pose.bodyparts == tuple(order) and pose.n_frames == N_FRAMES + 3
    np.testing.assert_allclose(pose.xy[:N_FRAMES], points[:, ::-1], rtol=1e-6)  # SLEAP stores float32
    np.testing.assert_allclose(pose.likelihood[:N_FRAMES], scores[:, ::-1], rtol=1e-6)
    assert np.isnan(pose.x[N_FRAMES:]).all()
    with pytest.raises(dlc.DLCError, match="body parts"):
        sleap.load_sleap(folder / name, expected_bodyparts=BODYPARTS[:-1])


# ---- labels (CollectedData_<scorer>.h5 / .csv), read the same from every layout DLC writes ---------------------

OPENFIELD = SHARED_DATA / "dlc-examples" / "openfield-Pranav-2018-10-30"
needs_openfield = pytest.mark.skipif(not (OPENFIELD / "labeled-data" / "m4s1").is_dir(),
                                     reason="shared DLC example project absent")


def _files(root: Path) -> dict[str, str]:
    """Every file under root: relative path -> sha256 of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _assert_same_labels(got: pd.DataFrame, want: pd.DataFrame):
    """Same columns, rows and NaN pattern; values within 1e-9 px."""
    assert list(got.columns) == list(want.columns) and list(got.index) == list(want.index)
    np.testing.assert_array_equal(got.isna().to_numpy(), want.isna().to_numpy())
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-9)


@pytest.fixture
def openfield_csv_only(tmp_path):
    """The real openfield project (config.yaml + labeled-data) copied, its CollectedData_Pranav.h5 removed."""
    project = tmp_path / "openfield"
    project.mkdir()
    shutil.copy(OPENFIELD / "config.yaml", project)
    shutil.copytree(OPENFIELD / "labeled-data", project / "labeled-data")
    (project / "labeled-data" / "m4s1" / "CollectedData_Pranav.h5").unlink()
    return project


@needs_openfield
def test_csv_only_project_reads_like_its_h5_and_stays_untouched(openfield_csv_only, tmp_path):
    before = _files(openfield_csv_only)
    source = sources.read_training_source(openfield_csv_only / "config.yaml")
    with_h5 = sources.read_training_source(OPENFIELD / "config.yaml")
    assert dataclasses.replace(with_h5, labeled_dir=source.labeled_dir) == source
    assert (source.scorer, source.bodyparts) == ("Pranav", ("snout", "leftear", "rightear", "tailbase"))
    h5 = pd.read_hdf(OPENFIELD / "labeled-data" / "m4s1" / "CollectedData_Pranav.h5")
    labels = dlc.read_labels(openfield_csv_only / "labeled-data" / "m4s1")
    assert labels.shape == h5.shape == (116, 8)
    _assert_same_labels(labels, dlc.read_labels(OPENFIELD / "labeled-data" / "m4s1"))
    assert [row[-1] for row in labels.index] == [Path(name).name for name in h5.index]
    np.testing.assert_allclose(labels.to_numpy(), h5.to_numpy(), rtol=0, atol=1e-9)
    merged = sources.merge_labeled(source, source, tmp_path / "merged")  # ratpose's own copy gets the .h5
    _assert_same_labels(pd.read_hdf(merged.labeled_dir / "m4s1" / "CollectedData_Pranav.h5"), labels)
    assert _files(openfield_csv_only) == before


@needs_openfield
def test_project_built_from_csv_only_labels_has_them_as_h5(openfield_csv_only, tmp_path):
    """`ratpose train` on a CSV-only project: DeepLabCut's training dataset has every label, the source no file more."""
    before = _files(openfield_csv_only)
    config = dlc.build_project(openfield_csv_only / "labeled-data", tmp_path / "project",
                               ["snout", "leftear", "rightear", "tailbase"], scorer="Pranav")
    copied = dlc.read_labels(config.parent / "labeled-data" / "m4s1", "Pranav")
    _assert_same_labels(copied, dlc.read_labels(OPENFIELD / "labeled-data" / "m4s1"))
    merged = next((config.parent / "training-datasets").rglob("CollectedData_Pranav.h5"))
    assert pd.read_hdf(merged).shape == (116, 8)  # what DeepLabCut trains on
    assert _files(openfield_csv_only) == before


def _labels_table() -> pd.DataFrame:
    """Labels of 5 images of video 'v0', body part 'b' unlabeled on two of them."""
    coords = np.random.default_rng(7).uniform(0, 640, (5, 3, 2))
    coords[[1, 3], 1] = np.nan
    return labeling.collected_data(coords, "v0", [f"img{i:03d}.png" for i in range(5)], ["a", "b", "c"], "lab")


def _one_individual(table: pd.DataFrame, individuals=("rat",)) -> pd.DataFrame:
    """table in DeepLabCut's multi-animal layout (scorer, individuals, bodyparts, coords)."""
    per_animal = pd.concat({i: table.droplevel("scorer", axis=1) for i in individuals}, axis=1, names=["individuals"])
    return pd.concat({"lab": per_animal}, axis=1, names=["scorer"])


@pytest.mark.parametrize("layout", ["three index columns", "one index column", "multi-animal, one individual",
                                    "multi-animal .h5"])
def test_labels_read_the_same_from_every_layout(tmp_path, layout):
    table = _labels_table()
    dlc.write_labels(table, tmp_path / "h5", "lab")
    (tmp_path / "h5" / "CollectedData_lab.csv").unlink()
    folder = tmp_path / "v0"
    folder.mkdir()
    if layout == "three index columns":
        table.to_csv(folder / "CollectedData_lab.csv")
    elif layout == "one index column":
        table.set_axis(["/".join(row) for row in table.index]).to_csv(folder / "CollectedData_lab.csv")
        assert (folder / "CollectedData_lab.csv").read_text().splitlines()[3].startswith("labeled-data/v0/img000.png,")
    elif layout == "multi-animal, one individual":
        _one_individual(table).to_csv(folder / "CollectedData_lab.csv")
    else:
        _one_individual(table).to_hdf(folder / "CollectedData_lab.h5", key="df_with_missing")
    got = dlc.read_labels(folder, "lab")
    _assert_same_labels(got, dlc.read_labels(tmp_path / "h5", "lab"))
    assert list(dict.fromkeys(got.columns.get_level_values("bodyparts"))) == ["a", "b", "c"]
    assert int(got.isna().sum().sum()) == 4


def test_labels_of_several_individuals_are_refused(tmp_path):
    _one_individual(_labels_table(), ("rat", "mouse")).to_csv(tmp_path / "CollectedData_lab.csv")
    with pytest.raises(dlc.DLCError, match=r"CollectedData_lab.csv: holds 2 individuals \['rat', 'mouse'\]"):
        dlc.read_labels(tmp_path)


@pytest.mark.parametrize("name", ["CollectedData_lab.h5", "CollectedData_lab.csv"])
def test_labels_that_are_not_a_dlc_table_name_the_file(tmp_path, name):
    folder = tmp_path / "v0"
    folder.mkdir()
    (folder / name).write_text("just some text\n")
    for read in (lambda: dlc.read_labels(folder), lambda: sources.read_training_source(tmp_path)):
        with pytest.raises(dlc.DLCError) as err:
            read()
        assert str(err.value).startswith(f"{folder / name}: not a ")
    assert sorted(p.name for p in folder.iterdir()) == [name]
