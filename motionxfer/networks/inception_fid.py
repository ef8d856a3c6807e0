"""The Inception v3 network of FID (Heusel et al. 2017): TensorFlow's 2015-12-05 graph, pool3.

The weights are a TorchScript file in the model cache (`fid_inception`: the graph that
TensorFlow's FID code used, converted to TorchScript; see models/weights.toml). TorchScript
cannot be stored as safetensors, so the file is kept as published and its sha256 is verified
before `torch.jit.load` reads it.

The scripted network takes 299x299 RGB scaled as (x - 128) / 128 for x in [0, 255] (TensorFlow's
preprocessing) and returns the 2048-d pool3 features. `FIDInception` does that scaling and the
resize (bilinear, align_corners=False, as pytorch-fid does; TensorFlow's own resize samples
slightly differently, a known source of small FID differences between implementations).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn
from torch.nn import functional

from motionxfer.model_cache import ensure
from motionxfer.progress import ProgressCallback

INPUT_SIZE = 299
FEATURE_DIMENSION = 2048


class FIDInception(nn.Module):
    """forward(images (B, 3, H, W) float RGB in [0, 255]) -> (B, 2048) pool3 features."""

    def __init__(self, scripted: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.scripted = scripted

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            images = functional.interpolate(
                images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False
            )
        features = self.scripted((images - 128.0) / 128.0)
        return features.reshape(images.shape[0], FEATURE_DIMENSION)

    @classmethod
    def from_cache(cls, device: str | torch.device = "cpu",
                   progress: ProgressCallback | None = None) -> FIDInception:
        """The network from the verified cache file (fetched on first use, see
        `model_cache.ensure`), in eval mode."""

        path = ensure("fid_inception", progress)
        with warnings.catch_warnings():
            # torch 2.13 marks torch.jit.load deprecated; the published network exists only as
            # TorchScript (see docs/metrics.md)
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=DeprecationWarning)
            scripted = torch.jit.load(str(path), map_location=device)
        scripted.eval()
        return cls(scripted).eval()
