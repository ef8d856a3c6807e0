"""Transfer: a source video's motion performed by the project's target person.

source video -> poses (cached) -> normalized onto the target -> stick figures -> generator,
frame by frame, fed its own previous output -> face refiner -> scaled to the output size (by
default the target video's) -> H.264 (or `codec`) video at the source's frame rate with the
source's audio.

The personal model runs on a backend (`motionxfer.inference.backends`: PyTorch, or ONNX Runtime with a
chosen execution provider). By default the stick figures, the generator, the face refiner and the
encoder run overlapped (`motionxfer.inference.streaming`); `streaming=False` runs them one after the other,
frame by frame (the reference: both give the same frames). `transfer_many` with `video_batch` > 1
generates frame t of several sources in one call of the generator. A sequence model
(`TrainConfig.sequence`) makes its videos in overlapping windows, cross-faded, one video after the
other: `streaming.generate_windowed` overlapped, `write_windowed` one stage after the other (the
reference; both give the same frames).

Everything that can be checked is checked before any work: the output names (never one of the
inputs, never two sources onto one file, a container the encoder can fill), the trims and the
encoder. The project's lock: pass 1 (poses, normalization) takes it exclusively only while it
computes what is not cached; reading the checkpoint and generating hold it shared, so that
`train-target` cannot replace the model meanwhile while other transfers can run alongside.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from motionxfer.background.plate import composite_at_size
from motionxfer.checkpoint import Checkpoint
from motionxfer.errors import BadInput
from motionxfer.inference.backends import open_backend
from motionxfer.inference.frame_generator import BackendConfig, FrameGenerator, Recurrence
from motionxfer.inference.streaming import (
    StreamConfig,
    VideoJob,
    compose,
    generate_videos,
    generate_windowed,
)
from motionxfer.inference.torch_backend import TorchBackend
from motionxfer.io.images import fit_into, resize_frame, to_images
from motionxfer.io.video import (
    VIDEO_SUFFIXES,
    VideoInfo,
    VideoWriter,
    check_encoder,
    check_video_name,
    probe,
    read_frames,
    timeline_fps,
)
from motionxfer.networks.face_refiner import face_boxes
from motionxfer.networks.layout_generator import LayoutPredictor
from motionxfer.networks.sequence_generator import WindowBlender, window_stride
from motionxfer.pipeline import normalize_source, target_plate, texture_bank, transfer_record
from motionxfer.pose.sequence import PoseSequence
from motionxfer.progress import ProgressCallback, RateMeter
from motionxfer.project import Project, VideoRecord
from motionxfer.texture.bank import TextureBank

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransferConfig:
    backend: BackendConfig = BackendConfig()  # how the model runs: torch or onnx, device, ...
    side_by_side: bool = False  # write source | stick figure | result (| ground truth)
    max_seconds: float | None = None  # only the first N seconds (of the source's part used)
    start: float | None = None  # the part of the source used, in seconds; both None: the trim
    end: float | None = None  # recorded by extract-poses --start/--end, else the whole video
    size: tuple[int, int] | None = None  # (width, height) of the output (of each panel)
    height: int | None = None  # or only its height (the width keeps the working aspect)
    crf: int = 18  # constant quality 0-51 (lower is better and larger)
    codec: str = "libx264"  # an encoder of io.video.ENCODERS: libx265, h264_nvenc, ...
    streaming: bool = True  # overlap rendering, generation, refinement and encoding
    video_batch: int = 1  # transfer_many: sources generated together (frame t of each)
    queue_size: int = 8  # frames buffered between two overlapped stages

    def __post_init__(self) -> None:
        if self.video_batch < 1 or self.queue_size < 1:
            raise BadInput("video_batch and queue_size must be at least 1",
                           hint="use --video-batch 1 (one video at a time)")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise BadInput(f"--seconds must be more than 0, got {self.max_seconds:g}",
                           hint="give how many seconds to transfer, e.g. --seconds 5, or leave "
                           "it out for the whole video")
        if self.size is not None and self.height is not None:
            raise BadInput("give the output size or its height, not both",
                           hint="--size 1280x720, or --height 720")
        if self.size is not None and (len(self.size) != 2 or
                                      any(v < 2 or v % 2 for v in self.size)):
            raise BadInput(f"cannot make {'x'.join(map(str, self.size))} videos: width and "
                           "height must be even and at least 2 (yuv420p)",
                           hint="e.g. --size 1280x720")
        if self.height is not None and (self.height < 2 or self.height % 2):
            raise BadInput(f"--height {self.height} must be even and at least 2 (yuv420p)",
                           hint="e.g. --height 720")
        if not 0 <= self.crf <= 51:
            raise BadInput(f"--crf must be between 0 and 51, got {self.crf}",
                           hint="18 is visually lossless, 23 is the encoders' default")


@dataclass(frozen=True)
class TransferResult:
    source: Path
    output: Path
    frames: int
    fps: float
    seconds: float  # wall time spent (in a batch: from the batch's start to this video's end)
    checkpoint: Path
    backend: str = ""  # what generated it, e.g. "onnx CPUExecutionProvider fp32"
    size: tuple[int, int] = (0, 0)  # (width, height) of the output video

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
        self.checkpoint_stat = _file_identity(checkpoint.path)  # to notice a replaced file
        self.backend: FrameGenerator = open_backend(checkpoint, config, exports_dir)
        self.texture: TextureBank | None = None  # set by `transfer` when the model takes one
        plate = checkpoint.models.get("background", {}).get("plate")
        self.plate = (None if plate is None  # (h, w, 3) uint8: what the frames are made over
                      else to_images(plate.reshape(1, *plate.shape[-3:]))[0])
        self.full_plate: np.ndarray | None = None  # the same at the target video's size
        # the layout generator, run on each frame's pose channels before the generator
        self.layout: LayoutPredictor | None = None
        if checkpoint.conditioning.layout:
            if not isinstance(self.backend, TorchBackend):
                raise BadInput(f"the {self.backend.name} backend cannot run this model's layout "
                               "generator", hint="transfer with --backend torch")
            network = checkpoint.build_layout_generator(self.backend.device)
            assert network is not None  # conditioning.layout
            self.layout = LayoutPredictor(network, self.backend.device)
        self.reset()

    @property
    def size(self) -> tuple[int, int]:  # (width, height)
        return self.checkpoint.working_size

    @property
    def composites(self) -> bool:
        """Whether the frames are made over the target's background plate."""
        return self.plate is not None

    def reset(self) -> None:
        self._previous: Recurrence | None = None

    def step(self, stick_figure: np.ndarray, face_box: np.ndarray | None = None) -> np.ndarray:
        """(H, W, C) uint8 pose input at `size` (`Conditioning.encode`; + face box (4,) in
        pixels) -> (H, W, 3) uint8."""
        generated = self.backend.generate(stick_figure[None], [self._previous])
        self._previous = generated.recurrence(0)
        boxes = None if face_box is None else np.asarray(face_box, np.float32)[None]
        return self.backend.finish(generated, boxes)[0]


