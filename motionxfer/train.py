"""Training the target's personal model: the generator (EDN), then its face refiner.

    train_target(project, config, preset) -> TrainResult

Stage 1, the generator, for `config.steps` steps. Each sample is a pair of consecutive frames
(t-1, t). As in Everybody Dance Now, the generator first makes frame t-1 from its stick figure with
no history (previous stick figure = its own, previous frame = zeros, which is also how transfer
starts), then frame t from the stick figures of t and t-1 and its own (detached) frame t-1. The
spatial discriminator judges each (stick figure, frame) pair, the temporal discriminator the pair
of pairs. Losses: `motionxfer.losses` (LSGAN or hinge, feature matching, VGG perceptual).

Stage 2, the face refiner, for `config.face_refiner_steps` steps with the generator frozen: face
crops of generated frames t, refined against the real crops by the refiner's own discriminator.

Around the steps: Adam with pix2pixHD's schedule (constant learning rate, then linear decay to 0
from `decay_start` of the steps); mixed precision (autocast + GradScaler) on CUDA; a checkpoint
every `checkpoint_every` steps, at the end and on Ctrl-C (the first Ctrl-C stops after the current
step and saves; a second one stops at once without saving); one JSON line of averaged losses every
`log_every` steps in logs/train.jsonl (appended, one write per line, so a crash loses at most the
line being written); a PNG grid (stick figure | generated | real) every `sample_every` steps; SSIM
and PSNR on held-out frames every `validate_every` steps.

Exact resumption: the batches of step k are drawn from a generator seeded with (seed, stage, k),
and the checkpoint holds models, optimizers, schedulers, the GradScaler and every random state, so
`--resume` from the checkpoint of step k continues as the uninterrupted run would have.

Several processes (`torchrun --nproc-per-node N`, see motionxfer.distributed): each process trains
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
import json
import logging
import math
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from motionxfer.checkpoint import (
    capture_rng_state,
    checkpoint_info,
    new_payload,
    read_checkpoint,
    restore_rng_state,
    save_checkpoint,
    weights_digest,
)
from motionxfer.dataset import (
    DrawFunction,
    FrameCache,
    FrameSplit,
    PairBatch,
    PairImages,
    TrainingSamples,
    build_frame_cache,
    open_frame_cache,
    split_frames,
    stick_figure_drawer,
    to_images,
    to_tensor,
    working_size,
)
from motionxfer.distributed import (
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
from motionxfer.errors import (
    BadInput,
    CheckpointError,
    MissingDependency,
    NoPersonFound,
    ProjectError,
)
from motionxfer.fileio import atomic_write, fingerprint
from motionxfer.losses import (
    GAN_MODES,
    LossWeights,
    PerceptualLoss,
)
from motionxfer.metrics.image import psnr, ssim
from motionxfer.networks.face_refiner import (
    face_boxes,
)
from motionxfer.presets import (
    DEFAULT_PRESET,
    Preset,
    load_preset,
    preset_configs,
    preset_from_configs,
)
from motionxfer.progress import ProgressCallback
from motionxfer.project import Project
from motionxfer.trainer import Trainer

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
GENERATOR_STAGE = "generator"
FACE_STAGE = "face_refiner"


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
    holdout_fraction: float = 0.1
    min_holdout_seconds: float = 1.0
    min_train_seconds: float = 2.0
    min_person_fraction: float = 0.5
    face_refiner: bool = True
    face_refiner_steps: int = 5000
    max_minutes: float = 0.0  # wall-clock budget of the generator stage (0: none); --resume goes on
    face_batch_size: int = 8
    face_lr: float = 0.0002

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 0 or self.face_refiner_steps < 0:
            problems.append("steps and face_refiner_steps cannot be negative")
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
        if not 0 <= self.holdout_fraction < 0.5:
            problems.append("holdout_fraction must be in [0, 0.5)")
        if not self.max_minutes >= 0:
            problems.append("max_minutes cannot be negative (0 means no time limit)")
        if not 0 <= self.min_person_fraction <= 1:
            problems.append("min_person_fraction must be in [0, 1]")
        if self.num_workers < 0 or self.validation_frames < 0:
            problems.append("num_workers and validation_frames cannot be negative")
        if problems:
            raise BadInput("bad training settings: " + "; ".join(problems),
                           hint="fix them in [train] of config.toml or on the command line")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ValidationScores:
    generator_step: int
    face_refiner_step: int
    ssim: float  # mean over frames (motionxfer.metrics.image.ssim)
    psnr: float  # dB, mean over frames (motionxfer.metrics.image.psnr; inf when equal)
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


# --- small pure helpers --------------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    """The device of one process ("auto": CUDA when torch sees a GPU)."""
    return process_device(name, SINGLE_PROCESS)


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
    from torch.utils.data.distributed import DistributedSampler

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




# --- batches -------------------------------------------------------------------------------------

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
        if device.type == "cuda":
            return samples.pair_images(indices).pin_memory()
        return samples.pairs(indices)

    return make


def on_device(made: PairBatch | PairImages, device: torch.device) -> PairBatch:
    """A batch from `batch_maker` as the training step takes it."""
    return made.to_batch(device) if isinstance(made, PairImages) else made


# --- Ctrl-C --------------------------------------------------------------------------------------

@dataclass
class StopRequest:
    requested: bool = False  # Ctrl-C was pressed once: stop after this step
    in_step: bool = False  # a step is running (its state would be half updated)
    agreed: bool = False  # several processes: one of them was asked to stop, all stop now


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[StopRequest]:
    """The first Ctrl-C asks the loop to stop after the current step; a second one interrupts."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


