"""The part GANs (`TrainConfig.part_gan`): crops of hands, feet and face, their discriminators'
step, training, checkpoint and resumption."""

from __future__ import annotations

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
from motionxfer.io.images import to_tensor
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC, Skeleton
from motionxfer.training.dataset import PairBatch
from motionxfer.training.part_crops import crop_parts, part_joints
from motionxfer.training.part_gan import PartBatch, group_crops, part_tracks
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

NAN_BOX = [math.nan] * 4


def test_a_generated_frame_equal_to_the_real_one_differs_only_in_its_role() -> None:
    """Identical frames give identical discriminator inputs; a changed one changes only the
    image channels; unseen parts are left out, a group with none seen is skipped."""
    generator = torch.Generator().manual_seed(0)
    pose, real = (torch.rand(2, 3, 32, 32, generator=generator) for _ in range(2))
    boxes = torch.tensor([[[2, 2, 14, 14], [16, 4, 28, 16], [8, 0, 24, 16]],
                          [NAN_BOX, [10, 10, 26, 26], NAN_BOX]])  # (B=2, P=3, 4)
    landmarks = torch.tensor([[[16.5, 8.5, 1.0]], [[math.nan, math.nan, 0.0]]])  # (B, N=1, 3)
    parts = PartBatch(("left_hand", "right_hand", "face"), boxes, landmarks)

    same = group_crops("hands", parts, pose, real, real.clone(), 16)
    assert same is not None and same.real.shape == (3, 3, 16, 16)  # frame 1's left hand unseen
    assert torch.equal(same.discriminator_inputs(fake=True), same.discriminator_inputs(fake=False))
    expected_boxes = torch.stack([boxes[0, 0], boxes[0, 1], boxes[1, 1]])  # left hands, then right
    samples = [0, 0, 1]
    assert torch.equal(same.condition, crop_parts(pose[samples], expected_boxes, 16))
    assert torch.equal(same.real, crop_parts(real[samples], expected_boxes, 16))

    changed = group_crops("hands", parts, pose, real, real + 0.5, 16)
    assert changed is not None
    fake_input, real_input = (changed.discriminator_inputs(fake=flag) for flag in (True, False))
    assert torch.equal(fake_input[:, :3], real_input[:, :3])  # the same pose crop
    assert not torch.allclose(fake_input[:, 3:], real_input[:, 3:])

    face = group_crops("face", parts, pose, real, real.clone(), 16)
    assert face is not None and face.condition.shape == (1, 4, 16, 16)  # frame 1: no face
    heatmap = face.condition[0, 3]
    peak = divmod(int(heatmap.argmax()), 16)  # (row, column) of the landmark in the box
    assert peak == (8, 8) and heatmap.max() > 0.9
    assert group_crops("feet", parts, pose, real, real, 16) is None  # the layout has no feet
    unseen = PartBatch(parts.parts, torch.full_like(boxes, math.nan), landmarks)
    assert group_crops("hands", unseen, pose, real, real, 16) is None


def test_part_tracks_follow_the_keypoints_at_the_working_size() -> None:
    poses = synthetic_poses(12, 64)  # keypoints in a 64 px frame
    tracks = part_tracks(poses, (32, 32))
    assert tracks.parts == ("left_hand", "right_hand", "left_foot", "right_foot", "face")
    assert tracks.groups == ("hands", "feet", "face") and tracks.boxes.shape == (12, 5, 4)
    wrist = poses.xy[:, MEDIAPIPE_HOLISTIC.index("left_wrist")] / 2  # (T, 2) at 32 px
    box = tracks.boxes[:, 0]
    assert ((box[:, :2] <= wrist) & (wrist <= box[:, 2:])).all()
    assert tracks.face_landmarks.shape[1] == len(part_joints(MEDIAPIPE_HOLISTIC)["face"])
    mouse = Skeleton("mouse", ("snout", "left_ear", "right_ear", "tail"), ())
    assert part_joints(mouse) == {}


def _pair_batch(frames: list[int]) -> tuple[PairBatch, np.ndarray]:
    poses = synthetic_poses(8, 32)
    batch = PairBatch(
        np.array(frames),
        *(to_tensor([draw_joints(poses.keypoints[t], 32, 32) for t in index])
          for index in ([t - 1 for t in frames], frames)),
        *(to_tensor([draw_person(poses.keypoints[t], 32) for t in index])
          for index in ([t - 1 for t in frames], frames)))
    return batch, poses.keypoints


