"""AlexNet feature extractor (Krizhevsky et al. 2012, torchvision's "one weird trick" variant).

Used by LPIPS-AlexNet. The layers and parameter names follow torchvision's
`alexnet().features` (`features.0.weight`, ...), so the cached weights load strictly.
"""

from __future__ import annotations

import torch
from torch import nn

# The five ReLU outputs LPIPS reads: name -> index in `features`.
ALEXNET_RELU_INDEX = {"relu1": 1, "relu2": 4, "relu3": 7, "relu4": 9, "relu5": 11}
DEFAULT_LAYERS = ("relu1", "relu2", "relu3", "relu4", "relu5")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class AlexNetFeatures(nn.Module):
    """forward(x (B, 3, H, W) RGB in [-1, 1]) -> the feature maps relu1..relu5.

    imagenet_normalization: as in VGG16Features (LPIPS passes False and scales itself).
    """

    def __init__(self, imagenet_normalization: bool = True,
                 layers: tuple[str, ...] = DEFAULT_LAYERS) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in ALEXNET_RELU_INDEX]
        if unknown or not layers:
            raise ValueError(f"unknown AlexNet layers {unknown}; known: {sorted(ALEXNET_RELU_INDEX)}")
        self.layers = tuple(layers)
        self.output_indices = tuple(ALEXNET_RELU_INDEX[name] for name in layers)
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),  # 0
            nn.ReLU(inplace=False),  # 1 relu1
            nn.MaxPool2d(kernel_size=3, stride=2),  # 2
            nn.Conv2d(64, 192, kernel_size=5, padding=2),  # 3
            nn.ReLU(inplace=False),  # 4 relu2
            nn.MaxPool2d(kernel_size=3, stride=2),  # 5
            nn.Conv2d(192, 384, kernel_size=3, padding=1),  # 6
            nn.ReLU(inplace=False),  # 7 relu3
            nn.Conv2d(384, 256, kernel_size=3, padding=1),  # 8
            nn.ReLU(inplace=False),  # 9 relu4
            nn.Conv2d(256, 256, kernel_size=3, padding=1),  # 10
            nn.ReLU(inplace=False),  # 11 relu5
        )
        self.imagenet_normalization = imagenet_normalization
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # x (B, 3, H, W)
        if self.imagenet_normalization:
            x = ((x + 1) / 2 - self.mean) / self.std
        outputs: dict[int, torch.Tensor] = {}
        last = max(self.output_indices)
        for index, module in enumerate(self.features):
            x = module(x)
            if index in self.output_indices:
                outputs[index] = x
            if index == last:
                break
        return [outputs[index] for index in self.output_indices]

    @classmethod
    def from_cache(cls, imagenet_normalization: bool = True,
                   layers: tuple[str, ...] = DEFAULT_LAYERS) -> AlexNetFeatures:
        """The network with the cached torchvision weights (strict), in eval mode, frozen."""
        from motionxfer.model_cache import load_state_dict

        network = cls(imagenet_normalization=imagenet_normalization, layers=layers)
        network.load_state_dict(load_state_dict("alexnet"), strict=True)
        network.eval()
        network.requires_grad_(False)
        return network
