"""Training the target's personal model: the generator (EDN), then its face refiner.

    train_target(project, config, preset) -> TrainResult

Stage 1, the generator, for `config.steps` steps. Each sample is a pair of consecutive frames
(t-1, t). As in Everybody Dance Now, the generator first makes frame t-1 from its stick figure with
no history (previous stick figure = its own, previous frame = zeros, which is also how transfer
starts), then frame t from the stick figures of t and t-1 and its own (detached) frame t-1. The
spatial discriminator judges each (stick figure, frame) pair, the temporal discriminator the pair
of pairs. Losses: `motionxfer.training.losses` (LSGAN or hinge, feature matching, VGG perceptual).
With `part_gan`, crops of the hands, feet and face of frame t also go to a patch discriminator per
part group (`motionxfer.training.part_gan`; one process only). With `gw_loss`, a
Gromov-Wasserstein term compares the structure of VGG features at the body joints of the
generated and the real frame t (`losses.structure_loss`).

Stage 0, with `layout` (REMOT's layout GAN, `motionxfer.training.layout`), for
`config.layout_steps` steps: the layout generator learns the target's six-class parsing (its
parsing cache, made by the built-in parser first when there is none) from the pose channels;
the generator's pose inputs then carry the layout it predicts (six channels after the pose's).

Stage 2, the face refiner, for `config.face_refiner_steps` steps with the generator frozen: face
crops of generated frames t, refined against the real crops by the refiner's own discriminator.

Around the steps: Adam with pix2pixHD's schedule (constant learning rate, then linear decay to 0
from `decay_start` of the steps); mixed precision (autocast + GradScaler) on CUDA; a checkpoint
every `checkpoint_every` steps, at the end and on Ctrl-C or SIGTERM (the first signal stops after
the current step and saves; a second one stops at once without saving); one JSON line of averaged
losses every `log_every` steps in logs/train.jsonl (appended, one write per line, so a crash loses
at most the line being written; a run first drops the lines of steps after the one it starts
from, so a resumed run logs each step once); a PNG grid (stick figure | generated | real) every
`sample_every` steps; SSIM and PSNR on held-out frames every `validate_every` steps.

Exact resumption: the batches of step k are drawn from a generator seeded with (seed, stage, k),
and the checkpoint holds models, optimizers, schedulers, the GradScaler and every random state, so
`--resume` from the checkpoint of step k continues as the uninterrupted run would have. With
replay (`TrainConfig.replay`) the generator's batches are drawn from the episodic memory of each
training frame's error (`ReplayDraws`, in the training thread, after the previous step reported its
errors), and the memory is in the checkpoint too.

Several processes (`torchrun --nproc-per-node N`, see motionxfer.training.distributed): each process trains
on its own device with its own `batch_size` pairs per step, drawn with DistributedSampler's
semantics (a seeded permutation per epoch, each rank every N-th element of it); the networks are
wrapped in DistributedDataParallel, which averages the gradients, so every process holds the same
weights after every step. Rank 0 alone holds the project lock, builds the frame cache (the others
wait, then read it), writes checkpoints, logs, sample grids and validation scores, and reports
progress. Stopping (Ctrl-C) and divergence are agreed on by all processes after every step, so
they stop together. One process runs exactly as it did without any of this.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motionxfer.background.cover import pose_covers
from motionxfer.background.plate import estimate_plate
from motionxfer.checkpoint import (
    Checkpoint,
    TrainingState,
    capture_rng_state,
    restore_rng_state,
    weights_digest,
)
from motionxfer.conditioning import Conditioning
from motionxfer.config import from_dict, override
from motionxfer.errors import (
    BadInput,
    CheckpointError,
    MissingDependency,
    NoPersonFound,
    ProjectError,
)
from motionxfer.evaluation.metrics.image import psnr, ssim
from motionxfer.io.frame_cache import FrameCache, open_frame_cache
from motionxfer.io.images import to_images, to_tensor, working_size, write_png
from motionxfer.networks.face_refiner import face_boxes
from motionxfer.networks.registry import (
    ATTENTIVE_TEXTURE_ARCHITECTURE,
    COMPOSITING_ARCHITECTURE,
    DEFAULT_ARCHITECTURE,
    REGION_ARCHITECTURE,
    SEQUENCE_ARCHITECTURE,
    SEQUENCE_ARCHITECTURES,
    SEQUENCE_TEXTURE_ARCHITECTURE,
    TEXTURE_ARCHITECTURE,
)
from motionxfer.networks.vgg import VGG16Features
from motionxfer.parsing.io import ParsingSequence
from motionxfer.pipeline import (
    extract_parsing,
    frame_cache_key,
    load_parsing,
    load_poses,
    target_frames,
)
from motionxfer.pose.sequence import PoseSequence
from motionxfer.presets import DEFAULT_PRESET, Preset, load_preset
from motionxfer.progress import ProgressCallback
from motionxfer.project import Project
from motionxfer.texture.bank import TEXTURE_GAP_SECONDS, TORSO, TextureBank, has_torso
from motionxfer.training.batches import (
    FACE_STAGE,
    GENERATOR_STAGE,
    BatchQueue,
    ReplayBatchQueue,
    ReplayDraws,
    batch_builder,
    batch_maker,
    memory_config,
    on_device,
    window_maker,
)
from motionxfer.training.config import TrainConfig
from motionxfer.training.dataset import (
    Augmentation,
    DrawFunction,
    FrameSplit,
    TextureInputs,
    TrainingSamples,
    WindowBatch,
    conditioning_drawer,
    split_frames,
    window_starts_of,
)
from motionxfer.training.distributed import (
    SINGLE_PROCESS,
    Processes,
    any_across,
    barrier,
    gather_text,
    mean_across,
    process_device,
    process_group,
    process_seed,
    processes_from_environment,
)
from motionxfer.training.episodic_memory import EpisodicMemory
from motionxfer.training.gromov_wasserstein import structure_joints
from motionxfer.training.interrupt import Interrupted, StopRequest, deferred_interrupt
from motionxfer.training.layout import (
    LAYOUT_STAGE,
    LayoutSamples,
    LayoutTraining,
    run_layout_stage,
)
from motionxfer.training.logs import append_log, drop_steps_after, sample_grid
from motionxfer.training.losses import LossWeights, PerceptualLoss
from motionxfer.training.part_crops import PART_GROUPS
from motionxfer.training.part_gan import PartTracks, part_discriminator_name, part_tracks
from motionxfer.training.trainer import Trainer

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class ValidationScores:
    generator_step: int
    face_refiner_step: int
    ssim: float  # mean over frames (motionxfer.evaluation.metrics.image.ssim)
    psnr: float  # dB, mean over frames (motionxfer.evaluation.metrics.image.psnr; inf when equal)
    frames: int


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    generator_steps: int  # done in total
    face_refiner_steps: int
    steps_this_run: int  # both stages
    losses: dict[str, float]  # the last logged averages
    validation: ValidationScores | None
    device: str  # this process's device
    amp: bool
    seconds: float
    log: Path
    samples: Path
    processes: int  # training processes (torchrun's WORLD_SIZE; 1 without torchrun)
    weights_sha256: tuple[str, ...]  # each process's final weights (weights_digest), rank order

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("checkpoint", "log", "samples"):
            data[key] = str(data[key])
        return data


# --- the project-level entry point ---------------------------------------------------------------

@dataclass
class _RunState:
    conditioning: Conditioning
    losses: dict[str, float] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0
    validation: ValidationScores | None = None


@dataclass(frozen=True)
class TrainingPlan:
    """What a run will do, decided once before it starts."""

    preset: Preset  # the architecture (from the checkpoint when resuming)
    config: TrainConfig  # the run's settings
    resume_from: Checkpoint | None = None  # None: from scratch


def training_setup(project: Project, preset: str | None = None, resume: bool = False,
                   **flags: Any) -> TrainingPlan:
    """The plan of a run: preset, settings and, resuming, the checkpoint it goes on from.

    From scratch: the preset named here, else config.toml's [train] preset, else "512"; settings
    are TrainConfig's defaults <- the preset's [train] <- config.toml's [train] <- `flags` (None
    values are flags not given). On resume: the checkpoint's preset and settings <- `flags`.
    """
    if resume:
        checkpoint = resume_checkpoint(project, preset)
        return TrainingPlan(checkpoint.preset, override(checkpoint.train, **flags), checkpoint)
    if preset is None:
        preset = project.settings("train").get("preset")
    chosen = load_preset(str(preset or DEFAULT_PRESET))
    values = chosen.train.to_dict()
    settings = dict(project.settings("train"))
    settings.pop("preset", None)
    values.update(settings)
    config = override(from_dict(TrainConfig, values, "[train] of config.toml"), **flags)
    return TrainingPlan(chosen, config)


def plan_training(project: Project, config: TrainConfig, preset: str | Preset | None = None,
                  resume: bool = False) -> TrainingPlan:
    """The plan for `config` (see `train_target` for `preset` and `resume`)."""
    if resume:
        wanted = preset.name if isinstance(preset, Preset) else preset
        checkpoint = resume_checkpoint(project, wanted)
        return TrainingPlan(checkpoint.preset, config, checkpoint)
    chosen = preset if isinstance(preset, Preset) else training_setup(project, preset).preset
    return TrainingPlan(chosen, config)


def resume_checkpoint(project: Project, wanted_preset: str | None = None) -> Checkpoint:
    """The project's checkpoint, checked for resuming: this project's, trainable, and of the
    preset asked for (if one is)."""
    checkpoint = Checkpoint.load(project.paths.checkpoint, project.target.info.sha256)
    if not checkpoint.trainable:
        raise CheckpointError(
            f"{checkpoint.path} is an inference export and cannot be resumed",
            hint="resume from a checkpoint written by train-target",
        )
    if wanted_preset is not None and wanted_preset != checkpoint.preset.name:
        raise BadInput(
            f"the checkpoint was trained with preset '{checkpoint.preset.name}', not "
            f"'{wanted_preset}'",
            hint="drop --preset to resume it, or train from scratch without --resume",
        )
    return checkpoint


def perceptual_loss(config: TrainConfig, weights: LossWeights, warn: bool = True,
                    progress: ProgressCallback | None = None) -> PerceptualLoss | None:
    """The VGG perceptual loss; without it only as an explicit choice, with a warning (`warn`:
    False in all processes but rank 0, so that it shows once). The VGG16 weights are fetched on
    first use (reported to `progress`) unless MOTIONXFER_OFFLINE=1."""
    if not config.perceptual:
        if warn:
            logger.warning(
                "warning: training without the VGG perceptual loss (--no-perceptual); results "
                "will be blurrier and less detailed. Fetch the weights with: motionxfer models "
                "fetch vgg16"
            )
        return None
    try:
        features = VGG16Features.from_cache(progress=progress)
    except MissingDependency as error:
        raise MissingDependency(
            f"the perceptual loss needs the VGG16 ImageNet weights: {error.message}",
            hint=f"{error.hint}; or train without the perceptual loss: --no-perceptual",
        ) from error
    return PerceptualLoss(features, weights.perceptual_layers)


def trainer_models(trainer: Trainer, layout: LayoutTraining | None = None,
                   ) -> dict[str, dict[str, torch.Tensor]]:
    """What a checkpoint's `models` holds: every network's state dict (the layout stage's too;
    `Trainer.model_states` for the generator's moving average), and the background plate the
    generator composites over."""
    models = trainer.model_states()
    if layout is not None:
        models.update({name: module.state_dict() for name, module in layout.modules().items()})
    if trainer.plate is not None:
        models["background"] = {"plate": trainer.plate.detach().cpu()}
    return models


UNSEEN_WARNING = 0.05  # share of the plate never seen free of the person that deserves a warning


def compositing_plate(frames: FrameCache, poses: PoseSequence,
                      video_name: str) -> torch.Tensor | None:
    """The target's background plate at the frame cache's (working) size, as (1, 3, H, W) in
    [-1, 1]: per pixel, the median of 48 cached frames spread over the video where the pose's
    cover (`background.cover`) leaves it free, inpainted where it never is. None, with a
    warning, when the camera moves (there is no one background to composite over: the whole
    frame is generated)."""
    result = estimate_plate(iter(frames.frames), pose_covers(poses, frames.size), len(frames))
    if result.moving_camera:
        logger.warning(
            "warning: the camera moves in %s (motion score %.2f px): compositing over a "
            "background plate needs a still camera, so the whole frame is generated instead",
            video_name, result.camera_motion_score)
        return None
    unseen = 1.0 - float(result.seen.mean())
    if unseen > UNSEEN_WARNING:
        logger.warning(
            "warning: %.0f%% of the background of %s is behind the person in every sampled "
            "frame and was filled in by inpainting; the generator paints over it, but a video "
            "in which you move about the whole room gives a truer background", 100 * unseen,
            video_name)
    return to_tensor([result.plate])


def texture_inputs(frames: FrameCache, poses: PoseSequence, plate: torch.Tensor | None,
                   split: FrameSplit) -> TextureInputs:
    """The texture of every frame: the training frame nearest in pose at least
    `TEXTURE_GAP_SECONDS` away (never a held-out frame), re-posed (`texture.bank`)."""
    allowed = np.zeros(poses.num_frames, bool)
    allowed[:split.holdout_start] = True
    bank = TextureBank(frames.frames, poses, None if plate is None else to_images(plate)[0],
                       allowed)
    gap = max(1, round(TEXTURE_GAP_SECONDS * poses.fps))
    return TextureInputs(bank, bank.training_references(gap))


def prepare_frames(project: Project, size: tuple[int, int], progress: ProgressCallback | None,
                   processes: Processes = SINGLE_PROCESS) -> FrameCache:
    """The target's frame cache at `size`, decoded once (reused while the video is unchanged).

    With several processes rank 0 builds it while the others wait; they then open it read-only.
    """
    cache = target_frames(project, size, progress) if processes.is_main else None
    barrier(processes)
    if cache is None:
        cache = open_frame_cache(*frame_cache_key(project, size))
        if cache is None:
            raise ProjectError(
                f"process {processes.rank} cannot read the frame cache that process 0 wrote "
                f"({frame_cache_key(project, size)[0]})",
                hint="with several machines the project folder must be on a file system that "
                "every machine mounts at the same path",
            )
    return cache


def train_target(
    project: Project,
    config: TrainConfig,
    preset: str | Preset | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    draw: DrawFunction | None = None,
) -> TrainResult:
    """Train (or with `resume`, continue) the project's generator and face refiner.

    `preset`: a name or a Preset; None takes config.toml's [train] preset or "512". On resume the
    architecture comes from the checkpoint (a different preset named here is an error).
    `draw` replaces the stick-figure drawing (tests); the default is motionxfer.pose.render's.

    Started by torchrun (WORLD_SIZE, RANK and LOCAL_RANK set), every process calls this and trains
    its share of each step (module docstring); each returns its own TrainResult, and `progress`
    is only called in rank 0. The process group is joined here (NCCL on GPUs, gloo on the CPU)
    unless the calling program has already started it.
    """
    return train_plan(project, plan_training(project, config, preset, resume), progress, draw)


def train_plan(project: Project, plan: TrainingPlan, progress: ProgressCallback | None = None,
               draw: DrawFunction | None = None) -> TrainResult:
    """Carry out `plan` (from `training_setup`): what `train_target` does, the checkpoint read
    once."""
    processes = processes_from_environment()
    if plan.config.replay and processes.distributed:
        raise BadInput(
            f"replay (the episodic memory of the worst frames) trains in one process, not "
            f"{processes.world_size}: each step's frames depend on every earlier step's errors",
            hint="train without torchrun, or without replay (--no-replay)",
        )
    if plan.config.part_gan and processes.distributed:
        raise BadInput(
            f"the part GANs train in one process, not {processes.world_size}: a step skips a "
            "part group none of its frames shows, which the processes would not agree on",
            hint="train without torchrun, or without the part GANs (--no-part-gan)",
        )
    uses_layout = (plan.resume_from.conditioning.layout if plan.resume_from is not None
                   else plan.config.layout)
    if plan.resume_from is not None and plan.config.layout != uses_layout:
        raise BadInput(
            f"the checkpoint was trained {'with' if uses_layout else 'without'} the layout, and "
            "resuming cannot change that (the generator's input channels follow it)",
            hint=f"resume {'without --no-layout' if uses_layout else 'without --layout'}, or "
            "train from scratch")
    if plan.resume_from is not None:
        trained_regions = plan.resume_from.architecture == REGION_ARCHITECTURE
        if plan.config.regions != trained_regions:
            raise BadInput(
                f"the checkpoint was trained {'with' if trained_regions else 'without'} the "
                "region generator, and resuming cannot change that (it is the architecture)",
                hint=f"resume {'without --no-regions' if trained_regions else 'without --regions'}"
                ", or train from scratch")
    if uses_layout and processes.distributed:
        raise BadInput(
            f"the layout stage trains in one process, not {processes.world_size}",
            hint="train without torchrun, or without the layout (--no-layout)")
    parsing = layout_parsing(project, progress) if uses_layout else None
    device = process_device(plan.config.device, processes)
    with process_group(processes, device):
        return _train(project, plan, progress, draw, processes, device, parsing)


def layout_parsing(project: Project, progress: ProgressCallback | None = None,
                   ) -> ParsingSequence:
    """The target's parsing cache, which the layout generator learns; when there is none (or it
    is stale) the built-in parser makes it now (`pipeline.extract_parsing`, with progress): the
    user asked for the layout, and the parser needs nothing more than the poses and a still
    camera (it refuses a moving camera with the fix). A target whose keypoint layout is not a
    human body is refused: the six classes are a person's."""
    record = project.target
    skeleton = load_poses(project, record).skeleton
    missing = [name for name in TORSO if not skeleton.has(name)]
    if missing:
        raise BadInput(
            f"the layout generator predicts REMOT's six classes of a human body (head, top, "
            f"bottom, shoes, skin), parsed from the shoulders and hips, and the "
            f"'{skeleton.name}' keypoint layout has no {', '.join(missing)}",
            hint="train without --layout (layout = false in [train] of config.toml), and "
            "without --regions, which need it")
    parsing = load_parsing(project, record)
    if parsing is None:
        logger.info("the layout needs the target's parsing: running the built-in parser "
                    "(extract-parsing; import-parsing uses an external parser's maps instead)")
        parsing, _ = extract_parsing(project, record, progress=progress)
    return parsing


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _train(project: Project, plan: TrainingPlan, progress: ProgressCallback | None,
           draw: DrawFunction | None, processes: Processes, device: torch.device,
           parsing: ParsingSequence | None = None) -> TrainResult:
    started = time.perf_counter()
    record = project.target
    project_id = record.info.sha256
    checkpoint_path = project.paths.checkpoint
    config, resumed = plan.config, plan.resume_from
    if not processes.is_main:
        progress = None
    # Rank 0 alone takes the project's lock (it is held per process: the others would find it
    # taken) and writes; the others only read the project.
    lock = (project.locked("train-target") if processes.is_main
            else contextlib.nullcontext())

    with lock:
        if resumed is None and checkpoint_path.exists():
            raise CheckpointError(
                f"{checkpoint_path} already holds a trained model",
                hint="continue it with --resume, or move it away to train from scratch",
            )
        poses = load_poses(project, record)
        if resumed is not None:
            conditioning, chosen = resumed.conditioning, resumed.preset
            size, architecture = resumed.working_size, resumed.architecture
            plate = resumed.models.get("background", {}).get("plate")
            if (architecture in SEQUENCE_ARCHITECTURES) != bool(config.sequence):
                raise BadInput(
                    f"{checkpoint_path} was trained with sequence = {resumed.train.sequence}, "
                    f"this run asks for {config.sequence}",
                    hint="resume with the checkpoint's --sequence (or leave the flag out), or "
                    "train a new model")
            if config.facing != conditioning.facing:
                raise BadInput(
                    f"{checkpoint_path} was trained {'with' if conditioning.facing else 'without'}"
                    f" the facing fill, this run asks for {'it' if config.facing else 'none'}",
                    hint="resume without --facing/--no-facing, or train a new model")
        else:
            if config.texture and not has_torso(poses.skeleton):
                # (the layout, which regions also need, refused such a layout already)
                if processes.is_main:
                    logger.warning(
                        f"the keypoint layout '{poses.skeleton.name}' of {record.info.path.name} "
                        "has no shoulders and hips, from which the texture is re-posed: "
                        "training without the texture"
                        + (" and its attention" if config.texture_attention else "")
                        + (" and the regions" if config.regions else ""))
                config = dataclasses.replace(config, texture=False, texture_attention=False,
                                             regions=False)
            if config.facing and not has_torso(poses.skeleton):
                if processes.is_main:
                    logger.warning(
                        f"the keypoint layout '{poses.skeleton.name}' of {record.info.path.name} "
                        "has no shoulders and hips, which say which way the body faces: "
                        "training without the facing fill")
                config = dataclasses.replace(config, facing=False)
            conditioning = Conditioning.for_skeleton(config.conditioning, poses.skeleton,
                                                     config.texture, config.layout, config.facing)
            chosen = plan.preset.conditioned(conditioning)
            size = working_size(poses.image_size, chosen.size, chosen.generator.size_multiple)
        perceptual = perceptual_loss(config, chosen.losses, warn=processes.is_main,
                                     progress=progress)
        split = split_frames(
            poses.person_present, poses.fps, config.holdout_fraction, config.min_holdout_seconds,
            config.min_train_seconds, config.min_person_fraction, record.info.path.name,
        )
        cache = prepare_frames(project, size, progress, processes)
        if resumed is None:
            architecture, plate = DEFAULT_ARCHITECTURE, None
            if config.background == "composite":
                plate = compositing_plate(cache, poses, record.info.path.name)
            if config.sequence:
                if chosen.generator.local_enhancer:
                    raise BadInput(
                        f"the sequence generator (--sequence {config.sequence}) has no local "
                        f"enhancer, and preset {chosen.name} uses one",
                        hint="use --preset 512 or 256 with --sequence, or train frame by frame")
                architecture = (SEQUENCE_TEXTURE_ARCHITECTURE if conditioning.texture
                                else SEQUENCE_ARCHITECTURE)
            elif conditioning.texture and config.regions:  # (config: with the layout)
                architecture = REGION_ARCHITECTURE
            elif conditioning.texture:
                architecture = (ATTENTIVE_TEXTURE_ARCHITECTURE if config.texture_attention
                                else TEXTURE_ARCHITECTURE)
            elif plate is not None:
                architecture = COMPOSITING_ARCHITECTURE
            if architecture != DEFAULT_ARCHITECTURE:
                chosen = dataclasses.replace(chosen, generator=dataclasses.replace(
                    chosen.generator, extra_outputs=2 if conditioning.texture else 1))
        window_starts = (window_starts_of(poses.person_present, split.holdout_start,
                                          config.sequence) if config.sequence else None)
        if window_starts is not None and len(window_starts) == 0:
            raise BadInput(
                f"no run of {config.sequence} consecutive frames of {record.info.path.name} "
                "before the held-out part shows the person",
                hint="use a shorter window (--sequence 2), or film the person fully in view")
        texture = (texture_inputs(cache, poses, plate, split) if conditioning.texture
                   else None)
        pose_drawer = draw or conditioning_drawer(conditioning, poses)
        samples = TrainingSamples(cache, poses, pose_drawer,
                                  Augmentation() if config.augmentation else None, texture,
                                  np.array(structure_joints(poses.skeleton))
                                  if config.gw_loss else None)

        use_face = config.face_refiner and config.face_refiner_steps > 0
        if use_face and not poses.skeleton.has_face:
            if processes.is_main:
                logger.warning(
                    f"the keypoint layout '{poses.skeleton.name}' of {record.info.path.name} has "
                    "no face (no face points, no eyes): training without the face refiner")
            use_face = False
            config = dataclasses.replace(config, face_refiner=False)
        boxes = face_boxes(poses, size, chosen.face_refiner.box_margin,
                           chosen.face_refiner.box_smoothing)  # (T, 4)
        face_train = split.train[np.isfinite(boxes[split.train]).all(axis=1)]
        if use_face and len(face_train) == 0:
            raise NoPersonFound(
                f"no face keypoints in the training frames of {record.info.path.name}",
                hint="film the face in view, or train without the face refiner: "
                "--no-face-refiner",
            )

        parts = part_tracks(poses, size) if config.part_gan else None
        if parts is not None and not parts.groups:
            if processes.is_main:
                logger.warning(
                    f"warning: the keypoint layout '{poses.skeleton.name}' of "
                    f"{record.info.path.name} has no hands, feet or face: training without the "
                    "part GANs")
            parts, config = None, dataclasses.replace(config, part_gan=False)
        # Part discriminators already in the checkpoint are kept (and saved again) even when
        # this run does not train them, as a face refiner is.
        part_groups = tuple(
            group for group in PART_GROUPS
            if (parts is not None and group in parts.groups) or (
                resumed is not None and part_discriminator_name(group) in resumed.models))

        _seed_everything(config.seed)  # the same initial weights in every process
        # A face refiner already in the checkpoint is kept (and saved again) even when this run
        # does not train it.
        keep_face = use_face or (resumed is not None and "face_refiner" in resumed.models)
        trainer = Trainer(chosen, config, device, perceptual, keep_face,
                          distributed=processes.distributed, architecture=architecture,
                          plate=plate, part_groups=part_groups)
        layout: LayoutTraining | None = None
        if conditioning.layout:
            if parsing is None:
                raise ProjectError("the layout stage needs the target's parsing",
                                   hint="run extract-parsing, then train again")
            layout = LayoutTraining(chosen.layout_generator, config, chosen.losses, device)
            layout_samples = LayoutSamples(poses, parsing.labels, pose_drawer, size)
        if resumed is not None:
            trainer.load(resumed)
            if layout is not None:
                layout.load(resumed)
            if processes.is_main:
                assert resumed.training is not None  # resume_checkpoint checked it
                restore_rng_state(resumed.training.rng)  # the checkpoint holds rank 0's states
        if not processes.is_main:
            # Every other rank: its own random streams, a function of the seed, the rank and where
            # training starts (so a resumed run is repeatable too).
            _seed_everything(process_seed(config.seed, processes.rank) + 65_537 * (
                trainer.generator_step_count + trainer.face_refiner_step_count))

        replay = replay_draws(config, split.train, resumed)
        if processes.is_main:  # steps after the starting point are run (and logged) again
            drop_steps_after(project.paths.train_log, {
                GENERATOR_STAGE: trainer.generator_step_count,
                FACE_STAGE: trainer.face_refiner_step_count,
                LAYOUT_STAGE: layout.step_count if layout is not None else 0})
        run = _RunState(conditioning)

        def save() -> None:
            if not processes.is_main:
                return
            _, optimizers, schedulers, scaler = trainer.state()
            models = trainer_models(trainer, layout)
            if layout is not None:
                optimizers.update({name: optimizer.state_dict()
                                   for name, optimizer in layout.optimizers().items()})
                schedulers.update(layout.scheduler_states())
            Checkpoint(
                preset=dataclasses.replace(chosen, train=config),
                project_id=project_id,
                working_size=(int(size[0]), int(size[1])),
                generator_step=trainer.generator_step_count,
                face_refiner_step=trainer.face_refiner_step_count,
                models=models,
                conditioning=conditioning,
                architecture=architecture,
                layout_step=layout.step_count if layout is not None else 0,
                training=TrainingState(
                    optimizers, schedulers, scaler, capture_rng_state(),
                    replay.memory.state_dict() if replay is not None else None),
            ).save(checkpoint_path)

        steps_done = 0
        with deferred_interrupt() as stop:
            try:
                if layout is not None:
                    steps_done += run_layout_stage(
                        layout, layout_samples, split.train, config,
                        project.paths.train_log if processes.is_main else None, save, progress,
                        stop)
                    samples.layout = layout.predictor()  # what transfer will give the generator
                steps_done += _run_stage(
                    GENERATOR_STAGE, trainer, samples, split, boxes, config, project, run,
                    save, progress, stop, processes, replay=replay, parts=parts,
                    window_starts=window_starts,
                )
                if use_face:
                    steps_done += _run_stage(
                        FACE_STAGE, trainer, samples, split, boxes, config, project, run,
                        save, progress, stop, processes, face_train,
                    )
            except KeyboardInterrupt:
                if not stop.in_step:  # between steps every state is consistent
                    save()
                    if stop.agreed:  # every process stopped here: keep them until rank 0 saved
                        barrier(processes)
                raise
        save()
        digests = gather_text(weights_digest(trainer_models(trainer)), processes)
        if len(set(digests)) > 1:
            raise CheckpointError(
                f"the {processes.world_size} training processes ended with different weights "
                f"(sha256 {', '.join(digest[:12] for digest in digests)}); the checkpoint holds "
                "process 0's",
                hint="this is a bug: please report it with your torch version and GPUs; resume "
                "in one process (without torchrun) to go on from the checkpoint",
            )

    return TrainResult(
        checkpoint=checkpoint_path,
        generator_steps=trainer.generator_step_count,
        face_refiner_steps=trainer.face_refiner_step_count,
        steps_this_run=steps_done,
        losses=run.losses,
        validation=run.validation,
        device=str(device),
        amp=trainer.use_amp,
        seconds=time.perf_counter() - started,
        log=project.paths.train_log,
        samples=project.paths.training_samples,
        processes=processes.world_size,
        weights_sha256=tuple(digests),
    )


