"""The Gromov-Wasserstein structure loss in training (`TrainConfig.gw_loss`): the joints a batch
carries, the G_gw term, its gradient to the generator, a short training run."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from motionxfer.checkpoint import Checkpoint
from motionxfer.cli import (
    app,
    commands,  # noqa: F401  (registers the commands)
)
from motionxfer.errors import BadInput
from motionxfer.io.frame_cache import FrameCache
from motionxfer.io.images import to_tensor
from motionxfer.networks import vgg
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC, Skeleton
from motionxfer.training.config import TrainConfig
from motionxfer.training.dataset import Augmentation, PairBatch, TrainingSamples, zoom_and_shift
from motionxfer.training.gromov_wasserstein import structure_joints
from motionxfer.training.losses import LossWeights, PerceptualLoss
from motionxfer.training.train import train_target
from motionxfer.training.trainer import Trainer
from tests.test_train import (
    draw_joints,
    draw_person,
    make_project,
    quick_config,
    synthetic_poses,
    tiny_preset,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class SmallFeatures(torch.nn.Module):
    """Five feature maps, halving in size, as VGG16Features returns (no weights to fetch)."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(3 if i == 0 else 8, 8, 3, padding=1)
                                         for i in range(5))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for index, conv in enumerate(self.convs):
            images = torch.relu(conv(images if index == 0 else
                                     torch.nn.functional.avg_pool2d(images, 2)))
            maps.append(images)
        return maps


def test_gw_needs_the_perceptual_features_and_compares_the_body_joints() -> None:
    with pytest.raises(BadInput, match="perceptual"):
        TrainConfig(gw_loss=True, perceptual=False)
    assert structure_joints(MEDIAPIPE_HOLISTIC) == list(range(33))
    assert structure_joints(Skeleton("mouse", ("snout", "tail", "paw"), ())) == [0, 1, 2]


def test_the_gw_term_alone_moves_the_generator() -> None:
    torch.manual_seed(0)
    poses = synthetic_poses(4, 32)
    body = structure_joints(poses.skeleton)
    batch = PairBatch(np.array([2]), *(to_tensor([draw_joints(poses.keypoints[t], 32, 32)])
                                       for t in (1, 2)),
                      *(to_tensor([draw_person(poses.keypoints[t], 32)]) for t in (1, 2)),
                      joints=torch.from_numpy(poses.keypoints[2:3, body].copy()))
    only_gw = LossWeights(**{name: 0.0 for name in (
        "adversarial", "temporal_adversarial", "feature_matching", "temporal_feature_matching",
        "perceptual", "mask")}, gw=1.0, gw_pose=0.5)
    preset = dataclasses.replace(tiny_preset(), losses=only_gw)
    perceptual = PerceptualLoss(SmallFeatures(), (1.0,) * 5)
    trainer = Trainer(preset, quick_config(perceptual=True, gw_loss=True), torch.device("cpu"),
                      perceptual, False)
    before = [parameter.detach().clone() for parameter in trainer.generator.parameters()]
    values = trainer.generator_step(batch)
    assert {key for key in values if key.startswith("G_")} == {"G_gw", "G_gw_pose", "G_total"}
    assert all(values[key] > 0 and math.isfinite(values[key]) for key in ("G_gw", "G_gw_pose"))
    moved = [not torch.equal(old, new)
             for old, new in zip(before, trainer.generator.parameters())]
    assert sum(moved) > 0.9 * len(moved), f"{moved.count(False)} of {len(moved)} did not move"
    unchanged = PairBatch(*dataclasses.astuple(batch)[:5])  # without joints: no GW term to train
    with pytest.raises(ValueError, match="every loss weight is 0"):
        trainer.generator_step(unchanged)


