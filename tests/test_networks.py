"""Networks and losses on CPU at tiny sizes: shapes, gradients, face boxes, crop and paste."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from motionxfer.errors import BadInput
from motionxfer.networks.discriminator import (
    DiscriminatorConfig,
    MultiScaleDiscriminator,
    TemporalDiscriminator,
)
from motionxfer.networks.face_refiner import (
    FaceRefiner,
    FaceRefinerConfig,
    crop_faces,
    face_boxes,
    face_discriminator,
    feather_window,
    paste_residuals,
    refine_faces,
)
from motionxfer.networks.generator import Generator, GeneratorConfig
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC
from motionxfer.presets import load_preset, preset_from_dict, preset_names
from motionxfer.training.losses import (
    LossWeights,
    PerceptualLoss,
    adversarial_loss,
    discriminator_objective,
    feature_matching_loss,
    generator_objective,
)

SMALL = GeneratorConfig(ngf=8, n_downsample=2, n_blocks=1, max_channels=32)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def stick(batch: int = 2, height: int = 32, width: int = 48) -> torch.Tensor:
    return torch.rand(batch, 3, height, width) * 2 - 1


# --- generator -----------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [
    SMALL,
    dataclasses.replace(SMALL, upsample="transposed"),
    dataclasses.replace(SMALL, local_enhancer=True, n_local_blocks=1),
])
def test_generator_maps_stick_figures_to_a_frame_in_range(config: GeneratorConfig) -> None:
    generator = Generator(config)
    pose = stick()
    previous_pose, previous_frame = generator.first_frame_inputs(pose)
    assert torch.equal(previous_pose, pose) and not previous_frame.any()
    frame = generator(pose, previous_pose, previous_frame)
    assert frame.shape == (2, 3, 32, 48)
    assert frame.min() >= -1 and frame.max() <= 1


def test_generator_uses_every_input_and_every_parameter_gets_a_gradient() -> None:
    generator = Generator(SMALL)
    inputs = [stick().requires_grad_(True) for _ in range(3)]
    generator(*inputs).square().mean().backward()
    for tensor in inputs:
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0
    for name, parameter in generator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_generator_input_channels_follow_the_pose_channels() -> None:
    config = dataclasses.replace(SMALL, pose_channels=5)
    assert config.input_channels == 13
    generator = Generator(config)
    pose = torch.zeros(1, 5, 16, 16)
    assert generator(pose, pose, torch.zeros(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_generator_rejects_a_size_it_cannot_reproduce() -> None:
    generator = Generator(SMALL)  # multiple of 4
    with pytest.raises(ValueError, match="multiple of 4"):
        generator(stick(1, 30, 32), stick(1, 30, 32), stick(1, 30, 32))
    assert dataclasses.replace(SMALL, local_enhancer=True).size_multiple == 8


def test_local_enhancer_has_the_global_generator_at_twice_the_width() -> None:
    enhanced = Generator(dataclasses.replace(SMALL, local_enhancer=True, n_local_blocks=1))
    assert enhanced.network.global_generator.feature_channels == 2 * SMALL.ngf


# --- discriminators ------------------------------------------------------------------------------

def test_multiscale_discriminator_returns_every_layer_of_every_scale() -> None:
    config = DiscriminatorConfig(input_channels=6, ndf=8, n_layers=3, n_scales=3)
    outputs = MultiScaleDiscriminator(config)(torch.rand(2, 6, 64, 64))
    assert len(outputs) == 3
    for scale in outputs:
        assert len(scale) == config.n_layers + 2
        assert scale[-1].shape[:2] == (2, 1)
    # each scale sees the input halved: its score map is smaller
    assert outputs[0][-1].shape[-1] > outputs[1][-1].shape[-1] > outputs[2][-1].shape[-1]
    assert [layer.shape[1] for layer in outputs[0][:-1]] == [8, 16, 32, 64]


def test_spectral_norm_is_applied_when_asked() -> None:
    plain = MultiScaleDiscriminator(DiscriminatorConfig(ndf=8, n_scales=1))
    normed = MultiScaleDiscriminator(DiscriminatorConfig(ndf=8, n_scales=1, spectral_norm=True))
    assert not any("parametrizations" in name for name, _ in plain.named_parameters())
    assert any("parametrizations" in name for name, _ in normed.named_parameters())
    assert normed(torch.rand(1, 6, 32, 32))[0][-1].isfinite().all()


def test_temporal_discriminator_judges_two_pairs_and_sees_the_motion() -> None:
    temporal = TemporalDiscriminator(DiscriminatorConfig(input_channels=12, ndf=8, n_scales=2))
    poses = [stick(1, 32, 32) for _ in range(2)]
    images = [stick(1, 32, 32) for _ in range(2)]
    forward = temporal(*poses, *images)[0][-1]
    swapped = temporal(*poses, images[1], images[0])[0][-1]
    assert forward.shape[:2] == (1, 1)
    assert not torch.allclose(forward, swapped)  # the order of the frames matters


# --- losses --------------------------------------------------------------------------------------

def scores(value: float) -> list[list[torch.Tensor]]:
    """Two scales, each one feature layer and a score map, all equal to `value`."""
    return [[torch.full((1, 2, 4, 4), value), torch.full((1, 1, 4, 4), value)],
            [torch.full((1, 2, 2, 2), value), torch.full((1, 1, 2, 2), value)]]


def test_lsgan_and_hinge_losses_have_their_textbook_values() -> None:
    assert float(adversarial_loss(scores(1.0), True, "lsgan", True)) == 0.0
    assert float(adversarial_loss(scores(1.0), False, "lsgan", True)) == pytest.approx(2.0)
    assert float(adversarial_loss(scores(0.5), True, "hinge", True)) == pytest.approx(1.0)
    assert float(adversarial_loss(scores(0.5), False, "hinge", True)) == pytest.approx(3.0)
    assert float(adversarial_loss(scores(0.5), True, "hinge", False)) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        adversarial_loss(scores(0.5), True, "wgan", False)
    assert float(discriminator_objective("lsgan", scores(1.0), scores(0.0))) == 0.0


def test_feature_matching_is_zero_for_equal_features_and_grows_with_the_gap() -> None:
    features = [[torch.ones(1, 2, 4, 4), torch.ones(1, 4, 2, 2), torch.zeros(1, 1, 2, 2)]]
    moved = [[features[0][0] + 0.5, features[0][1], torch.full((1, 1, 2, 2), 9.0)]]
    assert float(feature_matching_loss(features, features)) == 0.0
    # 1 scale, 2 feature layers: weight 4 / 2 per layer, the score map is left out
    assert float(feature_matching_loss(moved, features)) == pytest.approx(2.0 * 0.5)


class TinyFeatures(nn.Module):
    """A stand-in for VGG16Features: five maps, shallow to deep."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1)
                                    for i in range(5))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for layer in self.layers:
            images = torch.relu(layer(images))
            outputs.append(images)
        return outputs


