"""The moving average of the generator's weights (`TrainConfig.ema`): its decay schedule, that it
follows the trained weights without changing them, and that checkpoints keep both, transfer
loads the average and a resumed run goes on exactly.

Tiny CPU runs on the synthetic target of tests/test_train.py (its helpers are reused).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import (
    draw_joints,
    draw_person,
    make_project,
    quick_config,
    stop_with_ctrl_c,
    synthetic_poses,
    tiny_preset,
)

from motionxfer.checkpoint import Checkpoint
from motionxfer.errors import BadInput
from motionxfer.io.images import to_tensor
from motionxfer.training.dataset import PairBatch
from motionxfer.training.train import train_target
from motionxfer.training.trainer import TRAINED_GENERATOR, Trainer, average_decay

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_decay_starts_low_and_rises_to_the_one_asked_for() -> None:
    assert average_decay(0.999, 1) == pytest.approx(2 / 11)  # the first weights soon forgotten
    assert average_decay(0.999, 990) == pytest.approx(0.991)
    assert average_decay(0.999, 100_000) == 0.999  # a long run: the decay asked for
    values = [average_decay(0.999, n) for n in range(1, 20_000, 97)]
    assert values == sorted(values)


def test_a_decay_outside_zero_to_one_is_refused() -> None:
    for decay in (-0.1, 1.0, 1.5):
        with pytest.raises(BadInput, match="ema"):
            quick_config(ema=decay)


def batch() -> PairBatch:
    poses = synthetic_poses(4, 32)
    return PairBatch(np.array([2]), *(to_tensor([draw_joints(poses.keypoints[t], 32, 32)])
                                      for t in (1, 2)),
                     *(to_tensor([draw_person(poses.keypoints[t], 32)]) for t in (1, 2)))


def test_the_average_follows_the_trained_weights_without_changing_them() -> None:
    trainers = {}
    for decay in (0.0, 0.9):
        torch.manual_seed(0)
        trainers[decay] = Trainer(tiny_preset(), quick_config(ema=decay), torch.device("cpu"),
                                  None, False)
    averaged = trainers[0.9]
    assert trainers[0.0].generator_average is None
    assert trainers[0.0].inference_generator is trainers[0.0].generator
    expected = [p.detach().clone() for p in averaged.generator.parameters()]
    for step in range(3):
        for trainer in trainers.values():
            trainer.generator_step(batch())
        current = list(averaged.generator.parameters())
        if step == 0:  # the first update copies the weights
            expected = [p.detach().clone() for p in current]
        else:
            decay = average_decay(0.9, step)
            expected = [decay * old + (1 - decay) * new.detach()
                        for old, new in zip(expected, current)]
    for trained, plain in zip(averaged.generator.parameters(),
                              trainers[0.0].generator.parameters()):
        assert torch.equal(trained, plain)  # the average does not touch the training
    average = list(averaged.inference_generator.parameters())
    for value, want in zip(average, expected):
        torch.testing.assert_close(value, want)
    assert not all(torch.equal(a, t) for a, t in zip(average, averaged.generator.parameters()))
    states = averaged.model_states()  # what a checkpoint holds: the average and the weights
    assert all(torch.equal(states[TRAINED_GENERATOR][key], value)
               for key, value in averaged.generator.state_dict().items())
    assert all(torch.equal(states["generator"][key], value)
               for key, value in averaged.inference_generator.state_dict().items())


def test_checkpoints_keep_both_transfer_loads_the_average_and_resume_is_exact(
        tmp_path: Path) -> None:
    """Ctrl-C after step 3 of 6, resume: the average and the trained weights are those of 6
    steps in one go, bit for bit; the face refiner learns on the average's frames."""
    config = quick_config(steps=6, batch_size=2, num_workers=1, ema=0.99)
    straight = make_project(tmp_path / "straight")
    train_target(straight, config, tiny_preset(), draw=draw_joints)
    interrupted = make_project(tmp_path / "interrupted")

    stop_with_ctrl_c(interrupted, config, 3)
    train_target(interrupted, config, None, resume=True, draw=draw_joints)

    expected = Checkpoint.load(straight.paths.checkpoint)
    resumed = Checkpoint.load(interrupted.paths.checkpoint)
    assert resumed.train.ema == 0.99
    for name in ("generator", TRAINED_GENERATOR, "face_refiner"):
        for key, tensor in expected.models[name].items():
            assert torch.equal(tensor, resumed.models[name][key]), f"{name}.{key}"
    average, trained = expected.models["generator"], expected.models[TRAINED_GENERATOR]
    assert any(not torch.equal(average[key], trained[key]) for key in average)
    built = expected.build_generator().state_dict()
    assert all(torch.equal(built[key], average[key]) for key in average)
    kept = expected.inference_only()
    assert TRAINED_GENERATOR not in kept.models and "generator" in kept.models


def test_resuming_with_the_average_switched_on_starts_it_from_the_weights(
        tmp_path: Path) -> None:
    project = make_project(tmp_path / "me")
    train_target(project, quick_config(steps=2, face_refiner=False), tiny_preset(),
                 draw=draw_joints)
    before = Checkpoint.load(project.paths.checkpoint).models["generator"]
    train_target(project, quick_config(steps=3, face_refiner=False, ema=0.5), resume=True,
                 draw=draw_joints)
    after = Checkpoint.load(project.paths.checkpoint)
    assert after.train.ema == 0.5
    trained = after.models[TRAINED_GENERATOR]
    # one step averaged in from the weights of step 2: decay min(0.5, 3 / 12) = 0.25
    for key, value in after.models["generator"].items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.25 * before[key] + 0.75 * trained[key])
