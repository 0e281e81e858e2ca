"""Reading DeepLabCut pose outputs: files written by DeepLabCut's own writer come back unchanged."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ratpose.pose2d import dlc

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
