"""Relative and absolute motion transfer of keypoints (pure functions)."""

from __future__ import annotations

import pytest
import torch

from motionxfer.animation.keypoint_detector import Keypoints
from motionxfer.animation.motion import (
    absolute_motion,
    convex_hull_area,
    movement_scale,
    relative_motion,
)
from motionxfer.errors import BadInput

torch.set_num_threads(1)


def keypoints(batch: int, seed: int) -> Keypoints:
    generator = torch.Generator().manual_seed(seed)
    value = torch.rand(batch, 5, 2, generator=generator) * 1.6 - 0.8
    jacobian = torch.eye(2) + 0.3 * torch.randn(batch, 5, 2, 2, generator=generator)
    return Keypoints(value, jacobian)


def test_relative_transfer_from_the_source_pose_gives_the_driving_keypoints() -> None:
    source = keypoints(1, seed=0)
    driving = keypoints(4, seed=1)
    moved = relative_motion(source, driving, driving_initial=source)
    assert torch.allclose(moved.value, driving.value, atol=1e-6)
    assert moved.jacobian is not None
    assert torch.allclose(moved.jacobian, driving.jacobian, atol=1e-5)


def test_relative_transfer_adds_the_displacement_since_the_first_frame() -> None:
    source, initial, driving = keypoints(1, seed=0), keypoints(1, seed=2), keypoints(3, seed=3)
    moved = relative_motion(source, driving, initial, adapt_movement_scale=False)
    assert torch.allclose(moved.value, source.value + driving.value - initial.value)
    # the first driving frame itself leaves the source where it is
    still = relative_motion(source, initial, initial)
    assert torch.allclose(still.value, source.value) and torch.allclose(
        still.jacobian, source.jacobian, atol=1e-5)


def test_movement_scale_is_the_square_root_of_the_hull_area_ratio() -> None:
    square = torch.tensor([[[-0.2, -0.2], [0.2, -0.2], [0.2, 0.2], [-0.2, 0.2], [0.0, 0.0]]])
    initial = Keypoints(square)
    source = Keypoints(square * 2)  # four times the area
    assert convex_hull_area(square[0]) == pytest.approx(0.16)
    assert movement_scale(source, initial).item() == pytest.approx(2.0)
    driving = Keypoints(square + torch.tensor([0.1, 0.0]))
    moved = relative_motion(source, driving, initial)
    assert torch.allclose(moved.value, source.value + torch.tensor([0.2, 0.0]), atol=1e-6)


def test_collinear_keypoints_cannot_adapt_the_movement_scale() -> None:
    line = Keypoints(torch.tensor([[[0.0, 0.0], [0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]]))
    with pytest.raises(BadInput, match="no area") as raised:
        relative_motion(line, line, line)
    assert "adapt_movement_scale=False" in raised.value.hint
    assert torch.equal(relative_motion(line, line, line, adapt_movement_scale=False).value,
                       line.value)


def test_absolute_transfer_and_mismatched_shapes() -> None:
    driving = keypoints(2, seed=4)
    assert absolute_motion(driving) is driving
    with pytest.raises(BadInput, match="differ"):
        relative_motion(keypoints(1, 0), Keypoints(torch.zeros(2, 4, 2)), keypoints(1, 0))
