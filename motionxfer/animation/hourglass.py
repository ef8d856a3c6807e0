"""The hourglass encoder-decoder shared by the keypoint detector and the dense motion network.

Encoder: `num_blocks` down blocks (3x3 conv, batch norm, ReLU, 2x2 average pooling), channels
`block_expansion * 2 ** (i + 1)` capped at `max_features`. Decoder: as many up blocks (2x
nearest-neighbour upsampling, 3x3 conv, batch norm, ReLU), each followed by concatenation with the
encoder's feature map of the same size (a U-Net skip). The output keeps the input's size and has
`block_expansion + in_features` channels (the last skip is the input itself), as FOMM's.

Also here, because three files use it: `AntiAliasDownsample` (Gaussian blur, then subsampling)
for the networks' downscaled inputs and the perceptual loss's image pyramid.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class AntiAliasDownsample(nn.Module):
    """Downscale by `scale` (0 < scale <= 1, 1 / scale an integer): Gaussian blur with
    sigma = (1 / scale - 1) / 2 (FOMM's AntiAliasInterpolation2d), then bilinear resampling to
    (H // step, W // step) with the corner pixels kept at the corners.

    FOMM keeps every step-th pixel instead, which shifts the small image against the [-1, 1]
    coordinates (its last pixel is the original's H - step, not H - 1: at 256 -> 64 a keypoint
    near the border lands 3 pixels off). Resampling corner to corner keeps one coordinate frame
    for every resolution, the one `grid_sample(..., align_corners=True)` reads."""

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], not {scale}")
        step = round(1 / scale)
        if abs(step * scale - 1) > 1e-6:
            raise ValueError(f"1 / scale must be an integer, not {1 / scale}")
        self.step = step
        self.channels = channels
        sigma = max((step - 1) / 2, 1e-6)
        self.radius = round(sigma * 4) if step > 1 else 0
        positions = torch.arange(-self.radius, self.radius + 1, dtype=torch.float32)
        kernel_1d = torch.exp(-positions ** 2 / (2 * sigma ** 2))
        kernel_1d = kernel_1d / kernel_1d.sum()
        kernel = (kernel_1d[:, None] * kernel_1d[None, :]).expand(channels, 1, -1, -1)
        self.register_buffer("kernel", kernel.contiguous(), persistent=False)  # (C, 1, k, k)

    def forward(self, image: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H/s, W/s)
        if self.step == 1:
            return image
        height, width = image.shape[2:]
        padded = functional.pad(image, [self.radius] * 4, mode="replicate")
        blurred = functional.conv2d(padded, self.kernel.to(image.dtype), groups=self.channels)
        size = (max(1, height // self.step), max(1, width // self.step))
        return functional.interpolate(blurred, size=size, mode="bilinear", align_corners=True)


class DownBlock(nn.Module):
    """3x3 conv, batch norm, ReLU, 2x2 average pooling: halves height and width."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.normalization = nn.BatchNorm2d(out_channels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C', H/2, W/2)
        features = functional.relu(self.normalization(self.convolution(features)))
        return functional.avg_pool2d(features, kernel_size=2)


class UpBlock(nn.Module):
    """2x nearest-neighbour upsampling, 3x3 conv, batch norm, ReLU: doubles height and width."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.convolution = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.normalization = nn.BatchNorm2d(out_channels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C', 2H, 2W)
        features = functional.interpolate(features, scale_factor=2, mode="nearest")
        return functional.relu(self.normalization(self.convolution(features)))


class Hourglass(nn.Module):
    """forward(x (B, in_channels, H, W)) -> (B, out_channels, H, W); H and W multiples of
    2 ** num_blocks."""

    def __init__(self, in_channels: int, block_expansion: int, num_blocks: int,
                 max_features: int) -> None:
        super().__init__()
        if num_blocks < 1 or block_expansion < 1 or max_features < 1:
            raise ValueError("num_blocks, block_expansion and max_features must be at least 1")

        def width(level: int) -> int:
            return min(max_features, block_expansion * 2 ** level)

        self.num_blocks = num_blocks
        self.down_blocks = nn.ModuleList(
            DownBlock(in_channels if index == 0 else width(index), width(index + 1))
            for index in range(num_blocks))
        up_blocks = []
        for index in reversed(range(num_blocks)):
            # the deepest block sees the encoder's output alone, the others a skip concatenation
            block_in = (1 if index == num_blocks - 1 else 2) * width(index + 1)
            up_blocks.append(UpBlock(block_in, width(index)))
        self.up_blocks = nn.ModuleList(up_blocks)
        self.out_channels = block_expansion + in_channels

    @property
    def size_multiple(self) -> int:
        return 2 ** self.num_blocks

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        height, width = features.shape[2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(f"hourglass input {height}x{width} is not a multiple of "
                             f"{self.size_multiple}")
        skips = [features]
        for block in self.down_blocks:
            skips.append(block(skips[-1]))
        output = skips.pop()
        for block in self.up_blocks:
            output = torch.cat([block(output), skips.pop()], dim=1)
        return output
