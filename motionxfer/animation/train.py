"""Training an animator on any folder of videos (FOMM, Sec. 3.4 and its official schedule).

    train_animator(videos, output, AnimatorTrainConfig(...), preset="tiny") -> AnimatorTrainResult

Each step draws `batch_size` pairs of frames of the same video (`videos.VideoFrames.pair_batch`);
the networks reconstruct the second frame from the first, and learn from the multi-scale VGG
perceptual loss, the equivariance losses (keypoints and Jacobians follow a random thin-plate
spline) and, with `discriminator=True`, an LSGAN with feature matching (motionxfer.animation.
losses holds every term and weight). Adam (lr 2e-4, betas 0.5 / 0.999) with FOMM's schedule:
the learning rate is divided by 10 after 60 % and again after 90 % of the steps.

Around the steps: a checkpoint every `checkpoint_every` steps, at the end, when the time budget
(`max_minutes`) runs out and on Ctrl-C (the first stops after the current step and saves; a
second one interrupts at once); one JSON line of averaged losses every `log_every` steps in
`<output stem>.train.jsonl` next to the checkpoint; progress through a `ProgressCallback`.

Exact resumption: the pairs and the random deformations of step k come from a generator seeded
with (seed, k), the learning rate is a function of k, and the checkpoint holds the weights
(BatchNorm statistics included) and the optimizers' states, so `resume=True` continues exactly as
the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from motionxfer.animation.checkpoint import AnimatorCheckpoint
from motionxfer.animation.checks import person_statistics
from motionxfer.animation.framing import FITS
from motionxfer.animation.losses import (
    discriminator_losses,
    generator_losses,
    perceptual_feature_extractor,
)
from motionxfer.animation.model import Animator, AnimatorConfig, ablation, preset
from motionxfer.animation.videos import VideoFrames, load_video_frames
from motionxfer.errors import BadInput, CheckpointError
from motionxfer.io.files import atomic_write
from motionxfer.networks.discriminator import DiscriminatorConfig, MultiScaleDiscriminator
from motionxfer.progress import ProgressCallback, RateMeter

PERSON_CHECK_FRAMES = 64


@dataclass(frozen=True)
class AnimatorTrainConfig:
    """The settings of one training run (the checkpoint stores them as a dict)."""

    steps: int = 20_000
    batch_size: int = 2
    learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    milestones: tuple[float, float] = (0.6, 0.9)  # fractions of `steps`: lr x 0.1 after each
    discriminator: bool = False  # an LSGAN discriminator with feature matching (FOMM's option)
    discriminator_channels: int = 32
    discriminator_scales: int = 1
    checkpoint_every: int = 500
    log_every: int = 50
    max_minutes: float = 0.0  # 0: no time limit
    seed: int = 0
    device: str = "cpu"
    fit: str = "auto"  # how the training frames become square (animation.framing)
    max_frames_per_video: int = 0  # 0: every frame; else an even subsample of longer videos

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise BadInput(f"steps {self.steps}, batch size {self.batch_size}",
                           hint="give steps >= 0 and a batch size >= 1")
        if self.checkpoint_every < 1 or self.log_every < 1:
            raise BadInput("checkpoint_every and log_every must be at least 1",
                           hint="give a positive number of steps")
        if self.max_minutes < 0 or not math.isfinite(self.max_minutes):
            raise BadInput(f"max_minutes {self.max_minutes}", hint="give 0 (no limit) or more")
        if self.fit not in FITS:
            raise BadInput(f"no fit {self.fit!r}", hint=f"the fits are: {', '.join(FITS)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(values: dict[str, Any]) -> AnimatorTrainConfig:
        known = {f.name for f in dataclasses.fields(AnimatorTrainConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CheckpointError(f"unknown training settings {', '.join(unknown)}",
                                  hint="the checkpoint is from a newer motionxfer: upgrade")
        converted = {key: tuple(value) if isinstance(value, list) else value
                     for key, value in values.items()}
        return AnimatorTrainConfig(**converted)

    def learning_rate_at(self, step: int) -> float:
        """FOMM's MultiStepLR over steps: x 0.1 after each milestone."""
        passed = sum(step >= fraction * self.steps for fraction in self.milestones)
        return self.learning_rate * 0.1 ** passed


@dataclass(frozen=True)
class AnimatorTrainResult:
    checkpoint: Path
    step: int  # done in total
    steps_this_run: int
    stopped: str  # "steps" (all done), "time" (--max-minutes), "interrupt" (Ctrl-C)
    losses: dict[str, float]  # the last logged averages
    seconds: float
    steps_per_second: float
    log: Path
    frames: int  # training frames
    videos: int

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["checkpoint"], data["log"] = str(self.checkpoint), str(self.log)
        return data