def _run_stage(stage: str, trainer: Trainer, samples: TrainingSamples, split: FrameSplit,
               boxes: np.ndarray, config: TrainConfig, project: Project, run: _RunState,
               save: Callable[[], None], progress: ProgressCallback | None, stop: StopRequest,
               processes: Processes, face_train: np.ndarray | None = None,
               replay: ReplayDraws | None = None, parts: PartTracks | None = None,
               window_starts: np.ndarray | None = None) -> int:
    """Run one stage from its current step to its last; returns the steps done. `replay`: the
    generator's frames come from the episodic memory, which each step's errors go back to.
    `parts`: the part boxes of every frame, for the part GANs of the generator stage.
    `window_starts`: the generator trains on windows of `config.sequence` frames starting there
    (`Trainer.window_step`)."""
    face = stage == FACE_STAGE
    total = config.face_refiner_steps if face else config.steps
    first = trainer.face_refiner_step_count if face else trainer.generator_step_count
    if first >= total:
        return 0
    candidates = face_train if face and face_train is not None else split.train
    batch_size = config.face_batch_size if face else config.batch_size
    description = "training face refiner" if face else "training generator"
    replay = None if face else replay
    replay_queue = (ReplayBatchQueue(replay, batch_builder(samples, config.seed, stage,
                                                           trainer.device), first, batch_size)
                    if replay is not None else None)
    windows = window_starts is not None and not face
    make = (window_maker(samples, window_starts, batch_size, config.sequence, config.seed,
                         processes)
            if windows and window_starts is not None else
            batch_maker(samples, candidates, batch_size, config.seed, stage, processes,
                        trainer.device))
    queue = replay_queue or BatchQueue(make, first, total, config.num_workers)
    run.sums, run.count, run.losses = {}, 0, {}
    meter_start, meter_steps = time.perf_counter(), 0
    # The generator stage may end early on a time budget: at a step boundary, finished as its
    # last step would be (logged, sampled, validated, saved); --resume goes on from there.
    deadline = (meter_start + 60 * config.max_minutes
                if config.max_minutes > 0 and not face else math.inf)
    trainer.set_train(True)
    try:
        for step in range(first, total):
            made = queue.get()
            batch = (made.to(trainer.device) if isinstance(made, WindowBatch)
                     else on_device(made, trainer.device))
            stop.in_step = True
            if face:
                values = trainer.face_refiner_step(batch, torch.from_numpy(boxes[batch.indices]))
            elif isinstance(batch, WindowBatch):
                values = trainer.window_step(batch)
            else:
                values = trainer.generator_step(
                    batch, parts.batch(batch.indices) if parts is not None else None)
                if replay is not None and replay_queue is not None:  # before a stop can save
                    if trainer.last_sample_errors is None:
                        raise RuntimeError("the generator step reported no sample errors")
                    replay.report(batch.indices, trainer.last_sample_errors, step)
                    values["replayed"] = float(replay_queue.last_replayed)  # frames of B
            stop.in_step = False
            done = step + 1
            meter_steps += 1
            for key, value in values.items():
                run.sums[key] = run.sums.get(key, 0.0) + value
            run.count += 1
            diverged = not all(math.isfinite(value) for value in values.values())
            out_of_time = time.perf_counter() > deadline
            if processes.distributed:  # every process takes the same decisions, at the same step
                stop.agreed, diverged, out_of_time = any_across(
                    [stop.requested, diverged, out_of_time], processes, trainer.device)
            last = done == total or out_of_time
            if diverged:
                raise BadInput(
                    f"training diverged at {stage} step {done} (a loss is not finite: {values})",
                    hint="resume from the last checkpoint with a lower learning rate "
                    "(lr in [train] of config.toml), or --no-amp",
                )
            if done % config.log_every == 0 or last:
                run.losses = mean_across({key: value / run.count
                                          for key, value in run.sums.items()},
                                         processes, trainer.device)
                if processes.is_main:
                    append_log(project.paths.train_log, {
                        "stage": stage, "step": done,
                        "lr": trainer.optimizers()[
                            "face_refiner" if face else "generator"].param_groups[0]["lr"],
                        "time": time.time(), **{k: round(v, 6) for k, v in run.losses.items()},
                    })
                run.sums, run.count = {}, 0
            if processes.is_main and (done % config.sample_every == 0 or last):
                _write_samples(trainer, project, stage, done, run.conditioning)
            if processes.is_main and (done % config.validate_every == 0 or last):
                run.validation = validate(trainer, samples, split, boxes, config, face)
                trainer.set_train(True)
                append_log(project.paths.train_log, {
                    "stage": stage, "step": done, "validation": dataclasses.asdict(run.validation),
                })
            if done % config.checkpoint_every == 0 and not last:
                save()
            if progress is not None:
                elapsed = time.perf_counter() - meter_start
                rate = meter_steps / elapsed if elapsed > 0 else 0.0
                shown = run.losses or values
                text = f"{rate:.2f} steps/s  " + "  ".join(
                    f"{key} {value:.3f}" for key, value in shown.items() if key.endswith("total")
                    or key.startswith("D_"))
                progress(description, done, total, text)
            if stop.agreed if processes.distributed else stop.requested:
                raise Interrupted(stop.signal_number)
            if out_of_time:
                break
    finally:
        queue.close()
    return done - first


