"""VGG16 feature extractor (Simonyan & Zisserman 2015) with torchvision's ImageNet weights.

Used by LPIPS-VGG and by the perceptual (feature-matching) loss of training. The layers and
their parameter names follow torchvision's `vgg16().features` (`features.0.weight`, ...), so the
cached weights load strictly. The classifier is not part of it.
"""

from __future__ import annotations

import torch
from torch import nn

# torchvision's vgg16 configuration: channels per convolution, "M" for a 2x2 max pooling.
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)

# The ReLU outputs LPIPS and most perceptual losses read, by name -> index in `features`.
VGG16_RELU_INDEX = {
    "relu1_1": 1, "relu1_2": 3,
    "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15,
    "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
    "relu5_1": 25, "relu5_2": 27, "relu5_3": 29,
}
DEFAULT_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16Features(nn.Module):
    """forward(x (B, 3, H, W) RGB in [-1, 1]) -> the feature maps of `layers`, shallow to deep.

    imagenet_normalization: map [-1, 1] to torchvision's ImageNet normalisation inside (True for
        a perceptual loss); LPIPS passes False and applies its own scaling layer.
    layers: names from VGG16_RELU_INDEX; default relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
    """

    def __init__(self, imagenet_normalization: bool = True,
                 layers: tuple[str, ...] = DEFAULT_LAYERS) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG16_RELU_INDEX]
        if unknown or not layers:
            raise ValueError(f"unknown VGG16 layers {unknown}; known: {sorted(VGG16_RELU_INDEX)}")
        self.layers = tuple(layers)
        self.output_indices = tuple(VGG16_RELU_INDEX[name] for name in layers)
        modules: list[nn.Module] = []
        channels = 3
        for item in VGG16_LAYOUT:
            if item == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules.append(nn.Conv2d(channels, int(item), kernel_size=3, padding=1))
                modules.append(nn.ReLU(inplace=False))
                channels = int(item)
        self.features = nn.Sequential(*modules)  # 30 modules, up to relu5_3
        self.imagenet_normalization = imagenet_normalization
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

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
                   layers: tuple[str, ...] = DEFAULT_LAYERS) -> VGG16Features:
        """The network with the cached torchvision weights (strict), in eval mode, frozen.

        Gradients still flow to the input (for a perceptual loss); the weights do not train.
        Raises MissingDependency with the fetch command when the weights are not cached.
        """
        from motionxfer.model_cache import load_state_dict

        network = cls(imagenet_normalization=imagenet_normalization, layers=layers)
        network.load_state_dict(load_state_dict("vgg16"), strict=True)
        network.eval()
        network.requires_grad_(False)
        return network
