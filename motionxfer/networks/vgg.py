"""VGG16 feature extractor (Simonyan & Zisserman 2015) with torchvision's ImageNet weights.

Used by LPIPS-VGG and by the perceptual (feature-matching) loss of training. The layers and
their parameter names follow torchvision's `vgg16().features` (`features.0.weight`, ...), so the
cached weights load strictly. The classifier is not part of it.
"""

from __future__ import annotations

from torch import nn

from motionxfer.networks.imagenet_features import ImageNetFeatures

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


class VGG16Features(ImageNetFeatures):
    """VGG16's `features` read at DEFAULT_LAYERS relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    (see ImageNetFeatures for the arguments)."""

    RELU_INDEX = VGG16_RELU_INDEX
    DEFAULT_LAYERS = DEFAULT_LAYERS
    CACHE_NAME = "vgg16"

    @staticmethod
    def build_features() -> nn.Sequential:  # 30 modules, up to relu5_3
        modules: list[nn.Module] = []
        channels = 3
        for item in VGG16_LAYOUT:
            if item == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules.append(nn.Conv2d(channels, int(item), kernel_size=3, padding=1))
                modules.append(nn.ReLU(inplace=False))
                channels = int(item)
        return nn.Sequential(*modules)
