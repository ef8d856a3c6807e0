"""Transfer: a source video's motion performed by the project's target person.

source video -> poses (cached) -> normalized onto the target -> stick figures -> generator,
frame by frame, fed its own previous output -> face refiner -> H.264 video at the source's frame
rate with the source's audio.

The personal model runs on a backend (`motionxfer.inference.backends`: PyTorch, or ONNX Runtime with a
chosen execution provider). By default the stick figures, the generator, the face refiner and the
encoder run overlapped (`motionxfer.inference.streaming`); `streaming=False` runs them one after the other,
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

from motionxfer.checkpoint import Checkpoint
from motionxfer.errors import BadInput
from motionxfer.inference.backends import open_backend
from motionxfer.inference.frame_generator import BackendConfig, FrameGenerator, Recurrence
from motionxfer.inference.streaming import StreamConfig, VideoJob, compose, generate_videos
from motionxfer.io.video import VideoWriter, read_frames, timeline_fps
from motionxfer.networks.face_refiner import face_boxes
from motionxfer.pipeline import normalize_source, source_record
from motionxfer.pose.sequence import PoseSequence
from motionxfer.progress import ProgressCallback, RateMeter
from motionxfer.project import Project, VideoRecord


@dataclass(frozen=True)
class TransferConfig:
    backend: BackendConfig = BackendConfig()  # how the model runs: torch or onnx, device, ...
    side_by_side: bool = False  # write source | stick figure | result
    max_seconds: float | None = None  # only the first N seconds of the source
    crf: int = 18  # H.264 quality (lower is better and larger)
    streaming: bool = True  # overlap rendering, generation, refinement and encoding
    video_batch: int = 1  # transfer_many: sources generated together (frame t of each)
    queue_size: int = 8  # frames buffered between two overlapped stages

    def __post_init__(self) -> None:
        if self.video_batch < 1 or self.queue_size < 1:
            raise BadInput("video_batch and queue_size must be at least 1",
                           hint="use --video-batch 1 (one video at a time)")


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

    Holds the previous pose input and generated frame, as the generator is conditioned on
    them. `reset()` before each new video. `checkpoint`: a path (read here, checked against
    `project_id` when given) or a `Checkpoint` already read. `backend` gives every setting of how
    it runs (`BackendConfig`: torch or onnx, providers, precision; its device and face_refiner
    replace the two arguments); the onnx backend keeps its ONNX files in `exports_dir`.
    """

    def __init__(self, checkpoint: str | os.PathLike[str] | Checkpoint, device: str = "auto",
                 face_refiner: bool = True, project_id: str | None = None,
                 backend: BackendConfig | None = None,
                 exports_dir: str | os.PathLike[str] | None = None) -> None:
        config = backend or BackendConfig(device=device, face_refiner=face_refiner)
        if not isinstance(checkpoint, Checkpoint):
            checkpoint = Checkpoint.load(checkpoint, project_id)
        self.checkpoint = checkpoint
        self.backend: FrameGenerator = open_backend(checkpoint, config, exports_dir)
        self.reset()

    @property
    def size(self) -> tuple[int, int]:  # (width, height)
        return self.checkpoint.working_size

    def reset(self) -> None:
        self._previous: Recurrence | None = None

    def step(self, stick_figure: np.ndarray, face_box: np.ndarray | None = None) -> np.ndarray:
        """(H, W, C) uint8 pose input at `size` (`Conditioning.encode`; + face box (4,) in
        pixels) -> (H, W, 3) uint8."""
        generated = self.backend.generate(stick_figure[None], [self._previous])
        self._previous = generated.recurrence(0)
        boxes = None if face_box is None else np.asarray(face_box, np.float32)[None]
        return self.backend.finish(generated, boxes)[0]


def transfer(
    project: Project, source: str | os.PathLike[str], output: str | os.PathLike[str],
    config: TransferConfig = TransferConfig(), checkpoint: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None, model: PersonalModel | None = None,
) -> TransferResult:
    """Render the target performing `source`'s motion into `output` (with `source`'s audio)."""
    started = time.perf_counter()
    if model is None:
        model = open_model(project, project.find_checkpoint(checkpoint), config)
    record = source_record(project, source)
    normalized, _ = normalize_source(project, record, progress=progress)
    frames = write_transfer(model, record, normalized, Path(output), config, progress)
    return TransferResult(record.info.path, Path(output), frames, normalized.fps,
                          time.perf_counter() - started, model.checkpoint.path or Path(),
                          model.backend.describe())


def open_model(project: Project, checkpoint: Path, config: TransferConfig) -> PersonalModel:
    """The project's personal model on the backend that `config` asks for."""
    return PersonalModel(checkpoint, project_id=project.target.info.sha256,
                         backend=config.backend, exports_dir=project.paths.exports)


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
    refiner = model.checkpoint.face_refiner  # crop faces as training did
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
        return (frame.rgb for frame in read_frames(source.info.path, source.start, end,
                                                    fps=timeline_fps(source.info)))

    return VideoJob(source.info.path.name, normalized, frame_count, boxes, open_sink,
                    source_frames if config.side_by_side else None)


def write_sequentially(model: PersonalModel, job: VideoJob,
                       progress: ProgressCallback | None = None) -> int:
    """Pass 2 one stage after the other, frame by frame (the reference for the streamed one)."""
    width, height = model.size
    normalized = job.poses
    conditioning = model.checkpoint.conditioning
    model.reset()
    meter = RateMeter(progress, f"transfer {job.name}", job.frame_count)
    source_frames = job.source_frames() if job.source_frames is not None else None
    with job.open_sink() as writer:
        for index in range(job.frame_count):
            stick = conditioning.encode(normalized.keypoints[index], normalized.skeleton,
                                        width, height, source_size=normalized.image_size)
            box = job.face_boxes[index] if np.isfinite(job.face_boxes[index]).all() else None
            generated = model.step(stick, box)
            if source_frames is not None:
                generated = compose(generated, conditioning.to_rgb(stick),
                                    next(source_frames, None))
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
    model = open_model(project, project.find_checkpoint(checkpoint), config)
    outputs = [Path(output_names.get(source) or
                    Path(output_dir) / f"{Path(source).stem}_transfer.mp4") for source in sources]
    if config.video_batch == 1 or not config.streaming or len(sources) == 1:
        return [transfer(project, source, output, config, progress=progress, model=model)
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
                           prepared + finished, model.checkpoint.path or Path(),
                           model.backend.describe())
            for record, output, job, poses, finished in zip(
                records, outputs, jobs, normalized, stats.finished_after, strict=True)]
