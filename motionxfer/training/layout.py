"""REMOT's layout GAN: the stage before the generator (`TrainConfig.layout`).

The layout generator (`networks.layout_generator`) learns to predict the target's six-class
parsing map from the pose channels of a frame (the stick figure or label maps, drawn as the
generator's are), against the target's parsing cache (`pipeline.load_parsing`, resized
nearest-neighbour to the working size): per-pixel cross-entropy plus the adversarial term of a
one-scale conditional patch discriminator on (pose, class probabilities), whose real input is the
parsing's one-hot map (`losses.layout_objective`). Adam on the generator's learning rate and
betas, pix2pixHD's schedule over `layout_steps`; full precision (the network is small).

The stage runs for `layout_steps` steps before the generator's; then its predictor
(`LayoutTraining.predictor`) makes the layout channels of every pose input of the generator's
training (`TrainingSamples.layout`), so the generator learns from the predicted layout that
transfer will give it, not the ground truth. Step k's frames are drawn from a generator seeded
with (seed, stage, k) among the training frames, so a resumed stage continues as the
uninterrupted one would have. The stage logs `L_cross_entropy`, `L_adversarial`, `L_total`,
`D_layout` and `L_accuracy` (the share of the batch's pixels whose most probable class is the
parsing's, measured before the step) to logs/train.jsonl under stage "layout".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn import functional

from motionxfer.checkpoint import Checkpoint
from motionxfer.errors import ProjectError
from motionxfer.io.images import to_tensor
from motionxfer.networks.discriminator import DiscriminatorConfig, MultiScaleDiscriminator
from motionxfer.networks.layout_generator import (
    LayoutGenerator,
    LayoutGeneratorConfig,
    LayoutPredictor,
)
from motionxfer.pose.sequence import PoseSequence
from motionxfer.progress import ProgressCallback
from motionxfer.training.config import TrainConfig
from motionxfer.training.dataset import DrawFunction
from motionxfer.training.interrupt import Interrupted, StopRequest
from motionxfer.training.logs import append_log
from motionxfer.training.losses import LossWeights, discriminator_objective, layout_objective
from motionxfer.training.trainer import (
    learning_rate_factor,
    load_optimizer_states,
    set_requires_grad,
)

LAYOUT_STAGE = "layout"
LAYOUT_STAGE_NUMBER = 2  # of the batch seeds: the generator's stage is 0, the face refiner's 1
LAYOUT_NETWORKS = ("layout_generator", "layout_discriminator")


@dataclass(frozen=True)
class LayoutBatch:
    indices: np.ndarray  # (B,) frame indices
    pose: torch.Tensor  # (B, C, H, W) float32 in [-1, 1]: the pose channels
    labels: torch.Tensor  # (B, H, W) int64: the parsing's classes


class LayoutSamples:
    """The pose channels of each frame, drawn at `size` (width, height), and its parsing labels
    (T, h, w) uint8 from the cache, resized nearest-neighbour to `size`."""

    def __init__(self, poses: PoseSequence, labels: np.ndarray, draw: DrawFunction,
                 size: tuple[int, int]) -> None:
        if len(labels) != poses.num_frames:
            raise ProjectError(
                f"the target's parsing has {len(labels)} frames but its poses have "
                f"{poses.num_frames}", hint="run extract-parsing --force, then train again")
        self.poses = poses
        self.labels = labels
        self.draw = draw
        self.size = size

    def pose(self, index: int) -> np.ndarray:  # (H, W, C) uint8
        return self.draw(self.poses.keypoints[index], *self.size)

    def label_map(self, index: int) -> np.ndarray:  # (H, W) uint8
        labels = np.asarray(self.labels[index])
        if (labels.shape[1], labels.shape[0]) == self.size:
            return labels
        return cv2.resize(labels, self.size, interpolation=cv2.INTER_NEAREST)

    def batch(self, indices: np.ndarray) -> LayoutBatch:
        indices = np.asarray(indices, np.int64)
        return LayoutBatch(indices, to_tensor([self.pose(int(t)) for t in indices]),
                           torch.from_numpy(np.stack([self.label_map(int(t)) for t in indices])
                                            .astype(np.int64)))


def layout_batch_indices(candidates: np.ndarray, batch_size: int, seed: int,
                         step: int) -> np.ndarray:
    """The frames of the layout stage's step `step`: a pure function of seed and step."""
    rng = np.random.default_rng([seed % 2**63, LAYOUT_STAGE_NUMBER, step])
    return rng.choice(candidates, size=batch_size, replace=len(candidates) < batch_size)