def _file_identity(path: Path | None) -> tuple[int, int, int] | None:
    try:
        status = path.stat() if path is not None else None
    except OSError:
        return None
    return None if status is None else (status.st_ino, status.st_size, status.st_mtime_ns)


def transfer(
    project: Project, source: str | os.PathLike[str], output: str | os.PathLike[str],
    config: TransferConfig = TransferConfig(), checkpoint: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None, model: PersonalModel | None = None,
    ground_truth: str | os.PathLike[str] | None = None,
) -> TransferResult:
    """Render the target performing `source`'s motion into `output` (with `source`'s audio).

    `output` naming an existing folder writes `<folder>/<source stem>_transfer.mp4`.
    `ground_truth`: a video of the target really doing the source's moves, on the source's
    timeline; a side by side shows it as a fourth panel.
    """
    return transfer_many(project, [source], Path(output).parent, config, checkpoint, progress,
                         output_names={source: output}, model=model,
                         ground_truths={source: ground_truth} if ground_truth else None)[0]


def open_model(project: Project, checkpoint: Path, config: TransferConfig) -> PersonalModel:
    """The project's personal model on the backend that `config` asks for (the checkpoint read
    under the project's shared lock: not while train-target writes it)."""
    with project.locked("transfer", shared=True):
        return PersonalModel(checkpoint, project_id=project.target.info.sha256,
                             backend=config.backend, exports_dir=project.paths.exports)