# --- logs and pictures ---------------------------------------------------------------------------

def append_log(path: Path, entry: dict[str, Any]) -> None:
    """One JSON line, written with one call and flushed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_finite(entry), sort_keys=True, allow_nan=False)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()


def _finite(value: Any) -> Any:
    """NaN and infinities become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return value


def write_png(path: Path, rgb: np.ndarray) -> None:
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise BadInput(f"could not encode {path}", hint="report this as a bug")
    with atomic_write(path) as handle:
        handle.write(encoded.tobytes())


def sample_grid(poses: torch.Tensor, fakes: torch.Tensor, reals: torch.Tensor,
                rows: int = 4) -> np.ndarray:
    """(H * rows, W * 3, 3) uint8: stick figure | generated | real, one sample per row."""
    count = min(rows, poses.shape[0])
    columns = [to_images(tensor[:count]) for tensor in (poses, fakes, reals)]
    return np.concatenate(
        [np.concatenate([column[row] for column in columns], axis=1) for row in range(count)],
        axis=0,
    )


# --- the project-level entry point ---------------------------------------------------------------

@dataclass
class _RunState:
    losses: dict[str, float] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    count: int = 0
    validation: ValidationScores | None = None


def training_setup(project: Project, preset: str | None = None, resume: bool = False,
                   **flags: Any) -> tuple[Preset, TrainConfig]:
    """The preset and training settings a run will use.

    From scratch: the preset named here, else config.toml's [train] preset, else "512"; settings
    are TrainConfig's defaults <- the preset's [train] <- config.toml's [train] <- `flags` (None
    values are flags not given). On resume: the checkpoint's preset and settings <- `flags`.
    """
    from motionxfer.config import from_dict, override

    if resume:
        path = project.paths.checkpoint
        payload = read_checkpoint(path, project.target.info.sha256)
        info = checkpoint_info(payload, path)
        if preset is not None and preset != info.preset:
            raise BadInput(
                f"the checkpoint was trained with preset '{info.preset}', not '{preset}'",
                hint="drop --preset to resume it, or train from scratch without --resume",
            )
        chosen = preset_from_configs(info.preset, info.working_size[1], info.configs, str(path))
        return chosen, override(chosen.train, **flags)
    if preset is None:
        preset = project.settings("train").get("preset")
    chosen = load_preset(str(preset or DEFAULT_PRESET))
    values = chosen.train.to_dict()
    settings = dict(project.settings("train"))
    settings.pop("preset", None)
    values.update(settings)
    return chosen, override(from_dict(TrainConfig, values, "[train] of config.toml"), **flags)


