"""LPIPS v0.1 (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual
Metric", CVPR 2018), with the VGG16 or AlexNet backbone.

    d(x0, x1) = sum_l  mean_{h,w}  w_l . (n(f_l(x0)) - n(f_l(x1)))^2

f_l: the backbone's l-th ReLU output after LPIPS's scaling layer; n: unit length along channels
(divided by the channel norm + 1e-10); w_l: the learned non-negative 1x1 linear layer of v0.1.
Inputs are RGB in [-1, 1]. Lower is more similar; identical images give 0.
"""

from __future__ import annotations

import torch
from torch import nn

from motionxfer.model_cache import load_state_dict
from motionxfer.networks.alexnet import AlexNetFeatures
from motionxfer.networks.vgg import VGG16Features
from motionxfer.progress import ProgressCallback

# LPIPS's scaling layer: ImageNet's mean and std expressed for inputs in [-1, 1].
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
NORMALIZE_EPSILON = 1e-10

BACKBONES = {
    "vgg": (VGG16Features, (64, 128, 256, 512, 512), "vgg16", "lpips_vgg"),
    "alex": (AlexNetFeatures, (64, 192, 384, 256, 256), "alexnet", "lpips_alex"),
}


class LPIPS(nn.Module):
    """forward(x0, x1 (B, 3, H, W) in [-1, 1]) -> (B,) distances."""

    def __init__(self, backbone: str = "vgg") -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"LPIPS backbone must be one of {sorted(BACKBONES)}, not {backbone!r}")
        network_class, channels, _, _ = BACKBONES[backbone]
        self.backbone_name = backbone
        self.backbone = network_class(imagenet_normalization=False)
        self.linear_layers = nn.ModuleList(
            nn.Conv2d(count, 1, kernel_size=1, stride=1, padding=0, bias=False) for count in channels
        )
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        features0 = self.backbone((x0 - self.shift) / self.scale)
        features1 = self.backbone((x1 - self.shift) / self.scale)
        total = torch.zeros(x0.shape[0], dtype=x0.dtype, device=x0.device)
        for linear, f0, f1 in zip(self.linear_layers, features0, features1):
            difference = (_unit_channels(f0) - _unit_channels(f1)) ** 2  # (B, C, h, w)
            total = total + linear(difference).mean(dim=(1, 2, 3))
        return total

    def load_linear_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Load `lin0.weight` .. `lin4.weight` (the layout of the cached file), strictly."""
        expected = {f"lin{index}.weight" for index in range(len(self.linear_layers))}
        if set(tensors) != expected:
            raise ValueError(f"LPIPS linear layers: expected {sorted(expected)}, got {sorted(tensors)}")
        for index, layer in enumerate(self.linear_layers):
            weight = tensors[f"lin{index}.weight"]
            if weight.shape != layer.weight.shape:
                raise ValueError(f"lin{index}.weight: shape {tuple(weight.shape)}, "
                                 f"expected {tuple(layer.weight.shape)}")
            with torch.no_grad():
                layer.weight.copy_(weight)

    @classmethod
    def from_cache(cls, backbone: str = "vgg", progress: ProgressCallback | None = None) -> LPIPS:
        """LPIPS with the cached backbone and v0.1 linear weights, in eval mode, frozen; weights
        not in the cache yet are fetched on first use (`model_cache.ensure`)."""

        network = cls(backbone)
        _, _, backbone_weights, linear_weights = BACKBONES[backbone]
        network.backbone.load_state_dict(load_state_dict(backbone_weights, progress), strict=True)
        network.load_linear_state(load_state_dict(linear_weights, progress))
        network.eval()
        network.requires_grad_(False)
        return network


def _unit_channels(features: torch.Tensor) -> torch.Tensor:
    norm = torch.sqrt(torch.sum(features**2, dim=1, keepdim=True))
    return features / (norm + NORMALIZE_EPSILON)


def required_weights(backbone: str) -> tuple[str, str]:
    """The model-cache names LPIPS with this backbone needs."""
    _, _, backbone_weights, linear_weights = BACKBONES[backbone]
    return backbone_weights, linear_weights
