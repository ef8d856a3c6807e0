"""Discriminators: pix2pixHD's multi-scale PatchGAN and Everybody Dance Now's temporal one.

`PatchDiscriminator` (one scale): a 4x4 stride-2 conv with LeakyReLU(0.2), `n_layers - 1` more
stride-2 convs with instance norm (channels doubling up to 512), one stride-1 conv, then a 1-channel
stride-1 conv: a map of real/fake scores, each seeing a patch of the input. It returns every
layer's output, so the generator can be trained to match the discriminator's intermediate features
(pix2pixHD's feature-matching loss).

`MultiScaleDiscriminator`: `n_scales` patch discriminators, the k-th on the input average-pooled
k times by 2, so that one judges fine texture and another the whole figure.

The spatial discriminator sees concat(stick figure, image); the temporal discriminator
(`TemporalDiscriminator`, EDN's D_T) sees two consecutive pairs: concat(stick figure t-1,
stick figure t, image t-1, image t), and learns whether the motion between them is real.

Spectral normalisation of every conv (Miyato et al. 2018) is optional (`spectral_norm = true`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional
from torch.nn.utils.parametrizations import spectral_norm as apply_spectral_norm

# One scale's outputs: the features of each layer, the last being the (B, 1, h, w) score map.
ScaleOutputs = list[torch.Tensor]


@dataclass(frozen=True)
class DiscriminatorConfig:
    input_channels: int = 6  # stick figure + image (x 2 for the temporal discriminator)
    ndf: int = 64
    n_layers: int = 3
    n_scales: int = 2
    spectral_norm: bool = False
    max_channels: int = 512

    def __post_init__(self) -> None:
        if min(self.input_channels, self.ndf, self.n_layers, self.n_scales) < 1:
            raise ValueError("discriminator sizes must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PatchDiscriminator(nn.Module):
    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        kernel, padding = 4, math.ceil((4 - 1) / 2)

        def conv(in_channels: int, out_channels: int, stride: int) -> nn.Module:
            layer = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding)
            return apply_spectral_norm(layer) if config.spectral_norm else layer

        channels = config.ndf
        blocks: list[nn.Module] = [
            nn.Sequential(conv(config.input_channels, channels, 2), nn.LeakyReLU(0.2, inplace=True))
        ]
        for layer in range(1, config.n_layers + 1):
            previous, channels = channels, min(channels * 2, config.max_channels)
            stride = 2 if layer < config.n_layers else 1
            blocks.append(
                nn.Sequential(
                    conv(previous, channels, stride),
                    nn.InstanceNorm2d(channels),
                    nn.LeakyReLU(0.2, inplace=True),
                )
            )
        blocks.append(conv(channels, 1, 1))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, inputs: torch.Tensor) -> ScaleOutputs:
        outputs = []
        features = inputs
        for block in self.blocks:
            features = block(features)
            outputs.append(features)
        return outputs


def downsample(images: torch.Tensor) -> torch.Tensor:
    """pix2pixHD's 2x reduction between discriminator scales."""
    return functional.avg_pool2d(images, 3, stride=2, padding=1, count_include_pad=False)


class MultiScaleDiscriminator(nn.Module):
    """Returns one list of layer outputs per scale, the finest scale first."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        self.scales = nn.ModuleList(PatchDiscriminator(config) for _ in range(config.n_scales))

    def forward(self, inputs: torch.Tensor) -> list[ScaleOutputs]:
        outputs = []
        for index, discriminator in enumerate(self.scales):
            if index:
                inputs = downsample(inputs)
            outputs.append(discriminator(inputs))
        return outputs


class TemporalDiscriminator(nn.Module):
    """EDN's D_T: judges two consecutive (stick figure, image) pairs together."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        self.discriminator = MultiScaleDiscriminator(config)

    def forward(self, previous_pose: torch.Tensor, pose: torch.Tensor,
                previous_image: torch.Tensor, image: torch.Tensor) -> list[ScaleOutputs]:
        return self.discriminator(torch.cat([previous_pose, pose, previous_image, image], dim=1))
