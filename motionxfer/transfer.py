"""Transfer: a source video's motion performed by the project's target person.

source video -> poses (cached) -> normalized onto the target -> stick figures -> generator,
frame by frame, fed its own previous output -> face refiner -> H.264 video at the source's frame
rate with the source's audio.

The personal model runs on a backend (`motionxfer.backends`: PyTorch, or ONNX Runtime with a
chosen execution provider). By default the stick figures, the generator, the face refiner and the
encoder run overlapped (`motionxfer.streaming`); `streaming=False` runs them one after the other,
frame by frame (the reference: both give the same frames). `transfer_many` with `video_batch` > 1
generates frame t of several sources in one call of the generator.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motionxfer.backends import BackendConfig, FrameGenerator, Recurrence, open_backend
from motionxfer.checkpoint import CheckpointInfo
from motionxfer.errors import BadInput, CheckpointError
from motionxfer.networks.face_refiner import face_boxes
from motionxfer.pipeline import normalize_source, source_record
from motionxfer.pose import PoseSequence
from motionxfer.progress import ProgressCallback, RateMeter
from motionxfer.project import Project, VideoRecord
from motionxfer.render import render_stick_figure
from motionxfer.streaming import StreamConfig, VideoJob, compose, generate_videos
from motionxfer.video import VideoWriter, read_frames


@dataclass(frozen=True)
class TransferConfig:
    face_refiner: bool = True  # apply the face refiner when the checkpoint has one
    side_by_side: bool = False  # write source | stick figure | result
    device: str = "auto"  # "auto", "cpu" or "cuda"
    max_seconds: float | None = None  # only the first N seconds of the source
    crf: int = 18  # H.264 quality (lower is better and larger)
    backend: str = "torch"  # "torch" or "onnx" (motionxfer.backends)
    providers: tuple[str, ...] | None = None  # onnx: e.g. ("tensorrt", "cuda", "cpu"); None: auto
    strict_providers: bool = False  # onnx: an unavailable provider is an error, not a warning
    precision: str = "fp32"  # "fp32", "fp16" (GPU) or "bf16" (torch)
    cuda_graphs: bool = False  # record the generator as a CUDA graph (GPU only)
    threads: int | None = None  # CPU threads of the networks (None: one per core)
    streaming: bool = True  # overlap rendering, generation, refinement and encoding
    video_batch: int = 1  # transfer_many: sources generated together (frame t of each)
    queue_size: int = 8  # frames buffered between two overlapped stages

    def __post_init__(self) -> None:
        if self.video_batch < 1 or self.queue_size < 1:
            raise BadInput("video_batch and queue_size must be at least 1",
                           hint="use --video-batch 1 (one video at a time)")
        self.backend_config()  # checks the backend's settings now, not after normalization

    def backend_config(self) -> BackendConfig:
        return BackendConfig(
            backend=self.backend, device=self.device, providers=self.providers,
            strict_providers=self.strict_providers, precision=self.precision,
            face_refiner=self.face_refiner, threads=self.threads, cuda_graphs=self.cuda_graphs,
        )


@dataclass(frozen=True)
class TransferResult:
    source: Path
    output: Path
    frames: int
    fps: float
    seconds: float  # wall time spent (in a batch: from the batch's start to this video's end)
    checkpoint: Path
    backend: str = ""  # what generated it, e.g. "onnx CPUExecutionProvider fp32"

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class PersonalModel:
    """The trained generator and face refiner, run one frame at a time.

    Holds the previous stick figure and generated frame, as the generator is conditioned on
    them. `reset()` before each new video. `backend` gives every setting of how it runs
    (`BackendConfig`: torch or onnx, providers, precision; its device and face_refiner replace
    the two arguments); the onnx backend keeps its ONNX files in `exports_dir`.
    """

    def __init__(self, checkpoint: str | os.PathLike[str], device: str = "auto",
                 face_refiner: bool = True, project_id: str | None = None,
                 backend: BackendConfig | None = None,
                 exports_dir: str | os.PathLike[str] | None = None) -> None:
        config = backend or BackendConfig(device=device, face_refiner=face_refiner)
        self.backend: FrameGenerator = open_backend(checkpoint, config, project_id, exports_dir)
        self.info = self.backend.info
        self.reset()

    @property
    def size(self) -> tuple[int, int]:  # (width, height)
        return self.info.working_size

    def reset(self) -> None:
        self._previous: Recurrence | None = None

    def step(self, stick_figure: np.ndarray, face_box: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 stick figure at `size` (+ face box (4,) in pixels) -> (H, W, 3) uint8."""
        generated = self.backend.generate(stick_figure[None], [self._previous])
        self._previous = generated.recurrence(0)
        boxes = None if face_box is None else np.asarray(face_box, np.float32)[None]
        return self.backend.finish(generated, boxes)[0]


def find_checkpoint(project: Project, checkpoint: str | os.PathLike[str] | None) -> Path:
    path = Path(checkpoint) if checkpoint else project.paths.checkpoint
    if not path.is_file():
        raise CheckpointError(
            f"no trained model at {path}",
            hint=f"train one first: motionxfer train-target {project.root}",
        )
    return path


