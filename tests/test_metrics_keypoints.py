"""AKD and MKR on the ground-truth joints of the test clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from motionxfer.evaluation.metrics.keypoints import (
    keypoint_accuracy,
    mirror_permutation,
    pose_accuracy,
)
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC

FIXTURE = Path(__file__).parent / "fixtures" / "metrics_clip.npz"


@pytest.fixture(scope="module")
def keypoints() -> np.ndarray:  # (T, 30, 3) x, y, visibility
    with np.load(FIXTURE) as data:
        kp2d, visible = data["kp2d"], data["visible"]
    return np.concatenate([kp2d, visible[..., None].astype(np.float32)], axis=-1)


def test_identical_keypoints_give_zero(keypoints):
    result = keypoint_accuracy(keypoints, keypoints.copy())
    summary = result.summary()
    assert summary["akd"] == 0.0 and summary["mkr"] == 0.0 and summary["akd_relative"] == 0.0


def test_known_shift(keypoints):
    shifted = keypoints.copy()
    shifted[..., 0] += 3.0
    shifted[..., 1] -= 4.0
    result = keypoint_accuracy(keypoints, shifted)
    assert result.summary()["akd"] == pytest.approx(5.0)
    assert result.summary()["akd_coordinate"] == pytest.approx(3.5)
    found = keypoints[..., 2] >= 0.5
    sizes = [max(np.ptp(frame[mask, 0]), np.ptp(frame[mask, 1]))
             for frame, mask in zip(keypoints, found)]
    assert result.akd_relative == pytest.approx(5.0 / np.array(sizes))
    doubled = keypoint_accuracy(keypoints, keypoints + np.array([6.0, -8.0, 0.0], np.float32))
    assert doubled.summary()["akd"] == pytest.approx(10.0)


def test_missed_keypoints(keypoints):
    generated = keypoints.copy()
    generated[:, :5, :2] = np.nan  # the head is lost in every frame
    generated[:, :5, 2] = 0.0
    result = keypoint_accuracy(keypoints, generated)
    found = keypoints[..., 2] >= 0.5
    assert result.summary()["mkr"] == pytest.approx(found[:, :5].sum() / found.sum())
    assert result.summary()["akd"] == 0.0  # the rest is exact
    # a frame where the reference found nothing has no MKR
    reference = keypoints.copy()
    reference[0, :, 2] = 0.0
    assert np.isnan(keypoint_accuracy(reference, generated).mkr[0])


def test_pose_sequences_by_group():
    skeleton = MEDIAPIPE_HOLISTIC
    frames = 4
    generator = np.random.default_rng(0)
    keypoints = np.zeros((frames, skeleton.num_joints, 3), np.float32)
    keypoints[..., :2] = generator.uniform(20, 200, (frames, skeleton.num_joints, 2))
    keypoints[..., 2] = 1.0
    reference = PoseSequence(keypoints, skeleton, 30.0, (256, 256), np.ones(frames, bool),
                             np.arange(frames) / 30.0)
    moved = keypoints.copy()
    moved[:, skeleton.group("face"), 0] += 2.0  # only the face moves
    generated = reference.with_keypoints(moved)
    assert pose_accuracy(reference, generated, "body").summary()["akd"] == 0.0
    assert pose_accuracy(reference, generated, "face").summary()["akd"] == pytest.approx(2.0)


def test_mirror_permutation_swaps_left_and_right():
    names = ("nose", "left_wrist", "right_wrist", "mouth_left", "mouth_right")
    assert mirror_permutation(names).tolist() == [0, 2, 1, 4, 3]
    assert mirror_permutation(("face_0", "face_1")) is None  # nothing to swap


def test_a_pose_read_facing_the_other_way_is_flipped(keypoints):
    with np.load(FIXTURE) as data:
        names = tuple(str(name) for name in data["names"])
    mirror = mirror_permutation(names)
    generated = keypoints[:, mirror].copy()  # every frame's left and right swapped
    generated[1::2] = keypoints[1::2]  # ... in the even frames only
    result = keypoint_accuracy(keypoints, generated, mirror=mirror)
    summary = result.summary()
    assert result.flipped[::2].tolist() == [1.0] * len(keypoints[::2])
    assert result.flipped[1::2].tolist() == [0.0] * len(keypoints[1::2])
    assert summary["akd"] > 1.0 and summary["akd_unflipped"] == 0.0
    assert summary["flip"] == pytest.approx(len(keypoints[::2]) / len(keypoints))
    # without a mirror (the face mesh, imported layouts without left/right names): no flip fields
    assert "flip" not in keypoint_accuracy(keypoints, generated).summary()
