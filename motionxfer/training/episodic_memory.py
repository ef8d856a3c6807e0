"""Episodic memory of the training frames' errors, and a replay of the frames drawn worst.

"Do as I Do" keeps a memory of the generator's past poor generations and shows them to it again.
Here: the trainer reports each frame's perceptual error after a step (`EpisodicMemory.update`);
`EpisodicMemory.draw` fills a batch with a share (`replay_fraction`) of frames taken from the worst
`pool_fraction` of the frames seen so far (weighted by their error, so the few worst do not take
every place), and the rest uniformly from all frames.

Every draw is a function of (seed, step, memory state): a `torch.Generator` is seeded from the
pair (seed, step), and the state is plain tensors (`state_dict`), which a checkpoint saves with
`torch.save` and loads with `torch.load(..., weights_only=True)`. A resumed run draws the same
batches as the uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from motionxfer.errors import BadInput


@dataclass(frozen=True)
class MemoryConfig:
    """enabled: replay at all (off: `draw` is plain uniform sampling).
    replay_fraction: share of each batch drawn from the worst frames (expected value; the count per
        batch is rounded at random so that the share holds on average).
    pool_fraction: the replay pool is the worst `pool_fraction` of the seen frames ...
    min_pool_size: ... but never fewer than this many (when that many have been seen).
    ema: 0 keeps each frame's last error; otherwise error <- ema * old + (1 - ema) * new.
    warmup_steps: no replay before this step (the errors of an untrained generator mean little).
    """

    enabled: bool = False
    replay_fraction: float = 0.25
    pool_fraction: float = 0.1
    min_pool_size: int = 8
    ema: float = 0.0
    warmup_steps: int = 1000

    def __post_init__(self) -> None:
        for name in ("replay_fraction", "pool_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise BadInput(f"memory {name} must be within [0, 1], not {value}",
                               hint="a share of the batch, e.g. 0.25")
        if not 0.0 <= self.ema < 1.0:
            raise BadInput(f"memory ema must be within [0, 1), not {self.ema}",
                           hint="0 keeps the last error; 0.9 averages over about 10 visits")
        if self.min_pool_size < 1 or self.warmup_steps < 0:
            raise BadInput(f"memory min_pool_size ({self.min_pool_size}) must be >= 1 and "
                           f"warmup_steps ({self.warmup_steps}) >= 0", hint="try 8 and 1000")


def generator_for(seed: int, step: int) -> torch.Generator:
    """A CPU generator seeded from (seed, step) through numpy's SeedSequence (well mixed: nearby
    seeds and steps give unrelated streams)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(step) & 0xFFFFFFFFFFFF])
    return torch.Generator().manual_seed(int(state.generate_state(1, np.uint64)[0]) >> 1)


