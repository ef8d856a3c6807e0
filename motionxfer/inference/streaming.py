"""The overlapped transfer pipeline: every stage busy at once, joined by bounded queues.

A transfer runs in two passes, because normalization needs the whole source first: the ankle
statistics (the source's nearest and farthest standing positions and its heights there) come
from all of its frames, and frame 1 is mapped with statistics that frame 900 may change.
Normalizing while streaming would need running statistics that settle only late in the video
and would move the person's size and place while they settle.

    pass 1 (cached in the project)   decode -> poses -> smoothing -> normalization
        (`motionxfer.pose.parallel_extract` runs pose extraction in several processes)

    pass 2 (`generate_videos`)       render -> generate -> refine -> encode
        render       a thread per video: stick figures (OpenCV releases the GIL), the layout
                     a layout model predicts from them, and, for a side by side, the decoded
                     source frames
        generate     the calling thread: frame t of up to `video_batch` videos in one call; the
                     recurrence (frame t needs frame t-1) is per video, so a single video is
                     sequential here and several videos fill a batch
        refine       one thread: face refiner and conversion to uint8 (off the recurrence: the
                     generator is fed its unrefined frame)
        encode       a thread per video: side-by-side composition and H.264 (PyAV releases the
                     GIL while x264 works)

Each queue holds `queue_size` frames, so memory stays bounded and a slow encoder slows the
generator down instead of filling the memory. The first error in any stage stops every stage;
video writers then delete their temporary files, and the error is raised in the caller.

A sequence model (`TrainConfig.sequence = N`) has no recurrence: `generate_windowed` runs the same
render, refine and encode threads around a generate stage that makes a video in overlapping
windows of N frames and cross-fades them (`networks.sequence_generator.WindowBlender`), one video
after the other (`video_batch` is not used); a frame goes on to the face refiner as soon as no
later window holds it.

`StreamStats` says how busy each stage was; `generator_idle` is the share of the wall time the
generator waited for stick figures (0: the generator was the bottleneck, as it should be).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from motionxfer.conditioning import Conditioning, LayoutFunction
from motionxfer.errors import BadInput
from motionxfer.inference.frame_generator import FrameGenerator, Recurrence
from motionxfer.io.images import fit_into
from motionxfer.networks.sequence_generator import WindowBlender, window_stride
from motionxfer.pose.sequence import PoseSequence
from motionxfer.progress import ProgressCallback, RateMeter
from motionxfer.texture.bank import TextureBank


class FrameSink(Protocol):
    def write(self, rgb: np.ndarray) -> None: ...


@dataclass(frozen=True)
class StreamConfig:
    queue_size: int = 8  # frames buffered between two stages
    video_batch: int = 1  # videos whose frames are generated together

    def __post_init__(self) -> None:
        if self.queue_size < 1 or self.video_batch < 1:
            raise BadInput("queue_size and video_batch must be at least 1",
                           hint="use the defaults: queue_size 8, video_batch 1")


@dataclass(frozen=True)
class VideoJob:
    """One video for pass 2.

    poses: normalized onto the target (the target's image coordinates).
    face_boxes: (frame_count, 4) x0, y0, x1, y1 in pixels of the working frame, NaN: no face.
    open_sink: makes the writer of the output frames (entered as a context manager: an error
        makes it discard what it wrote).
    source_frames: for a side by side, makes an iterator of the source's (H, W, 3) frames.
    """

    name: str
    poses: PoseSequence
    frame_count: int
    face_boxes: np.ndarray
    open_sink: Callable[[], AbstractContextManager[FrameSink]]
    source_frames: Callable[[], Iterator[np.ndarray]] | None = None
    texture: TextureBank | None = None  # the model takes the target's re-posed frames
    references: np.ndarray | None = None  # (frame_count,) the bank frame of each frame
    layout: LayoutFunction | None = None  # the model's layout generator, when it takes a layout

    def pose_input(self, conditioning: Conditioning, index: int, width: int,
                   height: int) -> np.ndarray:
        """Frame `index`'s generator input (`Conditioning.encode`), the layout predicted from
        its pose and the texture included."""
        return conditioning.encode(
            self.poses.keypoints[index], self.poses.skeleton, width, height,
            source_size=self.poses.image_size, texture=self.texture,
            reference=None if self.references is None else int(self.references[index]),
            layout=self.layout)


@dataclass(frozen=True)
class StreamStats:
    frames: int
    seconds: float  # wall time
    busy: dict[str, float]  # seconds each stage spent working (summed over its threads)
    generator_waiting: float  # seconds the generator waited for stick figures
    finished_after: tuple[float, ...] = field(default=())  # per job, seconds from the start

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def generator_idle(self) -> float:
        return self.generator_waiting / self.seconds if self.seconds > 0 else 0.0


class _Stopped(Exception):
    """Raised inside a stage when another stage failed."""


_END = object()


class _Stages:
    """Threads, their first error and queue operations that give up once a stage has failed."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.busy: dict[str, float] = {}

    def fail(self, error: BaseException) -> None:
        with self.lock:
            if not isinstance(error, _Stopped) or not self.errors:
                self.errors.append(error)
        self.stop.set()

    def add_busy(self, stage: str, seconds: float) -> None:
        with self.lock:
            self.busy[stage] = self.busy.get(stage, 0.0) + seconds

    def start(self, name: str, target: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            except BaseException as error:  # noqa: BLE001 - handed to the caller by `raise_first`
                self.fail(error)

        thread = threading.Thread(target=run, name=f"motionxfer-{name}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def put(self, channel: queue.Queue[Any], item: Any) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped()
            try:
                channel.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def get(self, channel: queue.Queue[Any]) -> Any:
        while True:
            if self.stop.is_set():
                raise _Stopped()
            try:
                return channel.get(timeout=0.05)
            except queue.Empty:
                continue

    def join(self) -> None:
        for thread in self.threads:
            thread.join()

    def raise_first(self) -> None:
        real = [error for error in self.errors if not isinstance(error, _Stopped)]
        if real:
            raise real[0]
        if self.errors:
            raise self.errors[0]

    def finish(self, frames: int, started: float, waiting: float,
               finished_after: list[float]) -> StreamStats:
        """Wait for every stage, raise the first error, else the run's statistics."""
        self.join()
        self.raise_first()
        return StreamStats(frames, time.perf_counter() - started, dict(self.busy), waiting,
                           tuple(finished_after))


@dataclass
class _Slot:
    job_index: int
    rendered: queue.Queue[Any]
    encoded: queue.Queue[Any]
    recurrence: Recurrence | None = None


def generate_videos(backend: FrameGenerator, jobs: Sequence[VideoJob],
                    config: StreamConfig = StreamConfig(),
                    progress: ProgressCallback | None = None) -> StreamStats:
    """Pass 2 for every job: stick figures, generator, face refiner and encoder overlapped, up to
    `config.video_batch` videos generated together. Frames reach each sink in order."""
    started = time.perf_counter()
    stages = _Stages()
    refine_queue: queue.Queue[Any] = queue.Queue(config.queue_size)
    pending = list(range(len(jobs)))[::-1]
    slots: list[_Slot] = []
    finished_after = [0.0] * len(jobs)
    frames = 0
    waiting = 0.0
    stages.start("refine", _refine_stage, stages, backend, refine_queue)
    try:
        while slots or pending:
            while pending and len(slots) < config.video_batch:
                index = pending.pop()
                slot = _Slot(index, queue.Queue(config.queue_size), queue.Queue(config.queue_size))
                stages.start(f"render-{index}", _render_stage, stages, backend.size,
                             backend.checkpoint.conditioning, jobs[index], slot.rendered)
                stages.start(f"encode-{index}", _encode_stage, stages, jobs[index], slot.encoded,
                             backend.checkpoint.conditioning, progress, started, finished_after,
                             index)
                slots.append(slot)
            waited = time.perf_counter()
            items = [stages.get(slot.rendered) for slot in slots]
            waiting += time.perf_counter() - waited
            live = [(slot, item) for slot, item in zip(slots, items, strict=True)
                    if item is not _END]
            for slot, item in zip(slots, items, strict=True):
                if item is _END:
                    stages.put(refine_queue, (None, None, [(slot.encoded, None)]))
            slots = [slot for slot, _ in live]
            if not live:
                continue
            working = time.perf_counter()
            sticks = np.stack([item[0] for _, item in live])
            boxes = np.stack([item[1] for _, item in live])
            generated = backend.generate(sticks, [slot.recurrence for slot, _ in live])
            for position, (slot, _) in enumerate(live):
                slot.recurrence = generated.recurrence(position)
            stages.add_busy("generate", time.perf_counter() - working)
            frames += len(live)
            stages.put(refine_queue, (generated, boxes,
                                      [(slot.encoded, item) for slot, item in live]))
        stages.put(refine_queue, _END)
    except BaseException as error:  # noqa: BLE001 - every stage stops, then it is raised
        stages.fail(error)
    return stages.finish(frames, started, waiting, finished_after)


def generate_windowed(backend: FrameGenerator, jobs: Sequence[VideoJob],
                      config: StreamConfig = StreamConfig(),
                      progress: ProgressCallback | None = None) -> StreamStats:
    """Pass 2 of a sequence model for every job, one after the other: stick figures, windows,
    face refiner and encoder overlapped. Frames reach each sink in order."""
    started = time.perf_counter()
    stages = _Stages()
    refine_queue: queue.Queue[Any] = queue.Queue(config.queue_size)
    finished_after = [0.0] * len(jobs)
    frames = 0
    waiting = 0.0
    length = backend.window_length
    stages.start("refine", _refine_stage, stages, backend, refine_queue)
    try:
        for job_index, job in enumerate(jobs):
            rendered: queue.Queue[Any] = queue.Queue(config.queue_size)
            encoded: queue.Queue[Any] = queue.Queue(config.queue_size)
            stages.start(f"render-{job_index}", _render_stage, stages, backend.size,
                         backend.checkpoint.conditioning, job, rendered)
            stages.start(f"encode-{job_index}", _encode_stage, stages, job, encoded,
                         backend.checkpoint.conditioning, progress, started, finished_after,
                         job_index)
            blender = WindowBlender(job.frame_count, length, window_stride(length))
            items: dict[int, Any] = {}  # (stick, box, source frame) of the frames not sent on
            poses: dict[int, Any] = {}  # the pose inputs as the backend holds them
            received = 0
            while not blender.done:
                window = blender.next_window()
                waited = time.perf_counter()
                while received < window.stop:
                    items[received] = stages.get(rendered)
                    received += 1
                waiting += time.perf_counter() - waited
                working = time.perf_counter()
                generated = backend.generate_window(np.stack([items[i][0] for i in window]))
                for position, index in enumerate(window):
                    poses[index] = generated.poses[position]
                finished = blender.add(list(generated.frames))
                stages.add_busy("generate", time.perf_counter() - working)
                if not finished:
                    continue
                indices = [index for index, _ in finished]
                blended = backend.batch_of([frame for _, frame in finished],
                                           [poses.pop(index) for index in indices])
                boxes = np.stack([items[index][1] for index in indices])
                frames += len(indices)
                stages.put(refine_queue, (blended, boxes,
                                          [(encoded, items.pop(index)) for index in indices]))
            if stages.get(rendered) is not _END:
                raise RuntimeError(f"the render stage of {job.name} made more frames than "
                                   f"its {job.frame_count}")
            stages.put(refine_queue, (None, None, [(encoded, None)]))  # the video ended
        stages.put(refine_queue, _END)
    except BaseException as error:  # noqa: BLE001 - every stage stops, then it is raised
        stages.fail(error)
    return stages.finish(frames, started, waiting, finished_after)


def _render_stage(stages: _Stages, size: tuple[int, int], conditioning: Conditioning,
                  job: VideoJob, rendered: queue.Queue[Any]) -> None:
    width, height = size
    source = job.source_frames() if job.source_frames is not None else None
    try:
        for index in range(job.frame_count):
            working = time.perf_counter()
            stick = job.pose_input(conditioning, index, width, height)
            source_frame = next(source, None) if source is not None else None
            stages.add_busy("render", time.perf_counter() - working)
            stages.put(rendered, (stick, job.face_boxes[index], source_frame))
        stages.put(rendered, _END)
    finally:
        if source is not None and hasattr(source, "close"):
            source.close()


def _refine_stage(stages: _Stages, backend: FrameGenerator, refine_queue: queue.Queue[Any],
                  ) -> None:
    while True:
        entry = stages.get(refine_queue)
        if entry is _END:
            return
        generated, boxes, targets = entry
        if generated is None:  # a video ended: tell its encoder, in order
            stages.put(targets[0][0], _END)
            continue
        working = time.perf_counter()
        images = backend.finish(generated, boxes)  # (B, H, W, 3) uint8
        stages.add_busy("refine", time.perf_counter() - working)
        for image, (encoded, item) in zip(images, targets, strict=True):
            stages.put(encoded, (image, item[0], item[2]))


def _encode_stage(stages: _Stages, job: VideoJob, encoded: queue.Queue[Any],
                  conditioning: Conditioning, progress: ProgressCallback | None, started: float,
                  finished_after: list[float], job_index: int) -> None:
    meter = RateMeter(progress, f"transfer {job.name}", job.frame_count)
    with job.open_sink() as sink:
        while True:
            entry = stages.get(encoded)
            if entry is _END:
                break
            image, stick, source_frame = entry
            working = time.perf_counter()
            sink.write(compose(image, conditioning.to_rgb(stick), source_frame)
                       if job.source_frames else image)
            stages.add_busy("encode", time.perf_counter() - working)
            meter.advance()
    meter.finish()
    finished_after[job_index] = time.perf_counter() - started


def compose(generated: np.ndarray, stick: np.ndarray,
            source_frame: np.ndarray | None) -> np.ndarray:
    """Source | stick figure | result, each (H, W, 3) uint8 (black where the source ran out)."""
    height, width = generated.shape[:2]
    shown = (fit_into(source_frame, width, height) if source_frame is not None
             else np.zeros_like(generated))
    return np.concatenate([shown, stick, generated], axis=1)
