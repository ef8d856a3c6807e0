"""Random TPS deformations, the equivariance losses and the perceptual loss of the animator."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from motionxfer.animation.geometry import coordinate_grid
from motionxfer.animation.keypoint_detector import Keypoints, soft_argmax
from motionxfer.animation.losses import (
    AnimatorLossWeights,
    equivariance_losses,
    multiscale_perceptual_loss,
    perceptual_feature_extractor,
)
from motionxfer.animation.transforms import RandomTransformConfig, ThinPlateSplineTransform

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_tps_with_zero_parameters_is_the_identity_and_so_is_its_jacobian() -> None:
    transform = ThinPlateSplineTransform.identity(batch=2)
    points = torch.rand(2, 7, 2) * 2 - 1
    assert torch.allclose(transform.warp_coordinates(points), points, atol=1e-6)
    image = torch.rand(2, 3, 16, 20)
    assert torch.allclose(transform.transform_frame(image), image, atol=1e-5)
    assert torch.allclose(transform.jacobian(points), torch.eye(2).expand(2, 7, 2, 2), atol=1e-3)
    zero = ThinPlateSplineTransform.random(2, RandomTransformConfig(sigma_affine=0, sigma_tps=0))
    assert torch.allclose(zero.warp_coordinates(points), points, atol=1e-6)


def test_tps_finite_difference_jacobian_matches_autograd() -> None:
    transform = ThinPlateSplineTransform.random(
        3, RandomTransformConfig(sigma_affine=0.1, sigma_tps=0.05))
    points = (torch.rand(3, 5, 2, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    transform = ThinPlateSplineTransform(transform.affine.double(),
                                         transform.control_points.double(),
                                         transform.control_weights.double())
    moved = transform.warp_coordinates(points)
    rows = [torch.autograd.grad(moved[..., axis].sum(), points, retain_graph=True)[0]
            for axis in range(2)]
    exact = torch.stack(rows, dim=-2)  # [i, j] = dT_i / dz_j
    approximate = transform.jacobian(points, step=1e-5)
    assert torch.allclose(approximate, exact, atol=1e-6)
    # the TPS part does bend: its Jacobian varies from point to point
    assert (approximate[:, 0] - approximate[:, 1]).abs().max() > 1e-3


def test_affine_only_transform_has_the_affine_matrix_as_jacobian_and_moves_images() -> None:
    angle = math.radians(20)
    affine = torch.tensor([[math.cos(angle), -math.sin(angle), 0.1],
                           [math.sin(angle), math.cos(angle), -0.05]]).unsqueeze(0)
    transform = ThinPlateSplineTransform(affine, torch.zeros(1, 2), torch.zeros(1, 1, 2))
    points = torch.rand(1, 4, 2) * 2 - 1
    assert torch.allclose(transform.jacobian(points), affine[:, :, :2].expand(1, 4, 2, 2),
                          atol=1e-3)
    image = blob_image([(0.3, 0.2)])
    transformed = transform.transform_frame(image)
    # the blob at p in the original is at T^-1(p) in the transformed frame
    found = centroids(transformed)  # (1, 1, 2)
    assert torch.allclose(transform.warp_coordinates(found), torch.tensor([[[0.3, 0.2]]]),
                          atol=5e-3)


def blob_image(centres: list[tuple[float, float]], size: int = 64,
               width: float = 0.08) -> torch.Tensor:
    """One Gaussian blob per channel at the (x, y) centres, (1, C, size, size)."""
    grid = coordinate_grid(size, size)
    channels = [torch.exp(-((grid - torch.tensor(centre)) ** 2).sum(-1) / (2 * width ** 2))
                for centre in centres]
    return torch.stack(channels).unsqueeze(0)


def centroids(image: torch.Tensor) -> torch.Tensor:
    """Each channel's intensity centroid (B, C, 2)."""
    return soft_argmax(image / image.sum(dim=(2, 3), keepdim=True))


class CentroidFrameDetector(nn.Module):
    """An exactly affine-equivariant detector: one keypoint at the red blob's centroid, its
    Jacobian's columns pointing to the green and the blue blobs."""

    def forward(self, image: torch.Tensor) -> Keypoints:
        points = centroids(image)  # (B, 3, 2)
        value = points[:, :1]
        jacobian = torch.stack([points[:, 1] - points[:, 0], points[:, 2] - points[:, 0]], dim=-1)
        return Keypoints(value, jacobian.unsqueeze(1))  # (B, 1, 2), (B, 1, 2, 2)


