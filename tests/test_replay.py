"""Replay (the episodic memory) in training: the memory learns each frame's error, the worst frames
come back in later batches, a resumed run draws the same batches, the checkpoint records it all.

Tiny CPU runs on the synthetic target of tests/test_train.py (its helpers are reused).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import draw_joints, make_project, quick_config, stop_with_ctrl_c, tiny_preset
from typer.testing import CliRunner

from motionxfer.checkpoint import Checkpoint
from motionxfer.cli import (
    app,
    commands,  # noqa: F401  (registers the commands)
)
from motionxfer.errors import BadInput
from motionxfer.training.batches import ReplayDraws, memory_config
from motionxfer.training.config import TrainConfig
from motionxfer.training.episodic_memory import EpisodicMemory
from motionxfer.training.train import train_target

pytestmark = pytest.mark.usefixtures("one_torch_thread")

Draw = tuple[int, list[int], list[bool], set[int]]  # step, memory slots, replayed, pool then


def replay_config(**changes: object) -> TrainConfig:
    values: dict[str, object] = {
        "steps": 8, "batch_size": 4, "face_refiner": False, "replay": True, "replay_share": 0.5,
        "replay_warmup": 3, "log_every": 1, "sample_every": 100, "validate_every": 100,
        "validation_frames": 2,
    }
    values.update(changes)
    return quick_config(**values)


@pytest.fixture
def draws(monkeypatch: pytest.MonkeyPatch) -> list[Draw]:
    """Every EpisodicMemory.draw of the test, with the replay pool at that moment."""
    seen: list[Draw] = []
    real_draw = EpisodicMemory.draw

    def spy(memory: EpisodicMemory, batch_size: int, step: int
            ) -> tuple[torch.Tensor, torch.Tensor]:
        pool = set(memory.replay_pool().tolist())
        slots, replayed = real_draw(memory, batch_size, step)
        seen.append((step, slots.tolist(), replayed.tolist(), pool))
        return slots, replayed

    monkeypatch.setattr(EpisodicMemory, "draw", spy)
    return seen


def test_replay_learns_the_errors_and_shows_the_worst_frames_again(
        tmp_path: Path, draws: list[Draw]) -> None:
    project = make_project(tmp_path / "me")
    config = replay_config()
    train_target(project, config, tiny_preset(), draw=draw_joints)

    saved = Checkpoint.load(project.paths.checkpoint)
    assert saved.train.replay and saved.train.replay_share == 0.5
    assert saved.train.replay_warmup == 3
    state = saved.training.episodic_memory
    assert state is not None
    assert int(state["seen_count"].sum()) == 8 * 4  # every sample of every step reported
    assert int(state["last_seen_step"].max()) == 7
    seen = state["last_seen_step"] >= 0
    assert bool((state["error"][seen] > 0).all())  # an untrained generator errs everywhere

    assert [step for step, *_ in draws] == list(range(8))  # one draw per generator step
    assert not any(any(replayed) for step, _, replayed, _ in draws if step < 3)
    replays = [(slot, pool) for step, slots, replayed, pool in draws if step >= 3
               for slot, again in zip(slots, replayed) if again]
    assert len(replays) >= 5 * 4 * 0.5 / 2  # 10 expected over steps 3..7; far fewer: broken
    assert all(slot in pool for slot, pool in replays)  # from the worst frames seen so far

    lines = [json.loads(line) for line in project.paths.train_log.read_text().splitlines()]
    replayed_logged = {line["step"]: line["replayed"] for line in lines if "replayed" in line}
    assert [replayed_logged[step] for step in (1, 2, 3)] == [0.0, 0.0, 0.0]
    assert sum(replayed_logged[step] for step in range(4, 9)) == len(replays)


def test_without_replay_the_checkpoint_says_so_and_holds_no_memory(tmp_path: Path) -> None:
    project = make_project(tmp_path / "me")
    train_target(project, quick_config(steps=2, face_refiner=False), tiny_preset(),
                 draw=draw_joints)
    saved = Checkpoint.load(project.paths.checkpoint)
    assert not saved.train.replay and saved.training.episodic_memory is None
    lines = project.paths.train_log.read_text().splitlines()
    assert not any("replayed" in json.loads(line) for line in lines)


def test_a_resumed_replay_run_draws_the_same_batches_as_an_uninterrupted_one(
        tmp_path: Path, draws: list[Draw]) -> None:
    """Ctrl-C after step 5 of 8 (past the warm-up: replays depend on the memory), resume: the
    same frames at every step, the same memory and the same weights as 8 steps in one go."""
    config = replay_config(num_workers=1)
    straight = make_project(tmp_path / "straight")
    train_target(straight, config, tiny_preset(), draw=draw_joints)
    uninterrupted = list(draws)
    draws.clear()

    interrupted = make_project(tmp_path / "interrupted")

    stop_with_ctrl_c(interrupted, config, 5)
    train_target(interrupted, config, None, resume=True, draw=draw_joints)

    assert [step for step, *_ in draws] == list(range(8))
    assert [draw[:3] for draw in draws] == [draw[:3] for draw in uninterrupted]
    assert any(any(replayed) for _, _, replayed, _ in draws[5:])  # the resumed part replays
    expected = Checkpoint.load(straight.paths.checkpoint)
    resumed = Checkpoint.load(interrupted.paths.checkpoint)
    for key, tensor in expected.training.episodic_memory.items():
        assert torch.equal(tensor, resumed.training.episodic_memory[key]), key
    for key, tensor in expected.models["generator"].items():
        assert torch.equal(tensor, resumed.models["generator"][key]), key


def test_replay_draws_map_memory_slots_to_training_frames() -> None:
    frames = np.array([3, 4, 9, 10, 11, 20])
    memory = EpisodicMemory(len(frames), memory_config(replay_config(replay_warmup=0)))
    replay = ReplayDraws(memory, frames)
    replay.report(np.array([9, 20]), torch.tensor([0.5, 2.0]), step=0)
    assert memory.error.tolist() == [0, 0, 0.5, 0, 0, 2.0]
    indices, replayed = replay.draw(4, step=1)
    assert set(indices.tolist()) <= set(frames.tolist()) and replayed.shape == (4,)
    with pytest.raises(ValueError, match="not all training frames"):
        replay.report(np.array([5]), torch.tensor([1.0]), step=1)


def test_bad_replay_settings_and_several_processes_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadInput, match="replay_share"):
        TrainConfig(replay_share=1.5)
    with pytest.raises(BadInput, match="replay_pool"):
        TrainConfig(replay_pool=0.0)
    with pytest.raises(BadInput, match="replay_warmup"):
        TrainConfig(replay_warmup=-1)
    project = make_project(tmp_path / "me")
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(BadInput, match="one process") as refused:
        train_target(project, replay_config(), tiny_preset(), draw=draw_joints)
    assert "--no-replay" in refused.value.hint
    assert not project.paths.checkpoint.exists()


def test_train_target_replay_flag(tmp_path: Path) -> None:
    runner = CliRunner()
    help_text = runner.invoke(app, ["train-target", "--help"], terminal_width=200).output
    assert "--replay" in help_text and "worst" in help_text
    project = make_project(tmp_path / "me", size=128)  # the tiny preset's height: cache ready
    table = ('[train]\npreset = "tiny"\nsteps = 2\nface_refiner = false\n'
             "validation_frames = 1\nnum_workers = 0\nreplay_warmup = 1\n")
    project.paths.config.write_text(project.paths.config.read_text().replace("[train]\n", table))
    result = runner.invoke(app, ["--json", "train-target", str(project.root), "--no-perceptual",
                                 "--device", "cpu", "--replay"])
    assert result.exit_code == 0, result.output
    saved = Checkpoint.load(project.paths.checkpoint)
    assert saved.train.replay and saved.train.replay_warmup == 1
    assert int(saved.training.episodic_memory["seen_count"].sum()) == 2 * saved.train.batch_size
