"""The face refiner (Everybody Dance Now, section 3.3): a small generator on the face crop.

Input: the stick figure's face crop at frame t and the main generator's face crop. Output: a
residual added to the generated crop. The residual is multiplied by a fixed feathered window (1 in
the middle, falling linearly to 0 at the crop's border) so that pasting it back into the frame
leaves no seam, and the refiner's last convolution starts at zero, so an untrained refiner is the
identity.

Crop boxes come from the face keypoints (`face_boxes`): the face mesh when the keypoints have a
"face" group, else the nose, eyes and ears of the body. Boxes are square, sized from the face's
extent with a margin, and smoothed over time so the crop does not jitter. Crops are resampled to
a fixed `crop_size` (64 at 256 px frames, scaled with the preset) with `grid_sample`, which is
differentiable, handles boxes that leave the frame (zeros outside) and pastes back exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from motionxfer.networks.discriminator import DiscriminatorConfig, MultiScaleDiscriminator
from motionxfer.networks.generator import GlobalGenerator
from motionxfer.pose.sequence import PoseSequence

HEAD_JOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
MIN_BOX_SIZE = 4.0  # pixels of the working frame


@dataclass(frozen=True)
class FaceRefinerConfig:
    crop_size: int = 64
    pose_channels: int = 3
    image_channels: int = 3
    ngf: int = 32
    n_downsample: int = 2
    n_blocks: int = 3
    ndf: int = 32
    n_layers: int = 3
    n_scales: int = 1
    box_margin: float = 1.0  # multiplies the box size derived from the keypoints
    box_smoothing: float = 2.0  # Gaussian sigma in frames for centre and size (0: none)
    feather: float = 0.125  # fraction of the crop over which the residual fades out

    def __post_init__(self) -> None:
        if self.crop_size % 2**self.n_downsample:
            raise ValueError(
                f"crop_size {self.crop_size} must be a multiple of 2 ** n_downsample"
            )
        if not 0 <= self.feather < 0.5:
            raise ValueError("feather must be in [0, 0.5)")

    def discriminator_config(self) -> DiscriminatorConfig:
        return DiscriminatorConfig(
            input_channels=self.pose_channels + self.image_channels,
            ndf=self.ndf, n_layers=self.n_layers, n_scales=self.n_scales,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def feather_window(size: int, feather: float) -> torch.Tensor:  # (size, size)
    """1 inside, a linear ramp to 0 over `feather * size` pixels at each border."""
    ramp_width = max(feather * size, 1e-6)
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    distance = torch.minimum(centres, size - centres)  # to the nearer border
    line = torch.clamp(distance / ramp_width, 0.0, 1.0) if feather > 0 else torch.ones(size)
    return line[:, None] * line[None, :]


class FaceRefiner(nn.Module):
    """refined crop = generated crop + window * residual(stick figure crop, generated crop)."""

    def __init__(self, config: FaceRefinerConfig) -> None:
        super().__init__()
        self.config = config
        self.network = GlobalGenerator(
            config.pose_channels + config.image_channels, config.image_channels, config.ngf,
            config.n_downsample, config.n_blocks, max_channels=512, upsample="resize_conv",
        )
        last_conv = self.network.output[1]
        nn.init.zeros_(last_conv.weight)
        nn.init.zeros_(last_conv.bias)
        self.register_buffer("window", feather_window(config.crop_size, config.feather),
                             persistent=False)

    def forward(self, pose_crop: torch.Tensor, generated_crop: torch.Tensor) -> torch.Tensor:
        residual = self.network(torch.cat([pose_crop, generated_crop], dim=1))
        return generated_crop + residual * self.window


def face_discriminator(config: FaceRefinerConfig) -> MultiScaleDiscriminator:
    """The refiner's own PatchGAN on concat(stick figure crop, face crop)."""
    return MultiScaleDiscriminator(config.discriminator_config())


# --- crop boxes ----------------------------------------------------------------------------------

