"""REMOT's layout GAN: the layout generator's shapes, the layout channels of the conditioning,
the layout stage learning the fixture's parsing, training with `--layout` through transfer
(streamed and sequential) and resume, and the refusals (a non-human layout; resuming with the
layout switched; the ONNX backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FIXTURES, clips_project, streamed_equals_sequential
from PIL import Image
from test_animals import LIMBS, write_clip
from typer.testing import CliRunner

from motionxfer.checkpoint import Checkpoint
from motionxfer.cli import app, hoist_global_flags
from motionxfer.conditioning import LAYOUT_CHANNELS, Conditioning
from motionxfer.errors import BadInput
from motionxfer.inference.frame_generator import BackendConfig
from motionxfer.inference.transfer import PersonalModel
from motionxfer.io.video import probe
from motionxfer.networks.layout_generator import (
    LayoutGenerator,
    LayoutGeneratorConfig,
    LayoutPredictor,
)
from motionxfer.networks.registry import TEXTURE_ARCHITECTURE
from motionxfer.parsing.labels import CLASS_COLOURS
from motionxfer.pipeline import import_parsing, load_parsing, load_poses, texture_bank
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC
from motionxfer.presets import load_preset
from motionxfer.project import Project
from motionxfer.training.config import TrainConfig
from motionxfer.training.dataset import conditioning_drawer
from motionxfer.training.layout import (
    LayoutSamples,
    LayoutTraining,
    layout_batch_indices,
    pixel_accuracy,
)

torch.set_num_threads(1)
runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, hoist_global_flags([str(arg) for arg in args]))


def test_the_layout_generator_maps_any_frame_size_to_class_logits() -> None:
    config = LayoutGeneratorConfig(pose_channels=5, ngf=8, n_downsample=3, n_blocks=1)
    network = LayoutGenerator(config)
    for height, width in ((64, 48), (37, 50)):  # any size, not only multiples of 8
        logits = network(torch.randn(2, 5, height, width))
        assert logits.shape == (2, 6, height, width)
    logits.sum().backward()
    assert all(parameter.grad is not None for parameter in network.parameters())
    predictor = LayoutPredictor(network, torch.device("cpu"))
    probabilities = predictor(np.zeros((37, 50, 5), np.uint8))
    assert probabilities.shape == (37, 50, 6) and probabilities.dtype == np.uint8
    assert np.abs(probabilities.astype(int).sum(axis=-1) - 255).max() <= 3  # softmax x 255


def test_layout_channels_sit_between_the_pose_and_the_texture() -> None:
    skeleton = MEDIAPIPE_HOLISTIC
    both = Conditioning.for_skeleton("stick_figure", skeleton, texture=True, layout=True)
    assert both.channels == 3 + LAYOUT_CHANNELS + 4 and both.pose_channels == 3
    assert Conditioning.from_dict(both.to_dict(), "here") == both
    assert Conditioning.from_dict({"kind": "stick_figure", "channels": 3}, "old") == Conditioning()
    layout = Conditioning.for_skeleton("stick_figure", skeleton, layout=True)
    keypoints = np.zeros((skeleton.num_joints, 3))
    with pytest.raises(BadInput, match="layout"):
        layout.encode(keypoints, skeleton, 32, 24)

    def all_shoes(pose: np.ndarray) -> np.ndarray:
        out = np.zeros((*pose.shape[:2], LAYOUT_CHANNELS), np.uint8)
        out[..., 4] = 255
        return out

    encoded = layout.encode(keypoints, skeleton, 32, 24, layout=all_shoes)
    assert encoded.shape == (24, 32, 9) and (encoded[..., 7] == 255).all()
    shown = layout.to_rgb(encoded)  # the shoes' colour, dimmed, where no stroke is drawn
    dimmed = (0.35 * CLASS_COLOURS[4].astype(np.float32)).astype(np.uint8)
    assert (shown == dimmed).all()
    with pytest.raises(BadInput, match="report this as a bug"):
        layout.encode(keypoints, skeleton, 32, 24, layout=lambda pose: pose)


TINY = ('[train]\npreset = "tiny"\nperceptual = false\nnum_workers = 0\nface_refiner = false\n'
        "validation_frames = 2\nmin_train_seconds = 1.0\n")


def parsed_project(folder: Path):
    """The fixture project, set to train tiny, with the fixture's ground-truth parsing imported
    as its cache: (project, source path)."""
    project, source = clips_project(folder)
    project.paths.config.write_text(project.paths.config.read_text().replace("[train]\n", TINY))
    maps = folder / "maps"
    maps.mkdir()
    with np.load(FIXTURES / "target_clip_parsing.npz") as data:
        for index, labels in enumerate(data["parsing"]):
            Image.fromarray(labels, mode="L").save(maps / f"frame_{index:06d}.png")
    import_parsing(project, project.target, maps, "six")
    return project, source


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return parsed_project(tmp_path_factory.mktemp("layout"))


def test_the_layout_stage_learns_the_targets_parsing(project) -> None:
    project, _ = project
    poses = load_poses(project, project.target)
    parsing = load_parsing(project, project.target)
    assert parsing is not None
    conditioning = Conditioning.for_skeleton("stick_figure", poses.skeleton, layout=True)
    samples = LayoutSamples(poses, parsing.labels, conditioning_drawer(conditioning, poses),
                            (64, 64))
    torch.manual_seed(0)
    config = LayoutGeneratorConfig(pose_channels=3, ngf=16, n_downsample=3, n_blocks=1)
    train = TrainConfig(batch_size=4, lr=0.002, layout_steps=40, decay_start=1.0)
    layout = LayoutTraining(config, train, load_preset("tiny").losses, torch.device("cpu"))
    frames = np.arange(1, 90)
    probe_frames = samples.batch(np.array([20, 50, 80]))
    person = probe_frames.labels > 0

    def scores() -> tuple[float, float]:  # (all pixels, the person's pixels)
        with torch.no_grad():
            layout.network.eval()
            logits = layout.network(probe_frames.pose)
        predicted = logits.argmax(dim=1)
        return (pixel_accuracy(logits, probe_frames.labels),
                float((predicted[person] == probe_frames.labels[person]).float().mean()))

    before = scores()
    for step in range(train.layout_steps):
        values = layout.step(samples.batch(layout_batch_indices(frames, 4, 0, step)))
    after = scores()
    print(f"layout accuracy before {before}, after {after}, last batch {values['L_accuracy']}")
    background = 1.0 - float(person.float().mean())  # all-background's accuracy (~0.94)
    assert after[0] > before[0] + 0.2 and after[0] > background  # better than no person at all
    assert after[1] > before[1] + 0.2 and after[1] > 0.3  # the person's classes (0.12 -> 0.5)
    assert layout.step_count == 40 and values["D_layout"] > 0


def test_training_with_layout_transfers_and_resumes(project, tmp_path: Path) -> None:
    project, source = project
    result = invoke("train-target", project.root, "--steps", "2", "--no-texture", "--layout",
                    "--layout-steps", "3")
    assert result.exit_code == 0, result.output
    model = Checkpoint.load(project.paths.checkpoint)
    assert model.conditioning.layout and model.train.layout and model.layout_step == 3
    assert model.generator.pose_channels == 3 + LAYOUT_CHANNELS  # the generator sees the layout
    assert model.preset.layout_generator.pose_channels == 3  # the layout generator, the pose
    assert {"layout_generator", "layout_discriminator"} <= set(model.models)
    assert model.training is not None and "layout_generator" in model.training.optimizers
    log = project.paths.train_log.read_text()
    assert '"stage": "layout", "step": 3' in log
    assert "layout_generator" in model.inference_only().models
    assert "layout_discriminator" not in model.inference_only().models

    streamed = streamed_equals_sequential(project, source, tmp_path)
    assert probe(streamed).frame_count == 15
    with pytest.raises(BadInput, match="--backend torch"):
        PersonalModel(model, backend=BackendConfig(backend="onnx"),
                      exports_dir=project.paths.exports)

    layout_weights = model.models["layout_generator"]
    refused = invoke("train-target", project.root, "--resume", "--no-layout")
    assert refused.exit_code != 0 and "resuming cannot change" in refused.output
    resumed = invoke("train-target", project.root, "--resume", "--steps", "3",
                     "--layout-steps", "6")
    assert resumed.exit_code == 0, resumed.output
    again = Checkpoint.load(project.paths.checkpoint)
    assert again.conditioning.layout and again.generator_step == 3 and again.layout_step == 6
    assert any(not torch.equal(layout_weights[key], again.models["layout_generator"][key])
               for key in layout_weights)  # the layout stage went on from its checkpoint


def test_layout_refuses_a_target_that_is_not_a_human_body(tmp_path: Path) -> None:
    video, table = write_clip(tmp_path, "mouse", frames=48, size=64, scale=1.0)
    project = tmp_path / "mouse_project"
    assert invoke("init", project, "--target", video).exit_code == 0
    assert invoke("import-keypoints", project, table, "--limbs", LIMBS).exit_code == 0
    refused = invoke("train-target", project, "--preset", "tiny", "--steps", "2",
                     "--no-perceptual", "--layout")
    assert refused.exit_code != 0 and "train without --layout" in refused.output
    assert "six classes of a human body" in refused.output
    assert not (project / "checkpoints" / "model.pt").exists()


def test_layout_and_texture_on_a_target_with_no_parsing_yet(tmp_path: Path) -> None:
    """No parsing cache: train-target --layout runs the built-in parser first; with --texture
    too, the layout's six channels sit before the texture's four."""
    project, _ = clips_project(tmp_path)
    project.paths.config.write_text(project.paths.config.read_text().replace("[train]\n", TINY))
    assert load_parsing(project, project.target) is None
    result = invoke("train-target", project.root, "--steps", "1", "--layout", "--layout-steps",
                    "1", "--texture")
    assert result.exit_code == 0, result.output
    project = Project.open(project.root)  # as the command left it
    parsing = load_parsing(project, project.target)
    assert parsing is not None and parsing.method == "colour_model"  # the built-in parser's
    with np.load(FIXTURES / "target_clip_parsing.npz") as data:
        truth = data["parsing"]
    assert (parsing.labels[truth > 0] == truth[truth > 0]).mean() > 0.5  # not an empty map
    model = Checkpoint.load(project.paths.checkpoint)
    assert model.architecture == TEXTURE_ARCHITECTURE
    assert model.conditioning.layout and model.conditioning.texture
    assert model.generator.pose_channels == 3 + LAYOUT_CHANNELS + 4
    poses = load_poses(project, project.target)
    pose = poses.keypoints[10]
    predictor = LayoutPredictor(model.build_layout_generator(), torch.device("cpu"))
    bank = texture_bank(project, model)
    width, height = model.working_size
    encoded = model.conditioning.encode(pose, poses.skeleton, width, height,
                                        source_size=poses.image_size, texture=bank,
                                        reference=20, layout=predictor)
    assert encoded.shape == (height, width, 13)
    assert np.array_equal(encoded[..., -4:], bank.encode(pose, bank.poses.image_size, 20))
    assert np.abs(encoded[..., 3:9].astype(int).sum(axis=-1) - 255).max() <= 3