def test_pairs_carry_frame_t_joints_at_the_cache_size_moved_by_the_augmentation() -> None:
    poses = synthetic_poses(12, 64)  # keypoints of 64 px frames, cached at 32 px
    frames = np.stack([draw_person(poses.keypoints[t] / 2, 32) for t in range(12)])
    body = np.array(structure_joints(poses.skeleton))
    plain = TrainingSamples(FrameCache(Path("memory"), frames), poses, draw_joints, joints=body)
    batch = plain.pairs([5, 9])
    assert batch.joints is not None and batch.joints.shape == (2, 33, 3)
    expected = poses.keypoints[[5, 9]][:, body]
    assert np.allclose(batch.joints[..., :2].numpy(), expected[..., :2] / 2, equal_nan=True)
    assert np.array_equal(batch.joints[..., 2].numpy(), expected[..., 2])
    augmentation = Augmentation(scale=0.2, shift=0.15, colour=0.0)
    moved = TrainingSamples(FrameCache(Path("memory"), frames), poses, draw_joints,
                            augmentation, joints=body).pairs([5], seed=3)
    zoom, shift_x, shift_y, _, _ = augmentation.draw(np.random.default_rng([3, 5]))
    on_frames = zoom_and_shift((32, 32), zoom, shift_x, shift_y)
    assert moved.joints is not None
    assert np.allclose(moved.joints[0, :, :2].numpy(),
                       batch.joints[0, :, :2].numpy() @ on_frames[:, :2].T + on_frames[:, 2],
                       atol=1e-4, equal_nan=True)
    assert TrainingSamples(FrameCache(Path("memory"), frames), poses,
                           draw_joints).pairs([5]).joints is None
    # windows of frames (TrainConfig.sequence) carry every frame's joints, moved alike
    window = plain.windows(np.array([[2, 3, 4, 5], [6, 7, 8, 9]]))
    assert window.joints is not None and window.joints.shape == (2, 4, 33, 3)
    expected = poses.keypoints[[[2, 3, 4, 5], [6, 7, 8, 9]]][:, :, body]
    assert np.allclose(window.joints[..., :2].numpy(), expected[..., :2] / 2, equal_nan=True)
    moved_window = TrainingSamples(FrameCache(Path("memory"), frames), poses, draw_joints,
                                   augmentation, joints=body).windows(np.array([[2, 3, 4, 5]]),
                                                                      seed=3)
    assert moved_window.joints is not None  # the draw keyed by frame 5, as the pair [5]'s
    assert np.allclose(moved_window.joints[0, -1].numpy(), moved.joints[0].numpy(),
                       atol=1e-4, equal_nan=True)
    assert not np.allclose(moved_window.joints[0, 0].numpy(), moved.joints[0].numpy(),
                           equal_nan=True)
    assert TrainingSamples(FrameCache(Path("memory"), frames), poses,
                           draw_joints).windows(np.array([[2, 3]])).joints is None


@pytest.mark.parametrize("choice", [{"augmentation": True}, {"sequence": 3}],
                         ids=["pairs_augmented", "windows_of_3"])
def test_training_with_gw_loss_logs_g_gw(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, choice: dict[str, object]) -> None:
    """On pairs (frame t), and on windows of frames (every frame of each window)."""
    monkeypatch.setattr(vgg.VGG16Features, "from_cache",
                        classmethod(lambda cls, **options: SmallFeatures()))
    project = make_project(tmp_path / "me")
    result = train_target(project, quick_config(steps=2, perceptual=True, gw_loss=True,
                                                log_every=1, face_refiner=False, **choice),
                          tiny_preset(), draw=draw_joints)
    assert result.generator_steps == 2
    lines = [json.loads(line) for line in project.paths.train_log.read_text().splitlines()]
    generator_lines = [line for line in lines if "validation" not in line]
    assert len(generator_lines) == 2
    assert all(line["G_gw"] > 0 for line in generator_lines)
    model = Checkpoint.load(project.paths.checkpoint)
    assert model.train.gw_loss and model.train.sequence == choice.get("sequence", 0)


def test_train_target_gw_loss_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vgg.VGG16Features, "from_cache",
                        classmethod(lambda cls, **options: SmallFeatures()))
    runner = CliRunner()
    shown = runner.invoke(app, ["train-target", "--help"], terminal_width=200)
    assert "--gw-loss" in shown.output and "--no-gw-loss" in shown.output
    project = make_project(tmp_path / "me", size=128)  # the tiny preset's height: cache ready
    table = ('[train]\npreset = "tiny"\nsteps = 1\nface_refiner = false\n'
             "validation_frames = 1\nnum_workers = 0\n")
    project.paths.config.write_text(project.paths.config.read_text().replace("[train]\n", table))
    refused = runner.invoke(app, ["train-target", str(project.root), "--no-perceptual",
                                  "--device", "cpu", "--gw-loss"])
    assert refused.exit_code != 0 and "perceptual = true" in refused.output
    result = runner.invoke(app, ["train-target", str(project.root), "--device", "cpu",
                                 "--gw-loss"])
    assert result.exit_code == 0, result.output
    assert Checkpoint.load(project.paths.checkpoint).train.gw_loss
