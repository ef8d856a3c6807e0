"""pix2pixHD that starts from the target's real texture: REMOT's texture alignment, per pixel.

The pose input ends with four texture channels (`conditioning.Conditioning.texture`): the
target's training frame nearest in pose, re-posed to this pose part by part, and its alpha a. The
generator (motionxfer.networks.generator, with `extra_outputs = 2`) reads pose and texture
together and paints colours and two corrections in [-1, 1], m for the person mask and b for the
blend; the person is the texture where the network trusts it and its own painting elsewhere, and
the frame is that person over the background plate when there is one:

    blend  = a * sigmoid(GAIN * b + 3)
    person = blend * texture + (1 - blend) * painted
    mask   = sigmoid(GAIN * (m + a - 0.5))
    frame  = mask * person + (1 - mask) * plate        (no plate: frame = person)

Copying sharp detail through pix2pixHD's bottleneck takes many steps; the blend passes the
texture to the output directly. The output layer's weights for m and b start at zero, so a new
network already shows the re-posed texture over the plate (blend 0.95 and mask 0.95 where the
texture is, 0.05 elsewhere): training starts from the re-posed frame, which on its own beats a
retrieval of the nearest frame (docs/quality.md), and learns to paint only what the warp got
wrong (joints, folds, what the reference frame did not show, where the person really is).

`AttentiveTextureGenerator` adds REMOT's texture alignment module at pix2pixHD's bottleneck:
before its first residual block, the generator's features (queries) attend over features of the
re-posed texture (keys and values) by scaled dot-product similarity, and the result is added with
a learnt gain that starts at 0. The warp puts a texture roughly in place; the attention lets each
place take what it needs from wherever the texture has it (a sleeve the warp put a little off).

The plate is a buffer set with `set_plate` (a checkpoint stores it beside the weights, as the
compositing generator's); `last_mask` holds the mask of the latest call when there is a plate.
The call signature is the generator's, so every backend and the ONNX export run it unchanged.

The formula is in `texture_composite` (and `texture_blend`, `zero_corrections`), which the region
generator and the sequence generator with the texture share.
"""

from __future__ import annotations

import torch
from torch import nn

from motionxfer.networks.compositing_generator import CompositingGenerator
from motionxfer.networks.generator import GeneratorConfig, ResidualBlock

TEXTURE_CHANNELS = 4  # RGB and alpha: the pose input's last channels (texture.bank makes them)
GAIN = 6.0  # logits per unit of a painted correction (its range: [-6, 6] around the start)


def texture_blend(alpha: torch.Tensor, correction: torch.Tensor) -> torch.Tensor:
    """How much of the person is the re-posed texture: a * sigmoid(GAIN * b + 3), from the
    texture's alpha a in [0, 1] and the painted blend correction b in [-1, 1] (one shape)."""
    return alpha * torch.sigmoid(GAIN * correction + 3.0)


