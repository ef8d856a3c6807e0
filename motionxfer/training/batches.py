"""Which frames each training step uses, and the threads that prepare them ahead.

The frames of step k are a pure function of (seed, stage, k) (and with several processes of the
rank and world size), so resuming from the checkpoint of step k replays the same batches. With
`TrainConfig.sequence = N` the generator's samples are windows of N consecutive frames, drawn the
same way over the windows' first frames (`window_indices`, `window_maker`).

With replay (`TrainConfig.replay`, the episodic memory of `motionxfer.training.episodic_memory`)
the generator's frames of step k are a function of (seed, k, memory state), and the memory holds
the errors of steps up to k - 1: `ReplayDraws` draws them in the training thread when step k asks
for its batch (`ReplayBatchQueue`; nothing is drawn ahead), and the memory state travels in the
checkpoint, so resuming replays the same batches here too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler

from motionxfer.training.config import TrainConfig
from motionxfer.training.dataset import PairBatch, PairImages, TrainingSamples, WindowBatch
from motionxfer.training.distributed import Processes
from motionxfer.training.episodic_memory import EpisodicMemory, MemoryConfig

GENERATOR_STAGE = "generator"
FACE_STAGE = "face_refiner"


def batch_indices(candidates: np.ndarray, batch_size: int, seed: int, stage: str,
                  step: int) -> np.ndarray:
    """The frames of step `step`: a pure function of (seed, stage, step), so resuming replays it."""
    stage_number = 0 if stage == GENERATOR_STAGE else 1
    generator = torch.Generator().manual_seed(
        (seed * 1_000_003 + stage_number * 7_919 + step) % (2**63)
    )
    picks = torch.randint(len(candidates), (batch_size,), generator=generator).numpy()
    return candidates[picks]


def shard_batch_indices(candidates: np.ndarray, batch_size: int, seed: int, stage: str,
                        step: int, processes: Processes) -> np.ndarray:
    """The frames of step `step` for this process when several train: DistributedSampler's order.

    Each epoch is a permutation of the candidates seeded with (seed, stage) + epoch, padded to a
    multiple of the process count, of which rank r takes every world_size-th element from r
    (`DistributedSampler(shuffle=True, drop_last=False)` with `set_epoch(epoch)`). Rank r's steps
    walk through its part of one epoch after another, `batch_size` at a time (a batch may straddle
    two epochs), so the ranks' batches of one step are disjoint within an epoch. A pure function of
    (seed, stage, step, rank, world size): resuming with as many processes replays it.
    """
    stage_number = 0 if stage == GENERATOR_STAGE else 1
    sampler = DistributedSampler(range(len(candidates)), num_replicas=processes.world_size,
                                 rank=processes.rank, shuffle=True,
                                 seed=(seed * 1_000_003 + stage_number * 7_919) % 2**62,
                                 drop_last=False)
    per_epoch = sampler.num_samples
    positions = np.arange(step * batch_size, (step + 1) * batch_size)  # in this rank's stream
    picks = np.empty(batch_size, np.int64)
    for epoch in np.unique(positions // per_epoch):
        sampler.set_epoch(int(epoch))
        order = np.fromiter(iter(sampler), np.int64, count=per_epoch)
        chosen = positions // per_epoch == epoch
        picks[chosen] = order[positions[chosen] % per_epoch]
    return candidates[picks]


class BatchQueue:
    """Prepares the batches of the next steps in threads (drawing is deterministic per step)."""

    def __init__(self, make: Callable[[int], Any], first_step: int, last_step: int,
                 workers: int) -> None:
        self.make = make
        self.next_step = first_step
        self.last_step = last_step
        self.executor = ThreadPoolExecutor(max_workers=workers) if workers > 0 else None
        self.pending: deque[Future[Any]] = deque()
        self.depth = max(workers, 1) + 1

    def get(self) -> Any:
        if self.executor is None:
            self.next_step += 1
            return self.make(self.next_step - 1)
        while len(self.pending) < self.depth and self.next_step < self.last_step:
            self.pending.append(self.executor.submit(self.make, self.next_step))
            self.next_step += 1
        return self.pending.popleft().result()

    def close(self) -> None:
        if self.executor is not None:
            for future in self.pending:
                future.cancel()
            self.executor.shutdown(wait=True)


def batch_builder(samples: TrainingSamples, seed: int, stage: str,
                  device: torch.device) -> Callable[[np.ndarray, int], PairBatch | PairImages]:
    """Builds the batch of frames `indices` (B,) for step k: a PairBatch for the CPU; for a GPU
    only stacked as uint8 and pinned, so that the copy is a quarter of the bytes, runs while the
    GPU computes, and the conversion to floats happens on the GPU (`on_device`)."""

    def build(indices: np.ndarray, step: int) -> PairBatch | PairImages:
        augmentation_seed = (seed * 1_000_003 + (0 if stage == GENERATOR_STAGE else 1) * 7_919
                             + step) % 2**63
        if device.type == "cuda":
            return samples.pair_images(indices, augmentation_seed).pin_memory()
        return samples.pairs(indices, augmentation_seed)

    return build


def batch_maker(samples: TrainingSamples, candidates: np.ndarray, batch_size: int, seed: int,
                stage: str, processes: Processes,
                device: torch.device) -> Callable[[int], PairBatch | PairImages]:
    """What the batch-making threads run for step k (`BatchQueue`): this process's frames of the
    step (`batch_indices`, `shard_batch_indices`), built by `batch_builder`."""
    build = batch_builder(samples, seed, stage, device)

    def make(step: int) -> PairBatch | PairImages:
        if processes.distributed:
            indices = shard_batch_indices(candidates, batch_size, seed, stage, step, processes)
        else:
            indices = batch_indices(candidates, batch_size, seed, stage, step)
        return build(indices, step)

    return make


# --- windows of consecutive frames (`TrainConfig.sequence`) --------------------------------------

def window_indices(starts: np.ndarray, batch_size: int, length: int, seed: int,
                   step: int) -> np.ndarray:
    """The frames (B, N) of the generator's step `step` with windows of N frames: B window
    starts drawn as `batch_indices` draws frames (a pure function of seed and step, so resuming
    replays it), each followed by its next N - 1 frames."""
    chosen = batch_indices(starts, batch_size, seed, GENERATOR_STAGE, step)
    return chosen[:, None] + np.arange(length)[None, :]


def window_maker(samples: TrainingSamples, starts: np.ndarray, batch_size: int, length: int,
                 seed: int, processes: Processes) -> Callable[[int], WindowBatch]:
    """What the batch-making threads run for step k with windows: this process's windows of the
    step (`window_indices`, or `shard_batch_indices` over the starts with several processes),
    built on the CPU (the step moves them to the device)."""

    def make(step: int) -> WindowBatch:
        if processes.distributed:
            first = shard_batch_indices(starts, batch_size, seed, GENERATOR_STAGE, step,
                                        processes)
            indices = first[:, None] + np.arange(length)[None, :]
        else:
            indices = window_indices(starts, batch_size, length, seed, step)
        augmentation_seed = (seed * 1_000_003 + step) % 2**63  # as batch_builder's
        return samples.windows(indices, augmentation_seed)

    return make


# --- replay: draws that depend on the errors seen so far ----------------------------------------

def memory_config(config: TrainConfig) -> MemoryConfig:
    """The episodic memory's settings from the training settings (`replay*`)."""
    return MemoryConfig(enabled=config.replay, replay_fraction=config.replay_share,
                        pool_fraction=config.replay_pool, ema=config.replay_ema,
                        warmup_steps=config.replay_warmup)


