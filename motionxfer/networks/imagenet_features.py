"""What the ImageNet feature extractors (VGG16, AlexNet) share: torchvision-named `features`
layers read at named ReLUs, the ImageNet input normalisation, and strict loading from the model
cache. Each network's own file gives its layers (`build_features`) and their names."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from motionxfer.model_cache import load_state_dict
from motionxfer.progress import ProgressCallback

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNetFeatures(nn.Module):
    """forward(x (B, 3, H, W) RGB in [-1, 1]) -> the feature maps of `layers`, shallow to deep.

    imagenet_normalization: map [-1, 1] to torchvision's ImageNet normalisation inside (True for
        a perceptual loss); LPIPS passes False and applies its own scaling layer.
    layers: names from the subclass's RELU_INDEX; None takes its DEFAULT_LAYERS.
    """

    RELU_INDEX: ClassVar[dict[str, int]] = {}  # ReLU name -> index in `features`
    DEFAULT_LAYERS: tuple[str, ...] = ()
    CACHE_NAME = ""  # the weights' name in models/weights.toml

    def __init__(self, imagenet_normalization: bool = True,
                 layers: tuple[str, ...] | None = None) -> None:
        super().__init__()
        layers = tuple(layers or self.DEFAULT_LAYERS)
        unknown = [name for name in layers if name not in self.RELU_INDEX]
        if unknown or not layers:
            raise ValueError(f"unknown {type(self).__name__} layers {unknown}; "
                             f"known: {sorted(self.RELU_INDEX)}")
        self.layers = layers
        self.output_indices = tuple(self.RELU_INDEX[name] for name in layers)
        self.features = self.build_features()
        self.imagenet_normalization = imagenet_normalization
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @staticmethod
    def build_features() -> nn.Sequential:
        raise NotImplementedError

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
                   layers: tuple[str, ...] | None = None,
                   progress: ProgressCallback | None = None) -> ImageNetFeatures:
        """The network with the cached torchvision weights (strict), in eval mode, frozen.

        Gradients still flow to the input (for a perceptual loss); the weights do not train.
        Weights not in the cache yet are fetched on first use (`model_cache.ensure`, reported to
        `progress`); offline (MOTIONXFER_OFFLINE=1) or unreachable, a MissingDependency says how
        to get them.
        """

        network = cls(imagenet_normalization=imagenet_normalization, layers=layers)
        network.load_state_dict(load_state_dict(cls.CACHE_NAME, progress), strict=True)
        network.eval()
        network.requires_grad_(False)
        return network
