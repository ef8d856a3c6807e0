"""The networks of a training run and one optimisation step of each stage.

`Trainer` holds the generator, the spatial and temporal discriminators, the part discriminators
(`part_gan`: one per part group, `training.part_gan`), the face refiner and its discriminator, their
optimizers, schedulers and GradScaler, and (`TrainConfig.ema`) the moving average of the
generator's weights that inference uses, and runs one step per call; it writes no files (the
loop, checkpoints and logs are in `motionxfer.training.train`).
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel

from motionxfer.checkpoint import Checkpoint
from motionxfer.errors import CheckpointError
from motionxfer.networks.discriminator import MultiScaleDiscriminator, TemporalDiscriminator
from motionxfer.networks.face_refiner import (
    FaceRefiner,
    crop_faces,
    face_discriminator,
    refine_faces,
)
from motionxfer.networks.registry import (
    COMPOSITING_ARCHITECTURE,
    DEFAULT_ARCHITECTURE,
    SEQUENCE_ARCHITECTURES,
    build_generator,
)
from motionxfer.networks.sequence_generator import generate_windows
from motionxfer.presets import Preset
from motionxfer.training.config import TrainConfig
from motionxfer.training.dataset import PairBatch, WindowBatch
from motionxfer.training.losses import (
    LossTerms,
    LossWeights,
    PerceptualLoss,
    discriminator_objective,
    face_objective,
    generator_objective,
    part_objective,
)
from motionxfer.training.part_gan import (
    PartBatch,
    PartCrops,
    group_crops,
    part_discriminator_config,
    part_discriminator_name,
)


def learning_rate_factor(step: int, steps: int, decay_start: float) -> float:
    """pix2pixHD's schedule: 1 until `decay_start * steps`, then linear to 0 at `steps`."""
    start = int(decay_start * steps)
    if step < start or steps <= start:
        return 1.0
    return max(0.0, (steps - step) / (steps - start))


def average_decay(decay: float, averaged: int) -> float:
    """The moving average's decay after `averaged` steps: `decay`, but at most
    (1 + averaged) / (10 + averaged), so that the first weights, still far from trained, are
    forgotten soon and a run of a few thousand steps averages about its last tenth."""
    return min(decay, (1.0 + averaged) / (10.0 + averaged))


def moving_average(decay: float,
                   ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | int], torch.Tensor]:
    """AveragedModel's `avg_fn` for an exponential moving average with `average_decay`."""
    def update(average: torch.Tensor, current: torch.Tensor,
               averaged: torch.Tensor | int) -> torch.Tensor:
        if not average.is_floating_point():  # a counter, say: the latest
            return current
        return torch.lerp(average, current, 1.0 - average_decay(decay, int(averaged)))
    return update


# the trained (not averaged) generator's weights in a checkpoint with a moving average, whose
# "generator" holds the average that inference uses
TRAINED_GENERATOR = "generator_trained"


def load_optimizer_states(optimizers: dict[str, torch.optim.Optimizer],
                          schedulers: dict[str, Any], training: Any, checkpoint: Checkpoint,
                          what: str) -> None:
    """Each optimizer's and scheduler's state from a checkpoint's `TrainingState`, by name (the
    ones it lacks start fresh); a state that does not fit is a CheckpointError (`what`: whose)."""
    try:
        for name, optimizer in optimizers.items():
            if name in training.optimizers:
                optimizer.load_state_dict(training.optimizers[name])
        for name, scheduler in schedulers.items():
            if name in training.schedulers:
                scheduler.load_state_dict(training.schedulers[name])
    except (KeyError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"the {what}optimizer state in {checkpoint.path} does not fit: "
                              f"{error}", hint="delete it and train again") from error


def set_requires_grad(modules: list[nn.Module | None], flag: bool) -> None:
    for module in modules:
        if module is not None:
            module.requires_grad_(flag)


# --- the networks and one step of each stage -----------------------------------------------------

