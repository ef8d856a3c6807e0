"""The dense motion network (FOMM, Sec. 3.2): keypoints of the source and driving frames -> one
dense backward flow from the driving frame to the source, and an occlusion map.

Around each keypoint k the motion is its first-order Taylor expansion,

    T_{S<-D}(z) ~ kp_S[k] + J_S[k] J_D[k]^-1 (z - kp_D[k])      (a translation without Jacobians)

and a (K + 1)-th "motion", the identity, stands for the still background. The network sees, for
each of the K + 1, the difference of Gaussian heatmaps around the driving and the source keypoint
(zero for the background) and the source image warped by that motion; an hourglass predicts K + 1
masks (softmax over them) that blend the sparse motions into one flow, and an occlusion map
(sigmoid: 1 where the driving frame's content is visible in the source, ~0 where the generator
must inpaint). Everything runs at the image downscaled by `scale_factor`; the flow and the map
come out at that size, and the generator resizes them to its features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional

from motionxfer.animation.geometry import coordinate_grid, invert_2x2
from motionxfer.animation.hourglass import AntiAliasDownsample, Hourglass
from motionxfer.animation.keypoint_detector import Keypoints


class DenseMotion(NamedTuple):
    """What the dense motion network predicts, at its (downscaled) resolution h x w."""

    flow: torch.Tensor  # (B, h, w, 2): the source coordinate to read for each driving pixel
    occlusion_map: torch.Tensor | None  # (B, 1, h, w) in (0, 1); None without use_occlusion
    masks: torch.Tensor  # (B, K + 1, h, w), summing to 1 over K + 1; index 0 is the background
    sparse_deformed: torch.Tensor  # (B, K + 1, C, h, w): the source warped by each sparse motion


@dataclass(frozen=True)
class DenseMotionConfig:
    """The dense motion network's architecture (a checkpoint stores it as a dict)."""

    num_keypoints: int = 10  # must equal the keypoint detector's
    channels: int = 3  # of the image
    block_expansion: int = 64
    num_blocks: int = 5
    max_features: int = 1024
    scale_factor: float = 0.25
    keypoint_variance: float = 0.01  # of the Gaussian heatmaps, in [-1, 1] units squared
    use_occlusion: bool = True  # predict an occlusion map (off: the paper's ablation)

    def __post_init__(self) -> None:
        for name in ("num_keypoints", "channels", "block_expansion", "num_blocks", "max_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.keypoint_variance <= 0:
            raise ValueError(f"keypoint_variance must be positive, not {self.keypoint_variance}")
        if not 0 < self.scale_factor <= 1:
            raise ValueError(f"scale_factor must be in (0, 1], not {self.scale_factor}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def keypoint_gaussians(value: torch.Tensor, height: int, width: int,
                       variance: float) -> torch.Tensor:
    """value (B, K, 2) -> unnormalised Gaussians exp(-|z - kp|^2 / (2 variance)), (B, K, H, W)."""
    grid = coordinate_grid(height, width, device=value.device, dtype=value.dtype)  # (H, W, 2)
    offsets = grid.view(1, 1, height, width, 2) - value.view(*value.shape[:2], 1, 1, 2)
    return torch.exp(-0.5 * (offsets ** 2).sum(-1) / variance)


def heatmap_differences(source: Keypoints, driving: Keypoints, height: int, width: int,
                        variance: float) -> torch.Tensor:
    """Driving minus source Gaussians, with a zero background map first: (B, K + 1, 1, H, W)."""
    difference = (keypoint_gaussians(driving.value, height, width, variance)
                  - keypoint_gaussians(source.value, height, width, variance))
    background = torch.zeros_like(difference[:, :1])
    return torch.cat([background, difference], dim=1).unsqueeze(2)


def sparse_motions(source: Keypoints, driving: Keypoints, height: int,
                   width: int) -> torch.Tensor:
    """The identity, then each keypoint's first-order motion: (B, K + 1, H, W, 2) of source
    coordinates. Jacobians are used when both keypoint sets have them."""
    batch, count = source.value.shape[:2]
    grid = coordinate_grid(height, width, device=source.value.device, dtype=source.value.dtype)
    identity = grid.view(1, 1, height, width, 2)
    relative = identity - driving.value.view(batch, count, 1, 1, 2)  # z - kp_D, (B, K, H, W, 2)
    if source.jacobian is not None and driving.jacobian is not None:
        jacobian = source.jacobian @ invert_2x2(driving.jacobian)  # (B, K, 2, 2)
        relative = torch.einsum("bkij,bkhwj->bkhwi", jacobian, relative)
    motions = relative + source.value.view(batch, count, 1, 1, 2)
    return torch.cat([identity.expand(batch, 1, height, width, 2), motions], dim=1)


def deform_by_each(image: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
    """image (B, C, H, W), motions (B, M, H, W, 2) -> image warped by each, (B, M, C, H, W)."""
    batch, count, height, width = motions.shape[:4]
    repeated = image.unsqueeze(1).expand(batch, count, *image.shape[1:])
    repeated = repeated.reshape(batch * count, *image.shape[1:])
    deformed = functional.grid_sample(repeated, motions.reshape(batch * count, height, width, 2),
                                      mode="bilinear", padding_mode="zeros", align_corners=True)
    return deformed.view(batch, count, image.shape[1], height, width)


class DenseMotionNetwork(nn.Module):
    """forward(source_image (B, C, H, W), source Keypoints, driving Keypoints) -> DenseMotion."""

    def __init__(self, config: DenseMotionConfig) -> None:
        super().__init__()
        self.config = config
        self.downsample = AntiAliasDownsample(config.channels, config.scale_factor)
        motion_count = config.num_keypoints + 1
        self.hourglass = Hourglass(motion_count * (config.channels + 1), config.block_expansion,
                                   config.num_blocks, config.max_features)
        self.mask_head = nn.Conv2d(self.hourglass.out_channels, motion_count, kernel_size=7,
                                   padding=3)
        self.occlusion_head: nn.Conv2d | None = None
        if config.use_occlusion:
            self.occlusion_head = nn.Conv2d(self.hourglass.out_channels, 1, kernel_size=7,
                                            padding=3)

    def forward(self, source_image: torch.Tensor, source: Keypoints,
                driving: Keypoints) -> DenseMotion:
        if source.value.shape[1] != self.config.num_keypoints:
            raise ValueError(f"dense motion network built for {self.config.num_keypoints} "
                             f"keypoints, given {source.value.shape[1]}")
        image = self.downsample(source_image)  # (B, C, h, w)
        batch, _, height, width = image.shape
        motions = sparse_motions(source, driving, height, width)  # (B, K + 1, h, w, 2)
        deformed = deform_by_each(image, motions)  # (B, K + 1, C, h, w)
        heatmaps = heatmap_differences(source, driving, height, width,
                                       self.config.keypoint_variance)  # (B, K + 1, 1, h, w)
        inputs = torch.cat([heatmaps, deformed], dim=2).view(batch, -1, height, width)
        features = self.hourglass(inputs)
        masks = functional.softmax(self.mask_head(features), dim=1)  # (B, K + 1, h, w)
        flow = (masks.unsqueeze(-1) * motions).sum(dim=1)  # (B, h, w, 2)
        occlusion_map = None
        if self.occlusion_head is not None:
            occlusion_map = torch.sigmoid(self.occlusion_head(features))  # (B, 1, h, w)
        return DenseMotion(flow, occlusion_map, masks, deformed)
