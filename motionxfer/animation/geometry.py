"""Coordinate helpers every network of the package shares: the [-1, 1] pixel grid, a batched
2x2 inverse written out (cheap, exact, and exportable where `torch.linalg.inv` is not always),
and backward warping by a flow."""

from __future__ import annotations

import torch
from torch.nn import functional


def coordinate_grid(height: int, width: int, device: torch.device | None = None,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H, W, 2) of (x, y) in [-1, 1]: -1 and 1 are the centres of the first and last pixels."""

    def axis(size: int) -> torch.Tensor:
        if size == 1:
            return torch.zeros(1, device=device, dtype=dtype)
        return torch.linspace(-1, 1, size, device=device, dtype=dtype)

    x, y = axis(width), axis(height)
    return torch.stack([x.view(1, width).expand(height, width),
                        y.view(height, 1).expand(height, width)], dim=-1)


def invert_2x2(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 2, 2) -> its inverse (..., 2, 2). A singular matrix gives inf or nan, as inv would."""
    a, b = matrix[..., 0, 0], matrix[..., 0, 1]
    c, d = matrix[..., 1, 0], matrix[..., 1, 1]
    determinant = a * d - b * c
    inverse = torch.stack([torch.stack([d, -b], dim=-1), torch.stack([-c, a], dim=-1)], dim=-2)
    return inverse / determinant[..., None, None]


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: output(z) = image(flow(z)).

    image (B, C, H, W); flow (B, h, w, 2) of (x, y) in [-1, 1], resized bilinearly to H x W when
    its size differs (as FOMM's deform_input). Outside the image reads zero.
    """
    height, width = image.shape[2:]
    if flow.shape[1:3] != (height, width):
        flow = functional.interpolate(flow.permute(0, 3, 1, 2), size=(height, width),
                                      mode="bilinear", align_corners=True).permute(0, 2, 3, 1)
    return functional.grid_sample(image, flow, mode="bilinear", padding_mode="zeros",
                                  align_corners=True)
