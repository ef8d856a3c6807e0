"""The occlusion-aware generator (FOMM, Sec. 3.3): the source image and a dense motion -> the
driving frame.

Encoder: a 7x7 conv, then `num_down_blocks` down blocks (3x3 conv, batch norm, ReLU, 2x2 average
pooling). The encoded source features are warped by the dense flow (bilinear `grid_sample`, the
flow resized to the features) and multiplied by the occlusion map (resized likewise), so that
regions the source does not show are left for the decoder to inpaint. Then
`num_bottleneck_blocks` residual blocks, as many up blocks as down blocks, a 7x7 conv and a
sigmoid: RGB in [0, 1].

Without an occlusion map in the dense motion (`DenseMotionConfig.use_occlusion = False`, the
paper's ablation) the warped features pass unmasked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from motionxfer.animation.dense_motion import DenseMotion
from motionxfer.animation.geometry import warp
from motionxfer.animation.hourglass import DownBlock, UpBlock


@dataclass(frozen=True)
class OcclusionAwareGeneratorConfig:
    """The generator's architecture (a checkpoint stores it as a dict)."""

    channels: int = 3  # of the image
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6

    def __post_init__(self) -> None:
        for name in ("channels", "block_expansion", "max_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.num_down_blocks < 0 or self.num_bottleneck_blocks < 0:
            raise ValueError("num_down_blocks and num_bottleneck_blocks cannot be negative")

    @property
    def size_multiple(self) -> int:
        """Image height and width must be multiples of this."""
        return 2 ** self.num_down_blocks

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ResidualBlock(nn.Module):
    """x + conv(ReLU(norm(conv(ReLU(norm(x)))))), 3x3 convs (pre-activation, as FOMM's)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first_normalization = nn.BatchNorm2d(channels)
        self.first_convolution = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.second_normalization = nn.BatchNorm2d(channels)
        self.second_convolution = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        output = self.first_convolution(functional.relu(self.first_normalization(features)))
        output = self.second_convolution(functional.relu(self.second_normalization(output)))
        return features + output


class OcclusionAwareGenerator(nn.Module):
    """forward(source_image (B, C, H, W) in [0, 1], motion: DenseMotion) -> dict of tensors:

        prediction       (B, C, H, W) in [0, 1]: the driving frame
        deformed         (B, C, H, W): the source image warped by the flow (for inspection)
        flow             (B, h, w, 2)    masks  (B, K + 1, h, w)
        sparse_deformed  (B, K + 1, C, h, w)
        occlusion_map    (B, 1, h, w), only when the dense motion has one
    """

    def __init__(self, config: OcclusionAwareGeneratorConfig) -> None:
        super().__init__()
        self.config = config

        def width(level: int) -> int:
            return min(config.max_features, config.block_expansion * 2 ** level)

        levels = config.num_down_blocks
        self.first = nn.Sequential(
            nn.Conv2d(config.channels, config.block_expansion, kernel_size=7, padding=3),
            nn.BatchNorm2d(config.block_expansion), nn.ReLU())
        self.down_blocks = nn.ModuleList(DownBlock(width(level), width(level + 1))
                                         for level in range(levels))
        self.bottleneck = nn.Sequential(*(ResidualBlock(width(levels))
                                          for _ in range(config.num_bottleneck_blocks)))
        self.up_blocks = nn.ModuleList(UpBlock(width(level + 1), width(level))
                                       for level in reversed(range(levels)))
        self.final = nn.Conv2d(config.block_expansion, config.channels, kernel_size=7, padding=3)

    def forward(self, source_image: torch.Tensor, motion: DenseMotion) -> dict[str, torch.Tensor]:
        height, width = source_image.shape[2:]
        multiple = self.config.size_multiple
        if height % multiple or width % multiple:
            raise ValueError(f"generator input {height}x{width} is not a multiple of {multiple}")
        features = self.first(source_image)  # (B, E, H, W)
        for block in self.down_blocks:
            features = block(features)  # (B, F, H / 2 ** n, W / 2 ** n) at the end
        features = warp(features, motion.flow)
        outputs = {"flow": motion.flow, "masks": motion.masks,
                   "sparse_deformed": motion.sparse_deformed}
        if motion.occlusion_map is not None:
            occlusion = motion.occlusion_map
            if occlusion.shape[2:] != features.shape[2:]:
                occlusion = functional.interpolate(occlusion, size=features.shape[2:],
                                                   mode="bilinear", align_corners=True)
            features = features * occlusion
            outputs["occlusion_map"] = motion.occlusion_map
        features = self.bottleneck(features)
        for block in self.up_blocks:
            features = block(features)
        outputs["prediction"] = torch.sigmoid(self.final(features))  # (B, C, H, W)
        outputs["deformed"] = warp(source_image, motion.flow)
        return outputs