def output_path(source: str | os.PathLike[str], output: str | os.PathLike[str] | None,
                output_dir: str | os.PathLike[str]) -> Path:
    """Where a source's transfer goes: `output` (a file; a folder when it is one or has no
    extension), else `<output_dir>/<source stem>_transfer.mp4`."""
    default_name = f"{Path(source).stem}_transfer.mp4"
    if output is None:
        return Path(output_dir) / default_name
    output = Path(output)
    return output / default_name if output.is_dir() or not output.suffix else output


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts, case-insensitive file systems
    except OSError:  # one of them does not exist yet
        return False


def check_outputs(project: Project, sources: Sequence[str | os.PathLike[str]],
                  outputs: Sequence[Path],
                  ground_truths: Sequence[str | os.PathLike[str] | None] = ()) -> None:
    """Before any work: each output a video name the writer can fill, no two sources written
    to one file, and no output that is one of the inputs (a source, a video of the project, a
    ground truth), by path or by file identity."""
    inputs: list[tuple[str, Path]] = [("source", Path(source)) for source in sources]
    inputs += [(f"project's {record.role}", record.info.path)
               for record in project.videos.values()]
    inputs += [("ground-truth", Path(video)) for video in ground_truths if video]
    written: dict[str, Path] = {}
    for source, output in zip(sources, outputs, strict=True):
        check_video_name(output)
        for role, video in inputs:
            if _same_file(output, video):
                raise BadInput(
                    f"the output {output} is the {role} video {video}: writing it would destroy "
                    "that video",
                    hint=f"choose another output file, e.g. -o {Path(source).stem}_transfer.mp4",
                )
        key = os.path.realpath(output)
        if key in written:
            raise BadInput(
                f"{written[key]} and {source} would both be written to {output}",
                hint="transfer them in separate runs, each with its own -o FILE, or give the "
                "sources different file names",
            )
        written[key] = Path(source)


def parse_size(text: str) -> tuple[int, int]:
    """"1280x720" -> (1280, 720)."""
    width, separator, height = text.lower().partition("x")
    if not (separator and width.strip().isdigit() and height.strip().isdigit()):
        raise BadInput(f"cannot read the size {text!r}", hint="write it as WIDTHxHEIGHT, e.g. "
                       "--size 1280x720")
    return int(width), int(height)


def output_size(config: TransferConfig, working: tuple[int, int],
                target: VideoInfo) -> tuple[int, int]:
    """(width, height) of the output (of each panel of a side by side): `config.size`, or
    `config.height` with the working aspect, else the target video's size (rounded down to
    even numbers)."""
    if config.size is not None:
        return config.size
    if config.height is not None:
        width = config.height * working[0] / working[1]
        return max(2, round(width / 2) * 2), config.height
    return max(2, target.width - target.width % 2), max(2, target.height - target.height % 2)