def test_perceptual_loss_weights_layers_and_trains_only_the_generator() -> None:
    loss = PerceptualLoss(TinyFeatures(), LossWeights().perceptual_layers)
    real = stick(1, 16, 16)
    fake = stick(1, 16, 16).requires_grad_(True)
    value = loss(fake, real)
    value.backward()
    assert float(loss(real, real)) == 0.0 and float(value.detach()) > 0
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in loss.parameters())
    assert LossWeights().perceptual_layers == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def test_generator_objective_has_each_weighted_term_and_drops_zero_weights() -> None:
    fake = [scores(0.3), scores(0.4)]
    real = [scores(0.9), scores(0.8)]
    frames = [stick(1, 8, 8), stick(1, 8, 8)]
    targets = [stick(1, 8, 8), stick(1, 8, 8)]
    full = generator_objective(LossWeights(l1=2.0), "lsgan", fake, real, scores(0.1), scores(0.9),
                               frames, targets, None)
    assert set(full.terms) == {"adversarial", "feature_matching", "temporal_adversarial",
                               "temporal_feature_matching", "l1"}
    assert float(full.total) == pytest.approx(sum(float(v) for v in full.terms.values()))
    expected_adversarial = ((0.3 - 1) ** 2 * 2 + (0.4 - 1) ** 2 * 2) / 2
    assert float(full.terms["adversarial"]) == pytest.approx(expected_adversarial, rel=1e-5)
    spatial_only = generator_objective(LossWeights(temporal_adversarial=0.0), "lsgan", fake, real,
                                       None, None, frames, targets, None)
    assert "temporal_adversarial" not in spatial_only.terms and "l1" not in spatial_only.terms


