"""The person painted over the target's own background: pix2pixHD plus a mask, composited.

The generator (motionxfer.networks.generator, with `extra_outputs = 1`) paints the person's
colours and a soft person mask; the frame is

    frame = mask * person + (1 - mask) * plate

where the plate is the target's static background (`motionxfer.background.plate`, estimated from
the target video where the person does not cover it). The network no longer spends capacity on
repainting a wall it sees in every frame, and the background stays as sharp as the video.

At inference the mask's contrast may be raised about one half (`mask_gain`, `sharpen_mask`):
where the network is unsure of a new pose it paints the person half transparent, and a firmer
mask shows the person it painted instead of the wall through them (docs/quality.md measures it;
training runs at gain 1, and the checkpoint's [train] `mask_gain` is what inference uses).

The plate is a buffer set with `set_plate`, not a parameter: a checkpoint stores it beside the
weights (`models["background"]`), and it is resized to the frame when the network runs at another
size (the ONNX export checks two sizes). `last_mask` holds the mask of the latest call (training
supervises it); the call signature is the generator's, so every backend runs it unchanged.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional

from motionxfer.networks.generator import Generator, GeneratorConfig


class CompositingGenerator(nn.Module):
    """frame_t = composite(G(stick figure t, stick figure t-1, frame t-1), plate)."""

    extra_outputs = 1  # the mask

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = dataclasses.replace(config, extra_outputs=self.extra_outputs)
        self.generator = Generator(self.config)
        self.register_buffer("plate", torch.zeros(1, config.image_channels, 1, 1),
                             persistent=False)
        self.last_mask: torch.Tensor | None = None  # (B, 1, H, W) in [0, 1]
        self.mask_gain = 1.0  # the mask's contrast in the composite (`sharpen_mask`)

    def set_plate(self, plate: torch.Tensor) -> None:
        """(3, H, W) or (1, 3, H, W) in [-1, 1]: the background the person is painted over."""
        self.plate = plate_buffer(plate, self.plate.device, self.config.image_channels)

    def forward(self, pose: torch.Tensor, previous_pose: torch.Tensor,
                previous_frame: torch.Tensor) -> torch.Tensor:
        painted = self.generator(pose, previous_pose, previous_frame)  # (B, 4, H, W) in [-1, 1]
        person = painted[:, :self.config.image_channels]
        mask = (painted[:, self.config.image_channels:] + 1) * 0.5  # (B, 1, H, W) in [0, 1]
        self.last_mask = mask
        mask = sharpen_mask(mask, self.mask_gain)
        return mask * person + (1 - mask) * self.plate_at(pose.shape[-2:], person.dtype)

    def plate_at(self, size: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        """The plate (1, 3, H, W) resized to the frame's (H, W)."""
        return plate_at_size(self.plate, size, dtype)

    def first_frame_inputs(self, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.generator.first_frame_inputs(pose)


def sharpen_mask(mask: torch.Tensor, gain: float) -> torch.Tensor:
    """A soft mask in [0, 1] with its contrast raised `gain` times about one half:
    clamp(0.5 + gain (mask - 0.5), 0, 1). Gain 1 returns the mask itself."""
    if gain == 1.0:
        return mask
    return ((mask - 0.5) * gain + 0.5).clamp(0.0, 1.0)


def plate_buffer(plate: torch.Tensor, device: torch.device, channels: int) -> torch.Tensor:
    """A plate (3, H, W) or (1, 3, H, W) as the (1, 3, H, W) float32 buffer on `device`."""
    plate = plate.reshape(1, *plate.shape[-3:]).to(device, torch.float32)
    if plate.shape[1] != channels:
        raise ValueError(f"the plate has {plate.shape[1]} channels, the images {channels}")
    return plate


def plate_at_size(plate: torch.Tensor, size: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """A plate buffer (1, 3, h, w) resized to a frame's (H, W), in `dtype`."""
    return functional.interpolate(plate, size=size, mode="bilinear",
                                  align_corners=False).to(dtype)
