"""The target's generator: pix2pixHD's global generator, with its optional local enhancer.

Input at frame t: the stick figure of frame t, the stick figure of frame t-1 and the frame the
generator produced for t-1 (zeros at the first frame, where the previous stick figure is the
current one). Output: the target's frame t, RGB in [-1, 1]. This temporal conditioning is
Everybody Dance Now's; the architecture is pix2pixHD's (Wang et al. 2018):

    global generator   reflection pad + 7x7 conv, `n_downsample` stride-2 3x3 convs (channels
                       doubling up to `max_channels`), `n_blocks` residual blocks, as many 2x
                       upsamplings, reflection pad + 7x7 conv + tanh
    local enhancer     for twice the resolution: the global generator (at 2 x ngf) runs on the
                       input downsampled 2x; its last features are added to a shallow full-size
                       encoder's, followed by `n_local_blocks` residual blocks and one upsampling

Upsampling is nearest-neighbour 2x followed by a 3x3 convolution (`upsample = "resize_conv"`,
the default) rather than pix2pixHD's transposed convolution: a stride-2 transposed 3x3 kernel
overlaps unevenly and leaves the checkerboard artefacts that Odena et al. ("Deconvolution and
Checkerboard Artifacts", Distill 2016) describe, which show in flat areas (skin, walls) and flicker
as the person moves. `upsample = "transposed"` gives pix2pixHD's layer for comparison.

Normalisation is instance norm without affine parameters, as pix2pixHD. Height and width of the
input must be multiples of `GeneratorConfig.size_multiple`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional


@dataclass(frozen=True)
class GeneratorConfig:
    """Every argument of the generator's architecture (a checkpoint stores it as a dict)."""

    pose_channels: int = 3  # channels of one stick figure (3: RGB drawing; C: label maps)
    image_channels: int = 3
    ngf: int = 64  # channels of the first layer (of the local enhancer when there is one)
    n_downsample: int = 4
    n_blocks: int = 9
    max_channels: int = 1024
    upsample: str = "resize_conv"  # "resize_conv" or "transposed"
    local_enhancer: bool = False
    n_local_blocks: int = 3
    extra_outputs: int = 0  # channels painted beside the image (1: a person mask to composite)

    def __post_init__(self) -> None:
        if self.upsample not in ("resize_conv", "transposed"):
            raise ValueError(
                f"upsample must be 'resize_conv' or 'transposed', not {self.upsample!r}")
        for name in ("pose_channels", "image_channels", "ngf", "max_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if min(self.n_downsample, self.n_blocks, self.n_local_blocks, self.extra_outputs) < 0:
            raise ValueError("n_downsample, n_blocks, n_local_blocks and extra_outputs cannot be "
                             "negative")

    @property
    def input_channels(self) -> int:
        """Stick figure of t, stick figure of t-1, previous generated frame."""
        return 2 * self.pose_channels + self.image_channels

    @property
    def output_channels(self) -> int:
        """The image, then the `extra_outputs` channels."""
        return self.image_channels + self.extra_outputs

    @property
    def size_multiple(self) -> int:
        """Frame height and width must be multiples of this."""
        return 2 ** (self.n_downsample + (1 if self.local_enhancer else 0))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ResidualBlock(nn.Module):
    """x + (reflection pad, 3x3 conv, instance norm, ReLU, reflection pad, 3x3 conv, norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            nn.InstanceNorm2d(channels),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.body(features)


def upsampling_layer(in_channels: int, out_channels: int, mode: str) -> list[nn.Module]:
    """2x upsampling, instance norm and ReLU."""
    if mode == "transposed":
        layer: list[nn.Module] = [
            nn.ConvTranspose2d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1)
        ]
    else:
        layer = [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.ReflectionPad2d(1),
            nn.Conv2d(in_channels, out_channels, 3),
        ]
    return layer + [nn.InstanceNorm2d(out_channels), nn.ReLU(inplace=True)]


def downsampling_layer(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
        nn.InstanceNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


def output_layer(channels: int, output_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(channels, output_channels, 7),
                         nn.Tanh())


class GlobalGenerator(nn.Module):
    """pix2pixHD's global generator; `features(x)` stops before the output layer."""

    def __init__(self, input_channels: int, output_channels: int, ngf: int, n_downsample: int,
                 n_blocks: int, max_channels: int, upsample: str) -> None:
        super().__init__()
        widths = [min(ngf * 2**level, max_channels) for level in range(n_downsample + 1)]
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_channels, widths[0], 7),
            nn.InstanceNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        ]
        for level in range(n_downsample):
            layers += downsampling_layer(widths[level], widths[level + 1])
        layers += [ResidualBlock(widths[-1]) for _ in range(n_blocks)]
        for level in reversed(range(n_downsample)):
            layers += upsampling_layer(widths[level + 1], widths[level], upsample)
        self.body = nn.Sequential(*layers)
        self.output = output_layer(widths[0], output_channels)
        self.feature_channels = widths[0]

    def features(self, inputs: torch.Tensor) -> torch.Tensor:  # (B, ngf, H, W)
        return self.body(inputs)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W)
        return self.output(self.body(inputs))


class LocalEnhancer(nn.Module):
    """pix2pixHD's local enhancer around a global generator that runs at half resolution."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        ngf = config.ngf
        self.global_generator = GlobalGenerator(
            config.input_channels, config.output_channels, ngf * 2, config.n_downsample,
            config.n_blocks, config.max_channels, config.upsample,
        )
        self.encoder = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(config.input_channels, ngf, 7),
            nn.InstanceNorm2d(ngf),
            nn.ReLU(inplace=True),
            *downsampling_layer(ngf, ngf * 2),
        )
        self.decoder = nn.Sequential(
            *[ResidualBlock(ngf * 2) for _ in range(config.n_local_blocks)],
            *upsampling_layer(ngf * 2, ngf, config.upsample),
        )
        self.output = output_layer(ngf, config.output_channels)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        half = functional.avg_pool2d(inputs, 3, stride=2, padding=1, count_include_pad=False)
        coarse = self.global_generator.features(half)  # (B, 2 ngf, H/2, W/2)
        return self.output(self.decoder(self.encoder(inputs) + coarse))


class Generator(nn.Module):
    """frame_t = G(stick figure t, stick figure t-1, generated frame t-1), all (B, C, H, W)."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        if config.local_enhancer:
            self.network: nn.Module = LocalEnhancer(config)
        else:
            self.network = GlobalGenerator(
                config.input_channels, config.output_channels, config.ngf, config.n_downsample,
                config.n_blocks, config.max_channels, config.upsample,
            )

    def forward(self, pose: torch.Tensor, previous_pose: torch.Tensor,
                previous_frame: torch.Tensor) -> torch.Tensor:
        height, width = pose.shape[-2:]
        multiple = self.config.size_multiple
        if height % multiple or width % multiple:
            extra = " + 1 for the local enhancer" if self.config.local_enhancer else ""
            raise ValueError(
                f"frame size {width}x{height} is not a multiple of {multiple} "
                f"(2 ** n_downsample{extra})"
            )
        return self.network(torch.cat([pose, previous_pose, previous_frame], dim=1))

    def first_frame_inputs(self, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(previous_pose, previous_frame) for the first frame: the pose itself and zeros."""
        batch, _, height, width = pose.shape
        zeros = pose.new_zeros((batch, self.config.image_channels, height, width))
        return pose, zeros
