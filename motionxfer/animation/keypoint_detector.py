"""The unsupervised keypoint detector (FOMM, Sec. 3.1): image -> K keypoints and their Jacobians.

An hourglass on the (optionally downscaled) image, then a 7x7 conv to K heatmaps. Each heatmap is
a softmax over the pixels (logits divided by `temperature`); the keypoint is its expected
coordinate (soft-argmax), in [-1, 1]. With `estimate_jacobian`, a second 7x7 conv predicts four
maps per keypoint, averaged under that keypoint's heatmap into a 2x2 matrix: the Jacobian of the
motion near the keypoint (zero weights and an identity bias at initialisation, so training starts
from pure translations). No labels: the equivariance losses and the reconstruction teach it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional

from motionxfer.animation.geometry import coordinate_grid
from motionxfer.animation.hourglass import AntiAliasDownsample, Hourglass


class Keypoints(NamedTuple):
    """Keypoints of a batch of images: positions in [-1, 1] as (x, y), and local Jacobians."""

    value: torch.Tensor  # (B, K, 2)
    jacobian: torch.Tensor | None = None  # (B, K, 2, 2), None without estimate_jacobian

    def detach(self) -> Keypoints:
        return Keypoints(self.value.detach(),
                         None if self.jacobian is None else self.jacobian.detach())


@dataclass(frozen=True)
class KeypointDetectorConfig:
    """The keypoint detector's architecture (a checkpoint stores it as a dict)."""

    num_keypoints: int = 10
    channels: int = 3  # of the input image
    block_expansion: int = 32  # channels of the hourglass's first block
    num_blocks: int = 5  # hourglass depth: the (downscaled) input must be a multiple of 2 ** this
    max_features: int = 1024
    scale_factor: float = 0.25  # the detector sees the image downscaled by this (1 / an integer)
    estimate_jacobian: bool = True
    temperature: float = 0.1  # softmax temperature of the heatmaps

    def __post_init__(self) -> None:
        for name in ("num_keypoints", "channels", "block_expansion", "num_blocks", "max_features"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, not {self.temperature}")
        if not 0 < self.scale_factor <= 1:
            raise ValueError(f"scale_factor must be in (0, 1], not {self.scale_factor}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def soft_argmax(heatmap: torch.Tensor) -> torch.Tensor:
    """heatmap (B, K, H, W), each map summing to 1 -> its expected (x, y) in [-1, 1], (B, K, 2)."""
    grid = coordinate_grid(*heatmap.shape[2:], device=heatmap.device, dtype=heatmap.dtype)
    return (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3))


def spatial_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits (B, K, H, W) -> one probability map per keypoint (softmax over H x W)."""
    batch, count, height, width = logits.shape
    flat = functional.softmax(logits.reshape(batch, count, -1) / temperature, dim=2)
    return flat.view(batch, count, height, width)


class KeypointDetector(nn.Module):
    """forward(image (B, C, H, W) in [0, 1]) -> Keypoints: value (B, K, 2), jacobian (B, K, 2, 2).

    `heatmaps(image)` gives the (B, K, h, w) probability maps as well.
    """

    def __init__(self, config: KeypointDetectorConfig) -> None:
        super().__init__()
        self.config = config
        self.downsample = AntiAliasDownsample(config.channels, config.scale_factor)
        self.predictor = Hourglass(config.channels, config.block_expansion, config.num_blocks,
                                   config.max_features)
        self.keypoint_head = nn.Conv2d(self.predictor.out_channels, config.num_keypoints,
                                       kernel_size=7, padding=3)
        self.jacobian_head: nn.Conv2d | None = None
        if config.estimate_jacobian:
            self.jacobian_head = nn.Conv2d(self.predictor.out_channels, 4 * config.num_keypoints,
                                           kernel_size=7, padding=3)
            nn.init.zeros_(self.jacobian_head.weight)
            with torch.no_grad():
                self.jacobian_head.bias.copy_(
                    torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(config.num_keypoints))

    def heatmaps(self, image: torch.Tensor) -> tuple[Keypoints, torch.Tensor]:
        features = self.predictor(self.downsample(image))  # (B, F, h, w)
        heatmap = spatial_softmax(self.keypoint_head(features), self.config.temperature)
        value = soft_argmax(heatmap)  # (B, K, 2)
        jacobian = None
        if self.jacobian_head is not None:
            batch, count, height, width = heatmap.shape
            maps = self.jacobian_head(features).view(batch, count, 4, height, width)
            jacobian = (heatmap.unsqueeze(2) * maps).sum(dim=(3, 4)).view(batch, count, 2, 2)
        return Keypoints(value, jacobian), heatmap

    def forward(self, image: torch.Tensor) -> Keypoints:
        return self.heatmaps(image)[0]
