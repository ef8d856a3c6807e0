"""The animator as a whole: its config, presets and ablations, gradients from the total loss,
overfitting one pair of frames, and animation helpers."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from motionxfer.animation.dense_motion import DenseMotionConfig
from motionxfer.animation.generator import OcclusionAwareGeneratorConfig
from motionxfer.animation.geometry import coordinate_grid
from motionxfer.animation.keypoint_detector import KeypointDetectorConfig
from motionxfer.animation.losses import (
    AnimatorLossWeights,
    discriminator_losses,
    generator_losses,
    perceptual_feature_extractor,
)
from motionxfer.animation.model import Animator, AnimatorConfig, ablation, preset
from motionxfer.errors import BadInput

torch.set_num_threads(1)

KEYPOINTS = 4
TINY = AnimatorConfig(
    image_size=32,
    keypoint_detector=KeypointDetectorConfig(num_keypoints=KEYPOINTS, block_expansion=8,
                                             num_blocks=2, max_features=32, scale_factor=0.5),
    dense_motion=DenseMotionConfig(num_keypoints=KEYPOINTS, block_expansion=8, num_blocks=2,
                                   max_features=32, scale_factor=0.5),
    generator=OcclusionAwareGeneratorConfig(block_expansion=8, max_features=32,
                                            num_down_blocks=2, num_bottleneck_blocks=1),
    loss_weights=AnimatorLossWeights(perceptual_scales=(1.0, 0.5), perceptual=(10.0, 10.0),
                                     feature_matching=(10.0,)),
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def features() -> nn.Module:
    return perceptual_feature_extractor(from_cache=False, layers=("relu1_1", "relu2_1"))


def blob_frames(batch: int = 2, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Source and driving frames (B, 3, S, S) of a bright blob that moves right on grey."""
    grid = coordinate_grid(size, size)

    def frame(x: float) -> torch.Tensor:
        blob = torch.exp(-((grid - torch.tensor([x, 0.0])) ** 2).sum(-1) / (2 * 0.15 ** 2))
        return (0.2 + 0.7 * blob).expand(3, size, size)

    return (torch.stack([frame(-0.3)] * batch), torch.stack([frame(0.3)] * batch))