def log_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.train.jsonl")


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[dict[str, bool]]:
    """The first Ctrl-C asks the loop to stop after this step; a second one interrupts."""
    stop = {"requested": False}
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The random stream of step `step`: pairs, flips and deformations."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


class _Networks:
    """The animator, the optional discriminator and their optimizers."""

    def __init__(self, config: AnimatorConfig, train: AnimatorTrainConfig,
                 device: torch.device) -> None:
        self.animator = Animator(config).to(device).train()
        self.discriminator = None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        for name in ("keypoint_detector", "dense_motion", "generator"):
            self.optimizers[name] = torch.optim.Adam(
                getattr(self.animator, name).parameters(), lr=train.learning_rate,
                betas=train.betas)
        if train.discriminator:
            self.discriminator = MultiScaleDiscriminator(DiscriminatorConfig(
                input_channels=config.generator.channels, ndf=train.discriminator_channels,
                n_layers=3, n_scales=train.discriminator_scales)).to(device).train()
            self.optimizers["discriminator"] = torch.optim.Adam(
                self.discriminator.parameters(), lr=train.learning_rate, betas=train.betas)

    def models(self) -> dict[str, dict[str, torch.Tensor]]:
        states = {name: {key: value.detach().cpu().clone() for key, value in
                         getattr(self.animator, name).state_dict().items()}
                  for name in ("keypoint_detector", "dense_motion", "generator")}
        if self.discriminator is not None:
            states["discriminator"] = {key: value.detach().cpu().clone() for key, value in
                                       self.discriminator.state_dict().items()}
        return states

    def load(self, checkpoint: AnimatorCheckpoint) -> None:
        for name in ("keypoint_detector", "dense_motion", "generator"):
            getattr(self.animator, name).load_state_dict(checkpoint.models[name], strict=True)
        if self.discriminator is not None:
            if "discriminator" not in checkpoint.models:
                raise CheckpointError(f"{checkpoint.path} was trained without a discriminator",
                                      hint="resume without --discriminator")
            self.discriminator.load_state_dict(checkpoint.models["discriminator"], strict=True)
        states = checkpoint.optimizers or {}
        if set(states) != set(self.optimizers):
            raise CheckpointError(f"{checkpoint.path} holds optimizers for "
                                  f"{', '.join(sorted(states))}",
                                  hint="resume with the settings it was trained with")
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(states[name])


def _person_check(networks: _Networks, data: VideoFrames, device: torch.device) -> dict[str, float]:
    detector = networks.animator.keypoint_detector
    was_training = detector.training
    detector.eval()
    with torch.no_grad():
        images = data.sample(min(PERSON_CHECK_FRAMES, data.frame_count)).to(device)
        statistics = person_statistics(images, detector.heatmaps(images)[1])
    detector.train(was_training)
    return statistics


def _save(output: Path, networks: _Networks, preset_name: str, config: AnimatorConfig,
          train: AnimatorTrainConfig, step: int, data: VideoFrames,
          device: torch.device) -> AnimatorCheckpoint:
    checkpoint = AnimatorCheckpoint(
        preset=preset_name, config=config, train=train.to_dict(), step=step,
        models=networks.models(), data=data.describe(),
        person_check=_person_check(networks, data, device),
        optimizers={name: optimizer.state_dict()
                    for name, optimizer in networks.optimizers.items()})
    return checkpoint.save(output)


