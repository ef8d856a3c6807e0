"""REMOT's layout generator: the target's six-class parsing map predicted from the pose input.

A small pix2pixHD global generator: a 7x7 conv, `n_downsample` stride-2 convs (channels doubling
up to `max_channels`), `n_blocks` residual blocks, as many resize-convs back up (each to the size
of the matching encoder level, so any frame size works), and a 7x7 conv to one logit per class
(REMOT's background, head, top, bottom, shoes, skin; `parsing.labels`). It reads the pose channels
only (the stick figure or label maps), never the frame: at transfer time it sees what the
generator sees. Training (`training.layout`) pairs it with a one-scale patch discriminator on
(pose, class probabilities) of `ndf` and `n_layers`.

`LayoutPredictor` runs a trained network on one frame's pose input, (H, W, C) uint8 ->
(H, W, 6) uint8 probabilities (softmax x 255): the six layout channels that
`conditioning.Conditioning` puts after the pose channels.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from motionxfer.io.images import images_to_array

LAYOUT_CLASSES = 6  # parsing.labels.NUM_CLASSES (networks do not import the parsing wing)


@dataclass(frozen=True)
class LayoutGeneratorConfig:
    """The layout generator's architecture and its discriminator's (a checkpoint stores it)."""

    pose_channels: int = 3  # set from the conditioning (its pose channels), never in a preset
    classes: int = LAYOUT_CLASSES
    ngf: int = 32
    n_downsample: int = 3
    n_blocks: int = 3
    max_channels: int = 256
    ndf: int = 32  # the patch discriminator on (pose, probabilities)
    n_layers: int = 3

    def __post_init__(self) -> None:
        if min(self.pose_channels, self.classes, self.ngf, self.max_channels, self.ndf,
               self.n_layers) < 1:
            raise ValueError("layout generator sizes must be at least 1")
        if min(self.n_downsample, self.n_blocks) < 0:
            raise ValueError("n_downsample and n_blocks cannot be negative")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LayoutGenerator(nn.Module):
    """pose (B, pose_channels, H, W) in [-1, 1] -> class logits (B, classes, H, W)."""

    def __init__(self, config: LayoutGeneratorConfig) -> None:
        super().__init__()
        self.config = config

        def width(level: int) -> int:
            return min(config.ngf * 2 ** level, config.max_channels)

        self.stem = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(config.pose_channels,
                                                                   width(0), 7),
                                  nn.InstanceNorm2d(width(0)), nn.ReLU(True))
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width(level), width(level + 1), 3, stride=2, padding=1),
                          nn.InstanceNorm2d(width(level + 1)), nn.ReLU(True))
            for level in range(config.n_downsample))
        self.blocks = nn.Sequential(*(_ResidualBlock(width(config.n_downsample))
                                      for _ in range(config.n_blocks)))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width(level + 1), width(level), 3, padding=1),
                          nn.InstanceNorm2d(width(level)), nn.ReLU(True))
            for level in reversed(range(config.n_downsample)))
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(width(0), config.classes, 7))

    def forward(self, pose: torch.Tensor) -> torch.Tensor:
        x = self.stem(pose)
        sizes = []
        for layer in self.down:
            sizes.append(x.shape[-2:])
            x = layer(x)
        x = self.blocks(x)
        for layer, size in zip(self.up, reversed(sizes), strict=True):
            x = layer(functional.interpolate(x, size=size, mode="nearest"))
        return self.head(x)


def probabilities_to_uint8(probabilities: torch.Tensor) -> np.ndarray:
    """(B, classes, H, W) in [0, 1] -> (B, H, W, classes) uint8 (x 255, rounded)."""
    scaled = (probabilities.float().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


class LayoutPredictor:
    """A trained layout generator on `device`, in eval mode, as a function of one frame's pose
    input: (H, W, C) uint8 -> (H, W, classes) uint8 probabilities. Thread-safe (training's
    batch threads and transfer's render threads share it)."""

    def __init__(self, network: LayoutGenerator, device: torch.device) -> None:
        self.network = network
        self.device = device
        self._lock = threading.Lock()

    @torch.inference_mode()
    def __call__(self, pose: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(images_to_array(pose[None])).to(self.device)
        with self._lock:
            was_training = self.network.training
            self.network.eval()
            logits = self.network(inputs).float()
            self.network.train(was_training)
        return probabilities_to_uint8(torch.softmax(logits, dim=1))[0]