def face_boxes(poses: PoseSequence, frame_size: tuple[int, int], margin: float = 1.0,
               smoothing: float = 2.0, min_visibility: float = 0.3) -> np.ndarray:
    """Square face boxes (T, 4) float32 x0, y0, x1, y1 in pixels of a `frame_size` (w, h) frame.

    A frame gets NaN when no face keypoint was found in it nor on both sides of it (gaps between
    found frames are interpolated; nothing is extrapolated past the first or last found frame).
    """
    scale = np.array([frame_size[0] / poses.image_size[0], frame_size[1] / poses.image_size[1]])
    xy = poses.xy.astype(np.float64) * scale  # (T, J, 2)
    found = np.isfinite(xy).all(axis=-1) & (poses.visibility >= min_visibility)  # (T, J)
    skeleton = poses.skeleton
    frames = poses.num_frames
    centres = np.full((frames, 2), np.nan)
    sizes = np.full(frames, np.nan)

    face_joints = np.zeros(0, dtype=np.int64)
    if skeleton.has_group("face"):
        face_slice = skeleton.group("face")
        face_joints = np.arange(face_slice.start, face_slice.stop)
    head_joints = np.array([skeleton.index(name) for name in HEAD_JOINTS if skeleton.has(name)])
    for frame in range(frames):
        # The face mesh covers forehead to chin: its extent with a small margin.
        if face_joints.size and found[frame, face_joints].sum() >= 0.5 * face_joints.size:
            points = xy[frame, face_joints][found[frame, face_joints]]
            extent = points.max(axis=0) - points.min(axis=0)
            centres[frame] = (points.max(axis=0) + points.min(axis=0)) / 2
            sizes[frame] = 1.3 * extent.max()
            continue
        # Nose, eyes and ears span about half the head: twice their extent covers the face.
        if head_joints.size:
            points = xy[frame, head_joints][found[frame, head_joints]]
            if len(points) >= 2:
                extent = points.max(axis=0) - points.min(axis=0)
                centres[frame] = points.mean(axis=0)
                sizes[frame] = 2.0 * extent.max()
    sizes = np.maximum(sizes * margin, MIN_BOX_SIZE)
    centres = np.stack([_fill_and_smooth(centres[:, 0], smoothing),
                        _fill_and_smooth(centres[:, 1], smoothing)], axis=1)
    sizes = _fill_and_smooth(sizes, smoothing)
    half = sizes[:, None] / 2
    return np.concatenate([centres - half, centres + half], axis=1).astype(np.float32)


def _fill_and_smooth(values: np.ndarray, sigma: float) -> np.ndarray:  # (T,) -> (T,)
    """Interpolate NaN gaps between found values, then a Gaussian average over found values."""
    found = np.isfinite(values)
    if not found.any():
        return values.copy()
    positions = np.arange(len(values))
    first, last = positions[found][0], positions[found][-1]
    filled = np.full_like(values, np.nan)
    inside = (positions >= first) & (positions <= last)
    filled[inside] = np.interp(positions[inside], positions[found], values[found])
    if sigma <= 0:
        return filled
    radius = int(np.ceil(3 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    valid = np.isfinite(filled)
    padded = np.pad(np.where(valid, filled, 0.0), radius)
    weights = np.pad(valid.astype(np.float64), radius)
    numerator = np.convolve(padded, kernel, mode="valid")
    denominator = np.convolve(weights, kernel, mode="valid")
    smoothed = np.where(valid, numerator / np.maximum(denominator, 1e-12), np.nan)
    return smoothed


# --- crop and paste ------------------------------------------------------------------------------

def _box_affine(boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:  # (B, 2, 3)
    """Maps crop coordinates in [-1, 1] to frame coordinates in [-1, 1] (align_corners=False)."""
    x0, y0, x1, y1 = boxes.unbind(dim=1)
    theta = boxes.new_zeros((boxes.shape[0], 2, 3))
    theta[:, 0, 0] = (x1 - x0) / width
    theta[:, 0, 2] = (x0 + x1) / width - 1
    theta[:, 1, 1] = (y1 - y0) / height
    theta[:, 1, 2] = (y0 + y1) / height - 1
    return theta


def crop_faces(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) frames and (B, 4) boxes in pixels -> (B, C, size, size) crops."""
    batch, channels, height, width = images.shape
    theta = _box_affine(boxes.to(images.dtype), width, height)
    grid = functional.affine_grid(theta, [batch, channels, size, size], align_corners=False)
    return functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros",
                                  align_corners=False)


def paste_residuals(images: torch.Tensor, residuals: torch.Tensor,
                    boxes: torch.Tensor) -> torch.Tensor:
    """Adds crop-sized residuals (B, C, s, s) back into frames (B, C, H, W) at their boxes."""
    batch, channels, height, width = images.shape
    theta = _box_affine(boxes.to(images.dtype), width, height)
    scale = theta[:, :, :2].diagonal(dim1=1, dim2=2)  # (B, 2)
    inverse = torch.zeros_like(theta)
    inverse[:, 0, 0] = 1 / scale[:, 0]
    inverse[:, 1, 1] = 1 / scale[:, 1]
    inverse[:, :, 2] = -theta[:, :, 2] / scale
    grid = functional.affine_grid(inverse, [batch, channels, height, width], align_corners=False)
    placed = functional.grid_sample(residuals.to(images.dtype), grid, mode="bilinear",
                                    padding_mode="zeros", align_corners=False)
    return images + placed


def refine_faces(refiner: FaceRefiner, frames: torch.Tensor, poses: torch.Tensor,
                 boxes: torch.Tensor) -> torch.Tensor:
    """Frames (B, 3, H, W) in [-1, 1] with their stick figures and boxes (B, 4) -> refined frames
    clamped to [-1, 1]. Frames whose box is NaN are returned unchanged."""
    valid = torch.isfinite(boxes).all(dim=1)
    if not valid.any():
        return frames
    size = refiner.config.crop_size
    chosen = boxes[valid]
    generated_crops = crop_faces(frames[valid], chosen, size)
    pose_crops = crop_faces(poses[valid], chosen, size)
    residuals = refiner(pose_crops, generated_crops) - generated_crops
    refined = frames.clone()
    refined[valid] = paste_residuals(frames[valid], residuals, chosen)
    return refined.clamp(-1, 1)
