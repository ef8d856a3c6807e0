"""Part crop boxes (pure numpy), differentiable crops and face landmark heatmaps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from motionxfer.errors import BadInput
from motionxfer.training.part_crops import crop_parts, landmark_heatmaps, part_boxes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WIDTH, HEIGHT = 160, 120
# a toy skeleton: 0-3 body, 4-6 left hand, 7-8 right hand (8 may be unseen), 9 a foot
PARTS = {"left_hand": [4, 5, 6], "right_hand": [7, 8], "foot": [9]}


def toy_track(frames: int = 40, seed: int = 0, noise: float = 0.0):
    """(T, 10, 2) keypoints of a body drifting right, its left hand circling, and visibility."""
    rng = np.random.default_rng(seed)
    time = np.arange(frames)[:, None]
    body = np.array([[60, 20], [60, 60], [50, 100], [70, 100]], float)  # head, hip, feet
    hand_centre = np.stack([100 + 10 * np.cos(time[:, 0] / 5), 50 + 10 * np.sin(time[:, 0] / 5)],
                           -1)[:, None]
    hand = hand_centre + np.array([[-4, -3], [4, -2], [0, 5]], float)
    right = np.array([[30, 55], [26, 60]], float)
    foot = np.array([[52, 104]], float)
    drift = np.stack([0.5 * time[:, 0], np.zeros(frames)], -1)[:, None]
    xy = np.concatenate([np.broadcast_to(body, (frames, 4, 2)), hand,
                         np.broadcast_to(right, (frames, 2, 2)),
                         np.broadcast_to(foot, (frames, 1, 2))], axis=1) + drift
    xy = xy + noise * rng.normal(size=xy.shape)
    return xy, np.ones(xy.shape[:2])


def inside(box: np.ndarray, points: np.ndarray) -> bool:
    return bool(((points[:, 0] >= box[0]) & (points[:, 0] <= box[2])
                 & (points[:, 1] >= box[1]) & (points[:, 1] <= box[3])).all())


def test_boxes_are_square_inside_the_frame_and_hold_their_visible_keypoints():
    xy, visibility = toy_track(noise=2.0)
    visibility[::3, 8] = 0.0  # the right hand's second point is often unseen
    boxes = part_boxes(xy, visibility, PARTS, (WIDTH, HEIGHT))
    for name, joints in PARTS.items():
        part_box = boxes[name]
        assert part_box.shape == (40, 4) and np.isfinite(part_box).all()
        np.testing.assert_allclose(part_box[:, 2] - part_box[:, 0],
                                   part_box[:, 3] - part_box[:, 1], atol=1e-9)
        assert (part_box[:, :2] >= 0).all() and (part_box[:, 2] <= WIDTH).all()
        assert (part_box[:, 3] <= HEIGHT).all()
        for frame in range(40):
            seen = visibility[frame, joints] >= 0.5
            assert inside(part_box[frame], xy[frame, joints][seen])


def test_one_visible_point_still_gets_a_box_sized_from_the_body():
    xy, visibility = toy_track()
    boxes = part_boxes(xy, visibility, PARTS, (WIDTH, HEIGHT), body_fraction=0.2, min_size=4)
    side = boxes["foot"][:, 2] - boxes["foot"][:, 0]
    body_size = 88.0  # the larger side of all joints' bounding box (x 26..114 at frame 0)
    assert side.min() > 0.15 * body_size and side.max() < 0.3 * body_size


def test_missing_parts_are_nan_and_smoothing_does_not_cross_gaps():
    xy, visibility = toy_track()
    visibility[10:15, 4:7] = 0.0  # the left hand is lost for five frames
    xy[15:, 4:7] += np.array([40.0, 0.0])  # and found again far to the right
    xy[10:15, 4:7] = np.nan
    boxes = part_boxes(xy, visibility, PARTS, (WIDTH, HEIGHT), smoothing_window=9)
    hand = boxes["left_hand"]
    assert np.isnan(hand[10:15]).all() and np.isfinite(hand[:10]).all()
    unsmoothed = part_boxes(xy, visibility, PARTS, (WIDTH, HEIGHT), smoothing_window=1)
    # the frame before the gap knows nothing of the jump after it: with a symmetric window
    # shrunk at the run's end, it is the unsmoothed box there
    np.testing.assert_allclose(hand[9], unsmoothed["left_hand"][9])
    no_body = part_boxes(xy, np.zeros_like(visibility), PARTS, (WIDTH, HEIGHT))
    assert all(np.isnan(box).all() for box in no_body.values())


def test_smoothing_reduces_the_jitter_of_a_noisy_track():
    clean, visibility = toy_track(frames=120)
    noisy, _ = toy_track(frames=120, seed=1, noise=2.0)
    truth = part_boxes(clean, visibility, PARTS, (WIDTH, HEIGHT), smoothing_window=1)
    raw = part_boxes(noisy, visibility, PARTS, (WIDTH, HEIGHT), smoothing_window=1)
    smooth = part_boxes(noisy, visibility, PARTS, (WIDTH, HEIGHT), smoothing_window=7)

    def jitter(boxes: np.ndarray) -> float:  # RMS frame-to-frame acceleration of the centre
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        return float(np.sqrt((np.diff(centre, n=2, axis=0) ** 2).sum(-1).mean()))

    def error(boxes: np.ndarray) -> float:  # RMS distance of the centre to the clean one
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        clean_centre = (truth["left_hand"][:, :2] + truth["left_hand"][:, 2:]) / 2
        return float(np.sqrt(((centre - clean_centre) ** 2).sum(-1).mean()))

    raw_jitter, smooth_jitter = jitter(raw["left_hand"]), jitter(smooth["left_hand"])
    assert smooth_jitter < 0.25 * raw_jitter  # measured 0.69 against 4.44 px/frame^2 (0.16)
    # and it does not buy that with lag: the centre is nearer the clean one (measured 1.11 against
    # 1.85 px; the circling hand bends within the window, so not all the noise goes)
    assert error(smooth["left_hand"]) < 0.8 * error(raw["left_hand"])


def test_bad_part_joints_raise_bad_input():
    xy, visibility = toy_track()
    with pytest.raises(BadInput):
        part_boxes(xy, visibility, {"hand": [10]}, (WIDTH, HEIGHT))
    with pytest.raises(BadInput):
        part_boxes(xy[..., :1], visibility, PARTS, (WIDTH, HEIGHT))


def marked_images() -> torch.Tensor:
    """(2, 3, H, W) zeros with a square of ones at x 40..56, y 20..36 (image 0) and
    x 100..132, y 70..102 (image 1)."""
    images = torch.zeros(2, 3, HEIGHT, WIDTH)
    images[0, :, 20:36, 40:56] = 1.0
    images[1, :, 70:102, 100:132] = 1.0
    return images


def test_crops_land_on_the_marked_square():
    images = marked_images().requires_grad_()
    boxes = torch.tensor([[40.0, 20.0, 56.0, 36.0], [100.0, 70.0, 132.0, 102.0]])
    crops = crop_parts(images, boxes, 8)
    assert crops.shape == (2, 3, 8, 8)
    torch.testing.assert_close(crops, torch.ones_like(crops))
    # a box around the square: the square fills its middle half, the border is background
    around = crop_parts(images.detach(), torch.tensor([[32.0, 12.0, 64.0, 44.0],
                                              [84.0, 54.0, 148.0, 118.0]]), 8)
    assert float(around[:, :, 2:6, 2:6].min()) == 1.0
    assert float(around[:, :, 0].max()) == 0.0 and float(around[:, :, :, 7].max()) == 0.0
    crops.sum().backward()
    assert images.grad is not None and float(images.grad[0, :, 20:36, 40:56].sum()) > 0
    assert float(images.grad[0, :, 60:, :].abs().sum()) == 0.0


def test_a_nan_box_gives_a_zero_crop():
    crops = crop_parts(marked_images(), torch.tensor([[40.0, 20.0, 56.0, 36.0],
                                                      [np.nan] * 4]), 8)
    assert float(crops[1].abs().max()) == 0.0 and float(crops[0].min()) == 1.0


def test_heatmap_peaks_at_the_landmark():
    boxes = torch.tensor([[40.0, 20.0, 56.0, 36.0], [100.0, 70.0, 132.0, 102.0]])
    # crop size 16: image box 0 maps 1 image px -> 1 crop px, box 1 maps 2 image px -> 1
    points = torch.tensor([[[43.5, 30.5], [50.5, 21.5]], [[111.0, 95.0], [np.nan, np.nan]]])
    heatmaps = landmark_heatmaps(points, boxes, 16, sigma=1.5)
    assert heatmaps.shape == (2, 2, 16, 16)
    peak = [divmod(int(heatmaps[b, n].argmax()), 16) for b, n in [(0, 0), (0, 1), (1, 0)]]
    assert peak == [(10, 3), (1, 10), (12, 5)]  # (row, column) of the crop pixel
    assert float(heatmaps[0, 0, 10, 3]) == pytest.approx(1.0)
    assert float(heatmaps[1, 1].max()) == 0.0  # an unseen landmark draws nothing
    combined = landmark_heatmaps(points, boxes, 16, sigma=1.5, combine=True)
    torch.testing.assert_close(combined[:, 0], heatmaps.amax(1))
    hidden = landmark_heatmaps(points, boxes, 16, 1.5, visibility=torch.tensor([[1, 0], [1, 1]]))
    assert float(hidden[0, 1].max()) == 0.0 and float(hidden[0, 0].max()) == pytest.approx(1.0)


def test_heatmaps_line_up_with_crops():
    """A landmark at the marked square's centre peaks where the crop shows the square."""
    images = torch.zeros(1, 1, HEIGHT, WIDTH)
    images[0, 0, 50:54, 80:84] = 1.0  # a 4 x 4 dot centred at (82, 52)
    box = torch.tensor([[70.0, 40.0, 102.0, 72.0]])
    crop = crop_parts(images, box, 16)[0, 0]
    heat = landmark_heatmaps(torch.tensor([[[82.0, 52.0]]]), box, 16, sigma=1.0)[0, 0]
    centres = torch.arange(16) + 0.5

    def centroid(image: torch.Tensor) -> tuple[float, float]:  # (x, y) in crop pixels
        mass = image.sum()
        return (float((image.sum(0) * centres).sum() / mass),
                float((image.sum(1) * centres).sum() / mass))

    assert centroid(crop) == pytest.approx((6.0, 6.0), abs=1e-5)
    assert centroid(heat) == pytest.approx(centroid(crop), abs=1e-3)