class ReplayDraws:
    """The generator's frames per step from an episodic memory over `candidates` (the training
    frames, ascending): memory slot i is frame candidates[i]. `draw` gives frame indices; `report`
    takes the frames' errors back (frame indices, as a batch carries them)."""

    def __init__(self, memory: EpisodicMemory, candidates: np.ndarray) -> None:
        candidates = np.asarray(candidates, np.int64)
        if len(candidates) != memory.frame_count or (np.diff(candidates) <= 0).any():
            raise ValueError("the memory needs one slot per training frame, frames ascending")
        self.memory = memory
        self.candidates = candidates

    def draw(self, batch_size: int, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame indices (B,) of step `step` and which of them are replays (B,) bool."""
        slots, replayed = self.memory.draw(batch_size, step)
        return self.candidates[slots.numpy()], replayed.numpy()

    def report(self, frame_indices: np.ndarray, errors: torch.Tensor, step: int) -> None:
        """Record each frame's error (B,) of step `step` (frames from `draw`)."""
        frame_indices = np.asarray(frame_indices, np.int64)
        slots = np.searchsorted(self.candidates, frame_indices)
        if (slots >= len(self.candidates)).any() or (
                self.candidates[np.minimum(slots, len(self.candidates) - 1)]
                != frame_indices).any():
            raise ValueError(f"frames {frame_indices.tolist()} are not all training frames")
        self.memory.update(torch.from_numpy(slots), errors, step)


class ReplayBatchQueue:
    """`BatchQueue`'s interface for replay: the frames of step k are drawn in the calling thread
    when training asks for them, after step k - 1 has reported its errors, then built there (the
    draw depends on those errors, so nothing can be prepared ahead). `last_replayed`: how many
    frames of the last batch were replays."""

    def __init__(self, draws: ReplayDraws, build: Callable[[np.ndarray, int], Any],
                 first_step: int, batch_size: int) -> None:
        self.draws = draws
        self.build = build
        self.next_step = first_step
        self.batch_size = batch_size
        self.last_replayed = 0

    def get(self) -> Any:
        indices, replayed = self.draws.draw(self.batch_size, self.next_step)
        self.last_replayed = int(replayed.sum())
        self.next_step += 1
        return self.build(indices, self.next_step - 1)

    def close(self) -> None:
        pass  # no threads


def on_device(made: PairBatch | PairImages, device: torch.device) -> PairBatch:
    """A batch from `batch_maker` as the training step takes it."""
    return made.to_batch(device) if isinstance(made, PairImages) else made