def pixel_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of pixels whose most probable class (logits (B, classes, H, W)) is the label's
    ((B, H, W))."""
    return float((logits.argmax(dim=1) == labels).float().mean())


class LayoutTraining:
    """The layout generator, its discriminator, their optimizers and schedulers; one step per
    call. No files."""

    def __init__(self, config: LayoutGeneratorConfig, train: TrainConfig, weights: LossWeights,
                 device: torch.device) -> None:
        self.config = config
        self.train = train
        self.weights = weights
        self.device = device
        self.network = LayoutGenerator(config).to(device)
        self.discriminator = MultiScaleDiscriminator(DiscriminatorConfig(
            input_channels=config.pose_channels + config.classes, ndf=config.ndf,
            n_layers=config.n_layers, n_scales=1)).to(device)
        betas = (train.betas[0], train.betas[1])
        self.network_optimizer = torch.optim.Adam(self.network.parameters(), lr=train.lr,
                                                  betas=betas)
        self.discriminator_optimizer = torch.optim.Adam(self.discriminator.parameters(),
                                                        lr=train.lr, betas=betas)

        def schedule(step: int) -> float:
            return learning_rate_factor(step, train.layout_steps, train.decay_start)

        self.schedulers = {
            name: torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
            for name, optimizer in self.optimizers().items()}
        self.step_count = 0

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"layout_generator": self.network, "layout_discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"layout_generator": self.network_optimizer,
                "layout_discriminator": self.discriminator_optimizer}

    def scheduler_states(self) -> dict[str, Any]:
        return {name: scheduler.state_dict() for name, scheduler in self.schedulers.items()}

    def predictor(self) -> LayoutPredictor:
        return LayoutPredictor(self.network, self.device)

    def step(self, batch: LayoutBatch) -> dict[str, float]:
        pose = batch.pose.to(self.device)
        labels = batch.labels.to(self.device)
        self.network.train(True)
        logits = self.network(pose)  # (B, classes, H, W)
        accuracy = pixel_accuracy(logits.detach(), labels)
        fake = torch.cat([pose, torch.softmax(logits, dim=1) * 2 - 1], 1)
        one_hot = functional.one_hot(labels, self.config.classes).permute(0, 3, 1, 2)
        real = torch.cat([pose, one_hot.float() * 2 - 1], 1)
        set_requires_grad([self.discriminator], False)
        losses = layout_objective(self.weights, self.train.gan_mode, self.discriminator(fake),
                                  logits, labels)
        self.network_optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        self.network_optimizer.step()
        set_requires_grad([self.discriminator], True)
        discriminator_loss = discriminator_objective(
            self.train.gan_mode, self.discriminator(real), self.discriminator(fake.detach()))
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        discriminator_loss.backward()
        self.discriminator_optimizer.step()
        for scheduler in self.schedulers.values():
            scheduler.step()
        self.step_count += 1
        values = losses.as_floats("L_")
        values["D_layout"] = float(discriminator_loss.detach())
        values["L_accuracy"] = accuracy
        return values

    def load(self, checkpoint: Checkpoint) -> None:
        """Restore what a checkpoint saved of this stage (strictly: a layout model holds it)."""
        for name, module in self.modules().items():
            checkpoint.load_weights(module, name)
        self.step_count = checkpoint.layout_step
        training = checkpoint.training
        if training is None:
            return
        load_optimizer_states(self.optimizers(), self.schedulers, training, checkpoint,
                              "layout ")


def run_layout_stage(layout: LayoutTraining, samples: LayoutSamples, candidates: np.ndarray,
                     config: TrainConfig, log: Path | None, save: Callable[[], None],
                     progress: ProgressCallback | None, stop: StopRequest) -> int:
    """The layout stage from its current step to `config.layout_steps`; returns the steps done.
    `log`: the JSON-lines log (None: none, the other processes)."""
    first, total = layout.step_count, config.layout_steps
    sums: dict[str, float] = {}
    count = 0
    started = time.perf_counter()
    for step in range(first, total):
        batch = samples.batch(layout_batch_indices(candidates, config.batch_size, config.seed,
                                                   step))
        stop.in_step = True
        values = layout.step(batch)
        stop.in_step = False
        done = step + 1
        for key, value in values.items():
            sums[key] = sums.get(key, 0.0) + value
        count += 1
        if log is not None and (done % config.log_every == 0 or done == total):
            append_log(log, {"stage": LAYOUT_STAGE, "step": done,
                             "lr": layout.network_optimizer.param_groups[0]["lr"],
                             "time": time.time(),
                             **{key: round(value / count, 6) for key, value in sums.items()}})
            sums, count = {}, 0
        if done % config.checkpoint_every == 0 and done != total:
            save()
        if progress is not None:
            elapsed = time.perf_counter() - started
            rate = (done - first) / elapsed if elapsed > 0 else 0.0
            progress("training layout", done, total,
                     f"{rate:.2f} steps/s  L_total {values['L_total']:.3f}  "
                     f"accuracy {values['L_accuracy']:.3f}")
        if stop.requested:
            raise Interrupted(stop.signal_number)
    return total - first if total > first else 0
