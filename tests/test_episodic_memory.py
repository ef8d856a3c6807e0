"""Episodic memory: what is replayed, how often, and that resuming replays the same batches."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from motionxfer.errors import BadInput
from motionxfer.training.episodic_memory import EpisodicMemory, MemoryConfig

CONFIG = MemoryConfig(enabled=True, replay_fraction=0.3, pool_fraction=0.1, min_pool_size=4,
                      warmup_steps=10)
FRAMES = 200


def memory_with_errors(config: MemoryConfig = CONFIG, seen: int = FRAMES,
                       seed: int = 0) -> EpisodicMemory:
    """Frames 0 .. seen-1 seen at step 0, frame k with error k (so the worst are the last)."""
    memory = EpisodicMemory(FRAMES, config, seed=seed)
    indices = torch.arange(seen)
    memory.update(indices, indices.double(), step=0)
    return memory


def test_nothing_is_replayed_before_warmup_and_unseen_frames_never():
    memory = EpisodicMemory(FRAMES, CONFIG, seed=1)
    for step in range(CONFIG.warmup_steps):
        indices, replayed = memory.draw(16, step)
        assert not replayed.any()
        memory.update(indices, torch.rand(16, dtype=torch.float64), step)
    seen = memory.seen.clone()
    assert 0 < int(seen.sum()) < FRAMES  # some frames are still unseen here
    replay_total = 0
    for step in range(CONFIG.warmup_steps, CONFIG.warmup_steps + 200):
        indices, replayed = memory.draw(16, step)
        replay_total += int(replayed.sum())
        assert seen[indices[replayed]].all()
    assert replay_total > 0


def test_replayed_share_matches_the_config_over_many_batches():
    memory = memory_with_errors()
    batch_size, batches = 10, 2000  # 0.3 * 10 = 3 exactly; try a share that does not divide too
    for fraction in (0.3, 0.25):
        memory.config = replace(CONFIG, replay_fraction=fraction)
        counts = torch.tensor([int(memory.draw(batch_size, step)[1].sum())
                               for step in range(100, 100 + batches)], dtype=torch.float64)
        share = float(counts.sum()) / (batch_size * batches)
        assert share == pytest.approx(fraction, abs=0.01)
        assert set(counts.tolist()) <= {float(int(fraction * batch_size)),
                                        float(int(fraction * batch_size) + 1)}


def test_worst_frames_are_replayed_far_more_often_than_the_median():
    memory = memory_with_errors()  # pool: the worst 10 % = frames 180..199
    drawn = torch.cat([memory.draw(16, step)[0] for step in range(100, 1100)])
    counts = torch.bincount(drawn, minlength=FRAMES).double()
    assert float(counts[190:].mean()) > 5 * float(counts[90:110].mean())
    # the floor: the pool is spread over many frames, not monopolised by the single worst one
    assert float(counts[199]) < 0.15 * float(counts[180:].sum())
    assert int((counts[180:] > counts[90:110].mean()).sum()) == 20


def test_pool_has_a_floor_when_few_frames_are_seen():
    memory = memory_with_errors(seen=10)
    assert memory.replay_pool().tolist() == [9, 8, 7, 6]  # min_pool_size 4 > 10 % of 10
    memory = memory_with_errors(seen=3)
    assert memory.replay_pool().tolist() == [2, 1, 0]


def test_disabled_memory_is_uniform_sampling():
    memory = memory_with_errors(replace(CONFIG, enabled=False))
    indices, replayed = memory.draw(16, 500)
    assert not replayed.any() and indices.unique().numel() == 16


def test_moving_average_and_last_error():
    last = EpisodicMemory(5, replace(CONFIG, ema=0.0))
    averaged = EpisodicMemory(5, replace(CONFIG, ema=0.75))
    for memory in (last, averaged):
        memory.update([2], [4.0], step=3)
        memory.update([2, 4], [8.0, 1.0], step=7)
    assert last.error[2] == 8.0
    assert averaged.error[2] == pytest.approx(0.75 * 4.0 + 0.25 * 8.0)
    assert averaged.error[4] == 1.0  # a first visit takes the error as it is
    assert last.last_seen_step.tolist() == [-1, -1, 7, -1, 7]
    assert last.seen_count.tolist() == [0, 0, 2, 0, 1]


def test_draws_are_a_function_of_seed_step_and_state():
    first, second = memory_with_errors(seed=3), memory_with_errors(seed=3)
    for step in (10, 11, 5000):
        a_indices, a_replayed = first.draw(12, step)
        b_indices, b_replayed = second.draw(12, step)
        assert torch.equal(a_indices, b_indices) and torch.equal(a_replayed, b_replayed)
    assert not torch.equal(first.draw(12, 10)[0], first.draw(12, 11)[0])
    assert not torch.equal(first.draw(12, 10)[0], memory_with_errors(seed=4).draw(12, 10)[0])
    # drawing does not consume state: the same step again gives the same batch
    assert torch.equal(first.draw(12, 42)[0], first.draw(12, 42)[0])


def run(memory: EpisodicMemory, steps: range) -> list[torch.Tensor]:
    """A fake training loop: draw, 'train', report errors that depend only on frame and step."""
    batches = []
    for step in steps:
        indices, _ = memory.draw(8, step)
        batches.append(indices)
        errors = ((indices * 7919 + step * 104729) % 1000).double() / 1000
        memory.update(indices, errors, step)
    return batches


def test_resume_through_torch_save_replays_exactly(tmp_path: Path):
    uninterrupted = EpisodicMemory(FRAMES, CONFIG, seed=9)
    expected = run(uninterrupted, range(60))

    interrupted = EpisodicMemory(FRAMES, CONFIG, seed=9)
    before = run(interrupted, range(30))
    torch.save({"memory": interrupted.state_dict()}, tmp_path / "checkpoint.pt")
    resumed = EpisodicMemory(FRAMES, CONFIG, seed=9)
    resumed.load_state_dict(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["memory"])
    after = run(resumed, range(30, 60))
    assert all(torch.equal(a, b) for a, b in zip(before + after, expected))
    assert torch.equal(resumed.error, uninterrupted.error)


def test_load_is_strict():
    state = memory_with_errors().state_dict()
    with pytest.raises(BadInput):
        EpisodicMemory(FRAMES + 1, CONFIG).load_state_dict(state)
    with pytest.raises(BadInput):
        EpisodicMemory(FRAMES, CONFIG, seed=5).load_state_dict(state)
    with pytest.raises(BadInput):
        EpisodicMemory(FRAMES, CONFIG).load_state_dict({"error": state["error"]})


def test_bad_input():
    with pytest.raises(BadInput):
        MemoryConfig(replay_fraction=1.5)
    memory = EpisodicMemory(10, CONFIG)
    with pytest.raises(BadInput):
        memory.update([10], [1.0], step=0)
    with pytest.raises(BadInput):
        memory.update([1], [float("nan")], step=0)
    with pytest.raises(BadInput):
        memory.update([1, 2], [1.0], step=0)
