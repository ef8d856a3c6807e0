"""Training settings: `TrainConfig`, a preset's [train] table, then config.toml's [train], then
command-line flags. A plain value with no torch in it, so presets, the config.toml template and
checkpoints can name it without loading the training code."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from motionxfer.conditioning import CONDITIONINGS
from motionxfer.device import DEVICES
from motionxfer.errors import BadInput

GAN_MODES = ("lsgan", "hinge")
BACKGROUNDS = ("generate", "composite")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (a preset's [train] table, then config.toml's [train], then flags)."""

    steps: int = 100_000  # generator steps
    batch_size: int = 1
    lr: float = 0.0002
    betas: tuple[float, float] = (0.5, 0.999)
    decay_start: float = 0.5  # fraction of the steps after which the rate falls linearly to 0
    gan_mode: str = "lsgan"  # or "hinge"
    temporal: bool = True  # the temporal discriminator (EDN's D_T)
    perceptual: bool = True  # the VGG perceptual loss (needs `motionxfer models fetch vgg16`)
    checkpoint_every: int = 1000
    sample_every: int = 500
    validate_every: int = 1000
    log_every: int = 10
    validation_frames: int = 30
    amp: bool = True  # mixed precision on CUDA (no effect on the CPU)
    device: str = "auto"  # "auto", "cpu", "cuda" or "cuda:N"
    seed: int = 0
    num_workers: int = 2  # threads preparing the next batches
    replay: bool = False  # episodic memory: re-show the generator its worst frames (Do as I Do)
    replay_share: float = 0.25  # of each generator batch drawn from the worst frames, on average
    replay_pool: float = 0.1  # the worst fraction of the frames seen so far that replay draws from
    replay_warmup: int = 1000  # generator steps before replay starts (early errors mean little)
    replay_ema: float = 0.0  # 0: a frame's last error; else error <- ema * old + (1 - ema) * new
    part_gan: bool = False  # a local GAN per key part: hands, feet, face crops (Do as I Do)
    ema: float = 0.0  # 0: inference uses the generator's last weights; else a moving average of
    #                   them over the steps (decay per step, at most (1 + n) / (10 + n) after n
    #                   steps, so a short run averages its last tenth or so): checkpoints keep
    #                   both, transfer and the face refiner use the average
    gw_loss: bool = False  # Gromov-Wasserstein between the generated and real frame's structure
    #                        of VGG features at the body joints (needs perceptual; Do as I Do)
    holdout_fraction: float = 0.1
    min_holdout_seconds: float = 1.0
    min_train_seconds: float = 2.0
    min_person_fraction: float = 0.5
    face_refiner: bool = True
    face_refiner_steps: int = 5000
    max_minutes: float = 0.0  # wall-clock budget of the generator stage (0: none); --resume goes on
    face_batch_size: int = 8
    face_lr: float = 0.0002
    conditioning: str = "stick_figure"  # the generator's pose input: stick_figure or label_maps
    facing: bool = False  # the stick figure's torso filled with a grey that says which way the
    #                       body faces (pose.render.facing): a cue a blurred head does not give
    augmentation: bool = False  # small random zoom, shift and colour changes of training pairs
    texture: bool = False  # the target's frame nearest in pose, re-posed, joins the pose input
    #                        and is blended into the output (REMOT's texture alignment; a layout
    #                        without shoulders and hips, an animal, trains without it). Off:
    #                        at the full CPU budget compositing alone scored better on both
    #                        targets (docs/quality.md), though the texture wins at short budgets
    texture_attention: bool = False  # and the generator's features attend over the texture's
    layout: bool = False  # REMOT's layout GAN: a stage before the generator trains a network
    #                       to predict the target's six-class parsing from the pose, and its
    #                       prediction joins the generator's pose input (needs the parsing cache,
    #                       made by the built-in parser when there is none)
    layout_steps: int = 2000  # steps of the layout generator's stage
    regions: bool = False  # REMOT's region generation and whole composition: each body region
    #                        painted from its predicted layout mask and its share of the texture,
    #                        the coarse person they make refined into the frame (needs layout
    #                        and texture; networks/region_generator.py)
    background: str = "composite"  # the person painted over the target's background plate
    #                                (a moving camera falls back to "generate": the whole frame;
    #                                docs/quality.md has the measurement behind the default)
    mask_gain: float = 1.0  # inference only: the painted person mask's contrast about one half
    #                         (clamp(0.5 + gain (mask - 0.5), 0, 1)) when the frame is composited
    #                         over the plate: firmer, the person is less see-through (LPIPS and
    #                         FID lower), softer (1 = as trained), steadier in time (TCM higher);
    #                         docs/quality.md. Training itself runs at 1
    sequence: int = 0  # 0: frame by frame, each frame conditioned on the previous generated one;
    #                    N >= 2: windows of N consecutive frames generated jointly (no
    #                    recurrence), with the texture as the frame-by-frame generator's

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 0 or self.face_refiner_steps < 0 or self.layout_steps < 0:
            problems.append("steps, face_refiner_steps and layout_steps cannot be negative")
        if min(self.batch_size, self.face_batch_size, self.checkpoint_every, self.sample_every,
               self.validate_every, self.log_every) < 1:
            problems.append("batch sizes and the *_every intervals must be at least 1")
        if not (self.lr > 0 and self.face_lr > 0):
            problems.append("learning rates must be positive")
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            problems.append("betas must be two numbers in [0, 1)")
        if not 0 <= self.decay_start <= 1:
            problems.append("decay_start must be in [0, 1]")
        if self.gan_mode not in GAN_MODES:
            problems.append(f"gan_mode must be one of {', '.join(GAN_MODES)}")
        if not (self.device in DEVICES or self.device.startswith("cuda:")):
            problems.append("device must be auto, cpu, cuda or cuda:N")
        if not self.mask_gain >= 1:
            problems.append("mask_gain must be at least 1 (1 = the mask as trained)")
        if not 0 <= self.holdout_fraction < 0.5:
            problems.append("holdout_fraction must be in [0, 0.5)")
        if not self.max_minutes >= 0:
            problems.append("max_minutes cannot be negative (0 means no time limit)")
        if not 0 <= self.min_person_fraction <= 1:
            problems.append("min_person_fraction must be in [0, 1]")
        if self.num_workers < 0 or self.validation_frames < 0:
            problems.append("num_workers and validation_frames cannot be negative")
        if not (0 <= self.replay_share <= 1 and 0 < self.replay_pool <= 1):
            problems.append("replay_share must be in [0, 1] and replay_pool in (0, 1] (shares "
                            "of the batch and of the frames seen, e.g. 0.25 and 0.1)")
        if self.replay_warmup < 0 or not 0 <= self.replay_ema < 1:
            problems.append("replay_warmup cannot be negative and replay_ema must be in [0, 1)")
        if not 0 <= self.ema < 1:
            problems.append("ema is the moving average's decay per step: 0 (off) or in (0, 1), "
                            "e.g. 0.999")
        if self.gw_loss and not self.perceptual:
            problems.append("gw_loss reads the perceptual loss's VGG features: it needs "
                            "perceptual = true")
        if self.background not in BACKGROUNDS:
            problems.append(f"background must be one of {', '.join(BACKGROUNDS)}")
        if self.texture_attention and not self.texture:
            problems.append("texture_attention attends over the texture: it needs texture = true")
        if self.regions:
            missing = [name for name in ("layout", "texture") if not getattr(self, name)]
            if missing:
                problems.append(
                    "regions paint each body region from the predicted layout's mask and the "
                    f"re-posed texture inside it: they need {' and '.join(missing)} = true "
                    f"(--{' --'.join(missing)})")
            if self.texture_attention:
                problems.append("regions do not combine with texture_attention yet: train one "
                                "or the other")
        if self.conditioning not in CONDITIONINGS:
            problems.append(f"conditioning must be one of {', '.join(CONDITIONINGS)}")
        if self.facing and self.conditioning != "stick_figure":
            problems.append("facing fills the stick figure's torso: it needs conditioning = "
                            "\"stick_figure\"")
        if self.sequence < 0 or self.sequence == 1:
            problems.append("sequence must be 0 (frame by frame) or a window of at least 2 "
                            "frames")
        if self.sequence:
            combined = [name for name in ("texture_attention", "regions", "replay", "part_gan")
                        if getattr(self, name)]
            if combined:
                problems.append(f"sequence (windows of frames) does not combine with "
                                f"{', '.join(combined)} yet: train one or the other")
        if problems:
            raise BadInput("bad training settings: " + "; ".join(problems),
                           hint="fix them in [train] of config.toml or on the command line")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
