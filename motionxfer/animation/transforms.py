"""Random thin-plate-spline deformations for the equivariance losses (FOMM, Sec. 3.4).

A deformation maps coordinates of a transformed frame to coordinates of the original frame,

    T(z) = A z + t + sum_n w_n U(|z - c_n|),   U(r) = r^2 log r,

with A = I + noise, t = noise (a random affine map, standard deviation `sigma_affine`), control
points c_n on a `points_tps` x `points_tps` grid over [-1, 1]^2 and weights w_n (standard
deviation `sigma_tps`). The transformed frame is the original read through T:
`transformed(z) = original(T(z))`, so a keypoint the detector finds at y in the transformed frame
should be found at T(y) in the original. With the small default deviations T is a
diffeomorphism close to the identity (its Jacobian stays near I), which is all the equivariance
losses need: they only ever apply T forwards.

Unlike FOMM's code, the radial distance is Euclidean (FOMM used the L1 norm) and each axis has
its own weights (FOMM added the same displacement to x and y); both make T a proper TPS.
kornia's TPS is not used: it is not a dependency of motionxfer, and it fits a spline through
point correspondences (a linear solve) where we only need to sample one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.nn import functional

from motionxfer.animation.geometry import coordinate_grid


@dataclass(frozen=True)
class RandomTransformConfig:
    """How strong the random deformations of the equivariance losses are (FOMM's defaults)."""

    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5  # control points per side

    def __post_init__(self) -> None:
        if self.sigma_affine < 0 or self.sigma_tps < 0:
            raise ValueError("sigma_affine and sigma_tps cannot be negative")
        if self.points_tps < 1:
            raise ValueError(f"points_tps must be at least 1, not {self.points_tps}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def radial_basis(squared_distance: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r, from r^2 (0 at r = 0)."""
    return 0.5 * squared_distance * torch.log(squared_distance + 1e-12)


class ThinPlateSplineTransform:
    """One random deformation per batch element (not an nn.Module: nothing in it trains).

    affine (B, 2, 3): [A | t]; control_points (N, 2); control_weights (B, N, 2).
    """

    def __init__(self, affine: torch.Tensor, control_points: torch.Tensor,
                 control_weights: torch.Tensor) -> None:
        if affine.shape[1:] != (2, 3) or control_weights.shape[0] != affine.shape[0]:
            raise ValueError("affine must be (B, 2, 3) and control_weights (B, N, 2)")
        self.affine = affine
        self.control_points = control_points
        self.control_weights = control_weights

    @classmethod
    def random(cls, batch: int, config: RandomTransformConfig,
               device: torch.device | None = None,
               generator: torch.Generator | None = None) -> ThinPlateSplineTransform:
        noise = torch.randn(batch, 2, 3, generator=generator) * config.sigma_affine
        affine = torch.eye(2, 3).unsqueeze(0) + noise
        points = coordinate_grid(config.points_tps, config.points_tps).reshape(-1, 2)
        weights = torch.randn(batch, points.shape[0], 2, generator=generator) * config.sigma_tps
        return cls(affine.to(device), points.to(device), weights.to(device))

    @classmethod
    def identity(cls, batch: int, points_tps: int = 5,
                 device: torch.device | None = None) -> ThinPlateSplineTransform:
        points = coordinate_grid(points_tps, points_tps, device=device).reshape(-1, 2)
        return cls(torch.eye(2, 3, device=device).expand(batch, 2, 3).clone(), points,
                   torch.zeros(batch, points.shape[0], 2, device=device))

    def warp_coordinates(self, points: torch.Tensor) -> torch.Tensor:
        """points (B, P, 2) of the transformed frame -> T(points) in the original, (B, P, 2)."""
        affine = self.affine.to(points.dtype)
        moved = points @ affine[:, :, :2].transpose(1, 2) + affine[:, :, 2].unsqueeze(1)
        offsets = points.unsqueeze(2) - self.control_points.to(points.dtype).view(1, 1, -1, 2)
        basis = radial_basis((offsets ** 2).sum(-1))  # (B, P, N)
        return moved + basis @ self.control_weights.to(points.dtype)

    def transform_frame(self, image: torch.Tensor) -> torch.Tensor:
        """image (B, C, H, W) -> the transformed frame, image(T(z)), reflecting at the borders."""
        batch, _, height, width = image.shape
        grid = coordinate_grid(height, width, device=image.device, dtype=image.dtype)
        grid = self.warp_coordinates(grid.reshape(1, -1, 2).expand(batch, -1, 2))
        return functional.grid_sample(image, grid.view(batch, height, width, 2), mode="bilinear",
                                      padding_mode="reflection", align_corners=True)

    def jacobian(self, points: torch.Tensor, step: float = 1e-3) -> torch.Tensor:
        """dT/dz at points (B, P, 2) by central differences: (B, P, 2, 2), [i, j] = dT_i / dz_j.

        Differentiable with respect to the points (the keypoints being trained)."""
        columns = []
        for axis in range(2):
            offset = torch.zeros(2, dtype=points.dtype, device=points.device)
            offset[axis] = step
            difference = self.warp_coordinates(points + offset) - self.warp_coordinates(
                points - offset)
            columns.append(difference / (2 * step))  # (B, P, 2): d T / d z_axis
        return torch.stack(columns, dim=-1)
