"""ratpose.poses: a session's pose as movement's poses dataset, shared by the stages, report, query and exports."""
from __future__ import annotations

import numpy as np
import pytest

from ratpose.errors import InputError
from ratpose.poses import keypoint_names, per_point, pose_dataset, position_of, positions

PARTS = ["paw", "digit1", "knob_marker"]


@pytest.fixture
def pose():
    rng = np.random.default_rng(0)
    n = 50
    points = rng.normal(0, 10, (n, len(PARTS), 3))
    points[7, 1] = np.nan
    return {"points": points, "time_s": 12.5 + np.arange(n) / 100.0, "pulse_index": np.arange(n) * 2 + 40,
            "sigma": rng.uniform(0.2, 2.0, (n, len(PARTS))), "n_cameras": rng.integers(2, 4, (n, len(PARTS))),
            "outlier": rng.random((n, len(PARTS))) < 0.1}


def test_the_dataset_is_movements_layout_on_the_neural_clock(pose):
    poses = pose_dataset(pose["points"], PARTS, pose["time_s"], pulse_index=pose["pulse_index"],
                         sigma_mm=pose["sigma"], n_cameras=pose["n_cameras"], outlier=pose["outlier"])
    assert poses.position.dims == ("time", "space", "keypoints", "individuals")
    assert poses.confidence.dims == ("time", "keypoints", "individuals")
    np.testing.assert_array_equal(poses.time.values, pose["time_s"])
    np.testing.assert_array_equal(poses.pulse_index.values, pose["pulse_index"])
    assert keypoint_names(poses) == PARTS
    np.testing.assert_array_equal(positions(poses), pose["points"])
    np.testing.assert_array_equal(positions(poses, ["knob_marker", "paw"]), pose["points"][:, [2, 0]])
    np.testing.assert_array_equal(position_of(poses, "digit1"), pose["points"][:, 1])
    np.testing.assert_array_equal(per_point(poses, "sigma_mm"), pose["sigma"])
    np.testing.assert_array_equal(per_point(poses, "outlier", ["digit1"])[:, 0], pose["outlier"][:, 1])
    assert per_point(poses, "reprojection_error_px") is None  # not given: absent, not zeros
    assert np.isnan(per_point(poses, "confidence")).all()


def test_movements_own_functions_take_it(pose):
    from movement.filtering import interpolate_over_time
    from movement.kinematics import compute_velocity

    poses = pose_dataset(pose["points"], PARTS, pose["time_s"])
    velocity = compute_velocity(poses.position)  # mm/s: time is in seconds
    expected = np.gradient(pose["points"][:, 0, 0], pose["time_s"])
    np.testing.assert_allclose(velocity.sel(space="x", keypoints="paw", individuals="rat").values, expected)
    filled = interpolate_over_time(poses.position, max_gap=2)
    assert np.isfinite(filled.sel(keypoints="digit1").values).all()


@pytest.mark.parametrize("bad, message", [
    (dict(points3d=np.zeros((5, 2, 3))), "3 names but points3d has 2 keypoints"),
    (dict(points3d=np.zeros((5, 3, 2))), "points3d must have shape"),
    (dict(keypoints=["paw", "paw", "digit1"]), "unique"),
    (dict(time_s=np.arange(4.0)), "time_s"),
    (dict(sigma_mm=np.ones((5, 2))), "sigma_mm"),
    (dict(speed=np.ones((5, 3))), "unknown per-point"),
])
def test_what_does_not_fit_is_refused_naming_it(bad, message):
    given = {"points3d": np.zeros((5, 3, 3)), "keypoints": PARTS, "time_s": np.arange(5.0), **bad}
    with pytest.raises(InputError, match=message):
        pose_dataset(**given)


def test_unknown_keypoints_are_named(pose):
    poses = pose_dataset(pose["points"], PARTS, pose["time_s"])
    with pytest.raises(InputError, match="elbow"):
        positions(poses, ["paw", "elbow"])
