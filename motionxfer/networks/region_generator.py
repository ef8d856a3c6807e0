"""REMOT's region generation (RGN) and whole composition (WCN) on the texture generator.

The pose input must hold both the layout and the texture (`conditioning.Conditioning`): the pose
channels, then the six layout probabilities (background, head, top, bottom, shoes, limbs; x 255,
read as [-1, 1]), then the re-posed texture's RGB and alpha, always the last four.

Region generation. One small pix2pixHD global generator (`GlobalGenerator`, its sizes derived from
the generator's config: `region_sizes`) is shared by the five body regions k: it runs on the
batch of B x 5 region inputs at once, each

    pose channels, code_k (5 channels: the class-k probability m_k in channel k, 0 in the
    others), texture RGB * m_k, alpha * m_k

and paints that region's colours c_k and a blend correction b_k; as the texture generator's
person, region_k = blend_k * texture + (1 - blend_k) * c_k with blend_k = a * sigmoid(GAIN b_k +
3). The class code is carried by the mask itself because a constant one-hot channel would not
survive the first instance norm (it subtracts every channel's spatial mean). The coarse person is

    coarse = sum_k m_k * region_k / (sum_k m_k + eps)      (the body classes' probabilities)

Whole composition. The texture generator's network reads the pose input, the previous pose and
frame as always, plus the coarse person (3 more input channels, appended after the previous
frame), and paints the colours and the m, b corrections that `TextureGenerator.forward` blends
with the texture and composites over the plate. Its face and part discriminators, face refiner
and every loss see this final frame, as the texture generator's.

Start: the output layers' weights for the corrections b_k start at zero (each region shows the
re-posed texture where there is one), and the whole network's weights for the coarse person start
at zero: a new region generator makes exactly the frame of a new texture generator of the same
seed (the re-posed texture over the plate; a net starting from noise measured far worse here),
and learns to use the regions from there. Training supervises each region on its own pixels
(`training.losses.region_loss`, weight `region`), through `last_regions` (B, 5, 3, H, W) and
`last_region_weights` (B, 5, 1, H, W), the latest call's; `last_coarse` (B, 3, H, W) is the
coarse person. The call signature is the generator's: every backend and the ONNX export run it
unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from motionxfer.networks.generator import GeneratorConfig, GlobalGenerator, LocalEnhancer
from motionxfer.networks.layout_generator import LAYOUT_CLASSES
from motionxfer.networks.texture_generator import (
    TEXTURE_CHANNELS,
    TextureGenerator,
    texture_blend,
    zero_corrections,
)

REGIONS = LAYOUT_CLASSES - 1  # the body classes: every layout class but the background (0)
COARSE_CHANNELS = 3  # the coarse person's RGB, read by the whole composition
EPSILON = 1e-3  # of the coarse person's normalisation where no body class is likely


def region_sizes(config: GeneratorConfig) -> dict[str, int]:
    """The region network's ngf, n_downsample and n_blocks: a quarter of the generator's width
    (at least 8), at most two downsamplings and two residual blocks (it runs five times)."""
    return {"ngf": max(8, config.ngf // 4), "n_downsample": min(2, config.n_downsample),
            "n_blocks": min(2, config.n_blocks)}


def widen_input(conv: nn.Conv2d, extra: int) -> nn.Conv2d:
    """`conv` reading `extra` more input channels after its own, their weights 0."""
    wider = nn.Conv2d(conv.in_channels + extra, conv.out_channels, conv.kernel_size,
                      conv.stride, conv.padding, bias=conv.bias is not None)
    with torch.no_grad():
        wider.weight.zero_()
        wider.weight[:, :conv.in_channels] = conv.weight
        if conv.bias is not None and wider.bias is not None:
            wider.bias.copy_(conv.bias)
    return wider


class RegionGenerator(TextureGenerator):
    """frame_t = composite(blend(WCN(pose t, t-1, frame t-1, coarse person t), texture t), plate),
    coarse person t = the layout-weighted sum of RGN's five regions."""

    def __init__(self, config: GeneratorConfig) -> None:
        extra = LAYOUT_CLASSES + TEXTURE_CHANNELS
        if config.pose_channels <= extra:
            raise ValueError(f"the region generator reads the pose, the {LAYOUT_CLASSES} layout "
                             f"and the {TEXTURE_CHANNELS} texture channels: more than {extra} "
                             f"channels, got {config.pose_channels}")
        super().__init__(config)
        self.body_channels = config.pose_channels - extra  # the pose drawing's channels
        network = self.generator.network  # the whole composition reads the coarse person too
        if isinstance(network, LocalEnhancer):
            network.encoder[1] = widen_input(network.encoder[1], COARSE_CHANNELS)
            network = network.global_generator
        assert isinstance(network, GlobalGenerator)
        network.body[1] = widen_input(network.body[1], COARSE_CHANNELS)

        sizes = region_sizes(config)
        self.regions = GlobalGenerator(
            self.body_channels + REGIONS + TEXTURE_CHANNELS, config.image_channels + 1,
            sizes["ngf"], sizes["n_downsample"], sizes["n_blocks"], config.max_channels,
            config.upsample)
        # the 7x7 conv before tanh: each region starts as the re-posed texture (its b_k = 0)
        zero_corrections(self.regions.output[1], config.image_channels)
        self.register_buffer("codes", torch.eye(REGIONS).reshape(1, REGIONS, REGIONS, 1, 1),
                             persistent=False)
        self.last_regions: torch.Tensor | None = None  # (B, 5, 3, H, W) in [-1, 1]
        self.last_region_weights: torch.Tensor | None = None  # (B, 5, 1, H, W) in [0, 1]
        self.last_coarse: torch.Tensor | None = None  # (B, 3, H, W) in [-1, 1]

    def paint_regions(self, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RGN on the pose input (B, C, H, W): the regions' colours (B, 5, 3, H, W) and their
        layout probabilities (B, 5, 1, H, W)."""
        channels = self.config.image_channels
        height, width = pose.shape[-2:]
        layout = (pose[:, self.body_channels:self.body_channels + LAYOUT_CLASSES] + 1) * 0.5
        masks = layout[:, 1:].unsqueeze(2)  # (B, 5, 1, H, W): the body classes
        texture = pose[:, -TEXTURE_CHANNELS:-1].unsqueeze(1)  # (B, 1, 3, H, W)
        alpha = ((pose[:, -1:] + 1) * 0.5).unsqueeze(1)  # (B, 1, 1, H, W)
        drawing = pose[:, :self.body_channels].unsqueeze(1).expand(-1, REGIONS, -1, -1, -1)
        inputs = torch.cat([drawing, masks * self.codes.to(pose.dtype), texture * masks,
                            alpha * masks], dim=2)  # (B, 5, P + 5 + 4, H, W)
        painted = self.regions(inputs.reshape(-1, inputs.shape[2], height, width))
        painted = painted.reshape(-1, REGIONS, channels + 1, height, width)
        blend = texture_blend(alpha, painted[:, :, channels:])
        return blend * texture + (1 - blend) * painted[:, :, :channels], masks

    def paint(self, pose: torch.Tensor, previous_pose: torch.Tensor,
              previous_frame: torch.Tensor) -> torch.Tensor:
        regions, masks = self.paint_regions(pose)
        coarse = (masks * regions).sum(1) / (masks.sum(1) + EPSILON)  # (B, 3, H, W)
        self.last_regions, self.last_region_weights, self.last_coarse = regions, masks, coarse
        # Generator.forward concatenates (pose, previous pose, previous frame): the coarse
        # person rides after the previous frame, where the widened first convolutions read it.
        return self.generator(pose, previous_pose, torch.cat([previous_frame, coarse], 1))