class Trainer:
    """Networks, optimizers, schedulers and the GradScaler; one training step per call. No files.

    `distributed`: this is one of several processes (the default process group is running); the
    training steps then go through DistributedDataParallel replicas of the networks.
    `part_groups`: the part groups ("hands", "feet", "face") that get a discriminator of their
    own; the generator step trains against them when it is given the batch's part boxes.
    """

    def __init__(self, preset: Preset, config: TrainConfig, device: torch.device,
                 perceptual: PerceptualLoss | None, use_face_refiner: bool,
                 distributed: bool = False, architecture: str = DEFAULT_ARCHITECTURE,
                 plate: torch.Tensor | None = None,
                 part_groups: tuple[str, ...] = ()) -> None:
        self.preset = preset
        self.config = config
        self.device = device
        self.weights: LossWeights = preset.losses
        self.use_amp = bool(config.amp and device.type == "cuda")
        self.perceptual = perceptual.to(device) if perceptual is not None else None

        self.architecture = architecture
        self.generator = build_generator(preset.generator, architecture).to(device)
        # windows of frames made jointly (TrainConfig.sequence): `window_step`, not the pairs
        self.window_length = config.sequence if architecture in SEQUENCE_ARCHITECTURES else 0
        if (architecture in SEQUENCE_ARCHITECTURES) != bool(config.sequence):
            raise ValueError(f"the {architecture} generator and sequence = {config.sequence} "
                             "do not go together")
        self.plate = None  # (1, 3, H, W) in [-1, 1]: compositing over the target's background
        if architecture == COMPOSITING_ARCHITECTURE and plate is None:
            raise ValueError("the compositing generator needs the background plate")
        if plate is not None:
            self.generator.set_plate(plate)
            self.plate = self.generator.plate
        # TrainConfig.ema: a copy of the generator whose weights (and buffers) follow the
        # trained ones as a moving average, updated after every generator step
        self.generator_average = (
            AveragedModel(self.generator, avg_fn=moving_average(config.ema), use_buffers=True)
            if config.ema else None)
        self.discriminator = MultiScaleDiscriminator(preset.discriminator).to(device)
        self.temporal_discriminator = (
            TemporalDiscriminator(preset.temporal_discriminator).to(device)
            if config.temporal else None
        )
        betas = (config.betas[0], config.betas[1])
        self.generator_optimizer = torch.optim.Adam(
            self.generator.parameters(), lr=config.lr, betas=betas)
        discriminator_parameters = list(self.discriminator.parameters())
        if self.temporal_discriminator is not None:
            discriminator_parameters += list(self.temporal_discriminator.parameters())
        self.discriminator_optimizer = torch.optim.Adam(
            discriminator_parameters, lr=config.lr, betas=betas)

        def generator_schedule(step: int) -> float:
            return learning_rate_factor(step, config.steps, config.decay_start)

        def face_schedule(step: int) -> float:
            return learning_rate_factor(step, config.face_refiner_steps, config.decay_start)

        self.schedulers = {
            "generator": torch.optim.lr_scheduler.LambdaLR(self.generator_optimizer,
                                                           generator_schedule),
            "discriminator": torch.optim.lr_scheduler.LambdaLR(self.discriminator_optimizer,
                                                               generator_schedule),
        }
        # The part GANs: a patch discriminator per part group, each with its optimizer, on the
        # generator's schedule; crops at the face refiner's crop size.
        self.part_crop_size = preset.face_refiner.crop_size
        self.part_discriminators: dict[str, MultiScaleDiscriminator] = {
            group: MultiScaleDiscriminator(part_discriminator_config(
                group, preset.generator.pose_channels, preset.face_refiner)).to(device)
            for group in part_groups
        }
        self.part_optimizers = {
            group: torch.optim.Adam(network.parameters(), lr=config.lr, betas=betas)
            for group, network in self.part_discriminators.items()
        }
        for group, optimizer in self.part_optimizers.items():
            self.schedulers[part_discriminator_name(group)] = torch.optim.lr_scheduler.LambdaLR(
                optimizer, generator_schedule)
        self.face_refiner: FaceRefiner | None = None
        self.face_discriminator: MultiScaleDiscriminator | None = None
        if use_face_refiner:
            self.face_refiner = FaceRefiner(preset.face_refiner).to(device)
            self.face_discriminator = face_discriminator(preset.face_refiner).to(device)
            self.face_optimizer = torch.optim.Adam(
                self.face_refiner.parameters(), lr=config.face_lr, betas=betas)
            self.face_discriminator_optimizer = torch.optim.Adam(
                self.face_discriminator.parameters(), lr=config.face_lr, betas=betas)
            self.schedulers["face_refiner"] = torch.optim.lr_scheduler.LambdaLR(
                self.face_optimizer, face_schedule)
            self.schedulers["face_discriminator"] = torch.optim.lr_scheduler.LambdaLR(
                self.face_discriminator_optimizer, face_schedule)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.use_amp)
        # The networks as the training steps call them: with several processes each is wrapped in
        # DistributedDataParallel (which copies rank 0's weights to the others here and averages
        # the gradients over the processes in every backward pass), else the network itself.
        # Checkpoints, validation and passes without gradients use the networks directly, so no
        # process waits on another there.
        self.replicas: dict[str, nn.Module] = {
            name: replicate(module, device) if distributed else module
            for name, module in self.modules().items()
        }
        self.generator_step_count = 0
        self.face_refiner_step_count = 0
        self.last_outputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.last_masks: list[torch.Tensor | None] = []  # compositing: of the last pair
        # the region generator's (regions, layout weights) of the last pair (else empty)
        self.last_regions: list[tuple[torch.Tensor, torch.Tensor]] = []
        # (B,) each sample's error in the last generator step (LossTerms.sample_errors), on the
        # CPU, in batch order: what the loop reports to the episodic memory
        self.last_sample_errors: torch.Tensor | None = None

    def _descend(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One optimizer step on `loss` through the GradScaler (`scaler.update()` follows once
        both of a stage's optimizers have stepped)."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp)

    def generate_pair(self, batch: PairBatch, generator: nn.Module | None = None,
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """EDN: frame t-1 from its stick figure alone, then frame t conditioned on it.
        `generator`: the network to call (the training replica); default the generator."""
        network = self.generator if generator is None else generator
        # the network itself (inside a replica), whose last call left its masks and regions
        module = network.module if isinstance(network, DistributedDataParallel) else network
        if self.window_length:  # the pair as a window of two frames
            frames = network(torch.stack([batch.previous_pose, batch.pose], 1))  # (B, 2, 3, H, W)
            mask = getattr(module, "last_mask", None)
            self.last_masks = [None, None] if mask is None else [mask[:, 0], mask[:, 1]]
            return frames[:, 0], frames[:, 1]
        first_previous_pose, zeros = module.first_frame_inputs(batch.previous_pose)
        fake_previous = network(batch.previous_pose, first_previous_pose, zeros)
        self.last_masks = [getattr(module, "last_mask", None)]
        self.last_regions = regions_of(module)
        fake = network(batch.pose, batch.previous_pose, fake_previous.detach())
        self.last_masks.append(getattr(module, "last_mask", None))
        self.last_regions += regions_of(module)
        return fake_previous, fake

    @property
    def inference_generator(self) -> nn.Module:
        """The generator that transfer will use: the moving average when there is one."""
        return self.generator if self.generator_average is None else self.generator_average.module

    def _update_average(self) -> None:
        if self.generator_average is not None:
            self.generator_average.update_parameters(self.generator)

    # --- stage 1 ---------------------------------------------------------------------------
    def generator_step(self, batch: PairBatch, parts: PartBatch | None = None,
                       ) -> dict[str, float]:
        """One step of the generator and its discriminators; with `parts` (the boxes of the
        batch's frames t) also of the part discriminators."""
        batch = batch.to(self.device)
        parts = parts.to(self.device) if parts is not None and self.part_discriminators else None
        discriminators: list[nn.Module | None] = [
            self.discriminator, self.temporal_discriminator, *self.part_discriminators.values()]
        spatial_network = self.replicas["discriminator"]
        temporal_network = self.replicas.get("temporal_discriminator")
        mode = self.config.gan_mode
        poses = [batch.previous_pose, batch.pose]
        reals = [batch.previous_frame, batch.frame]
        with self.autocast():
            fake_previous, fake = self.generate_pair(batch, self.replicas["generator"])
            fakes = [fake_previous, fake]
            # Real outputs keep their graph for the discriminators' step; feature matching reads
            # them detached. With the discriminators' parameters frozen during the passes on
            # generated frames, the generator's backward pass reaches no discriminator parameter:
            # each replica's gradients are averaged once, in the discriminators' backward pass.
            set_requires_grad(discriminators, True)
            real_spatial = [spatial_network(torch.cat([pose, real], 1))
                            for pose, real in zip(poses, reals)]
            real_temporal = (temporal_network(*poses, *reals)
                             if temporal_network is not None else None)
            set_requires_grad(discriminators, False)
            fake_spatial = [spatial_network(torch.cat([pose, image], 1))
                            for pose, image in zip(poses, fakes)]
            fake_temporal = (temporal_network(*poses, *fakes)
                             if temporal_network is not None else None)
            generator_losses = generator_objective(
                self.weights, mode, fake_spatial, real_spatial, fake_temporal, real_temporal,
                fakes, reals, self.perceptual,
                self.last_masks if self.plate is not None else None, self.plate,
                batch.joints if self.config.gw_loss else None,
                self.last_regions or None,
            )
            part_crops, part_real, part_losses = self._part_generator_terms(
                parts, batch, fake, discriminators)
            total = generator_losses.total
            for losses in part_losses.values():
                total = total + losses.total
        self._descend(total, self.generator_optimizer)

        set_requires_grad(discriminators, True)
        with self.autocast():
            spatial = sum(
                discriminator_objective(
                    mode, real, spatial_network(torch.cat([pose, image.detach()], 1)))
                for real, pose, image in zip(real_spatial, poses, fakes)
            ) / len(fakes)
            temporal = (
                discriminator_objective(
                    mode, real_temporal,
                    temporal_network(*poses, *(image.detach() for image in fakes)))
                if temporal_network is not None and real_temporal is not None
                else None
            )
            discriminator_total = spatial + temporal if temporal is not None else spatial
        self._descend(discriminator_total, self.discriminator_optimizer)
        part_discriminator_losses = self._part_discriminator_steps(part_crops, part_real)
        self.scaler.update()
        with warnings.catch_warnings():
            # A part discriminator whose group no frame showed yet has not stepped; its rate
            # still follows the generator's step (torch would warn that it skips a value).
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before",
                                    UserWarning)
            for name, scheduler in self.schedulers.items():
                if name not in ("face_refiner", "face_discriminator"):
                    scheduler.step()  # the generator stage's: generator and every discriminator
        self.generator_step_count += 1
        self._update_average()
        self.last_outputs = (batch.pose.detach(), fake.detach(), batch.frame.detach())
        errors = generator_losses.sample_errors
        self.last_sample_errors = errors.cpu() if errors is not None else None
        values = generator_losses.as_floats("G_")
        values["D_spatial"] = float(spatial.detach())
        if temporal is not None:
            values["D_temporal"] = float(temporal.detach())
        for group, losses in part_losses.items():
            values.update(losses.as_floats(f"G_part_{group}_"))
        for group, loss in part_discriminator_losses.items():
            values[f"D_part_{group}"] = loss
        return values

    def window_step(self, batch: WindowBatch) -> dict[str, float]:
        """One step of the sequence generator (`TrainConfig.sequence`) and its discriminators on
        windows of N frames: the spatial discriminator on every frame, the temporal one on every
        consecutive pair (k, k + 1) of a window, the generator's losses as on pairs."""
        if not self.window_length:
            raise RuntimeError("this trainer's generator makes frames one at a time")
        batch = batch.to(self.device)
        discriminators: list[nn.Module | None] = [self.discriminator,
                                                  self.temporal_discriminator]
        spatial_network = self.replicas["discriminator"]
        temporal_network = self.replicas.get("temporal_discriminator")
        mode = self.config.gan_mode
        poses, reals = batch.pose.flatten(0, 1), batch.frame.flatten(0, 1)  # (B * N, C, H, W)

        def pairs(window: torch.Tensor) -> list[torch.Tensor]:  # (B, N, ...) -> 2 x (B(N-1), ..)
            return [window[:, :-1].flatten(0, 1), window[:, 1:].flatten(0, 1)]

        with self.autocast():
            fake_window = self.replicas["generator"](batch.pose)  # (B, N, 3, H, W)
            mask = getattr(self.generator, "last_mask", None)
            fakes = fake_window.flatten(0, 1)
            set_requires_grad(discriminators, True)
            real_spatial = spatial_network(torch.cat([poses, reals], 1))
            real_temporal = (temporal_network(*pairs(batch.pose), *pairs(batch.frame))
                             if temporal_network is not None else None)
            set_requires_grad(discriminators, False)
            fake_spatial = spatial_network(torch.cat([poses, fakes], 1))
            fake_temporal = (temporal_network(*pairs(batch.pose), *pairs(fake_window))
                             if temporal_network is not None else None)
            generator_losses = generator_objective(
                self.weights, mode, [fake_spatial], [real_spatial], fake_temporal, real_temporal,
                [fakes], [reals], self.perceptual,
                [mask.flatten(0, 1)] if self.plate is not None and mask is not None else None,
                self.plate,
                batch.joints.flatten(0, 1) if self.config.gw_loss and batch.joints is not None
                else None)  # every frame of every window: the GW term on each
        self._descend(generator_losses.total, self.generator_optimizer)

        set_requires_grad(discriminators, True)
        with self.autocast():
            spatial = discriminator_objective(
                mode, real_spatial, spatial_network(torch.cat([poses, fakes.detach()], 1)))
            temporal = (
                discriminator_objective(
                    mode, real_temporal,
                    temporal_network(*pairs(batch.pose), *pairs(fake_window.detach())))
                if temporal_network is not None and real_temporal is not None else None)
            discriminator_total = spatial + temporal if temporal is not None else spatial
        self._descend(discriminator_total, self.discriminator_optimizer)
        self.scaler.update()
        for name, scheduler in self.schedulers.items():
            if name not in ("face_refiner", "face_discriminator"):
                scheduler.step()  # the generator stage's
        self.generator_step_count += 1
        self._update_average()
        self.last_outputs = (batch.pose[:, -1].detach(), fake_window[:, -1].detach(),
                             batch.frame[:, -1].detach())
        self.last_sample_errors = None  # per window frame; replay does not take windows
        values = generator_losses.as_floats("G_")
        values["D_spatial"] = float(spatial.detach())
        if temporal is not None:
            values["D_temporal"] = float(temporal.detach())
        return values

    def _part_generator_terms(
        self, parts: PartBatch | None, batch: PairBatch, fake: torch.Tensor,
        discriminators: list[nn.Module | None],
    ) -> tuple[dict[str, PartCrops], dict[str, list[Any]], dict[str, LossTerms]]:
        """The part groups' crops of frame t, their discriminators' outputs on the real crops
        (with the graph, for the discriminators' step) and the generator's loss on each group
        (`part_objective`). Groups with no part seen in the batch are left out."""
        crops: dict[str, PartCrops] = {}
        real_outputs: dict[str, list[Any]] = {}
        losses: dict[str, LossTerms] = {}
        if parts is None:
            return crops, real_outputs, losses
        for group in self.part_discriminators:
            group_crop = group_crops(group, parts, batch.pose, batch.frame, fake,
                                     self.part_crop_size)
            if group_crop is None:
                continue  # no hand (foot, face) seen in any frame of the batch
            network = self.replicas[part_discriminator_name(group)]
            set_requires_grad(discriminators, True)
            real = network(group_crop.discriminator_inputs(fake=False))
            set_requires_grad(discriminators, False)
            fake_outputs = network(group_crop.discriminator_inputs(fake=True))
            crops[group], real_outputs[group] = group_crop, real
            losses[group] = part_objective(self.weights, self.config.gan_mode, fake_outputs,
                                           real, group_crop.fake, group_crop.real)
        set_requires_grad(discriminators, True)
        return crops, real_outputs, losses

    def _part_discriminator_steps(self, crops: dict[str, PartCrops],
                                  real_outputs: dict[str, list[Any]]) -> dict[str, float]:
        """One step of each part discriminator that saw crops in this generator step."""
        values = {}
        for group, group_crop in crops.items():
            network = self.replicas[part_discriminator_name(group)]
            detached = PartCrops(group_crop.condition, group_crop.real, group_crop.fake.detach())
            with self.autocast():
                loss = discriminator_objective(
                    self.config.gan_mode, real_outputs[group],
                    network(detached.discriminator_inputs(fake=True)))
            self._descend(loss, self.part_optimizers[group])
            values[group] = float(loss.detach())
        return values

    # --- stage 2 ---------------------------------------------------------------------------
    def face_refiner_step(self, batch: PairBatch, boxes: torch.Tensor) -> dict[str, float]:
        if self.face_refiner is None or self.face_discriminator is None:
            raise RuntimeError("this trainer has no face refiner")
        batch = batch.to(self.device)
        boxes = boxes.to(self.device)
        size = self.preset.face_refiner.crop_size
        mode = self.config.gan_mode
        refiner_network = self.replicas["face_refiner"]
        discriminator_network = self.replicas["face_discriminator"]
        with torch.no_grad(), self.autocast():
            # the frozen generator as transfer will use it: no replica needed
            _, fake = self.generate_pair(batch, self.inference_generator)
        with self.autocast():
            pose_crops = crop_faces(batch.pose, boxes, size)
            generated_crops = crop_faces(fake.float(), boxes, size)
            real_crops = crop_faces(batch.frame, boxes, size)
            refined = refiner_network(pose_crops, generated_crops)
            set_requires_grad([self.face_discriminator], True)
            real_outputs = discriminator_network(torch.cat([pose_crops, real_crops], 1))
            set_requires_grad([self.face_discriminator], False)
            fake_outputs = discriminator_network(torch.cat([pose_crops, refined], 1))
            losses = face_objective(self.weights, mode, fake_outputs, real_outputs, refined,
                                    real_crops, self.perceptual)
        self._descend(losses.total, self.face_optimizer)
        set_requires_grad([self.face_discriminator], True)
        with self.autocast():
            discriminator_loss = discriminator_objective(
                mode, real_outputs,
                discriminator_network(torch.cat([pose_crops, refined.detach()], 1)))
        self._descend(discriminator_loss, self.face_discriminator_optimizer)
        self.scaler.update()
        self.schedulers["face_refiner"].step()
        self.schedulers["face_discriminator"].step()
        self.face_refiner_step_count += 1
        self.last_outputs = (pose_crops.detach(), refined.detach(), real_crops.detach())
        values = losses.as_floats("F_")
        values["D_face"] = float(discriminator_loss.detach())
        return values

    # --- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def generate_sequence(self, poses: list[torch.Tensor],
                          boxes: list[torch.Tensor] | None) -> list[torch.Tensor]:
        """Frames of a run of consecutive stick figures (each (1, 3, H, W)), fed back as in
        transfer; face-refined when `boxes` (each (1, 4)) are given and there is a refiner."""
        generator = self.inference_generator
        if self.window_length:  # in overlapping windows, cross-faded, as transfer makes them
            with self.autocast():
                made = generate_windows(generator, torch.cat(poses).to(self.device),
                                        self.window_length).float()  # (T, 3, H, W)
            frames = list(made[:, None])
            if boxes is not None and self.face_refiner is not None:
                frames = [refine_faces(self.face_refiner, frame, pose.to(self.device),
                                       box.to(self.device))
                          for frame, pose, box in zip(frames, poses, boxes)]
            return frames
        frames = []
        previous_pose = previous_frame = None
        for index, pose in enumerate(poses):
            pose = pose.to(self.device)
            if previous_pose is None or previous_frame is None:
                previous_pose, previous_frame = generator.first_frame_inputs(pose)
            with self.autocast():
                frame = generator(pose, previous_pose, previous_frame).float()
            if boxes is not None and self.face_refiner is not None:
                frame = refine_faces(self.face_refiner, frame, pose, boxes[index].to(self.device))
            frames.append(frame)
            previous_pose, previous_frame = pose, frame
        return frames

    # --- state -----------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        named: dict[str, nn.Module | None] = {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "temporal_discriminator": self.temporal_discriminator,
            "face_refiner": self.face_refiner,
            "face_discriminator": self.face_discriminator,
            **{part_discriminator_name(group): network
               for group, network in self.part_discriminators.items()},
        }
        return {name: module for name, module in named.items() if module is not None}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        named = {"generator": self.generator_optimizer,
                 "discriminator": self.discriminator_optimizer}
        if self.face_refiner is not None:
            named["face_refiner"] = self.face_optimizer
            named["face_discriminator"] = self.face_discriminator_optimizer
        for group, optimizer in self.part_optimizers.items():
            named[part_discriminator_name(group)] = optimizer
        return named

    def model_states(self) -> dict[str, dict[str, torch.Tensor]]:
        """Every network's state dict by name, as a checkpoint's `models` holds them: with a
        moving average, "generator" is the average (what transfer loads) and the trained
        weights are TRAINED_GENERATOR's (what training goes on from)."""
        states = {name: module.state_dict() for name, module in self.modules().items()}
        if self.generator_average is not None:
            states[TRAINED_GENERATOR] = states["generator"]
            states["generator"] = self.generator_average.module.state_dict()
        return states

    def state(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(models, optimizers, schedulers, scaler) state dicts, as a checkpoint stores them."""
        return (
            self.model_states(),
            {name: opt.state_dict() for name, opt in self.optimizers().items()},
            {name: s.state_dict() for name, s in self.schedulers.items()},
            self.scaler.state_dict(),
        )

    def load(self, checkpoint: Checkpoint) -> None:
        """Strictly restore everything `state()` saved (plus the step counters)."""
        for name, module in self.modules().items():
            optional = (name in ("face_refiner", "face_discriminator")
                        or name.startswith(part_discriminator_name("")))
            if optional and name not in checkpoint.models:
                continue  # trained without a face refiner (part GANs): they start here
            trained = name == "generator" and TRAINED_GENERATOR in checkpoint.models
            checkpoint.load_weights(module, TRAINED_GENERATOR if trained else name)
        if self.generator_average is not None:
            # the average goes on from the one saved (from the weights, if none was kept)
            checkpoint.load_weights(self.generator_average.module, "generator")
            self.generator_average.n_averaged.fill_(max(1, checkpoint.generator_step))
        training = checkpoint.training
        if training is None:
            raise CheckpointError(f"{checkpoint.path} is an inference export and cannot be resumed",
                                  hint="resume from a checkpoint written by train-target")
        load_optimizer_states(self.optimizers(), self.schedulers, training, checkpoint, "")
        try:
            if training.scaler:
                self.scaler.load_state_dict(training.scaler)
        except (KeyError, ValueError, RuntimeError) as error:
            raise CheckpointError(f"the GradScaler state in {checkpoint.path} does not fit: "
                                  f"{error}", hint="delete it and train again") from error
        self.generator_step_count = checkpoint.generator_step
        self.face_refiner_step_count = checkpoint.face_refiner_step

    def set_train(self, flag: bool) -> None:
        for module in self.modules().values():
            module.train(flag)
        if self.generator_average is not None:
            self.generator_average.train(flag)


def regions_of(generator: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The region generator's latest (regions, layout weights), as a list of one; [] for every
    other generator."""
    regions = getattr(generator, "last_regions", None)
    weights = getattr(generator, "last_region_weights", None)
    return [] if regions is None or weights is None else [(regions, weights)]


def replicate(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` in DistributedDataParallel on `device` (the default process group must run).

    Rank 0's parameters (and with torch >= 2.13 its buffers) are copied to the others here; every
    process has built its networks from the same seed anyway. Buffers are not broadcast again
    before every forward pass: ours are constants (the face refiner's feather window) or spectral
    normalisation's vectors, which every process updates identically from identical weights. Every parameter gets a gradient in
    every backward pass of its network, so no search for unused parameters is needed.
    """
    # torch 2.13 renamed broadcast_buffers (which also skipped the copy here) to
    # forward_sync_buffers (which keeps it); older versions only know the first.
    buffers = ({"forward_sync_buffers": False}
               if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
               else {"broadcast_buffers": False})
    return DistributedDataParallel(
        module, device_ids=[device] if device.type == "cuda" else None, **buffers)