def texture_composite(painted: torch.Tensor, pose: torch.Tensor, image_channels: int,
                      plate: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The frame (B, 3, H, W) and its mask (B, 1, H, W) (None without a plate) from the painted
    colours and the m, b corrections (B, 3 + 2, H, W) in [-1, 1] and the pose input (B, C, H, W),
    whose last four channels are the re-posed texture and its alpha; `plate` (1, 3, H, W) at the
    frame's size, or None: the frame is the person."""
    channels = image_channels
    texture = pose[:, -TEXTURE_CHANNELS:-1]
    alpha = (pose[:, -1:] + 1) * 0.5
    blend = texture_blend(alpha, painted[:, channels + 1:channels + 2])
    person = blend * texture + (1 - blend) * painted[:, :channels]
    if plate is None:
        return person, None
    mask = torch.sigmoid(GAIN * (painted[:, channels:channels + 1] + alpha - 0.5))
    return mask * person + (1 - mask) * plate, mask


def check_texture_channels(config: GeneratorConfig) -> None:
    """Refuse a pose input with no channel besides the texture's four."""
    if config.pose_channels <= TEXTURE_CHANNELS:
        raise ValueError(f"the pose input needs more than the {TEXTURE_CHANNELS} texture "
                         f"channels, got {config.pose_channels}")


def zero_corrections(output: nn.Conv2d, image_channels: int) -> None:
    """Zero the weights and biases of an output convolution's channels after the image's (the
    corrections): a new network starts from the re-posed texture (m, b = 0)."""
    with torch.no_grad():
        output.weight[image_channels:].zero_()
        if output.bias is not None:
            output.bias[image_channels:].zero_()


class TextureAttention(nn.Module):
    """Features (B, C, h, w) attend over an encoding of the texture (B, 4, H, W), H = h * 2 ** n:
    features + gain * softmax(q k^T / sqrt(d)) v, with q from the features, k and v from the
    texture's encoding."""

    def __init__(self, channels: int, downsamplings: int, key_channels: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = TEXTURE_CHANNELS
        for level in range(downsamplings):
            out = channels if level == downsamplings - 1 else min(channels, 16 * 2 ** level)
            layers += [nn.Conv2d(width, out, 3, stride=2, padding=1), nn.InstanceNorm2d(out),
                       nn.ReLU(inplace=True)]
            width = out
        self.encoder = nn.Sequential(*layers)
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(width, key_channels, 1)
        self.value = nn.Conv2d(width, channels, 1)
        self.gain = nn.Parameter(torch.zeros(1))
        self.scale = key_channels ** -0.5

    def forward(self, features: torch.Tensor, texture: torch.Tensor) -> torch.Tensor:
        encoded = self.encoder(texture)
        batch, channels, height, width = features.shape
        query = self.query(features).flatten(2).transpose(1, 2)  # (B, N, d)
        key = self.key(encoded).flatten(2)  # (B, d, M)
        value = self.value(encoded).flatten(2).transpose(1, 2)  # (B, M, C)
        weights = torch.softmax(torch.bmm(query, key) * self.scale, dim=-1)  # (B, N, M)
        aligned = torch.bmm(weights, value).transpose(1, 2).reshape(batch, channels, height,
                                                                    width)
        return features + self.gain * aligned


class TextureGenerator(CompositingGenerator):
    """frame_t = composite(blend(G(pose and texture t, t-1, frame t-1), texture t), plate)."""

    extra_outputs = 2  # the mask and blend corrections

    def __init__(self, config: GeneratorConfig) -> None:
        check_texture_channels(config)
        super().__init__(config)
        # the 7x7 conv before tanh: start from the re-posed texture (the corrections m, b = 0)
        zero_corrections(self.generator.network.output[1], config.image_channels)
        self.composites = False  # True once a plate is set

    def set_plate(self, plate: torch.Tensor) -> None:
        super().set_plate(plate)
        self.composites = True

    def forward(self, pose: torch.Tensor, previous_pose: torch.Tensor,
                previous_frame: torch.Tensor) -> torch.Tensor:
        painted = self.paint(pose, previous_pose, previous_frame)  # (B, 5, H, W) in [-1, 1]
        plate = self.plate_at(pose.shape[-2:], painted.dtype) if self.composites else None
        frame, self.last_mask = texture_composite(painted, pose, self.config.image_channels,
                                                  plate)
        return frame

    def paint(self, pose: torch.Tensor, previous_pose: torch.Tensor,
              previous_frame: torch.Tensor) -> torch.Tensor:
        """The painted colours and the m, b corrections (B, 5, H, W) in [-1, 1] that `forward`
        blends and composites (the region generator paints them from more inputs)."""
        return self.generator(pose, previous_pose, previous_frame)


class AttentiveTextureGenerator(TextureGenerator):
    """The texture generator with `TextureAttention` before the bottleneck's first residual
    block (the global generator's, with a local enhancer)."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__(config)
        block = next(module for module in self.generator.network.modules()
                     if isinstance(module, ResidualBlock))
        channels = block.body[1].in_channels
        self.attention = TextureAttention(channels, config.size_multiple.bit_length() - 1)
        self._texture: torch.Tensor | None = None
        block.register_forward_pre_hook(self._attend)

    def _attend(self, _: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
        if self._texture is None:
            raise RuntimeError("the texture attention runs only inside the generator's forward")
        return (self.attention(inputs[0], self._texture.to(inputs[0].dtype)),)

    def forward(self, pose: torch.Tensor, previous_pose: torch.Tensor,
                previous_frame: torch.Tensor) -> torch.Tensor:
        self._texture = pose[:, -TEXTURE_CHANNELS:]
        try:
            return super().forward(pose, previous_pose, previous_frame)
        finally:
            self._texture = None
