"""Crop boxes for the face, hands and feet, the crops themselves, and face landmark heatmaps.

"Do as I Do" refines the face, hands and feet with local generators and discriminators on crops,
and guides the face with its landmarks. `part_boxes` is pure numpy over a whole track; `crop_parts`
and `landmark_heatmaps` are torch, per batch.

Coordinates are continuous pixels: an image of (width, height) spans [0, width] x [0, height], and
pixel (i, j) has its centre at (i + 0.5, j + 0.5). A box is (x0, y0, x1, y1) in those units.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch.nn import functional

from motionxfer.errors import BadInput
from motionxfer.pose.skeleton import Skeleton

# The key parts "Do as I Do" refines, in a fixed order, and the groups that share a discriminator
# (left and right alike). A part's joints: its group of the layout when there is one (MediaPipe's
# 21 hand points, the face mesh), and the body joints of it that the layout names.
PARTS = ("left_hand", "right_hand", "left_foot", "right_foot", "face")
PART_GROUPS: dict[str, tuple[str, ...]] = {
    "hands": ("left_hand", "right_hand"),
    "feet": ("left_foot", "right_foot"),
    "face": ("face",),
}
_BODY_JOINTS = {
    "hand": ("wrist", "pinky", "index", "thumb"),
    "foot": ("ankle", "heel", "foot_index", "big_toe", "small_toe"),
}
_HEAD_JOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "mouth_left",
                "mouth_right")


def part_joints(skeleton: Skeleton) -> dict[str, list[int]]:
    """The joints of each key part the layout has (`PARTS` order; a part with none is left out):
    a hand is its `<side>_hand` group plus the body's `<side>_wrist`, `_pinky`, `_index`,
    `_thumb`; a foot the body's `<side>_ankle`, `_heel`, `_foot_index`, `_big_toe`, `_small_toe`;
    the face its `face` group plus the nose, eyes, ears and mouth corners, when the layout has a
    face (`Skeleton.has_face`). An animal's layout (no such names) has none."""
    joints: dict[str, list[int]] = {}
    for part in PARTS:
        if part == "face" and not skeleton.has_face:
            continue  # a snout and ears are no face (`Skeleton.has_face`)
        chosen: list[int] = []
        if skeleton.has_group(part):
            group = skeleton.group(part)
            chosen.extend(range(group.start, group.stop))
        if part == "face":
            names = _HEAD_JOINTS
        else:
            side, kind = part.split("_")
            names = tuple(f"{side}_{name}" for name in _BODY_JOINTS[kind])
        chosen.extend(skeleton.index(name) for name in names if skeleton.has(name))
        if chosen:
            joints[part] = sorted(set(chosen))
    return joints


def _centred_moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average (T, D) over time within runs of finite rows; NaN rows stay NaN and no
    window crosses one. Near a run's ends the window shrinks symmetrically (no lag)."""
    smoothed = values.copy()
    radius = window // 2
    if radius == 0:
        return smoothed
    finite = np.isfinite(values).all(-1)  # (T,)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
    for start, stop in zip(edges[0::2], edges[1::2]):  # each run [start, stop)
        run = values[start:stop]
        sums = np.concatenate([np.zeros((1, run.shape[1])), np.cumsum(run, axis=0)])
        positions = np.arange(stop - start)
        reach = np.minimum(radius, np.minimum(positions, stop - start - 1 - positions))
        smoothed[start:stop] = ((sums[positions + reach + 1] - sums[positions - reach])
                                / (2 * reach + 1)[:, None])
    return smoothed


