"""The First Order Motion Model's networks on tiny inputs: shapes, the soft-argmax, the sparse
motions and the warping conventions."""

from __future__ import annotations

import math

import pytest
import torch

from motionxfer.animation.dense_motion import (
    DenseMotion,
    DenseMotionConfig,
    DenseMotionNetwork,
    sparse_motions,
)
from motionxfer.animation.generator import OcclusionAwareGenerator, OcclusionAwareGeneratorConfig
from motionxfer.animation.geometry import coordinate_grid, invert_2x2, warp
from motionxfer.animation.hourglass import AntiAliasDownsample, Hourglass
from motionxfer.animation.keypoint_detector import (
    KeypointDetector,
    KeypointDetectorConfig,
    Keypoints,
    soft_argmax,
    spatial_softmax,
)

torch.set_num_threads(1)

KEYPOINTS = 3
DETECTOR = KeypointDetectorConfig(num_keypoints=KEYPOINTS, block_expansion=4, num_blocks=2,
                                  max_features=16, scale_factor=0.5)
MOTION = DenseMotionConfig(num_keypoints=KEYPOINTS, block_expansion=4, num_blocks=2,
                           max_features=16, scale_factor=0.5)
GENERATOR = OcclusionAwareGeneratorConfig(block_expansion=4, max_features=16, num_down_blocks=1,
                                          num_bottleneck_blocks=1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def random_keypoints(batch: int = 2, jacobian: bool = True) -> Keypoints:
    value = torch.rand(batch, KEYPOINTS, 2) * 1.6 - 0.8
    matrices = torch.eye(2) + 0.2 * torch.randn(batch, KEYPOINTS, 2, 2) if jacobian else None
    return Keypoints(value, matrices)


def test_hourglass_keeps_the_size_and_adds_the_input_channels() -> None:
    hourglass = Hourglass(in_channels=5, block_expansion=4, num_blocks=3, max_features=8)
    output = hourglass(torch.rand(2, 5, 16, 24))
    assert output.shape == (2, 4 + 5, 16, 24)
    with pytest.raises(ValueError, match="multiple of 8"):
        hourglass(torch.rand(1, 5, 12, 16))


def test_antialias_downsample_halves_the_size_and_keeps_a_flat_image_flat() -> None:
    downsample = AntiAliasDownsample(channels=3, scale=0.25)
    flat = torch.full((1, 3, 32, 16), 0.3)
    small = downsample(flat)
    assert small.shape == (1, 3, 8, 4)
    assert torch.allclose(small, torch.full_like(small, 0.3), atol=1e-6)
    noise = torch.rand(1, 3, 32, 32)
    assert downsample(noise).std() < noise.std() / 2  # blurred before subsampling
    with pytest.raises(ValueError):
        AntiAliasDownsample(channels=3, scale=0.3)


def test_coordinate_grid_runs_from_minus_one_to_one_with_x_along_the_width() -> None:
    grid = coordinate_grid(3, 5)
    assert grid.shape == (3, 5, 2)
    assert grid[0, 0].tolist() == [-1.0, -1.0] and grid[-1, -1].tolist() == [1.0, 1.0]
    assert grid[0, 1].tolist() == [-0.5, -1.0]  # one step along x


def test_soft_argmax_finds_the_peak_of_a_synthetic_heatmap() -> None:
    height, width = 32, 48
    grid = coordinate_grid(height, width)
    peaks = [(5, 20), (30, 2)]  # (row, column)
    logits = torch.stack([-((grid - grid[row, column]) ** 2).sum(-1) * 200
                          for row, column in peaks]).unsqueeze(0)  # (1, 2, H, W)
    heatmap = spatial_softmax(logits, temperature=0.1)
    assert torch.allclose(heatmap.sum(dim=(2, 3)), torch.ones(1, 2))
    found = soft_argmax(heatmap)[0]
    for (row, column), point in zip(peaks, found):
        assert point.tolist() == pytest.approx(grid[row, column].tolist(), abs=1e-3)
    # a flat heatmap has its mass centred
    assert soft_argmax(torch.full((1, 1, 4, 6), 1 / 24))[0, 0].abs().max() < 1e-6


def test_keypoint_detector_shapes_range_and_identity_jacobians_at_start() -> None:
    detector = KeypointDetector(DETECTOR)
    keypoints = detector(torch.rand(2, 3, 32, 32))
    assert keypoints.value.shape == (2, KEYPOINTS, 2)
    assert keypoints.value.abs().max() <= 1
    assert keypoints.jacobian is not None and keypoints.jacobian.shape == (2, KEYPOINTS, 2, 2)
    assert torch.allclose(keypoints.jacobian, torch.eye(2).expand(2, KEYPOINTS, 2, 2), atol=1e-6)
    _, heatmap = detector.heatmaps(torch.rand(1, 3, 32, 32))
    assert heatmap.shape == (1, KEYPOINTS, 16, 16)  # at scale_factor 0.5
    without = KeypointDetector(KeypointDetectorConfig(**{**DETECTOR.to_dict(),
                                                         "estimate_jacobian": False}))
    assert without(torch.rand(1, 3, 32, 32)).jacobian is None


def test_invert_2x2_matches_linalg_inv() -> None:
    matrices = torch.eye(2) + torch.randn(4, 3, 2, 2) * 0.3
    assert torch.allclose(invert_2x2(matrices), torch.linalg.inv(matrices), atol=1e-5)


def test_identity_jacobians_and_equal_keypoints_give_the_identity_sparse_motion() -> None:
    height, width = 8, 12
    identity = coordinate_grid(height, width).expand(2, KEYPOINTS + 1, height, width, 2)
    same = random_keypoints()
    with_identity = Keypoints(same.value, torch.eye(2).expand(2, KEYPOINTS, 2, 2))
    assert torch.allclose(sparse_motions(with_identity, with_identity, height, width), identity,
                          atol=1e-6)
    # any (equal) Jacobians cancel: J_S J_D^-1 = I
    assert torch.allclose(sparse_motions(same, same, height, width), identity, atol=1e-5)


def test_sparse_motion_is_the_first_order_expansion_around_each_keypoint() -> None:
    height, width = 8, 12
    source, driving = random_keypoints(), random_keypoints()
    motions = sparse_motions(source, driving, height, width)  # (B, K + 1, H, W, 2)
    assert torch.allclose(motions[:, 0], coordinate_grid(height, width).expand(2, -1, -1, -1))
    grid = coordinate_grid(height, width)
    row, column, batch, keypoint = 3, 7, 1, 2
    z = grid[row, column]
    jacobian = source.jacobian[batch, keypoint] @ torch.linalg.inv(driving.jacobian[batch,
                                                                                     keypoint])
    expected = source.value[batch, keypoint] + jacobian @ (z - driving.value[batch, keypoint])
    assert torch.allclose(motions[batch, keypoint + 1, row, column], expected, atol=1e-5)
    # without Jacobians: a translation by kp_S - kp_D
    translation = sparse_motions(Keypoints(source.value), Keypoints(driving.value), height, width)
    shift = (source.value - driving.value)[batch, keypoint]
    assert torch.allclose(translation[batch, keypoint + 1], grid + shift, atol=1e-6)


def test_warping_by_the_identity_flow_returns_the_image() -> None:
    image = torch.rand(2, 3, 16, 16)
    flow = coordinate_grid(16, 16).expand(2, -1, -1, -1)
    assert torch.allclose(warp(image, flow), image, atol=1e-5)
    # a coarser identity flow is resized to the image and is still the identity
    assert torch.allclose(warp(image, coordinate_grid(4, 4).expand(2, -1, -1, -1)), image,
                          atol=1e-5)
    # a shift by one pixel moves the content by one pixel
    shifted = warp(image, flow + torch.tensor([2 / 15, 0.0]))
    assert torch.allclose(shifted[..., :-1], image[..., 1:], atol=1e-5)


def test_dense_motion_shapes_and_ranges() -> None:
    network = DenseMotionNetwork(MOTION)
    motion = network(torch.rand(2, 3, 32, 32), random_keypoints(), random_keypoints())
    assert motion.flow.shape == (2, 16, 16, 2)
    assert motion.masks.shape == (2, KEYPOINTS + 1, 16, 16)
    assert torch.allclose(motion.masks.sum(1), torch.ones(2, 16, 16), atol=1e-5)
    assert motion.sparse_deformed.shape == (2, KEYPOINTS + 1, 3, 16, 16)
    assert motion.occlusion_map is not None and motion.occlusion_map.shape == (2, 1, 16, 16)
    assert 0 < motion.occlusion_map.min() and motion.occlusion_map.max() < 1
    without = DenseMotionNetwork(DenseMotionConfig(**{**MOTION.to_dict(), "use_occlusion": False}))
    assert without(torch.rand(1, 3, 32, 32), random_keypoints(1),
                   random_keypoints(1)).occlusion_map is None


def test_zero_motion_makes_the_dense_flow_the_identity() -> None:
    network = DenseMotionNetwork(MOTION)
    image = torch.rand(2, 3, 32, 32)
    keypoints = random_keypoints()
    motion = network(image, keypoints, keypoints)  # whatever the masks, every motion is identity
    assert torch.allclose(motion.flow, coordinate_grid(16, 16).expand(2, -1, -1, -1), atol=1e-5)
    small = network.downsample(image)
    for index in range(KEYPOINTS + 1):
        assert torch.allclose(motion.sparse_deformed[:, index], small, atol=1e-5)


def test_masks_forced_to_the_background_give_the_identity_flow_for_any_keypoints() -> None:
    network = DenseMotionNetwork(MOTION)
    with torch.no_grad():
        network.mask_head.weight.zero_()
        network.mask_head.bias.copy_(torch.tensor([50.0] + [0.0] * KEYPOINTS))
    motion = network(torch.rand(2, 3, 32, 32), random_keypoints(), random_keypoints())
    assert torch.allclose(motion.flow, coordinate_grid(16, 16).expand(2, -1, -1, -1), atol=1e-5)


def test_generator_shapes_range_and_identity_warp() -> None:
    generator = OcclusionAwareGenerator(GENERATOR)
    image = torch.rand(2, 3, 32, 32)
    identity = coordinate_grid(16, 16).expand(2, -1, -1, -1)
    motion = DenseMotion(identity, torch.full((2, 1, 16, 16), 0.5),
                         torch.ones(2, KEYPOINTS + 1, 16, 16) / (KEYPOINTS + 1),
                         torch.zeros(2, KEYPOINTS + 1, 3, 16, 16))
    outputs = generator(image, motion)
    assert outputs["prediction"].shape == (2, 3, 32, 32)
    assert 0 <= outputs["prediction"].min() and outputs["prediction"].max() <= 1
    assert torch.allclose(outputs["deformed"], image, atol=1e-5)
    assert set(outputs) == {"prediction", "deformed", "flow", "occlusion_map", "masks",
                            "sparse_deformed"}
    without = generator(image, motion._replace(occlusion_map=None))
    assert "occlusion_map" not in without
    # the occlusion map does act: zero occlusion and full occlusion predict different frames
    generator.eval()
    visible = generator(image, motion._replace(occlusion_map=torch.ones(2, 1, 16, 16)))
    hidden = generator(image, motion._replace(occlusion_map=torch.zeros(2, 1, 16, 16)))
    assert not torch.allclose(visible["prediction"], hidden["prediction"])
    with pytest.raises(ValueError, match="multiple of 2"):
        generator(torch.rand(1, 3, 31, 32), motion)


def test_coordinate_conventions_agree_between_grid_and_grid_sample() -> None:
    # a one-pixel image feature at column c is read back at x = -1 + 2 c / (W - 1)
    image = torch.zeros(1, 1, 5, 9)
    image[0, 0, 2, 6] = 1.0
    x = -1 + 2 * 6 / 8
    read = warp(image, torch.tensor([x, 0.0]).expand(1, 5, 9, 2))  # every pixel reads (x, 0)
    assert torch.allclose(read, torch.ones_like(read), atol=1e-6)
    assert math.isclose(coordinate_grid(5, 9)[2, 6, 0].item(), x, abs_tol=1e-6)


def test_downsampling_keeps_the_coordinate_frame() -> None:
    # a bright spot at (x, y) is still at (x, y) in [-1, 1] after downscaling 32 -> 8
    grid = coordinate_grid(32, 32)
    spot = torch.tensor([0.6, -0.4])
    image = torch.exp(-((grid - spot) ** 2).sum(-1) / (2 * 0.1 ** 2)).view(1, 1, 32, 32)
    small = AntiAliasDownsample(channels=1, scale=0.25)(image)
    found = soft_argmax(small / small.sum())[0, 0]
    # (keeping every 4th pixel, as FOMM, would put it at about (0.77, -0.34))
    assert found.tolist() == pytest.approx(spot.tolist(), abs=0.01)
