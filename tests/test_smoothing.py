"""Keypoint cleaning: gap filling, outlier removal, temporal smoothing (pure, no video)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from motionxfer.errors import BadInput
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import Skeleton
from motionxfer.pose.smoothing import (
    FILLED_VISIBILITY_FACTOR,
    SmoothingConfig,
    fill_gaps,
    remove_outliers,
    running_median,
    smooth_keypoints,
    smooth_poses,
)

FIXTURES = Path(__file__).parent / "fixtures"
FPS = 30.0


def ground_truth() -> np.ndarray:  # (60, 30, 3) exact keypoints of a 2 s dance clip, all visible
    with np.load(FIXTURES / "extract_clip_keypoints.npz") as data:
        xy = data["kp2d"].astype(np.float32)
    return np.concatenate([xy, np.ones(xy.shape[:2] + (1,), np.float32)], axis=-1)


def as_poses(keypoints: np.ndarray) -> PoseSequence:
    frames, joints = keypoints.shape[:2]
    skeleton = Skeleton("test", tuple(f"joint{k}" for k in range(joints)), limbs=())
    return PoseSequence(
        keypoints=keypoints.astype(np.float32), skeleton=skeleton, fps=FPS,
        image_size=(256, 256), person_present=np.ones(frames, bool),
        timestamps=np.arange(frames) / FPS,
    )


def linear_track(frames: int = 30, joints: int = 2) -> np.ndarray:  # (T, J, 3)
    time = np.arange(frames, dtype=np.float32)[:, None]
    keypoints = np.zeros((frames, joints, 3), np.float32)
    keypoints[..., 0] = 3.0 * time + 10.0 * np.arange(joints)
    keypoints[..., 1] = -2.0 * time + 100.0
    keypoints[..., 2] = 0.8
    return keypoints


def drop(keypoints: np.ndarray, frames: slice, joint: int) -> np.ndarray:
    dropped = keypoints.copy()
    dropped[frames, joint] = (np.nan, np.nan, 0.0)
    return dropped


def test_fill_gaps_fills_short_gaps_exactly_on_a_linear_track():
    truth = linear_track()
    truth[4, 0, 2] = 0.6  # the neighbour before the gap is less sure
    holed = drop(truth, slice(5, 8), joint=0)  # a 3-frame gap
    filled = fill_gaps(holed, max_gap=5)
    np.testing.assert_allclose(filled[5:8, 0, :2], truth[5:8, 0, :2], atol=1e-4)
    np.testing.assert_allclose(filled[5:8, 0, 2], 0.6 * FILLED_VISIBILITY_FACTOR)
    # everything else untouched
    np.testing.assert_array_equal(filled[:5], holed[:5])
    np.testing.assert_array_equal(filled[8:], holed[8:])


def test_joints_that_drop_out_together_are_filled_each_from_its_own_neighbours():
    truth = linear_track(joints=3)
    truth[9, 1, 2] = 0.5  # before the gap
    truth[12, 2, 2] = 0.7  # after the gap
    holed = truth.copy()
    holed[10:12, :] = (np.nan, np.nan, 0.0)  # the whole person, two frames
    filled = fill_gaps(holed, max_gap=2)
    np.testing.assert_allclose(filled[10:12, :, :2], truth[10:12, :, :2], atol=1e-4)
    np.testing.assert_allclose(filled[10:12, :, 2],
                               np.array([[0.8, 0.5, 0.7]] * 2) * FILLED_VISIBILITY_FACTOR)


def test_fill_gaps_leaves_long_gaps_and_gaps_at_the_ends():
    holed = drop(drop(linear_track(), slice(10, 16), joint=1), slice(0, 2), joint=0)
    filled = fill_gaps(holed, max_gap=5)  # the 6-frame gap is too long
    assert np.isnan(filled[10:16, 1, :2]).all() and (filled[10:16, 1, 2] == 0).all()
    assert np.isnan(filled[0:2, 0, :2]).all() and (filled[0:2, 0, 2] == 0).all()
    assert not np.isnan(fill_gaps(holed, max_gap=6)[10:16, 1]).any()


def test_a_point_with_zero_visibility_counts_as_missing():
    holed = linear_track()
    holed[7, 0, 2] = 0.0  # coordinates present, but not seen
    filled = fill_gaps(holed, max_gap=1)
    np.testing.assert_allclose(filled[7, 0, :2], linear_track()[7, 0, :2], atol=1e-4)
    assert filled[7, 0, 2] == pytest.approx(0.8 * FILLED_VISIBILITY_FACTOR)


@pytest.mark.parametrize("method", ["one_euro", "savgol"])
def test_smoothing_reduces_jitter_and_error_of_noisy_ground_truth(method):
    truth = ground_truth()
    noisy = truth.copy()
    noisy[..., :2] += np.random.default_rng(7).normal(0.0, 2.0, noisy[..., :2].shape)
    smoothed = smooth_keypoints(noisy, np.arange(len(truth)) / FPS, strength=1.0, method=method)

    def jitter(keypoints: np.ndarray) -> float:  # std of the frame-to-frame change of the error
        return float(np.std(np.diff(keypoints[..., :2] - truth[..., :2], axis=0)))

    def error(keypoints: np.ndarray) -> float:
        return float(np.mean(np.linalg.norm(keypoints[..., :2] - truth[..., :2], axis=-1)))

    # measured: jitter 2.85 -> 0.97 (one_euro) / 1.06 (savgol); error 2.51 -> 1.50 / 1.51 px
    assert jitter(smoothed) < jitter(noisy) / 2.0
    assert error(smoothed) < 0.75 * error(noisy)
    np.testing.assert_array_equal(smoothed[..., 2], noisy[..., 2])


def test_strength_zero_is_identity():
    noisy = drop(ground_truth(), slice(10, 12), joint=3)
    noisy[..., :2] += np.random.default_rng(1).normal(0.0, 2.0, noisy[..., :2].shape)
    poses = as_poses(noisy)
    result = smooth_poses(poses, SmoothingConfig(strength=0.0))
    np.testing.assert_array_equal(result.keypoints, poses.keypoints)
    np.testing.assert_array_equal(smooth_keypoints(noisy, poses.timestamps, strength=0.0), noisy)


def test_an_outlier_spike_is_removed_and_filled():
    truth = ground_truth()
    noisy = truth.copy()
    noisy[..., :2] += np.random.default_rng(3).normal(0.0, 1.0, noisy[..., :2].shape)
    spiked = noisy.copy()
    spiked[30, 9, :2] += (40.0, -25.0)  # the left wrist jumps for one frame

    removed = remove_outliers(spiked, window=5, threshold=6.0)
    assert removed[30, 9, 2] == 0 and np.isnan(removed[30, 9, :2]).all()
    # nothing else is thrown away from merely noisy keypoints
    assert (removed[..., 2] == 0).sum() == 1

    cleaned = smooth_poses(as_poses(spiked), SmoothingConfig()).keypoints
    assert np.linalg.norm(cleaned[30, 9, :2] - truth[30, 9, :2]) < 4.0
    assert 0 < cleaned[30, 9, 2] < 1  # filled, so marked as less sure


def test_smoothing_never_crosses_a_missing_run():
    keypoints = np.zeros((40, 1, 3), np.float32)
    keypoints[:, 0, 2] = 1.0
    keypoints[20:, 0, :2] = 100.0  # a jump hidden in a gap
    keypoints = drop(keypoints, slice(15, 25), joint=0)
    times = np.arange(40) / FPS
    for method in ("one_euro", "savgol"):
        smoothed = smooth_keypoints(keypoints, times, strength=3.0, method=method, scale=50.0)
        np.testing.assert_allclose(smoothed[:15, 0, :2], 0.0, atol=1e-4)
        np.testing.assert_allclose(smoothed[25:, 0, :2], 100.0, atol=1e-4)
        assert np.isnan(smoothed[15:25, 0, :2]).all()


def test_smooth_poses_marks_filled_frames_as_present():
    keypoints = linear_track(frames=20, joints=3)
    keypoints[8:10] = (np.nan, np.nan, 0.0)
    poses = as_poses(keypoints)
    poses = PoseSequence(poses.keypoints, poses.skeleton, poses.fps, poses.image_size,
                         ~np.isin(np.arange(20), [8, 9]), poses.timestamps)
    result = smooth_poses(poses, SmoothingConfig(max_gap=2))
    assert result.person_present.all()
    assert result.keypoints.dtype == np.float32 and result.keypoints.shape == (20, 3, 3)
    # a straight line at constant speed (3.6 px a frame) stays where it is, ends included
    np.testing.assert_allclose(result.keypoints[..., :2], linear_track(20, 3)[..., :2], atol=0.15)


def test_running_median_ignores_missing_values():
    values = np.array([1.0, 50.0, 3.0, np.nan, 5.0, 6.0], np.float32)[:, None, None]
    median = running_median(values, window=3)[:, 0, 0]
    np.testing.assert_allclose(median, [25.5, 3.0, 26.5, 4.0, 5.5, 5.5])


@pytest.mark.parametrize("settings", [
    {"method": "kalman"}, {"strength": -1.0}, {"outlier_window": 4}, {"max_gap": -1},
])
def test_bad_settings_are_refused_with_a_hint(settings):
    with pytest.raises(BadInput) as error:
        SmoothingConfig(**settings)
    assert error.value.hint