def part_boxes(
    xy: np.ndarray,
    visibility: np.ndarray,
    part_joints: Mapping[str, Sequence[int]],
    image_size: tuple[int, int],
    box_scale: float = 1.5,
    min_size: float = 16.0,
    body_fraction: float = 0.12,
    min_visibility: float = 0.5,
    smoothing_window: int = 5,
) -> dict[str, np.ndarray]:
    """Square crop boxes per part and frame: name -> (T, 4) float (x0, y0, x1, y1), NaN where
    none of the part's joints is seen.

    xy (T, J, 2) pixel coordinates, visibility (T, J); a joint counts when its visibility is at
    least `min_visibility` and its coordinates are finite. `image_size` is (width, height).

    Per frame, the side is the largest of: `box_scale` x the spread of the part's visible joints
    (the larger side of their bounding box), `body_fraction` x the body's size (the larger side
    of the bounding box of all visible joints: a hand with one visible point still gets a box
    the size of a hand), and `min_size` pixels. The box is centred on the middle of the part's
    visible joints. Centre and side are then smoothed with a centred moving average of
    `smoothing_window` frames (1: none) that never crosses a frame without the part. The box is
    then grown where needed to keep every visible joint of the part inside, capped at the
    frame's smaller side, and shifted (not shrunk) to lie inside the frame.
    """
    xy = np.asarray(xy, np.float64)
    visibility = np.asarray(visibility, np.float64)
    if xy.ndim != 3 or xy.shape[-1] != 2 or visibility.shape != xy.shape[:2]:
        raise BadInput(f"keypoints must be (T, J, 2) with visibility (T, J), not {xy.shape} and "
                       f"{visibility.shape}", hint="pass the pose sequence's xy and visibility")
    width, height = image_size
    if width <= 0 or height <= 0 or box_scale <= 0 or smoothing_window < 1:
        raise BadInput(f"bad box settings: image_size {image_size}, box_scale {box_scale}, "
                       f"smoothing_window {smoothing_window}",
                       hint="image size (width, height) > 0, box_scale > 0, window >= 1")
    joint_count = xy.shape[1]
    visible = (visibility >= min_visibility) & np.isfinite(xy).all(-1)  # (T, J)
    masked = np.where(visible[..., None], xy, np.nan)  # (T, J, 2)

    with _quiet_nan_warnings():
        body_extent = np.nanmax(masked, axis=1) - np.nanmin(masked, axis=1)  # (T, 2)
        body_size = np.nan_to_num(np.max(body_extent, axis=-1), nan=0.0)  # (T,)

    boxes = {}
    for name, joints in part_joints.items():
        joints = list(joints)
        if not joints or min(joints) < 0 or max(joints) >= joint_count:
            raise BadInput(f"part {name!r} has joints {joints}, outside 0..{joint_count - 1}",
                           hint="name joints of the skeleton the keypoints use")
        points = masked[:, joints]  # (T, K, 2)
        with _quiet_nan_warnings():
            low, high = np.nanmin(points, axis=1), np.nanmax(points, axis=1)  # (T, 2)
        centre = (low + high) / 2  # (T, 2), NaN where the part is unseen
        side = np.maximum.reduce([box_scale * np.max(high - low, axis=-1),
                                  body_fraction * body_size,
                                  np.full(len(xy), float(min_size))])  # (T,)
        side = np.where(np.isfinite(centre).all(-1), side, np.nan)
        track = _centred_moving_average(np.concatenate([centre, side[:, None]], axis=-1),
                                        smoothing_window)  # (T, 3)
        centre, half = track[:, :2], track[:, 2] / 2
        with _quiet_nan_warnings():
            reach = np.nanmax(np.abs(points - centre[:, None]).max(-1), axis=1)  # (T,)
        half = np.fmax(half, reach)  # keep every visible joint of the part inside
        half = np.minimum(half, min(width, height) / 2)
        centre_x = np.clip(centre[:, 0], half, width - half)
        centre_y = np.clip(centre[:, 1], half, height - half)
        boxes[name] = np.stack([centre_x - half, centre_y - half,
                                centre_x + half, centre_y + half], axis=-1)
    return boxes