def test_generator_objective_reports_each_samples_error_for_the_episodic_memory() -> None:
    """sample_errors (B,): the unweighted perceptual term of each sample's two frames, averaged;
    the pixels' L1 without the perceptual loss. A sample rendered exactly has error 0."""
    reals = [stick(3, 8, 8), stick(3, 8, 8)]  # frames t-1 and t of 3 samples
    fakes = [frame.clone() for frame in reals]
    fakes[0][0] += 0.5  # sample 0 is off in both frames, sample 2 in frame t only
    fakes[1][0] -= 0.5
    fakes[1][2] += 0.2
    plain = generator_objective(LossWeights(), "lsgan", scores(0.3), scores(0.9), None, None,
                                fakes, reals, None)
    assert plain.sample_errors is not None
    assert plain.sample_errors.tolist() == pytest.approx([0.5, 0.0, 0.1], abs=1e-6)
    loss = PerceptualLoss(TinyFeatures(), LossWeights().perceptual_layers)
    with_vgg = generator_objective(LossWeights(), "lsgan", scores(0.3), scores(0.9), None, None,
                                   fakes, reals, loss)
    per_image = loss.per_sample(torch.cat(fakes), torch.cat(reals)).detach()  # (6,)
    assert with_vgg.sample_errors is not None
    assert torch.allclose(with_vgg.sample_errors, per_image.reshape(2, 3).mean(0))
    assert float(with_vgg.sample_errors[1]) == 0.0 and float(with_vgg.sample_errors[0]) > 0
    assert float(with_vgg.terms["perceptual"]) == pytest.approx(
        LossWeights().perceptual * float(loss(torch.cat(fakes), torch.cat(reals))), rel=1e-5)


# --- face refiner --------------------------------------------------------------------------------

def test_face_refiner_starts_as_the_identity_and_learns_a_residual() -> None:
    config = FaceRefinerConfig(crop_size=16, ngf=8, n_downsample=2, n_blocks=1)
    refiner = FaceRefiner(config)
    pose, crop = stick(2, 16, 16), stick(2, 16, 16)
    assert torch.equal(refiner(pose, crop), crop)
    optimizer = torch.optim.Adam(refiner.parameters(), lr=1e-2)
    target = torch.zeros_like(crop)
    (refiner(pose, crop) - target).abs().mean().backward()
    optimizer.step()
    assert not torch.equal(refiner(pose, crop), crop)
    outputs = face_discriminator(config)(torch.cat([pose, crop], 1))
    assert outputs[0][-1].shape[:2] == (2, 1)


def test_feather_window_fades_to_the_border() -> None:
    window = feather_window(16, 0.25)
    assert window.shape == (16, 16)
    assert float(window[8, 8]) == 1.0 and float(window[0, 0]) < 0.05
    assert torch.equal(window, window.T) and torch.equal(window, window.flip(0))


def test_crop_then_paste_puts_pixels_back_where_they_were() -> None:
    image = torch.rand(1, 3, 40, 60)
    boxes = torch.tensor([[20.0, 8.0, 36.0, 24.0]])  # 16 px, crop at 16: one pixel per pixel
    crops = crop_faces(image, boxes, 16)
    assert torch.allclose(crops, image[:, :, 8:24, 20:36], atol=1e-5)
    pasted = paste_residuals(torch.zeros_like(image), crops, boxes)
    assert torch.allclose(pasted[:, :, 8:24, 20:36], crops, atol=1e-5)
    outside = pasted.clone()
    outside[:, :, 8:24, 20:36] = 0
    assert float(outside.abs().max()) < 1e-5


def test_refine_faces_leaves_frames_without_a_box_unchanged() -> None:
    refiner = FaceRefiner(FaceRefinerConfig(crop_size=8, ngf=4, n_downsample=1, n_blocks=1))
    nn.init.normal_(refiner.network.output[1].weight, std=0.5)  # a refiner that changes things
    frames = torch.rand(2, 3, 32, 32) * 2 - 1
    boxes = torch.tensor([[8.0, 8.0, 24.0, 24.0], [float("nan")] * 4])
    refined = refine_faces(refiner, frames, stick(2, 32, 32), boxes)
    assert torch.equal(refined[1], frames[1])
    assert not torch.equal(refined[0], frames[0])
    # bilinear pasting reaches half a crop pixel (here 1 frame pixel) past the box, no further
    assert torch.allclose(refined[0, :, :, :7], frames[0, :, :, :7], atol=1e-5)
    assert torch.allclose(refined[0, :, :, 25:], frames[0, :, :, 25:], atol=1e-5)