def replay_draws(config: TrainConfig, train_frames: np.ndarray,
                 resumed: Checkpoint | None) -> ReplayDraws | None:
    """The episodic memory over the training frames when `config.replay`, restored from the
    checkpoint resumed when it holds one (a run that starts replaying on resume starts with an
    empty memory); None without replay."""
    if not config.replay:
        return None
    memory = EpisodicMemory(len(train_frames), memory_config(config), seed=config.seed)
    state = resumed.training.episodic_memory if resumed and resumed.training else None
    if state is not None:
        memory.load_state_dict(state)
    return ReplayDraws(memory, train_frames)


def _write_samples(trainer: Trainer, project: Project, stage: str, step: int,
                   conditioning: Conditioning) -> None:
    if trainer.last_outputs is None:
        return
    grid = sample_grid(*trainer.last_outputs, pose_to_rgb=conditioning.to_rgb)
    name = f"{'face_' if stage == FACE_STAGE else ''}step_{step:07d}.png"
    write_png(project.paths.training_samples / name, grid)


def validate(trainer: Trainer, samples: TrainingSamples, split: FrameSplit, boxes: np.ndarray,
             config: TrainConfig, with_face_refiner: bool) -> ValidationScores:
    """SSIM and PSNR of generated against real held-out frames, generated in runs of consecutive
    frames as transfer does (a run restarts from zeros after a frame without the person)."""
    chosen = split.validation[:config.validation_frames]
    trainer.set_train(False)
    scores_ssim, scores_psnr = [], []
    runs: list[list[int]] = []
    for index in chosen:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(int(index))
        else:
            runs.append([int(index)])
    for run_indices in runs:
        poses = [to_tensor([samples.stick_figure(index)]) for index in run_indices]
        run_boxes = None
        if with_face_refiner:
            run_boxes = [torch.from_numpy(boxes[index:index + 1]) for index in run_indices]
        frames = trainer.generate_sequence(poses, run_boxes)
        for index, frame in zip(run_indices, frames):
            fake = to_images(frame)[0]
            real = samples.frame(index)
            scores_ssim.append(ssim(real, fake))
            scores_psnr.append(psnr(real, fake))
    return ValidationScores(
        generator_step=trainer.generator_step_count,
        face_refiner_step=trainer.face_refiner_step_count,
        ssim=float(np.mean(scores_ssim)) if scores_ssim else float("nan"),
        psnr=float(np.mean(scores_psnr)) if scores_psnr else float("nan"),
        frames=len(scores_ssim),
    )
