"""TCM and the flow-warping error on the 64x64 test clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from motionxfer.evaluation.metrics import temporal

FIXTURE = Path(__file__).parent / "fixtures" / "metrics_clip.npz"


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    with np.load(FIXTURE) as data:
        return data["frames"][:8]  # (8, 64, 64, 3)


def _steps(reference: np.ndarray, generated: list[np.ndarray], method: str = "dis"):
    estimator = temporal.FlowEstimator(method)
    return [temporal.frame_pair_consistency(reference[t - 1], reference[t], generated[t - 1],
                                            generated[t], estimator)
            for t in range(1, len(reference))]


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_video_against_itself_scores_one(frames, method):
    steps = _steps(frames, list(frames), method)
    assert all(step.tcm == 1.0 for step in steps)
    assert all(step.generated_warp_error == step.reference_warp_error for step in steps)
    assert all(0.5 < step.valid_fraction <= 1.0 for step in steps)


def test_flicker_and_blur_lower_tcm(frames):
    flicker = [np.clip(frame.astype(np.int16) + (12 if index % 2 else -12), 0, 255).astype(np.uint8)
               for index, frame in enumerate(frames)]
    blurred = [cv2.GaussianBlur(frame, (5, 5), 1.5) for frame in frames]
    tcm_flicker = np.mean([step.tcm for step in _steps(frames, flicker)])
    tcm_blur = np.mean([step.tcm for step in _steps(frames, blurred)])
    assert tcm_flicker < 0.1
    assert tcm_blur < 0.9
    flicker_steps = _steps(frames, flicker)
    assert all(step.generated_warp_error > 5 * step.reference_warp_error for step in flicker_steps)


def test_warp_follows_a_known_shift():
    generator = np.random.default_rng(0)
    image = cv2.GaussianBlur(generator.random((40, 40, 3)).astype(np.float32), (7, 7), 2)
    flow = np.zeros((40, 40, 2), np.float32)
    flow[..., 0] = 3.0  # sample 3 px to the right
    warped = temporal.warp(image, flow)
    np.testing.assert_allclose(warped[:, :-3], image[:, 3:], atol=1e-5)


def test_forward_backward_check_flags_inconsistent_flow():
    backward = np.zeros((20, 20, 2), np.float32)
    forward = np.zeros((20, 20, 2), np.float32)
    assert temporal.non_occluded(backward, forward).all()
    forward[5:10, 5:10] = 4.0  # the forward flow disagrees there
    mask = temporal.non_occluded(backward, forward)
    assert not mask[5:10, 5:10].any() and mask.sum() == 400 - 25
    backward[..., 0] = -30.0  # everything points outside the frame
    assert not temporal.non_occluded(backward, np.zeros_like(forward)).any()


def test_tcm_value_limits():
    assert temporal.tcm_value(0.0, 0.0) == 1.0
    assert temporal.tcm_value(1.0, 0.0) == 0.0
    assert temporal.tcm_value(2.0, 1.0) == pytest.approx(np.exp(-1.0))
    assert temporal.tcm_value(0.5, 1.0) == pytest.approx(np.exp(-0.5))


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_warp_error_is_zero_for_a_still_video_and_counts_a_jitter_the_reference_lacks(method):
    texture = cv2.GaussianBlur(
        np.random.default_rng(1).integers(0, 256, (64, 64, 3)).astype(np.uint8), (5, 5), 1.5)
    still = np.stack([texture] * 4)  # the reference does not move: its flow is about zero
    # 0 (DIS) or interpolation noise of Farneback's flow of a few 1e-4 px (about 1e-7)
    assert all(step.generated_warp_error < 1e-6 for step in _steps(still, list(still), method))
    # a generated video that jitters 2 px left and right: the reference's flow does not
    # explain the motion, so the warping error counts it
    jitter = [np.roll(texture, 2 if index % 2 else -2, axis=1) for index in range(4)]
    steps = _steps(still, jitter, method)
    assert all(step.generated_warp_error > 1e-2 for step in steps)  # about 0.026
    assert all(step.reference_warp_error < 1e-6 for step in steps)