def transfer(
    project: Project, source: str | os.PathLike[str], output: str | os.PathLike[str],
    config: TransferConfig = TransferConfig(), checkpoint: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None, model: PersonalModel | None = None,
) -> TransferResult:
    """Render the target performing `source`'s motion into `output` (with `source`'s audio)."""
    started = time.perf_counter()
    checkpoint_path = find_checkpoint(project, checkpoint)
    if model is None:
        model = open_model(project, checkpoint_path, config)
    record = source_record(project, source)
    normalized, _ = normalize_source(project, record, progress=progress)
    frames = write_transfer(model, record, normalized, Path(output), config, progress)
    return TransferResult(record.info.path, Path(output), frames, normalized.fps,
                          time.perf_counter() - started, checkpoint_path,
                          model.backend.describe())


def open_model(project: Project, checkpoint: Path, config: TransferConfig) -> PersonalModel:
    """The project's personal model on the backend that `config` asks for."""
    return PersonalModel(checkpoint, project_id=project.target.info.sha256,
                         backend=config.backend_config(), exports_dir=project.paths.exports)


def write_transfer(
    model: PersonalModel, source: VideoRecord, normalized: PoseSequence, output: Path,
    config: TransferConfig, progress: ProgressCallback | None = None,
) -> int:
    """Generate every frame of `normalized` and encode them; returns the number of frames."""
    job = video_job(model, source, normalized, output, config)
    if config.streaming:
        generate_videos(model.backend, [job], StreamConfig(config.queue_size, 1), progress)
        return job.frame_count
    return write_sequentially(model, job, progress)


def video_job(model: PersonalModel, source: VideoRecord, normalized: PoseSequence, output: Path,
              config: TransferConfig) -> VideoJob:
    """What pass 2 needs to make `output` from a source's normalized poses."""
    width, height = model.size
    frame_count = normalized.num_frames
    if config.max_seconds is not None:
        frame_count = min(frame_count, max(1, int(round(config.max_seconds * normalized.fps))))
    refiner = model.info.face_refiner  # crop faces as training did
    boxes = face_boxes(normalized, (width, height),  # (T, 4), NaN where no face
                       refiner.box_margin if refiner else 1.0,
                       refiner.box_smoothing if refiner else 2.0)
    start = source.start or 0.0
    end = start + frame_count / normalized.fps
    out_width = 3 * width if config.side_by_side else width

    def open_sink() -> VideoWriter:
        return VideoWriter(output, fps=normalized.fps, width=out_width, height=height,
                           crf=config.crf, audio_from=source.info.path, audio_start=start,
                           audio_end=end)

    def source_frames() -> Iterator[np.ndarray]:
        return (frame.rgb for frame in read_frames(source.info.path, source.start, end))

    return VideoJob(source.info.path.name, normalized, frame_count, boxes, open_sink,
                    source_frames if config.side_by_side else None)


def write_sequentially(model: PersonalModel, job: VideoJob,
                       progress: ProgressCallback | None = None) -> int:
    """Pass 2 one stage after the other, frame by frame (the reference for the streamed one)."""
    width, height = model.size
    normalized = job.poses
    model.reset()
    meter = RateMeter(progress, f"transfer {job.name}", job.frame_count)
    source_frames = job.source_frames() if job.source_frames is not None else None
    with job.open_sink() as writer:
        for index in range(job.frame_count):
            stick = render_stick_figure(normalized.keypoints[index], normalized.skeleton,
                                        width, height, source_size=normalized.image_size)
            box = job.face_boxes[index] if np.isfinite(job.face_boxes[index]).all() else None
            generated = model.step(stick, box)
            if source_frames is not None:
                generated = compose(generated, stick, next(source_frames, None))
            writer.write(generated)
            meter.advance()
    meter.finish()
    return job.frame_count


def transfer_many(
    project: Project, sources: list[str | os.PathLike[str]], output_dir: str | os.PathLike[str],
    config: TransferConfig = TransferConfig(), checkpoint: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    output_names: dict[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
) -> list[TransferResult]:
    """Batch transfer with one model load: `<output_dir>/<source stem>_transfer.mp4` for each
    source, unless `output_names` gives a source its own output path."""
    output_names = output_names or {}
    checkpoint_path = find_checkpoint(project, checkpoint)
    model = open_model(project, checkpoint_path, config)
    outputs = [Path(output_names.get(source) or
                    Path(output_dir) / f"{Path(source).stem}_transfer.mp4") for source in sources]
    if config.video_batch == 1 or not config.streaming or len(sources) == 1:
        return [transfer(project, source, output, config, checkpoint_path, progress, model)
                for source, output in zip(sources, outputs, strict=True)]
    # Several videos at once: pass 1 (poses, normalization) for all, then one pass 2.
    started = time.perf_counter()
    records = [source_record(project, source) for source in sources]
    normalized = [normalize_source(project, record, progress=progress)[0] for record in records]
    jobs = [video_job(model, record, poses, output, config)
            for record, poses, output in zip(records, normalized, outputs, strict=True)]
    stats = generate_videos(model.backend, jobs,
                            StreamConfig(config.queue_size, config.video_batch), progress)
    prepared = time.perf_counter() - started - stats.seconds
    return [TransferResult(record.info.path, output, job.frame_count, poses.fps,
                           prepared + finished, checkpoint_path, model.backend.describe())
            for record, output, job, poses, finished in zip(
                records, outputs, jobs, normalized, stats.finished_after, strict=True)]


def checkpoint_summary(info: CheckpointInfo) -> dict[str, object]:
    return {"preset": info.preset, "working_size": list(info.working_size),
            "generator_step": info.generator_step, "face_refiner_step": info.face_refiner_step}
