"""A local GAN per key body part (Do as I Do; `TrainConfig.part_gan`): hands, feet and face.

During the generator stage, crops around the hands, feet and face of the real and the generated
frame t go to one small patch discriminator per part group (`PART_GROUPS`: the left and right
hand share one, the feet another, the face has its own), each conditioned on the same crop of the
pose input; the face's condition adds one channel, a heatmap of its landmarks (the geometric cue
"Do as I Do" guides the face with). The generator is trained to fool them (adversarial and
feature-matching terms on the crops, `losses.part_objective`), each discriminator on its real and
generated crops.

Boxes come from the keypoints at the working size, smoothed over time (`part_crops.part_boxes`),
computed once for the whole track (`part_tracks`); a step takes its frames' rows (`PartTracks.batch`).
Each crop is resampled to a fixed size (the preset's face crop size: 32 px at the tiny preset)
with `part_crops.crop_parts`, which is differentiable. A part unseen in a frame (a NaN box) is
left out of that frame's crops; a group with no part seen in the whole batch is skipped for the
step. With augmentation the boxes are those of the unaugmented keypoints: the crops of the pose
input, the real and the generated frame stay aligned with each other, only off-centre by the
augmentation's zoom and shift (5% and 4% at most).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from motionxfer.networks.discriminator import DiscriminatorConfig
from motionxfer.networks.face_refiner import FaceRefinerConfig
from motionxfer.pose.sequence import PoseSequence
from motionxfer.training.part_crops import (
    PART_GROUPS,
    PARTS,
    crop_parts,
    landmark_heatmaps,
    part_boxes,
    part_joints,
)

IMAGE_CHANNELS = 3
FACE_GROUP = "face"


@dataclass(frozen=True)
class PartBatch:
    """The part boxes and face landmarks of a batch's frames t, in working-size pixels."""

    parts: tuple[str, ...]  # the names of the boxes' second axis (`PARTS` order)
    boxes: torch.Tensor  # (B, P, 4) x0, y0, x1, y1; NaN where the part is unseen
    face_landmarks: torch.Tensor  # (B, N, 3) x, y, visibility; N = 0 without a face

    def to(self, device: torch.device) -> PartBatch:
        return PartBatch(self.parts, self.boxes.to(device), self.face_landmarks.to(device))


@dataclass(frozen=True)
class PartTracks:
    """Every frame's part boxes and face landmarks (`part_tracks`)."""

    parts: tuple[str, ...]  # the parts the keypoint layout has, `PARTS` order
    boxes: np.ndarray  # (T, P, 4) float32, working-size pixels, NaN where unseen
    face_landmarks: np.ndarray  # (T, N, 3) float32 x, y (working-size pixels), visibility

    @property
    def groups(self) -> tuple[str, ...]:
        """The part groups with at least one part in the layout (`PART_GROUPS` order)."""
        return tuple(group for group, members in PART_GROUPS.items()
                     if any(part in self.parts for part in members))

    def batch(self, indices: Sequence[int] | np.ndarray) -> PartBatch:
        """The rows of frames `indices` (B,)."""
        indices = np.asarray(indices, np.int64)
        return PartBatch(self.parts, torch.from_numpy(self.boxes[indices]),
                         torch.from_numpy(self.face_landmarks[indices]))


def part_tracks(poses: PoseSequence, frame_size: tuple[int, int], smoothing_window: int = 5,
                min_visibility: float = 0.5) -> PartTracks:
    """The part boxes of every frame of `poses` in a `frame_size` (width, height) frame, smoothed
    over `smoothing_window` frames, and the face part's joints as its landmarks."""
    scale = np.array([frame_size[0] / poses.image_size[0], frame_size[1] / poses.image_size[1]])
    xy = poses.xy.astype(np.float64) * scale  # (T, J, 2)
    joints = part_joints(poses.skeleton)
    boxes = part_boxes(xy, poses.visibility, joints, frame_size,
                       min_visibility=min_visibility, smoothing_window=smoothing_window)
    parts = tuple(part for part in PARTS if part in joints)
    stacked = (np.stack([boxes[part] for part in parts], axis=1) if parts
               else np.zeros((poses.num_frames, 0, 4)))  # (T, P, 4)
    face = joints.get(FACE_GROUP, [])
    landmarks = np.concatenate([xy[:, face], poses.visibility[:, face, None]], axis=-1)
    return PartTracks(parts, stacked.astype(np.float32), landmarks.astype(np.float32))


@dataclass(frozen=True)
class PartCrops:
    """One group's crops of a batch: every seen part of every frame, stacked (M of them)."""

    condition: torch.Tensor  # (M, C, s, s) the pose input's crops (+ the face's landmark heatmap)
    real: torch.Tensor  # (M, 3, s, s)
    fake: torch.Tensor  # (M, 3, s, s)

    def discriminator_inputs(self, fake: bool) -> torch.Tensor:  # (M, C + 3, s, s)
        return torch.cat([self.condition, self.fake if fake else self.real], dim=1)


def landmark_sigma(crop_size: int) -> float:
    """The face heatmap's Gaussian sigma in crop pixels: 1 at 32 px crops, growing with them."""
    return max(1.0, crop_size / 32)


def group_crops(group: str, parts: PartBatch, pose: torch.Tensor, real: torch.Tensor,
                fake: torch.Tensor, crop_size: int) -> PartCrops | None:
    """The crops of `group`'s parts seen in the batch's frames, from the pose input (B, C, H, W),
    the real and the generated frames (B, 3, H, W); None when no part of the group is seen (or
    the layout has none)."""
    columns = [parts.parts.index(part) for part in PART_GROUPS[group] if part in parts.parts]
    if not columns:
        return None
    boxes = parts.boxes[:, columns].transpose(0, 1).reshape(-1, 4)  # (len(columns) * B, 4)
    seen = torch.isfinite(boxes).all(-1)
    if not bool(seen.any()):
        return None
    samples = torch.arange(pose.shape[0], device=pose.device).repeat(len(columns))[seen]  # (M,)
    boxes = boxes[seen]

    def crops(images: torch.Tensor) -> torch.Tensor:  # (M, C, s, s)
        return crop_parts(images[samples], boxes.to(images.dtype), crop_size)

    condition = crops(pose)
    if group == FACE_GROUP:
        landmarks = parts.face_landmarks[samples]  # (M, N, 3)
        heatmap = landmark_heatmaps(landmarks[..., :2], boxes, crop_size,
                                    landmark_sigma(crop_size), landmarks[..., 2], combine=True)
        condition = torch.cat([condition, heatmap.to(condition.dtype)], dim=1)
    return PartCrops(condition, crops(real), crops(fake))


def part_discriminator_config(group: str, pose_channels: int,
                              face_refiner: FaceRefinerConfig) -> DiscriminatorConfig:
    """The patch discriminator of a part group: the face refiner's discriminator sizes (a crop of
    the same size), on the pose input's crop and the image crop (+ the face's heatmap)."""
    extra = 1 if group == FACE_GROUP else 0
    return DiscriminatorConfig(input_channels=pose_channels + IMAGE_CHANNELS + extra,
                               ndf=face_refiner.ndf, n_layers=face_refiner.n_layers,
                               n_scales=face_refiner.n_scales)


def part_discriminator_name(group: str) -> str:
    """The network's name in the trainer and the checkpoint's `models`."""
    return f"part_discriminator_{group}"
