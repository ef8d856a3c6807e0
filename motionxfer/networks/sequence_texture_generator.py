"""The sequence generator that starts from the target's real texture (REMOT's texture alignment).

The sequence generator (motionxfer.networks.sequence_generator) makes a window of N frames
jointly; this one reads, in every frame's pose input, the re-posed texture's RGB and alpha a as
the last four channels (`conditioning.Conditioning.texture`) and paints, per frame, colours and
the two corrections of the texture generator (motionxfer.networks.texture_generator): m for the
person mask, b for the blend. Each frame is composed by the texture generator's formula
(`texture_composite`):

    blend  = a * sigmoid(GAIN * b + 3)
    person = blend * texture + (1 - blend) * painted
    mask   = sigmoid(GAIN * (m + a - 0.5))
    frame  = mask * person + (1 - mask) * plate        (no plate: frame = person)

The output layer's weights for m and b start at zero, so a new network shows each frame's
re-posed texture over the plate, as a new texture generator does, and the temporal mixing at the
bottleneck learns from there what changes smoothly from frame to frame.

Call: frames (B, N, 3, H, W) = network(poses (B, N, C, H, W)); `last_mask` (B, N, 1, H, W).
"""

from __future__ import annotations

import torch

from motionxfer.networks.generator import GeneratorConfig
from motionxfer.networks.sequence_generator import SequenceGenerator
from motionxfer.networks.texture_generator import (
    check_texture_channels,
    texture_composite,
    zero_corrections,
)


class SequenceTextureGenerator(SequenceGenerator):
    """frames (B, N, 3, H, W) = composite(blend(G(pose and texture inputs (B, N, C, H, W)),
    texture), plate)."""

    extra_outputs = 2  # the mask and blend corrections

    def __init__(self, config: GeneratorConfig) -> None:
        check_texture_channels(config)
        super().__init__(config)
        # the 7x7 conv before tanh: start from the re-posed texture (the corrections m, b = 0)
        zero_corrections(self.output[1], config.image_channels)

    def compose(self, painted: torch.Tensor, poses: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        plate = self.plate_at(poses.shape[-2:], painted.dtype) if self.composites else None
        return texture_composite(painted, poses, self.config.image_channels, plate)
