"""Frame batches through the learned metrics: LPIPS distances and FID Inception features."""

from __future__ import annotations

import numpy as np
import torch

from motionxfer.networks.inception_fid import FIDInception
from motionxfer.networks.lpips import LPIPS


def frames_to_tensor(frames: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [0, 255]."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (B, H, W, 3) uint8 frames, got {frames.shape} {frames.dtype}")
    return torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float()


@torch.no_grad()
def lpips_distances(model: LPIPS, reference: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """LPIPS of each pair of frames (B, H, W, 3) uint8 -> (B,) float64; inputs go to [-1, 1]."""
    device = next(model.parameters()).device
    x0 = frames_to_tensor(reference, device) / 127.5 - 1.0
    x1 = frames_to_tensor(generated, device) / 127.5 - 1.0
    return model(x0, x1).double().cpu().numpy()


@torch.no_grad()
def inception_features(model: FIDInception, frames: np.ndarray,
                       device: str | torch.device = "cpu") -> np.ndarray:
    """(B, H, W, 3) uint8 -> (B, 2048) float64 pool3 features."""
    return model(frames_to_tensor(frames, device)).double().cpu().numpy()