class EpisodicMemory:
    """Per training frame: its error (last or moving average), the step it was last seen, and
    how often. Kept on the CPU; frame indices are 0 .. frame_count - 1."""

    _KEYS = ("error", "last_seen_step", "seen_count", "frame_count", "seed")

    def __init__(self, frame_count: int, config: MemoryConfig, seed: int = 0) -> None:
        if frame_count < 1:
            raise BadInput(f"episodic memory needs at least one frame, not {frame_count}",
                           hint="check the training set")
        self.frame_count = int(frame_count)
        self.config = config
        self.seed = int(seed)
        self.error = torch.zeros(self.frame_count, dtype=torch.float64)  # (F,)
        self.last_seen_step = torch.full((self.frame_count,), -1, dtype=torch.int64)  # (F,)
        self.seen_count = torch.zeros(self.frame_count, dtype=torch.int64)  # (F,)

    @property
    def seen(self) -> torch.Tensor:
        """(F,) bool: frames with a recorded error."""
        return self.last_seen_step >= 0

    def update(self, frame_indices: torch.Tensor | np.ndarray | list[int],
               errors: torch.Tensor | np.ndarray | list[float], step: int) -> None:
        """Record the errors (B,) of the frames (B,) seen at `step`, in batch order (a frame twice
        in one batch is recorded twice, the later one last)."""
        indices = torch.as_tensor(frame_indices).detach().cpu().reshape(-1).to(torch.int64)
        values = torch.as_tensor(errors).detach().cpu().reshape(-1).to(torch.float64)
        if indices.shape != values.shape:
            raise BadInput(f"{indices.numel()} frame indices but {values.numel()} errors",
                           hint="one error per frame of the batch")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.frame_count):
            raise BadInput(f"frame index out of range 0..{self.frame_count - 1}",
                           hint="pass dataset indices of the training frames")
        if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
            raise BadInput("frame errors must be finite and nonnegative",
                           hint="report a per-frame loss such as the perceptual error, detached")
        ema = self.config.ema
        for index, value in zip(indices.tolist(), values.tolist()):
            if ema > 0 and self.last_seen_step[index] >= 0:
                self.error[index] = ema * self.error[index] + (1.0 - ema) * value
            else:
                self.error[index] = value
            self.last_seen_step[index] = step
            self.seen_count[index] += 1

    def replay_pool(self) -> torch.Tensor:
        """Indices (P,) of the worst seen frames, worst first (ties by lower index)."""
        seen_indices = torch.nonzero(self.seen).reshape(-1)  # (S,) ascending
        if seen_indices.numel() == 0:
            return seen_indices
        order = torch.argsort(-self.error[seen_indices], stable=True)
        size = max(self.config.min_pool_size,
                   math.ceil(self.config.pool_fraction * seen_indices.numel()))
        return seen_indices[order[:min(size, seen_indices.numel())]]

    def draw(self, batch_size: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame indices (B,) int64 for the batch of `step`, and which were replayed (B,) bool.

        Replayed frames come first: from the replay pool, with replacement, with probability
        proportional to their error (uniform within the pool if all errors are 0). The others are
        uniform over all frames, without repeats while the batch fits in the data set.
        """
        if batch_size < 1:
            raise BadInput(f"batch size must be at least 1, not {batch_size}", hint="try 4")
        generator = generator_for(self.seed, step)
        config = self.config
        pool = self.replay_pool()
        replay_count = 0
        if config.enabled and step >= config.warmup_steps and pool.numel() > 0:
            expected = config.replay_fraction * batch_size
            replay_count = math.floor(expected)
            if float(torch.rand((), generator=generator, dtype=torch.float64)) < expected % 1.0:
                replay_count += 1
        uniform_count = batch_size - replay_count
        if uniform_count <= self.frame_count:
            uniform = torch.randperm(self.frame_count, generator=generator)[:uniform_count]
        else:
            uniform = torch.randint(self.frame_count, (uniform_count,), generator=generator)
        if replay_count == 0:
            return uniform, torch.zeros(batch_size, dtype=torch.bool)
        weights = self.error[pool]
        if float(weights.sum()) <= 0:
            weights = torch.ones_like(weights)
        replayed = pool[torch.multinomial(weights, replay_count, replacement=True,
                                          generator=generator)]
        indices = torch.cat([replayed, uniform])
        return indices, torch.arange(batch_size) < replay_count

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Plain tensors (copies): loadable with torch.load(..., weights_only=True)."""
        return {
            "error": self.error.clone(),
            "last_seen_step": self.last_seen_step.clone(),
            "seen_count": self.seen_count.clone(),
            "frame_count": torch.tensor(self.frame_count, dtype=torch.int64),
            "seed": torch.tensor(self.seed, dtype=torch.int64),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Strict: the same keys, the same number of frames and the same seed, or BadInput."""
        if set(state) != set(self._KEYS):
            raise BadInput(f"episodic memory state has keys {sorted(state)}, expected "
                           f"{sorted(self._KEYS)}", hint="resume from a checkpoint of this tool")
        if int(state["frame_count"]) != self.frame_count or int(state["seed"]) != self.seed:
            raise BadInput(f"episodic memory state is for {int(state['frame_count'])} frames and "
                           f"seed {int(state['seed'])}, not {self.frame_count} and {self.seed}",
                           hint="resume on the same training set with the same seed")
        shapes_ok = all(state[key].shape == (self.frame_count,)
                        for key in ("error", "last_seen_step", "seen_count"))
        if not shapes_ok:
            raise BadInput("episodic memory state has tensors of the wrong length",
                           hint="resume from a checkpoint of this tool")
        self.error = state["error"].to(torch.float64).clone()
        self.last_seen_step = state["last_seen_step"].to(torch.int64).clone()
        self.seen_count = state["seen_count"].to(torch.int64).clone()