def transfer_many(
    project: Project, sources: list[str | os.PathLike[str]], output_dir: str | os.PathLike[str],
    config: TransferConfig = TransferConfig(), checkpoint: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None,
    output_names: dict[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
    model: PersonalModel | None = None,
    ground_truths: dict[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
) -> list[TransferResult]:
    """Batch transfer with one model load: `<output_dir>/<source stem>_transfer.mp4` for each
    source, unless `output_names` gives a source its own output path (or folder). Every output
    is checked before any work (`check_outputs`); two sources with the same file name are
    refused rather than renamed, so that the names stay predictable."""
    started = time.perf_counter()
    output_names = output_names or {}
    ground_truths = ground_truths or {}
    if (len(sources) > 1 and Path(output_dir).suffix.lower() in VIDEO_SUFFIXES
            and not Path(output_dir).is_dir()):
        raise BadInput(f"{output_dir} names one video, but there are {len(sources)} sources",
                       hint="give a folder for several sources: -o out/")
    outputs = [output_path(source, output_names.get(source), output_dir) for source in sources]
    truths = [ground_truths.get(source) for source in sources]
    check_outputs(project, sources, outputs, truths)
    if any(truths) and not config.side_by_side:
        raise BadInput("a ground truth is shown only in a side by side",
                       hint="add --side-by-side, or leave out --ground-truth")
    truth_infos = [probe(video) if video else None for video in truths]  # bad files: now
    if config.codec != "libx264":
        check_encoder(config.codec)
    records = [transfer_record(project, source, config.start, config.end) for source in sources]
    if model is None:
        model = open_model(project, project.find_checkpoint(checkpoint), config)
    # Pass 1 (poses, normalization): cached in the project, under its exclusive lock where
    # something is computed.
    normalized = [normalize_source(project, record, progress=progress)[0] for record in records]
    if (model.composites and model.full_plate is None
            and max(output_size(config, model.size, project.target.info)) > max(model.size)):
        model.full_plate = target_plate(project, progress)  # the background at the output's size
    with project.locked("transfer", shared=True):
        _warn_if_replaced(project, model)
        if model.checkpoint.conditioning.texture and model.texture is None:
            model.texture = texture_bank(project, model.checkpoint, progress)
        size = output_size(config, model.size, project.target.info)
        jobs = [video_job(model, record, poses, output, config, size,
                          info.path if info else None)
                for record, poses, output, info in zip(records, normalized, outputs, truth_infos,
                                                       strict=True)]
        prepared = time.perf_counter() - started
        if model.backend.window_length and config.streaming:  # a sequence model: windows
            stats = generate_windowed(model.backend, jobs, StreamConfig(config.queue_size, 1),
                                      progress)
            finished = list(stats.finished_after)
        elif model.backend.window_length:
            finished, first = [], time.perf_counter()
            for job in jobs:
                write_windowed(model, job, progress)
                finished.append(time.perf_counter() - first)
        elif config.streaming:
            stats = generate_videos(model.backend, jobs,
                                    StreamConfig(config.queue_size, config.video_batch), progress)
            finished = list(stats.finished_after)
        else:
            finished, first = [], time.perf_counter()
            for job in jobs:
                write_sequentially(model, job, progress)
                finished.append(time.perf_counter() - first)
    panels = 1 + (2 if config.side_by_side else 0)
    return [TransferResult(record.info.path, output, job.frame_count, poses.fps,
                           prepared + seconds, model.checkpoint.path or Path(),
                           model.backend.describe(),
                           (size[0] * (panels + (1 if truth else 0)), size[1]))
            for record, output, job, poses, seconds, truth in zip(
                records, outputs, jobs, normalized, finished, truths, strict=True)]


def _warn_if_replaced(project: Project, model: PersonalModel) -> None:
    """A train-target between reading the checkpoint and generating: say which one is used."""
    path = model.checkpoint.path
    if path is None or model.checkpoint_stat is None:
        return
    try:
        now = path.stat()
    except OSError:
        return
    if (now.st_ino, now.st_size, now.st_mtime_ns) != model.checkpoint_stat:
        logger.warning("%s was replaced after this transfer read it; the transfer uses the "
                       "model it read first", path)


def write_transfer(
    model: PersonalModel, source: VideoRecord, normalized: PoseSequence, output: Path,
    config: TransferConfig, progress: ProgressCallback | None = None,
    size: tuple[int, int] | None = None,
) -> int:
    """Generate every frame of `normalized` and encode them at `size` (None: the working
    size); returns the number of frames."""
    job = video_job(model, source, normalized, output, config, size)
    if model.backend.window_length and config.streaming:
        generate_windowed(model.backend, [job], StreamConfig(config.queue_size, 1), progress)
        return job.frame_count
    if model.backend.window_length:
        return write_windowed(model, job, progress)
    if config.streaming:
        generate_videos(model.backend, [job], StreamConfig(config.queue_size, 1), progress)
        return job.frame_count
    return write_sequentially(model, job, progress)


class _PanelWriter:
    """A frame sink that scales each panel of a working-size frame (1, or 3 side by side) to the
    output's panel size and adds the ground truth's next frame as the last panel. With `plates`
    (the working-size plate and the full plate at the panel's size) the generated panel, the
    last, is put over the full plate (`composite_at_size`): the background as sharp as the
    video, only the person upscaled."""

    def __init__(self, writer: VideoWriter, working: tuple[int, int], panel: tuple[int, int],
                 ground_truth: Iterator[np.ndarray] | None,
                 plates: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        self.writer, self.working, self.panel = writer, working, panel
        self.ground_truth = ground_truth
        self.plates = plates

    def write(self, rgb: np.ndarray) -> None:  # (H, k * W, 3) uint8 at the working size
        width = self.working[0]
        panels = [_scaled(rgb[:, left:left + width], self.panel)
                  for left in range(0, rgb.shape[1] - width, width)]
        generated = rgb[:, rgb.shape[1] - width:]
        panels.append(_scaled(generated, self.panel) if self.plates is None
                      else composite_at_size(generated, *self.plates))
        if self.ground_truth is not None:
            real = next(self.ground_truth, None)
            panels.append(fit_into(real, *self.panel) if real is not None
                          else np.zeros_like(panels[0]))
        self.writer.write(panels[0] if len(panels) == 1 else np.concatenate(panels, axis=1))

    def __enter__(self) -> _PanelWriter:
        self.writer.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.ground_truth is not None and hasattr(self.ground_truth, "close"):
            self.ground_truth.close()
        self.writer.__exit__(exc_type, exc, traceback)


def _scaled(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resized to `size` (width, height); letterboxed when the aspect differs by over 1 %."""
    height, width = rgb.shape[:2]
    if abs(width / height - size[0] / size[1]) <= 0.01 * size[0] / size[1]:
        return resize_frame(rgb, size)
    return fit_into(rgb, *size)


def video_job(model: PersonalModel, source: VideoRecord, normalized: PoseSequence, output: Path,
              config: TransferConfig, size: tuple[int, int] | None = None,
              ground_truth: Path | None = None) -> VideoJob:
    """What pass 2 needs to make `output` from a source's normalized poses, each panel at
    `size` (None: the working size)."""
    width, height = model.size
    panel = size or (width, height)
    frame_count = normalized.num_frames
    if config.max_seconds is not None:
        frame_count = min(frame_count, max(1, int(round(config.max_seconds * normalized.fps))))
    refiner = model.checkpoint.face_refiner  # crop faces as training did
    boxes = face_boxes(normalized, (width, height),  # (T, 4), NaN where no face
                       refiner.box_margin if refiner else 1.0,
                       refiner.box_smoothing if refiner else 2.0)
    start = source.start or 0.0
    end = start + frame_count / normalized.fps
    panels = (3 if config.side_by_side else 1) + (1 if ground_truth is not None else 0)

    plates = None
    if model.plate is not None and model.full_plate is not None and panel != (width, height):
        full = model.full_plate
        if abs(full.shape[1] / full.shape[0] - panel[0] / panel[1]) <= 0.01 * panel[0] / panel[1]:
            plates = (model.plate, resize_frame(full, panel))

    def open_sink() -> _PanelWriter:
        writer = VideoWriter(output, fps=normalized.fps, width=panels * panel[0],
                             height=panel[1], crf=config.crf, audio_from=source.info.path,
                             audio_start=start, audio_end=end, codec=config.codec)
        truth = (None if ground_truth is None else
                 (frame.rgb for frame in read_frames(ground_truth, source.start, end)))
        return _PanelWriter(writer, (width, height), panel, truth, plates)

    def source_frames() -> Iterator[np.ndarray]:
        return (frame.rgb for frame in read_frames(source.info.path, source.start, end,
                                                    fps=timeline_fps(source.info)))

    texture = model.texture
    return VideoJob(source.info.path.name, normalized, frame_count, boxes, open_sink,
                    source_frames if config.side_by_side else None, texture,
                    None if texture is None else texture.references(normalized)[:frame_count],
                    model.layout)


def write_sequentially(model: PersonalModel, job: VideoJob,
                       progress: ProgressCallback | None = None) -> int:
    """Pass 2 one stage after the other, frame by frame (the reference for the streamed one)."""
    width, height = model.size
    conditioning = model.checkpoint.conditioning
    model.reset()
    meter = RateMeter(progress, f"transfer {job.name}", job.frame_count)
    source_frames = job.source_frames() if job.source_frames is not None else None
    with job.open_sink() as writer:
        for index in range(job.frame_count):
            stick = job.pose_input(conditioning, index, width, height)
            box = job.face_boxes[index] if np.isfinite(job.face_boxes[index]).all() else None
            generated = model.step(stick, box)
            if source_frames is not None:
                generated = compose(generated, conditioning.to_rgb(stick),
                                    next(source_frames, None))
            writer.write(generated)
            meter.advance()
    meter.finish()
    return job.frame_count


def write_windowed(model: PersonalModel, job: VideoJob,
                   progress: ProgressCallback | None = None) -> int:
    """Pass 2 of a sequence model (`TrainConfig.sequence = N`): the video in windows of N frames
    overlapping by N - N // 2 (`networks.sequence_generator.window_starts`), each made in one
    generator call (`FrameGenerator.generate_window`), their frames cross-faded where windows
    overlap (`WindowBlender`), then face-refined and encoded as soon as no later window holds
    them. One stage after the other: the reference for `streaming.generate_windowed`."""
    width, height = model.size
    conditioning = model.checkpoint.conditioning
    backend = model.backend
    length = backend.window_length
    blender = WindowBlender(job.frame_count, length, window_stride(length))
    meter = RateMeter(progress, f"transfer {job.name}", job.frame_count)
    source_frames = job.source_frames() if job.source_frames is not None else None
    sticks: dict[int, np.ndarray] = {}  # pose inputs of the frames not written yet
    poses: dict[int, object] = {}  # ... and as the backend holds them, for the face refiner
    with job.open_sink() as writer:
        while not blender.done:
            window = blender.next_window()
            for index in window:
                if index not in sticks:
                    sticks[index] = job.pose_input(conditioning, index, width, height)
            generated = backend.generate_window(np.stack([sticks[index] for index in window]))
            for position, index in enumerate(window):
                poses[index] = generated.poses[position]
            finished = blender.add(list(generated.frames))
            if not finished:
                continue
            indices = [index for index, _ in finished]
            blended = backend.batch_of([frame for _, frame in finished],
                                       [poses.pop(index) for index in indices])
            images = backend.finish(blended, job.face_boxes[indices])  # (k, H, W, 3) uint8
            for index, image in zip(indices, images):
                stick = sticks.pop(index)
                if source_frames is not None:
                    image = compose(image, conditioning.to_rgb(stick), next(source_frames, None))
                writer.write(image)
                meter.advance()
    meter.finish()
    return job.frame_count
