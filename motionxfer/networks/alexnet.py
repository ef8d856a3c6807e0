"""AlexNet feature extractor (Krizhevsky et al. 2012, torchvision's "one weird trick" variant).

Used by LPIPS-AlexNet. The layers and parameter names follow torchvision's
`alexnet().features` (`features.0.weight`, ...), so the cached weights load strictly.
"""

from __future__ import annotations

from torch import nn

from motionxfer.networks.imagenet_features import ImageNetFeatures

# The five ReLU outputs LPIPS reads: name -> index in `features`.
ALEXNET_RELU_INDEX = {"relu1": 1, "relu2": 4, "relu3": 7, "relu4": 9, "relu5": 11}
DEFAULT_LAYERS = ("relu1", "relu2", "relu3", "relu4", "relu5")


class AlexNetFeatures(ImageNetFeatures):
    """AlexNet's `features` read at relu1..relu5, as LPIPS-AlexNet does (see ImageNetFeatures
    for the arguments)."""

    RELU_INDEX = ALEXNET_RELU_INDEX
    DEFAULT_LAYERS = DEFAULT_LAYERS
    CACHE_NAME = "alexnet"

    @staticmethod
    def build_features() -> nn.Sequential:
        return nn.Sequential(
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
