"""REMOT's region generation and whole composition (`networks.region_generator`): the start
state (a new region generator makes the texture generator's frame), the coarse person as the
layout-weighted mix of the regions, the region loss training each region on its own pixels, the
settings' refusals, and training with --layout --texture --regions (with the face refiner and the
part GANs) through transfer, ONNX export and resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import streamed_equals_sequential
from test_animals import LIMBS, write_clip
from test_layout import invoke, parsed_project
from test_train import quick_config, tiny_preset

from motionxfer.checkpoint import Checkpoint
from motionxfer.conditioning import Conditioning
from motionxfer.errors import BadInput
from motionxfer.inference.export import export_project
from motionxfer.inference.frame_generator import BackendConfig
from motionxfer.inference.transfer import PersonalModel
from motionxfer.io.video import probe
from motionxfer.networks.generator import GeneratorConfig
from motionxfer.networks.region_generator import REGIONS, RegionGenerator
from motionxfer.networks.registry import REGION_ARCHITECTURE, build_generator
from motionxfer.networks.texture_generator import TextureGenerator
from motionxfer.training.config import TrainConfig
from motionxfer.training.dataset import PairBatch
from motionxfer.training.losses import region_loss
from motionxfer.training.trainer import Trainer

torch.set_num_threads(1)
CHANNELS = 3 + 6 + 4  # stick figure, layout, texture


def region_input(batch: int, height: int, width: int, left: int = 2, right: int = 3,
                 alpha: float = 1.0) -> torch.Tensor:
    """A random pose input whose layout is class `left` on the left half, `right` on the right
    (probabilities 1 and 0 as [-1, 1]), with texture alpha `alpha` everywhere."""
    pose = torch.rand(batch, CHANNELS, height, width) * 2 - 1
    layout = torch.zeros(batch, 6, height, width)
    layout[:, left, :, :width // 2] = 1.0
    layout[:, right, :, width // 2:] = 1.0
    pose[:, 3:9] = layout * 2 - 1
    pose[:, -1] = alpha * 2 - 1
    return pose


@pytest.mark.parametrize("local_enhancer", [False, True])
def test_a_new_region_generator_makes_the_texture_generators_frame(local_enhancer: bool) -> None:
    config = GeneratorConfig(pose_channels=CHANNELS, ngf=8, n_downsample=2, n_blocks=1,
                             max_channels=16, local_enhancer=local_enhancer)
    torch.manual_seed(0)
    plain = TextureGenerator(config).eval()
    torch.manual_seed(0)
    regions = build_generator(config, REGION_ARCHITECTURE).eval()
    assert isinstance(regions, RegionGenerator)
    plate = torch.full((3, 16, 24), -0.5)
    plain.set_plate(plate)
    regions.set_plate(plate)
    pose = region_input(2, 16, 24)
    zeros = torch.zeros(2, 3, 16, 24)
    with torch.no_grad():
        expected = plain(pose, pose, zeros)
        frame = regions(pose, pose, zeros)
    assert frame.shape == (2, 3, 16, 24)
    assert torch.allclose(frame, expected, atol=1e-6)  # the coarse person's weights start at 0
    assert regions.last_mask is not None and torch.allclose(regions.last_mask, plain.last_mask)
    assert regions.last_regions is not None and regions.last_region_weights is not None
    assert regions.last_regions.shape == (2, REGIONS, 3, 16, 24)
    assert regions.last_region_weights.shape == (2, REGIONS, 1, 16, 24)
    assert regions.last_coarse is not None and regions.last_coarse.shape == (2, 3, 16, 24)
    # every region starts as the re-posed texture (blend sigmoid(3) = 0.95 where alpha is 1)
    assert (regions.last_regions - pose[:, None, -4:-1]).abs().max() < 0.1
    assert (regions.last_coarse - pose[:, -4:-1]).abs().max() < 0.1

    regions.train()
    regions(pose, pose, zeros).square().sum().backward()
    first = regions.generator.network
    first = first.encoder[1] if local_enhancer else first.body[1]
    assert first.in_channels == 2 * CHANNELS + 3 + 3  # ... + the coarse person
    assert first.weight.grad is not None and first.weight.grad[:, -3:].abs().sum() > 0
    assert all(parameter.grad is not None for parameter in regions.regions.parameters())
    with pytest.raises(ValueError, match="layout"):
        RegionGenerator(GeneratorConfig(pose_channels=7))  # a texture without the layout


def test_the_coarse_person_is_each_pixels_own_region() -> None:
    torch.manual_seed(1)
    generator = RegionGenerator(GeneratorConfig(pose_channels=CHANNELS, ngf=8, n_downsample=2,
                                                n_blocks=1, max_channels=16)).eval()
    pose = region_input(1, 16, 16, left=1, right=4, alpha=0.0)  # head | shoes, no texture
    with torch.no_grad():
        generator(pose, pose, torch.zeros(1, 3, 16, 16))
    regions, coarse = generator.last_regions, generator.last_coarse
    assert regions is not None and coarse is not None
    # classes 1 (head) and 4 (shoes) are regions 0 and 3
    assert torch.allclose(coarse[..., :8], regions[:, 0, :, :, :8], atol=1e-2)
    assert torch.allclose(coarse[..., 8:], regions[:, 3, :, :, 8:], atol=1e-2)
    # two classes with the same mask: the shared network tells them apart by the class code
    pose[:, 3:9] = -1.0
    pose[:, 4, :, :8] = pose[:, 7, :, :8] = 0.0  # probability 0.5 each on the left half
    with torch.no_grad():
        generator(pose, pose, torch.zeros(1, 3, 16, 16))
    regions = generator.last_regions
    assert regions is not None and (regions[:, 0] - regions[:, 3]).abs().max() > 1e-3
    assert (regions[:, 1] - regions[:, 2]).abs().max() == 0  # two absent classes: one input


def test_the_region_loss_is_each_regions_own_error() -> None:
    real = torch.zeros(1, 3, 4, 4)
    regions = torch.zeros(1, REGIONS, 3, 4, 4)
    weights = torch.zeros(1, REGIONS, 1, 4, 4)
    weights[:, 0, :, :2] = 1.0  # region 0 on the top half, region 1 on the bottom
    weights[:, 1, :, 2:] = 1.0
    regions[:, 0, :, 2:] = 1.0  # region 0 wrong only outside itself
    assert region_loss(regions, weights, real) == 0
    regions[:, 1, :, 2:] = 0.5  # region 1 wrong inside itself by 0.5
    assert torch.isclose(region_loss(regions, weights, real), torch.tensor(0.5 / REGIONS))
    person = torch.zeros(1, 1, 4, 4)
    assert region_loss(regions, weights, real, person) == 0  # nobody there


def test_the_region_loss_teaches_each_region_its_own_colours() -> None:
    """A tiny overfit: no texture, two regions of the layout with a colour each in the real
    frame; the region loss alone trains the region network."""
    torch.manual_seed(0)
    generator = RegionGenerator(GeneratorConfig(pose_channels=CHANNELS, ngf=8, n_downsample=2,
                                                n_blocks=1, max_channels=16))
    pose = region_input(2, 16, 16, left=2, right=3, alpha=0.0)
    real = torch.empty(2, 3, 16, 16)
    real[..., :8] = torch.tensor([0.8, -0.6, 0.2])[:, None, None]
    real[..., 8:] = torch.tensor([-0.7, 0.5, -0.9])[:, None, None]
    zeros = torch.zeros(2, 3, 16, 16)
    optimizer = torch.optim.Adam(generator.regions.parameters(), lr=0.01)

    def loss() -> torch.Tensor:
        generator(pose, pose, zeros)
        assert generator.last_regions is not None and generator.last_region_weights is not None
        return region_loss(generator.last_regions, generator.last_region_weights, real)

    before = float(loss().detach())
    for _ in range(40):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    after = float(loss().detach())
    print(f"region loss {before:.3f} -> {after:.3f}")
    assert after < 0.4 * before


def test_regions_need_the_layout_and_the_texture() -> None:
    with pytest.raises(BadInput, match="need layout and texture = true"):
        TrainConfig(regions=True)
    with pytest.raises(BadInput, match="need layout = true"):
        TrainConfig(regions=True, texture=True)
    with pytest.raises(BadInput, match="need texture = true"):
        TrainConfig(regions=True, layout=True, texture=False)
    with pytest.raises(BadInput, match="texture_attention"):
        TrainConfig(regions=True, layout=True, texture=True, texture_attention=True)
    assert TrainConfig(regions=True, layout=True, texture=True).regions


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return parsed_project(tmp_path_factory.mktemp("regions"))


def test_training_with_regions_transfers_exports_and_resumes(project, tmp_path: Path) -> None:
    project, source = project
    refused = invoke("train-target", project.root, "--steps", "1", "--regions")
    assert refused.exit_code != 0 and "need layout and texture = true (--layout --texture)" in refused.output
    # with the face refiner (a step) and the part GANs, whose face discriminator judges the
    # whole composition's frames
    project.paths.config.write_text(project.paths.config.read_text().replace(
        "face_refiner = false\n", "face_refiner_steps = 1\n"))
    result = invoke("train-target", project.root, "--steps", "2", "--layout", "--layout-steps",
                    "2", "--texture", "--regions", "--face-refiner", "--part-gan")
    assert result.exit_code == 0, result.output
    model = Checkpoint.load(project.paths.checkpoint)
    assert model.architecture == REGION_ARCHITECTURE and model.train.regions
    assert model.conditioning.layout and model.conditioning.texture
    assert any(key.startswith("regions.") for key in model.models["generator"])
    assert "face_refiner" in model.models and "part_discriminator_face" in model.models
    assert isinstance(model.build_generator(), RegionGenerator)  # strict load: a round trip
    log = project.paths.train_log.read_text()
    assert '"G_region"' in log and '"stage": "face_refiner"' in log

    streamed = streamed_equals_sequential(project, source, tmp_path)
    assert probe(streamed).frame_count == 15
    exported = export_project(project)  # the generator's graph exports; the onnx backend
    assert all(m.max_abs_difference < 1e-3 for m in exported.models if m.precision == "fp32")
    with pytest.raises(BadInput, match="--backend torch"):  # ... refuses the layout's models
        PersonalModel(model, backend=BackendConfig(backend="onnx"),
                      exports_dir=project.paths.exports)

    refused = invoke("train-target", project.root, "--resume", "--no-regions")
    assert refused.exit_code != 0 and "resuming cannot change" in refused.output
    resumed = invoke("train-target", project.root, "--resume", "--steps", "3")
    assert resumed.exit_code == 0, resumed.output
    again = Checkpoint.load(project.paths.checkpoint)
    assert again.architecture == REGION_ARCHITECTURE and again.generator_step == 3


def test_an_animal_refuses_the_regions_and_steps_aside_from_the_texture(tmp_path: Path) -> None:
    """Regions need the layout, which refuses a body without a human torso; the texture (and
    its attention) steps aside with a warning, as before."""
    video, table = write_clip(tmp_path, "mouse", frames=48, size=64, scale=1.0)
    project = tmp_path / "mouse_project"
    assert invoke("init", project, "--target", video).exit_code == 0
    assert invoke("import-keypoints", project, table, "--limbs", LIMBS).exit_code == 0
    tiny = ("--preset", "tiny", "--steps", "1", "--no-perceptual", "--no-face-refiner")
    refused = invoke("train-target", project, *tiny, "--layout", "--texture", "--regions")
    assert refused.exit_code != 0 and "without --regions" in refused.output
    assert not (project / "checkpoints" / "model.pt").exists()
    stepped_aside = invoke("train-target", project, *tiny, "--texture", "--texture-attention")
    assert stepped_aside.exit_code == 0, stepped_aside.output
    assert "training without the texture and its attention" in stepped_aside.output
    model = Checkpoint.load(project / "checkpoints" / "model.pt")
    assert not model.conditioning.texture and not model.train.texture_attention


def test_the_trainer_adds_the_region_term_and_it_falls(one_torch_thread) -> None:
    """The generator step of a region generator: `G_region` in its losses, falling on one batch
    it overfits (two regions of plain colours, no texture), with the plate composited."""
    conditioning = Conditioning("stick_figure", CHANNELS, texture=True, layout=True)
    preset = tiny_preset(32).conditioned(conditioning)
    preset = dataclasses.replace(preset, generator=dataclasses.replace(preset.generator,
                                                                       extra_outputs=2))
    config = quick_config(steps=15, layout=True, texture=True, regions=True, lr=0.002,
                          face_refiner=False)
    torch.manual_seed(0)
    trainer = Trainer(preset, config, torch.device("cpu"), None, False,
                      architecture=REGION_ARCHITECTURE, plate=torch.full((3, 32, 32), -1.0))
    pose = region_input(2, 32, 32, alpha=0.0)
    frame = torch.full((2, 3, 32, 32), -1.0)
    frame[..., 8:24, 4:16] = torch.tensor([0.8, -0.6, 0.2])[:, None, None]
    frame[..., 8:24, 16:28] = torch.tensor([-0.7, 0.5, -0.9])[:, None, None]
    batch = PairBatch(np.array([1, 2]), pose, pose, frame, frame)
    losses = [trainer.generator_step(batch)["G_region"] for _ in range(15)]
    print("G_region", [round(value, 3) for value in losses])
    assert len(trainer.last_regions) == 2  # frames t-1 and t
    assert losses[-1] < 0.6 * losses[0]