def test_the_part_discriminators_step_and_their_loss_reaches_the_generator() -> None:
    batch, _ = _pair_batch([2, 3])
    tracks = part_tracks(synthetic_poses(8, 32), (32, 32))
    parts = tracks.batch(batch.indices)
    without_face = PartBatch(parts.parts, parts.boxes.clone(), parts.face_landmarks)
    without_face.boxes[:, parts.parts.index("face")] = math.nan

    torch.manual_seed(0)
    plain = Trainer(tiny_preset(), quick_config(), torch.device("cpu"), None, False)
    torch.manual_seed(0)
    trainer = Trainer(tiny_preset(), quick_config(part_gan=True), torch.device("cpu"), None,
                      False, part_groups=("hands", "feet", "face"))
    before = {name: [p.detach().clone() for p in module.parameters()]
              for name, module in trainer.modules().items()}
    values = trainer.generator_step(batch, without_face)
    plain.generator_step(batch)

    for group in ("hands", "feet"):
        assert {f"G_part_{group}_adversarial", f"G_part_{group}_feature_matching",
                f"D_part_{group}"} <= set(values)
        assert all(math.isfinite(values[key]) for key in values if group in key)
    assert not any("face" in key for key in values)  # no face seen: skipped, not an error
    for name, module in trainer.modules().items():
        moved = [not torch.equal(old, new) for old, new in zip(before[name], module.parameters())]
        assert all(moved) if name != "part_discriminator_face" else not any(moved), name
    # the same networks, the same batch: only the part terms make the generators differ
    assert any(not torch.equal(a, b) for a, b in zip(trainer.generator.parameters(),
                                                     plain.generator.parameters()))


def test_training_with_part_gans_logs_saves_and_resumes_exactly(tmp_path: Path) -> None:
    """Two steps, Ctrl-C, resume to four: the part discriminators and their optimizers come back
    from the checkpoint (the same weights as four steps in one go)."""
    config = quick_config(steps=4, part_gan=True, face_refiner=False, batch_size=2,
                          log_every=1, sample_every=10, validate_every=10)
    straight = make_project(tmp_path / "straight")
    train_target(straight, config, tiny_preset(), draw=draw_joints)
    lines = [json.loads(line) for line in straight.paths.train_log.read_text().splitlines()]
    logged = [line for line in lines if "validation" not in line]
    assert len(logged) == 4
    for group in ("hands", "feet", "face"):
        assert all(f"G_part_{group}_total" in line and f"D_part_{group}" in line
                   for line in logged)

    interrupted = make_project(tmp_path / "interrupted")

    def press_ctrl_c(description: str, done: int, total: int | None, rate: str) -> None:
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_target(interrupted, config, tiny_preset(), progress=press_ctrl_c,
                     draw=draw_joints)
    halfway = Checkpoint.load(interrupted.paths.checkpoint)
    assert halfway.generator_step == 2 and halfway.train.part_gan
    assert halfway.training is not None
    assert "part_discriminator_hands" in halfway.training.optimizers
    result = train_target(interrupted, config, None, resume=True, draw=draw_joints)
    assert result.generator_steps == 4 and result.steps_this_run == 2

    expected = Checkpoint.load(straight.paths.checkpoint)
    resumed = Checkpoint.load(interrupted.paths.checkpoint)
    names = ["generator", *(f"part_discriminator_{group}" for group in ("hands", "feet", "face"))]
    for name in names:
        for key, tensor in expected.models[name].items():
            assert torch.equal(tensor, resumed.models[name][key]), f"{name}.{key}"
    assert "part_discriminator_hands" not in resumed.inference_only().models
    # going on without the part GANs keeps them as they were
    train_target(interrupted, quick_config(steps=5, face_refiner=False), None, resume=True,
                 draw=draw_joints)
    kept = Checkpoint.load(interrupted.paths.checkpoint)
    assert kept.generator_step == 5 and not kept.train.part_gan
    for key, tensor in resumed.models["part_discriminator_feet"].items():
        assert torch.equal(tensor, kept.models["part_discriminator_feet"][key]), key


def test_train_target_part_gan_flag_reaches_the_checkpoint(tmp_path: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["train-target", "--help"], terminal_width=200)
    assert "--part-gan" in shown.output and "--no-part-gan" in shown.output
    project = make_project(tmp_path / "me", size=128)  # the tiny preset's height: cache ready
    table = ('[train]\npreset = "tiny"\nsteps = 1\nface_refiner = false\n'
             "validation_frames = 1\nnum_workers = 0\n")
    project.paths.config.write_text(project.paths.config.read_text().replace("[train]\n", table))
    result = runner.invoke(app, ["--json", "train-target", str(project.root), "--no-perceptual",
                                 "--device", "cpu", "--part-gan"])
    assert result.exit_code == 0, result.output
    saved = Checkpoint.load(project.paths.checkpoint)
    assert saved.train.part_gan and "part_discriminator_face" in saved.models