@contextmanager
def _quiet_nan_warnings() -> Iterator[None]:
    """nanmin / nanmax over an all-NaN row warn; here such a row means "not seen", and the NaN
    they return is the answer we want."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
        yield


def _box_grid(boxes: torch.Tensor, out_size: int, image_width: int, image_height: int,
              dtype: torch.dtype) -> torch.Tensor:
    """Sampling grid (B, s, s, 2) in grid_sample's [-1, 1] units for the centres of an s x s crop
    of each box (B, 4)."""
    steps = (torch.arange(out_size, device=boxes.device, dtype=dtype) + 0.5) / out_size  # (s,)
    boxes = boxes.to(dtype)
    xs = boxes[:, 0:1] + steps * (boxes[:, 2:3] - boxes[:, 0:1])  # (B, s)
    ys = boxes[:, 1:2] + steps * (boxes[:, 3:4] - boxes[:, 1:2])  # (B, s)
    grid_x = (2 * xs / image_width - 1)[:, None, :].expand(-1, out_size, -1)
    grid_y = (2 * ys / image_height - 1)[:, :, None].expand(-1, -1, out_size)
    return torch.stack([grid_x, grid_y], dim=-1)


def crop_parts(images: torch.Tensor, boxes: torch.Tensor, out_size: int) -> torch.Tensor:
    """Bilinear crops (B, C, s, s) of images (B, C, H, W) at boxes (B, 4), differentiable with
    respect to the images (and the boxes). A NaN box gives a crop of zeros: mask those samples
    out of the part losses with `torch.isfinite(boxes).all(-1)`. Outside the image is zero.
    Bilinear sampling does not low-pass: keep out_size near the boxes' size in pixels."""
    if images.dim() != 4 or boxes.shape != (images.shape[0], 4):
        raise BadInput(f"crop_parts needs images (B, C, H, W) and boxes (B, 4), not "
                       f"{tuple(images.shape)} and {tuple(boxes.shape)}",
                       hint="one box per image")
    valid = torch.isfinite(boxes).all(-1)  # (B,)
    safe_boxes = torch.where(valid[:, None], boxes, torch.zeros_like(boxes))
    grid = _box_grid(safe_boxes, out_size, images.shape[-1], images.shape[-2], images.dtype)
    crops = functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                                   align_corners=False)  # (B, C, s, s)
    return crops * valid[:, None, None, None].to(crops.dtype)


def landmark_heatmaps(points: torch.Tensor, boxes: torch.Tensor, out_size: int, sigma: float,
                      visibility: torch.Tensor | None = None,
                      combine: bool = False) -> torch.Tensor:
    """Gaussian heatmaps of landmarks inside their crop: (B, N, s, s), or (B, 1, s, s) with
    `combine` (the maximum over landmarks).

    points (B, N, 2) image pixel coordinates, boxes (B, 4) as given to `crop_parts` (the heatmap
    pixel (u, v) lies over the crop pixel (u, v)), sigma in crop pixels. A map is 1 at its
    landmark and 0 for an invisible landmark (visibility (B, N) <= 0, or NaN point) or a NaN box.
    """
    if points.dim() != 3 or points.shape[-1] != 2 or boxes.shape != (points.shape[0], 4):
        raise BadInput(f"landmark_heatmaps needs points (B, N, 2) and boxes (B, 4), not "
                       f"{tuple(points.shape)} and {tuple(boxes.shape)}",
                       hint="one box per sample")
    if not sigma > 0:
        raise BadInput(f"sigma must be positive, not {sigma}", hint="try 1.5 crop pixels")
    dtype = points.dtype if points.is_floating_point() else torch.float32
    points, boxes = points.to(dtype), boxes.to(dtype)
    size = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], -1)  # (B, 2)
    in_crop = (points - boxes[:, None, :2]) / size[:, None, :] * out_size  # (B, N, 2)
    present = torch.isfinite(in_crop).all(-1)  # (B, N)
    if visibility is not None:
        present = present & (visibility > 0)
    in_crop = torch.where(present[..., None], in_crop, torch.zeros_like(in_crop))
    centres = torch.arange(out_size, dtype=dtype, device=points.device) + 0.5  # (s,)
    dx = (centres[None, None, :] - in_crop[..., 0:1]) ** 2  # (B, N, s)
    dy = (centres[None, None, :] - in_crop[..., 1:2]) ** 2  # (B, N, s)
    heat = torch.exp(-(dy[..., :, None] + dx[..., None, :]) / (2 * sigma ** 2))  # (B, N, s, s)
    heat = heat * present[..., None, None].to(dtype)
    return heat.amax(1, keepdim=True) if combine else heat