def head_poses(frames: int, face_mesh: bool = False) -> PoseSequence:
    skeleton = MEDIAPIPE_HOLISTIC
    poses = PoseSequence.empty(skeleton, frames, 30.0, (200, 100))
    keypoints = poses.keypoints.copy()
    head = {"nose": (100, 40), "left_eye": (105, 35), "right_eye": (95, 35),
            "left_ear": (110, 37), "right_ear": (90, 37)}
    for name, (x, y) in head.items():
        keypoints[:, skeleton.index(name)] = (x, y, 1.0)
    if face_mesh:
        face = skeleton.group("face")
        angles = np.linspace(0, 2 * np.pi, face.stop - face.start)
        keypoints[:, face, 0] = 100 + 10 * np.cos(angles)
        keypoints[:, face, 1] = 40 + 15 * np.sin(angles)
        keypoints[:, face, 2] = 1.0
    return poses.with_keypoints(keypoints)


def test_face_boxes_from_the_head_joints_scale_with_the_frame() -> None:
    boxes = face_boxes(head_poses(5), (400, 200), smoothing=0)
    assert boxes.shape == (5, 4) and boxes.dtype == np.float32
    # head points span 20 px in the 200x100 source, 40 px at 400x200: the box is twice that
    x0, y0, x1, y1 = boxes[0]
    assert x1 - x0 == pytest.approx(80) and y1 - y0 == pytest.approx(80)
    assert (x0 + x1) / 2 == pytest.approx(200) and (y0 + y1) / 2 == pytest.approx(73.6)


def test_face_boxes_prefer_the_face_mesh() -> None:
    boxes = face_boxes(head_poses(3, face_mesh=True), (200, 100), smoothing=0)
    x0, y0, x1, y1 = boxes[0]
    assert x1 - x0 == pytest.approx(1.3 * 30, rel=1e-3)  # the mesh is 30 px tall
    assert (y0 + y1) / 2 == pytest.approx(40, abs=0.1)


def test_face_boxes_fill_gaps_smooth_jitter_and_do_not_extrapolate() -> None:
    poses = head_poses(40)
    keypoints = poses.keypoints.copy()
    rng = np.random.default_rng(0)
    keypoints[:, :, 0] += rng.normal(0, 2, size=(40, 1)).astype(np.float32)  # jitter whole head
    keypoints[10:14, :, 2] = 0.0  # a gap
    keypoints[:3, :, 2] = 0.0  # nothing at the start
    poses = poses.with_keypoints(keypoints)
    raw = face_boxes(poses, (200, 100), smoothing=0)
    smooth = face_boxes(poses, (200, 100), smoothing=2.0)
    assert np.isnan(raw[:3]).all() and np.isnan(smooth[:3]).all()
    assert np.isfinite(raw[3:]).all()  # the gap is interpolated
    centre_raw = (raw[3:, 0] + raw[3:, 2]) / 2
    centre_smooth = (smooth[3:, 0] + smooth[3:, 2]) / 2
    assert np.std(np.diff(centre_smooth)) < 0.5 * np.std(np.diff(centre_raw))


# --- presets -------------------------------------------------------------------------------------

def test_every_shipped_preset_loads_and_builds() -> None:
    names = preset_names()
    assert {"tiny", "256", "512", "1024"} <= set(names)
    for name in names:
        preset = load_preset(name)
        assert preset.size % preset.generator.size_multiple == 0
        assert preset.discriminator.input_channels == 6
        assert preset.temporal_discriminator.input_channels == 12
    assert load_preset("1024").generator.local_enhancer
    tiny = load_preset("tiny")
    assert tiny.size <= 128 and tiny.generator.ngf <= 16
    assert sum(p.numel() for p in Generator(tiny.generator).parameters()) < 2_000_000


def test_presets_are_strict() -> None:
    with pytest.raises(BadInput, match="no preset named"):
        load_preset("huge")
    with pytest.raises(BadInput, match="ngff"):
        preset_from_dict("x", {"size": 64, "generator": {"ngff": 3}}, "test")
    with pytest.raises(BadInput, match="cannot be set"):
        preset_from_dict("x", {"size": 64, "generator": {"pose_channels": 3}}, "test")
    with pytest.raises(BadInput, match="multiple"):
        preset_from_dict("x", {"size": 60, "generator": {"n_downsample": 3}}, "test")
    with pytest.raises(BadInput, match="unknown key"):
        preset_from_dict("x", {"size": 64, "optimizer": {}}, "test")