class ConstantDetector(nn.Module):
    """Ignores the image: never equivariant."""

    def forward(self, image: torch.Tensor) -> Keypoints:
        batch = image.shape[0]
        return Keypoints(torch.tensor([[[0.05, 0.0]]]).expand(batch, 1, 2),
                         torch.tensor([[0.25, -0.05], [0.05, 0.25]]).expand(batch, 1, 2, 2))


def test_equivariance_losses_vanish_for_an_equivariant_detector_and_not_otherwise() -> None:
    image = blob_image([(0.05, 0.0), (0.3, -0.05), (0.1, 0.25)])
    angle = math.radians(20)
    affine = torch.tensor([[math.cos(angle), -math.sin(angle), 0.1],
                           [math.sin(angle), math.cos(angle), -0.05]]).unsqueeze(0)
    transform = ThinPlateSplineTransform(affine, torch.zeros(1, 2), torch.zeros(1, 1, 2))
    results = {}
    for name, detector in (("equivariant", CentroidFrameDetector()),
                           ("constant", ConstantDetector())):
        results[name] = equivariance_losses(detector, image, detector(image), transform)
    value, jacobian = results["equivariant"]
    assert value.item() < 1e-4 and jacobian is not None and jacobian.item() < 1e-3
    value, jacobian = results["constant"]
    assert value.item() > 0.05 and jacobian is not None and jacobian.item() > 0.1


def test_equivariance_loss_is_small_under_random_tps_for_the_equivariant_detector() -> None:
    image = blob_image([(0.05, 0.0), (0.3, -0.05), (0.1, 0.25)])
    transform = ThinPlateSplineTransform.random(1, RandomTransformConfig())
    detector = CentroidFrameDetector()
    value, jacobian = equivariance_losses(detector, image, detector(image), transform)
    assert value.item() < 2e-3 and jacobian is not None and jacobian.item() < 2e-2


def test_equivariance_loss_without_jacobians_gives_none() -> None:
    image = blob_image([(0.0, 0.0)])

    class NoJacobian(nn.Module):
        def forward(self, frame: torch.Tensor) -> Keypoints:
            return Keypoints(centroids(frame))

    detector = NoJacobian()
    transform = ThinPlateSplineTransform.random(1, RandomTransformConfig())
    value, jacobian = equivariance_losses(detector, image, detector(image), transform)
    assert jacobian is None and value.item() < 5e-3


def test_perceptual_loss_is_zero_for_equal_images_and_grows_with_the_difference() -> None:
    features = perceptual_feature_extractor(from_cache=False, layers=("relu1_1", "relu2_1"))
    image = torch.rand(2, 3, 32, 32)
    scales, weights = (1.0, 0.5), (1.0, 1.0)
    same = multiscale_perceptual_loss(image, image, features, scales, weights)
    near = multiscale_perceptual_loss((image + 0.05).clamp(0, 1), image, features, scales, weights)
    far = multiscale_perceptual_loss(torch.rand(2, 3, 32, 32), image, features, scales, weights)
    assert same.item() == pytest.approx(0.0, abs=1e-7)
    assert 0 < near.item() < far.item()
    # the target's features are not differentiated, the prediction's are
    prediction = torch.rand(2, 3, 32, 32, requires_grad=True)
    target = torch.rand(2, 3, 32, 32, requires_grad=True)
    multiscale_perceptual_loss(prediction, target, features, scales, weights).backward()
    assert prediction.grad is not None and target.grad is None
    with pytest.raises(ValueError, match="layer weights"):
        multiscale_perceptual_loss(image, image, features, scales, (1.0,))


def test_loss_weights_reject_bad_values() -> None:
    with pytest.raises(ValueError):
        AnimatorLossWeights(perceptual_scales=(0.3,))
    with pytest.raises(ValueError):
        AnimatorLossWeights(equivariance_value=-1.0)
    assert AnimatorLossWeights().to_dict()["perceptual"] == (10.0,) * 5