def _append_log(path: Path, entry: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def train_animator(videos: str | Path, output: str | Path,
                   config: AnimatorTrainConfig | None = None, preset_name: str = "tiny",
                   resume: bool = False, use_occlusion: bool = True,
                   estimate_jacobian: bool = True, perceptual_from_cache: bool = True,
                   progress: ProgressCallback | None = None,
                   **overrides: Any) -> AnimatorTrainResult:
    """Train (or, `resume`, go on training) the animator saved at `output` on `videos`.

    From scratch: the preset's architecture (with the ablations `use_occlusion=False` /
    `estimate_jacobian=False`) and `config`. Resuming: architecture and settings come from the
    checkpoint at `output`; `overrides` (None values ignored) change steps, max_minutes,
    checkpoint_every, log_every or device. `perceptual_from_cache=False` uses a randomly
    initialised VGG (tests only)."""
    output = Path(output)
    overrides = {key: value for key, value in overrides.items() if value is not None}
    resumed: AnimatorCheckpoint | None = None
    if resume:
        resumed = AnimatorCheckpoint.load(output)
        if not resumed.trainable:
            raise CheckpointError(f"{output} is an inference export (no optimizer state)",
                                  hint="resume from the checkpoint train-animator wrote")
        allowed = {"steps", "max_minutes", "checkpoint_every", "log_every", "device"}
        fixed = sorted(set(overrides) - allowed)
        if fixed:
            raise BadInput(f"{', '.join(fixed)} cannot change when resuming",
                           hint="resume with the checkpoint's settings, or train from scratch")
        train = dataclasses.replace(AnimatorTrainConfig.from_dict(resumed.train), **overrides)
        animator_config, preset_name = resumed.config, resumed.preset
    else:
        if output.exists():
            raise BadInput(f"{output} exists",
                           hint="continue it with --resume, or write to another file (-o)")
        train = dataclasses.replace(config or AnimatorTrainConfig(), **overrides)
        animator_config = ablation(preset(preset_name), use_occlusion=use_occlusion,
                                   estimate_jacobian=estimate_jacobian)
    if train.discriminator and not animator_config.loss_weights.generator_gan:
        animator_config = dataclasses.replace(animator_config, loss_weights=dataclasses.replace(
            animator_config.loss_weights, generator_gan=1.0))
    device = torch.device("cuda" if train.device == "cuda" or (
        train.device == "auto" and torch.cuda.is_available()) else "cpu")

    data = load_video_frames(videos, animator_config.image_size, train.fit,
                             train.max_frames_per_video or None, progress)
    if resumed is not None and resumed.data.get("fingerprint") != data.fingerprint():
        raise BadInput(f"{videos} is not the data {output} was trained on (that was "
                       f"{len(resumed.data.get('videos', []))} videos, "
                       f"{resumed.data.get('frames')} frames)",
                       hint="resume on the same folder of videos, or train from scratch")
    if not resume:
        torch.manual_seed(train.seed)  # the initial weights
    networks = _Networks(animator_config, train, device)
    start = 0
    if resumed is not None:
        networks.load(resumed)
        start = resumed.step
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the random VGG of tests is the same in every run
        features = perceptual_feature_extractor(from_cache=perceptual_from_cache).to(device)
    weights = animator_config.loss_weights
    log = log_path(output)
    if not resume:
        with atomic_write(log, "w"):
            pass

    meter = RateMeter(progress, "training animator", train.steps, unit="steps")
    meter.done = start
    began = time.perf_counter()
    sums: dict[str, float] = {}
    count = 0
    last: dict[str, float] = {}
    stopped = "steps"
    step = start
    saved_at = -1
    with _deferred_interrupt() as stop:
        while step < train.steps:
            if stop["requested"]:
                stopped = "interrupt"
                break
            if train.max_minutes and time.perf_counter() - began >= train.max_minutes * 60:
                stopped = "time"
                break
            generator = step_generator(train.seed, step)
            source, driving = data.pair_batch(generator, train.batch_size)
            source, driving = source.to(device), driving.to(device)
            rate = train.learning_rate_at(step)
            for optimizer in networks.optimizers.values():
                for group in optimizer.param_groups:
                    group["lr"] = rate
            animator = networks.animator
            losses, generated = generator_losses(
                animator.keypoint_detector, animator.dense_motion, animator.generator, source,
                driving, weights, features, animator_config.transform,
                discriminator=networks.discriminator, random=generator)
            for name in ("keypoint_detector", "dense_motion", "generator"):
                networks.optimizers[name].zero_grad(set_to_none=True)
            if not torch.isfinite(losses["total"]):
                raise BadInput(f"the animator's loss became {losses['total'].item()} at step "
                               f"{step}", hint="resume from the last checkpoint with a lower "
                               "learning rate, or check the training videos")
            losses["total"].backward()
            for name in ("keypoint_detector", "dense_motion", "generator"):
                networks.optimizers[name].step()
            values = {name: value.item() for name, value in losses.items()}
            if networks.discriminator is not None:
                critic = discriminator_losses(networks.discriminator, driving,
                                              generated["prediction"], weights)
                networks.optimizers["discriminator"].zero_grad(set_to_none=True)
                critic["total"].backward()
                networks.optimizers["discriminator"].step()
                values["discriminator_gan"] = critic["total"].item()
            values["reconstruction_l1"] = float((generated["prediction"].detach()
                                                 - driving).abs().mean())
            step += 1
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + value
            count += 1
            meter.advance()
            if step % train.log_every == 0 or step == train.steps:
                last = {name: total / count for name, total in sums.items()}
                _append_log(log, {"step": step, "lr": rate,
                                  "seconds": round(time.perf_counter() - began, 2), **last})
                sums, count = {}, 0
            if step % train.checkpoint_every == 0:
                _save(output, networks, preset_name, animator_config, train, step, data, device)
                saved_at = step
    if count:
        last = {name: total / count for name, total in sums.items()}
    if saved_at != step or not output.exists():
        _save(output, networks, preset_name, animator_config, train, step, data, device)
    meter.finish()
    seconds = time.perf_counter() - began
    done = step - start
    return AnimatorTrainResult(
        checkpoint=output, step=step, steps_this_run=done, stopped=stopped, losses=last,
        seconds=seconds, steps_per_second=done / seconds if seconds > 0 else 0.0, log=log,
        frames=data.frame_count, videos=len(data.paths))