def perceptual_loss(config: TrainConfig, weights: LossWeights,
                    warn: bool = True) -> PerceptualLoss | None:
    """The VGG perceptual loss; without it only as an explicit choice, with a warning (`warn`:
    False in all processes but rank 0, so that it shows once)."""
    if not config.perceptual:
        if warn:
            logger.warning(
                "warning: training without the VGG perceptual loss (--no-perceptual); results "
                "will be blurrier and less detailed. Fetch the weights with: motionxfer models "
                "fetch vgg16"
            )
        return None
    from motionxfer.networks.vgg import VGG16Features

    try:
        features = VGG16Features.from_cache()
    except MissingDependency as error:
        raise MissingDependency(
            f"the perceptual loss needs the VGG16 ImageNet weights: {error.message}",
            hint="fetch them with: motionxfer models fetch vgg16 (or train without the "
            "perceptual loss: --no-perceptual)",
        ) from error
    return PerceptualLoss(features, weights.perceptual_layers)


def prepare_frames(project: Project, size: tuple[int, int], progress: ProgressCallback | None,
                   processes: Processes = SINGLE_PROCESS) -> FrameCache:
    """The target's frame cache at `size`, decoded once (reused while the video is unchanged).

    With several processes rank 0 builds it while the others wait; they then open it read-only.
    """
    from motionxfer.video import read_frames

    record = project.target
    source_key = fingerprint("frames", record.info.sha256, record.start, record.end)
    path = project.paths.frames_cache(record.video_id, size[1])
    cache = None
    if processes.is_main:
        cache = open_frame_cache(path, size, source_key)
        if cache is None:
            frames = (frame.rgb for frame in read_frames(record.info.path, record.start,
                                                         record.end))
            total = round(((record.end or record.info.duration) - (record.start or 0.0))
                          * record.info.fps)
            cache = build_frame_cache(frames, path, size, source_key, total=total,
                                      progress=progress)
    barrier(processes)
    if cache is None:
        cache = open_frame_cache(path, size, source_key)
        if cache is None:
            raise ProjectError(
                f"process {processes.rank} cannot read the frame cache that process 0 wrote "
                f"({path})",
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
    `draw` replaces the stick-figure drawing (tests); the default is motionxfer.render's.

    Started by torchrun (WORLD_SIZE, RANK and LOCAL_RANK set), every process calls this and trains
    its share of each step (module docstring); each returns its own TrainResult, and `progress`
    is only called in rank 0. The process group is joined here (NCCL on GPUs, gloo on the CPU)
    unless the calling program has already started it.
    """
    processes = processes_from_environment()
    device = process_device(config.device, processes)
    with process_group(processes, device):
        return _train(project, config, preset, resume, progress, draw, processes, device)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _train(project: Project, config: TrainConfig, preset: str | Preset | None, resume: bool,
           progress: ProgressCallback | None, draw: DrawFunction | None, processes: Processes,
           device: torch.device) -> TrainResult:
    from motionxfer.pipeline import load_poses

    started = time.perf_counter()
    record = project.target
    project_id = record.info.sha256
    checkpoint_path = project.paths.checkpoint
    if not processes.is_main:
        progress = None
    # Rank 0 alone takes the project's lock (it is held per process: the others would find it
    # taken) and writes; the others only read the project.
    lock = (project.locked("train-target") if processes.is_main
            else contextlib.nullcontext())

    with lock:
        payload: dict[str, Any] | None = None
        if resume:
            payload = read_checkpoint(checkpoint_path, project_id)
            info = checkpoint_info(payload, checkpoint_path)
            if not info.trainable:
                raise CheckpointError(
                    f"{checkpoint_path} is an inference export and cannot be resumed",
                    hint="resume from a checkpoint written by train-target",
                )
            wanted = preset.name if isinstance(preset, Preset) else preset
            if wanted is not None and wanted != info.preset:
                raise BadInput(
                    f"the checkpoint was trained with preset '{info.preset}', not '{wanted}'",
                    hint="drop --preset to resume it, or train from scratch without --resume",
                )
            chosen = preset_from_configs(info.preset, info.working_size[1], payload["configs"],
                                         str(checkpoint_path))
        else:
            if checkpoint_path.exists():
                raise CheckpointError(
                    f"{checkpoint_path} already holds a trained model",
                    hint="continue it with --resume, or move it away to train from scratch",
                )
            chosen = preset if isinstance(preset, Preset) else training_setup(project, preset)[0]

        perceptual = perceptual_loss(config, chosen.losses, warn=processes.is_main)
        poses = load_poses(project, record)
        size = (tuple(payload["working_size"]) if payload is not None else
                working_size(poses.image_size, chosen.size, chosen.generator.size_multiple))
        split = split_frames(
            poses.person_present, poses.fps, config.holdout_fraction, config.min_holdout_seconds,
            config.min_train_seconds, config.min_person_fraction, record.info.path.name,
        )
        cache = prepare_frames(project, size, progress, processes)
        samples = TrainingSamples(cache, poses, draw or stick_figure_drawer(poses))

        use_face = config.face_refiner and config.face_refiner_steps > 0
        boxes = face_boxes(poses, size, chosen.face_refiner.box_margin,
                           chosen.face_refiner.box_smoothing)  # (T, 4)
        face_train = split.train[np.isfinite(boxes[split.train]).all(axis=1)]
        if use_face and len(face_train) == 0:
            raise NoPersonFound(
                f"no face keypoints in the training frames of {record.info.path.name}",
                hint="film the face in view, or train without the face refiner: "
                "--no-face-refiner",
            )

        _seed_everything(config.seed)  # the same initial weights in every process
        # A face refiner already in the checkpoint is kept (and saved again) even when this run
        # does not train it.
        keep_face = use_face or (payload is not None and "face_refiner" in payload["models"])
        trainer = Trainer(chosen, config, device, perceptual, keep_face,
                          distributed=processes.distributed)
        if payload is not None:
            trainer.load(payload, checkpoint_path)
            if processes.is_main:
                restore_rng_state(payload["rng"])  # the checkpoint holds rank 0's states
        if not processes.is_main:
            # Every other rank: its own random streams, a function of the seed, the rank and where
            # training starts (so a resumed run is repeatable too).
            _seed_everything(process_seed(config.seed, processes.rank) + 65_537 * (
                trainer.generator_step_count + trainer.face_refiner_step_count))

        run = _RunState()

        def save() -> None:
            if not processes.is_main:
                return
            save_checkpoint(checkpoint_path, new_payload(
                preset=chosen.name,
                project_id=project_id,
                working_size=[int(size[0]), int(size[1])],
                generator_step=trainer.generator_step_count,
                face_refiner_step=trainer.face_refiner_step_count,
                configs={**preset_configs(chosen), "train": config.to_dict()},
                rng=capture_rng_state(),
                **trainer.state(),
            ))

        steps_done = 0
        with deferred_interrupt() as stop:
            try:
                steps_done += _run_stage(
                    GENERATOR_STAGE, trainer, samples, split, boxes, config, project, run,
                    save, progress, stop, processes,
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
        digests = gather_text(weights_digest(
            {name: module.state_dict() for name, module in trainer.modules().items()}),
            processes)
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
               processes: Processes, face_train: np.ndarray | None = None) -> int:
    """Run one stage from its current step to its last; returns the steps done."""
    face = stage == FACE_STAGE
    total = config.face_refiner_steps if face else config.steps
    first = trainer.face_refiner_step_count if face else trainer.generator_step_count
    if first >= total:
        return 0
    candidates = face_train if face and face_train is not None else split.train
    batch_size = config.face_batch_size if face else config.batch_size
    description = "training face refiner" if face else "training generator"
    make = batch_maker(samples, candidates, batch_size, config.seed, stage, processes,
                       trainer.device)
    queue = BatchQueue(make, first, total, config.num_workers)
    run.sums, run.count, run.losses = {}, 0, {}
    meter_start, meter_steps = time.perf_counter(), 0
    # The generator stage may end early on a time budget: at a step boundary, finished as its
    # last step would be (logged, sampled, validated, saved); --resume goes on from there.
    deadline = (meter_start + 60 * config.max_minutes
                if config.max_minutes > 0 and not face else math.inf)
    trainer.set_train(True)
    try:
        for step in range(first, total):
            batch = on_device(queue.get(), trainer.device)
            stop.in_step = True
            if face:
                values = trainer.face_refiner_step(batch, torch.from_numpy(boxes[batch.indices]))
            else:
                values = trainer.generator_step(batch)
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
                _write_samples(trainer, project, stage, done)
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
                raise KeyboardInterrupt
            if out_of_time:
                break
    finally:
        queue.close()
    return done - first


def _write_samples(trainer: Trainer, project: Project, stage: str, step: int) -> None:
    if trainer.last_outputs is None:
        return
    grid = sample_grid(*trainer.last_outputs)
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
