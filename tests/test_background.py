"""The background plate: masked median, never-seen pixels, the moving-camera check."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from motionxfer.background.plate import (
    PlateConfig,
    difference_mask,
    estimate_plate,
    masked_median,
    sample_indices,
)
from motionxfer.errors import BadInput

SIZE = 96


def textured_background(seed: int = 0) -> np.ndarray:
    """A (SIZE, SIZE, 3) uint8 background with texture at several scales (for phase correlation)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (12, 12, 3)).astype(np.uint8)
    image = cv2.resize(coarse, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    image += rng.integers(-20, 21, image.shape).astype(np.int16)
    return image.clip(0, 255).astype(np.uint8)


def moving_square(count: int, background: np.ndarray, pan: int = 0, jump: bool = False):
    """Frames and masks of a purple 30-pixel square walking right by 1 px a frame (from column
    30 to 30 + count; anywhere at random with `jump`), the background shifted by `pan` pixels a
    frame."""
    rng = np.random.default_rng(7)
    frames, masks = [], []
    for index in range(count):
        frame = np.roll(background, pan * index, axis=1).copy()
        mask = np.zeros((SIZE, SIZE), bool)
        row, col = rng.integers(0, SIZE - 30, 2) if jump else (30, 30 + index)
        mask[row:row + 30, col:col + 30] = True
        frame[mask] = (128, 60, 200)
        frames.append(frame)
        masks.append(mask)
    return frames, masks


def test_plate_equals_the_background_where_seen_and_reports_the_hidden_core():
    background = textured_background()
    frames, masks = moving_square(20, background)
    result = estimate_plate(iter(frames), iter(masks), len(frames), PlateConfig(mask_dilation=2))
    assert result.plate.shape == (SIZE, SIZE, 3) and result.plate.dtype == np.uint8
    assert np.array_equal(result.plate[result.seen], background[result.seen])
    # Columns 49..59 of rows 30..59 are under the square in every frame (30+19 .. 59).
    assert not result.seen[32:58, 51:58].any()
    assert result.seen[:25].all() and result.seen[70:].all()
    assert result.seen.mean() > 0.85
    assert not result.moving_camera and result.camera_motion_score < 0.5


def test_a_panning_background_is_flagged_as_a_moving_camera():
    background = textured_background(1)
    frames, masks = moving_square(12, background, pan=3, jump=True)
    result = estimate_plate(iter(frames), iter(masks), len(frames))
    assert result.moving_camera
    assert result.camera_motion_score == pytest.approx(3.0, abs=0.5)


def test_frames_are_subsampled_to_max_frames():
    assert sample_indices(10, 20).tolist() == list(range(10))
    indices = sample_indices(5400, 48)
    assert len(indices) == 48 and indices[0] == 0 and indices[-1] == 5399
    frames, masks = moving_square(20, textured_background())
    assert estimate_plate(frames, masks, 20, PlateConfig(max_frames=5)).frames_used == 5
    # Without a frame count: every stride-th frame.
    assert estimate_plate(frames, masks, None, PlateConfig(stride=4)).frames_used == 5


def test_masked_median_ignores_covered_frames():
    frames = np.array([10, 20, 200, 30], np.uint8).reshape(4, 1, 1, 1) * np.ones((1, 1, 2, 3), np.uint8)
    covered = np.zeros((4, 1, 2), bool)
    covered[2] = True  # the outlier frame is covered
    covered[:, 0, 1] = True  # pixel (0, 1) covered everywhere
    median = masked_median(frames, covered)
    assert median[0, 0].tolist() == [20.0, 20.0, 20.0]
    assert np.isnan(median[0, 1]).all()


def test_bad_inputs_are_refused():
    frames, masks = moving_square(3, textured_background())
    with pytest.raises(BadInput, match="mask"):
        estimate_plate(frames, [np.zeros((8, 8), bool)] * 3, 3)
    with pytest.raises(BadInput, match="only 1 frame"):
        estimate_plate(frames[:1], masks[:1], 1)
    with pytest.raises(BadInput, match="uint8"):
        estimate_plate([f.astype(np.float32) for f in frames], masks, 3)


def test_difference_mask_finds_the_person_inside_the_cover_and_fills_holes():
    rng = np.random.default_rng(0)
    plate = rng.integers(60, 120, (64, 64, 3)).astype(np.uint8)
    frame = plate.copy()
    frame[10:50, 20:40] = 220  # the person
    frame[25:30, 28:32] = plate[25:30, 28:32]  # a patch of clothes of the wall's colour
    frame[55:60, 2:8] = 250  # something else that moved, away from the person
    cover = np.zeros((64, 64), bool)
    cover[5:55, 15:45] = True  # where the pose says the person may be
    mask = difference_mask(frame, plate, cover, threshold=30.0)
    person = np.zeros((64, 64), bool)
    person[10:50, 20:40] = True
    assert mask[25:30, 28:32].all()  # the hole is filled
    assert not mask[50:, :15].any()  # the change outside the cover is cut away
    assert (mask ^ person).sum() <= 8  # the opening rounds the box's four corners, no more
    assert not difference_mask(plate, plate, cover).any()

