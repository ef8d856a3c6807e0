"""Which frames each training step uses, and the threads that prepare them ahead.

The frames of step k are a pure function of (seed, stage, k) (and with several processes of the
rank and world size), so resuming from the checkpoint of step k replays the same batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler

from motionxfer.training.dataset import PairBatch, PairImages, TrainingSamples
from motionxfer.training.distributed import Processes

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


def batch_maker(samples: TrainingSamples, candidates: np.ndarray, batch_size: int, seed: int,
                stage: str, processes: Processes,
                device: torch.device) -> Callable[[int], PairBatch | PairImages]:
    """What the batch-making threads run for step k (`BatchQueue`): this process's frames of the
    step, made into a PairBatch for the CPU; for a GPU only stacked as uint8 and pinned, so that
    the copy is a quarter of the bytes, runs while the GPU computes, and the conversion to floats
    happens on the GPU (`on_device`)."""

    def make(step: int) -> PairBatch | PairImages:
        if processes.distributed:
            indices = shard_batch_indices(candidates, batch_size, seed, stage, step, processes)
        else:
            indices = batch_indices(candidates, batch_size, seed, stage, step)
        augmentation_seed = (seed * 1_000_003 + (0 if stage == GENERATOR_STAGE else 1) * 7_919
                             + step) % 2**63
        if device.type == "cuda":
            return samples.pair_images(indices, augmentation_seed).pin_memory()
        return samples.pairs(indices, augmentation_seed)

    return make


def on_device(made: PairBatch | PairImages, device: torch.device) -> PairBatch:
    """A batch from `batch_maker` as the training step takes it."""
    return made.to_batch(device) if isinstance(made, PairImages) else made