class TinyDiscriminator(nn.Module):
    """One scale: a feature layer, then a score map (the MultiScaleDiscriminator layout)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Conv2d(3, 4, 4, stride=2, padding=1)
        self.score = nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, image: torch.Tensor) -> list[list[torch.Tensor]]:
        hidden = torch.relu(self.features(image))
        return [[hidden, self.score(hidden)]]


def test_config_round_trips_through_a_dict_and_is_strict() -> None:
    for config in (TINY, preset("tiny"), preset("256")):
        assert AnimatorConfig.from_dict(config.to_dict()) == config
    values = TINY.to_dict()
    values["generator"]["channel_count"] = 3
    with pytest.raises(BadInput, match="channel_count"):
        AnimatorConfig.from_dict(values)
    values = TINY.to_dict()
    del values["dense_motion"]["keypoint_variance"]
    with pytest.raises(BadInput, match="missing keypoint_variance"):
        AnimatorConfig.from_dict(values)
    values = TINY.to_dict()
    values["keypoint_detector"]["num_blocks"] = 2.5
    with pytest.raises(BadInput, match="num_blocks"):
        AnimatorConfig.from_dict(values)
    values = TINY.to_dict()
    values["dense_motion"]["num_keypoints"] = 7
    with pytest.raises(BadInput, match="num_keypoints"):
        AnimatorConfig.from_dict(values)


def test_config_checks_that_the_parts_fit_together() -> None:
    with pytest.raises(ValueError, match="num_keypoints"):
        dataclasses.replace(TINY, dense_motion=dataclasses.replace(TINY.dense_motion,
                                                                   num_keypoints=5))
    with pytest.raises(ValueError, match="2 \\*\\* num_blocks"):
        dataclasses.replace(TINY, image_size=36)
    with pytest.raises(BadInput, match="no animator preset"):
        preset("512")


def test_presets_are_the_tiny_one_and_the_papers() -> None:
    paper = preset("256")
    assert paper.image_size == 256 and paper.num_keypoints == 10
    assert paper.keypoint_detector.scale_factor == 0.25 and paper.keypoint_detector.num_blocks == 5
    assert paper.generator.num_bottleneck_blocks == 6 and paper.use_occlusion
    assert paper.estimate_jacobian
    tiny = preset("tiny")
    assert tiny.image_size == 64
    animator = Animator(tiny)
    assert sum(parameter.numel() for parameter in animator.parameters()) < 1_000_000
    outputs = animator.reconstruct(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
    assert outputs["prediction"].shape == (2, 3, 64, 64)


@pytest.mark.parametrize("use_occlusion,estimate_jacobian", [
    (True, True), (False, True), (True, False), (False, False)])
def test_gradients_reach_every_parameter_from_the_total_loss(
        features: nn.Module, use_occlusion: bool, estimate_jacobian: bool) -> None:
    config = ablation(TINY, use_occlusion=use_occlusion, estimate_jacobian=estimate_jacobian)
    config = dataclasses.replace(config, loss_weights=dataclasses.replace(
        config.loss_weights, generator_gan=1.0))
    assert config.use_occlusion == use_occlusion
    assert config.estimate_jacobian == estimate_jacobian
    animator = Animator(config)
    discriminator = TinyDiscriminator()
    source, driving = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    losses, generated = generator_losses(
        animator.keypoint_detector, animator.dense_motion, animator.generator, source, driving,
        config.loss_weights, features, config.transform, discriminator=discriminator)
    expected = {"perceptual", "equivariance_value", "generator_gan", "feature_matching", "total"}
    if estimate_jacobian:
        expected.add("equivariance_jacobian")
    assert set(losses) == expected
    assert all(value.dim() == 0 and torch.isfinite(value) for value in losses.values())
    assert ("occlusion_map" in generated) == use_occlusion
    losses["total"].backward()
    for name, parameter in animator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    discriminator.zero_grad()
    critic = discriminator_losses(discriminator, driving, generated["prediction"],
                                  config.loss_weights)
    critic["total"].backward()
    assert all(parameter.grad is not None for parameter in discriminator.parameters())


def test_a_gan_weight_without_a_discriminator_is_an_error(features: nn.Module) -> None:
    config = dataclasses.replace(TINY, loss_weights=dataclasses.replace(TINY.loss_weights,
                                                                        generator_gan=1.0))
    animator = Animator(config)
    with pytest.raises(ValueError, match="no discriminator"):
        generator_losses(animator.keypoint_detector, animator.dense_motion, animator.generator,
                         *blob_frames(), config.loss_weights, features)


def test_overfitting_one_pair_of_frames_cuts_the_reconstruction_error(
        features: nn.Module) -> None:
    animator = Animator(TINY)
    source, driving = blob_frames()
    optimizer = torch.optim.Adam(animator.parameters(), lr=3e-3)
    random = torch.Generator().manual_seed(0)
    errors, totals = [], []
    for _ in range(50):
        losses, generated = generator_losses(
            animator.keypoint_detector, animator.dense_motion, animator.generator, source, driving,
            TINY.loss_weights, features, TINY.transform, random=random)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
        errors.append((generated["prediction"] - driving).abs().mean().item())
        totals.append(losses["total"].item())
    assert errors[-1] < errors[0] / 8, errors
    assert totals[-1] < totals[0] / 3, totals
    # better than copying the source: the blob was moved, not just the grey learnt
    assert errors[-1] < (source - driving).abs().mean().item() / 2


def test_transfer_animates_a_source_image_by_a_driving_video() -> None:
    animator = Animator(TINY).eval()
    source, _ = blob_frames(batch=1)
    driving = torch.rand(5, 3, 32, 32)
    for relative in (True, False):
        video = animator.transfer(source, driving, relative=relative, batch_size=2)
        assert video.shape == (5, 3, 32, 32)
        assert 0 <= video.min() and video.max() <= 1
    # absolute transfer of each frame is the same as animating it one by one
    one = animator.animate(source, animator.detect(driving[3:4]))["prediction"]
    video = animator.transfer(source, driving, relative=False, batch_size=2)
    assert torch.allclose(video[3:4], one, atol=1e-5)
    # a source equal to the first driving frame: relative transfer is the absolute one
    relative = animator.transfer(driving[:1], driving, relative=True)
    absolute = animator.transfer(driving[:1], driving, relative=False)
    assert torch.allclose(relative, absolute, atol=1e-5)


def test_animating_to_the_source_keypoints_warps_by_the_identity() -> None:
    animator = Animator(TINY).eval()
    source, _ = blob_frames(batch=2)
    with torch.no_grad():
        keypoints = animator.detect(source)
        outputs = animator.animate(source, keypoints, keypoints)
    assert torch.allclose(outputs["flow"], coordinate_grid(16, 16).expand(2, -1, -1, -1),
                          atol=1e-5)
    assert torch.allclose(outputs["deformed"], source, atol=1e-4)


def test_animator_rejects_frames_of_the_wrong_size() -> None:
    animator = Animator(TINY)
    with pytest.raises(BadInput, match="32x32") as raised:
        animator.detect(torch.rand(1, 3, 64, 64))
    assert "resize" in raised.value.hint
    with pytest.raises(BadInput, match="exactly one"):
        animator.transfer(torch.rand(2, 3, 32, 32), torch.rand(3, 3, 32, 32))
