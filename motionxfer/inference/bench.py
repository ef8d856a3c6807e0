"""Transfer speed, stage by stage and end to end (`motionxfer bench`, benchmarks/transfer_speed.py).

Stages, each timed alone on the same frames (frames/s = frames / wall seconds):

    decode      PyAV decoding of the source video
    poses       MediaPipe pose extraction (one process, then `workers` processes)
    normalize   global pose normalization of the whole sequence (then per frame)
    render      stick figures at the working size
    generate    the generator, one video (batch 1), and `video_batch` videos at once; a
                sequence model (`TrainConfig.sequence`) in its cross-faded windows, one video
    refine      the face refiner (crop, network, paste) and the conversion to uint8
    encode      H.264 encoding (libx264, crf 18)

End to end: `streaming.generate_videos` (render, generate, refine and encode overlapped;
`generate_windowed` for a sequence model) on the cached poses, and the whole job from the video file (poses extracted in `workers` processes,
normalization, then the overlapped part).

Without a trained model the benchmark builds one with random weights from a preset
(`random_checkpoint`): speed does not depend on the weights' values. Timings go to the caller;
nothing here asserts a speed.
"""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motionxfer.checkpoint import Checkpoint
from motionxfer.conditioning import Conditioning, LayoutFunction
from motionxfer.errors import BadInput, MotionXferError
from motionxfer.inference.backends import open_backend
from motionxfer.inference.frame_generator import (
    BACKENDS,
    BackendConfig,
    FrameGenerator,
    GeneratedBatch,
    Recurrence,
)
from motionxfer.inference.streaming import (
    StreamConfig,
    VideoJob,
    generate_videos,
    generate_windowed,
)
from motionxfer.io.images import working_size as fit_size
from motionxfer.io.video import VideoWriter, probe, read_frames
from motionxfer.networks.face_refiner import FaceRefiner, face_boxes
from motionxfer.networks.layout_generator import LayoutPredictor
from motionxfer.networks.registry import build_generator
from motionxfer.networks.sequence_generator import WindowBlender, window_stride
from motionxfer.pipeline import load_poses, texture_bank
from motionxfer.pose.extract import ExtractConfig, extract_from_frames
from motionxfer.pose.normalization import NormalizeConfig, normalize_poses
from motionxfer.pose.parallel_extract import extract_video_parallel
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC
from motionxfer.pose.smoothing import SmoothingConfig, smooth_poses
from motionxfer.presets import Preset, load_preset
from motionxfer.progress import ProgressCallback
from motionxfer.project import Project
from motionxfer.texture.bank import TextureBank


def random_checkpoint(path: str | os.PathLike[str], preset: str | Preset,
                      working_size: tuple[int, int] | None = None,
                      project_id: str = "0" * 64, seed: int = 0,
                      previous_frame_gain: float = 1.0) -> Path:
    """A checkpoint with random weights for `preset` (generator and face refiner), for speed
    measurements and tests. The face refiner's last layer, zero at initialisation (an untrained
    refiner changes nothing), gets small random weights so that refining changes pixels.

    `previous_frame_gain` scales the generator's first-layer weights on the previous frame. At
    full scale a random generator's recurrence is chaotic: a difference of 1e-6 in one frame
    (another summation order) grows into another picture within about ten frames (measured on
    the tiny preset: 77 dB apart at the first frame, 15 dB at the twelfth; 0.3 still diverges,
    0.1 stays above 77 dB for 60 frames). Tests that compare two ways of running one model use
    0.1, as a trained generator, driven by the pose, does not amplify such differences."""
    preset = load_preset(preset) if isinstance(preset, str) else preset
    if working_size is None:
        working_size = (preset.size, preset.size)
    torch.manual_seed(seed)
    generator = build_generator(preset.generator)
    config = preset.generator
    with torch.no_grad():
        for layer in generator.modules():  # the layers that read the generator's input
            if isinstance(layer, torch.nn.Conv2d) and layer.in_channels == config.input_channels:
                layer.weight[:, 2 * config.pose_channels:] *= previous_frame_gain
    refiner = FaceRefiner(preset.face_refiner)
    last = refiner.network.output[1]
    torch.nn.init.normal_(last.weight, std=0.02)
    torch.nn.init.normal_(last.bias, std=0.02)
    Checkpoint(
        preset=preset, project_id=project_id, working_size=working_size, generator_step=1,
        face_refiner_step=1,
        models={"generator": generator.state_dict(), "face_refiner": refiner.state_dict()},
    ).save(path)
    return Path(path)


# --- the benchmark -----------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchConfig:
    """What to measure.

    backends: those to time ("torch", "onnx"); one that cannot run here is reported, not timed.
    seconds: how much of the video to run through every stage.
    preset: the architecture of the random model, when no checkpoint is given.
    height: working frame height (default: the checkpoint's, or the preset's size); the width
        keeps the video's aspect.
    workers: processes for the parallel pose extraction (0: skip MediaPipe entirely and drive
        with the target's first poses, or a standing figure without them).
    video_batch: videos in the batched generator measurement (1: skip it).
    """

    backends: tuple[str, ...] = ("torch", "onnx")
    seconds: float = 2.0
    preset: str = "tiny"
    height: int | None = None
    workers: int = 2
    video_batch: int = 2
    device: str = "auto"
    providers: tuple[str, ...] | None = None
    precision: str = "fp32"
    threads: int | None = None

    def __post_init__(self) -> None:
        unknown = [name for name in self.backends if name not in BACKENDS]
        if unknown or not self.backends:
            raise BadInput(f"unknown backend(s) {', '.join(unknown) or 'none'}",
                           hint="use --backend torch and/or --backend onnx")
        if self.seconds <= 0:
            raise BadInput("--seconds must be positive", hint="e.g. --seconds 2")


@dataclass(frozen=True)
class StageSpeed:
    stage: str
    backend: str  # "" for stages that do not run the model
    frames: int
    seconds: float
    note: str = ""

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "backend": self.backend, "frames": self.frames,
                "seconds": round(self.seconds, 4),
                "frames_per_second": round(self.frames_per_second, 2), "note": self.note}


@dataclass(frozen=True)
class BenchReport:
    device: str  # CPU model and cores, GPU name
    load_before: tuple[float, float, float]  # load average (1, 5, 15 min)
    load_after: tuple[float, float, float]
    preset: str
    working_size: tuple[int, int]
    video: Path
    random_weights: bool
    rows: tuple[StageSpeed, ...]
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "load_before": list(self.load_before),
                "load_after": list(self.load_after), "preset": self.preset,
                "working_size": list(self.working_size), "video": str(self.video),
                "random_weights": self.random_weights, "versions": self.versions,
                "rows": [row.to_dict() for row in self.rows]}

    def table(self) -> str:
        """The rows as a Markdown table."""
        width, height = self.working_size
        title = (f"preset {self.preset} at {width}x{height}"
                 f"{' (random weights)' if self.random_weights else ''}, {self.device}; load "
                 f"average {self.load_before[0]:.1f} before, {self.load_after[0]:.1f} after")
        lines = [
            title,
            "",
            "| stage | backend | frames/s | ms/frame | note |",
            "|---|---|---:|---:|---|",
        ]
        for row in self.rows:
            speed = row.frames_per_second
            lines.append(f"| {row.stage} | {row.backend or '-'} | {speed:.1f} | "
                         f"{1000 / speed if speed else float('nan'):.1f} | {row.note} |")
        return "\n".join(lines)


def device_description() -> str:
    """"Intel(R) Xeon(R) ... x 2 cores" (+ ", GPU: NVIDIA H100 80GB HBM3")."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    text = f"{model} x {os.cpu_count()} cores"
    if torch.cuda.is_available():
        text += f", GPU: {torch.cuda.get_device_name(0)}"
    return text


def _timed(function: Callable[..., Any], *arguments: Any) -> tuple[Any, float]:
    """(function(*arguments), wall seconds it took)."""
    started = time.perf_counter()
    value = function(*arguments)
    return value, time.perf_counter() - started


def run_benchmark(
    video: str | os.PathLike[str], workdir: str | os.PathLike[str],
    config: BenchConfig = BenchConfig(), checkpoint: str | os.PathLike[str] | None = None,
    project_id: str | None = None, target_poses: PoseSequence | None = None,
    exports_dir: str | os.PathLike[str] | None = None,
    progress: ProgressCallback | None = None, log: Callable[[str], None] | None = None,
    texture: TextureBank | None = None,
) -> BenchReport:
    """Time every stage of a transfer of the first `config.seconds` of `video`.

    `checkpoint`: the model (a project's); None builds one with random weights from
    `config.preset` in `workdir`. `target_poses`: the target's poses for normalization (None:
    the source's own, the timing is the same). Videos go to `workdir`, ONNX exports to
    `exports_dir` (default: `workdir`/exports). `texture`: the target's frames, for a model that
    takes them (re-posing them is part of the render stage).
    """
    say = log or (lambda message: None)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    info = probe(video)
    end = min(config.seconds, info.duration)
    rows: list[StageSpeed] = []
    exports_dir = Path(exports_dir) if exports_dir is not None else workdir / "exports"
    pass_one = 0.0  # seconds of poses (in parallel when measured) and normalization

    say("decode")
    frames, seconds = _timed(_decode_all, video, end)
    count = len(frames)
    rows.append(StageSpeed("decode", "", count, seconds, f"{info.width}x{info.height}"))

    poses = None
    if config.workers > 0:
        extract = ExtractConfig()
        say("poses (1 process)")
        extraction, seconds = _timed(extract_from_frames, frames, info.fps, extract)
        poses = extraction.poses
        rows.append(StageSpeed("poses", "", count, seconds, "MediaPipe Holistic, 1 process"))
        pass_one = seconds
        if config.workers > 1:
            say(f"poses ({config.workers} processes)")
            parallel, seconds = _timed(extract_video_parallel, video, extract, None, end,
                                       config.workers)
            rows.append(StageSpeed("poses", "", parallel.num_frames, seconds,
                                   f"{config.workers} processes, decoding and start-up "
                                   "included"))
            pass_one = seconds
    if poses is None and target_poses is not None and target_poses.num_frames >= count:
        # the target's own poses, in the keypoint layout its texture bank is re-posed in
        poses = target_poses.slice(0, count)
    if poses is None:
        poses = _still_poses(count, info.fps, (info.width, info.height))
    same_layout = (target_poses is not None
                   and target_poses.skeleton.joint_names == poses.skeleton.joint_names)
    target = target_poses if same_layout else poses  # (the timing does not depend on it)
    say("normalize")
    (normalized, _), seconds = _timed(_normalize, poses, target)
    rows.append(StageSpeed("normalize", "", count, seconds,
                           "smoothing + normalization of the whole clip"))
    pass_one += seconds

    random_weights = checkpoint is None
    if checkpoint is None:
        preset = load_preset(config.preset)
        size = fit_size((info.width, info.height), config.height or preset.size,
                        preset.generator.size_multiple)
        checkpoint = random_checkpoint(workdir / "model.pt", preset, size, project_id or "0" * 64)
        project_id = project_id or "0" * 64
    model = Checkpoint.load(checkpoint, project_id)
    width, height = model.working_size
    say("render")
    layout_network = model.build_layout_generator()  # on the CPU, as the render stage
    layout = (LayoutPredictor(layout_network, torch.device("cpu"))
              if layout_network is not None else None)
    sticks, seconds = _timed(_render_all, model.conditioning, normalized, width, height,
                             texture, layout)
    references = texture.references(normalized) if texture is not None else None  # (T,)
    rows.append(StageSpeed("render", "", count, seconds, f"stick figures at {width}x{height}"
                           + (", re-posed texture" if texture is not None else "")))
    boxes = face_boxes(normalized, (width, height))
    with_face = int(np.isfinite(boxes).all(axis=1).sum())

    encoded_done = False
    for name in config.backends:
        say(f"{name}: loading")
        backend_config = BackendConfig(backend=name, device=config.device,
                                       providers=config.providers, precision=config.precision,
                                       threads=config.threads)
        try:
            backend = open_backend(model, backend_config, exports_dir)
        except MotionXferError as error:
            rows.append(StageSpeed("generate", name, 0, 0.0, f"cannot run: {error.message}"))
            continue
        label = backend.describe()
        say(f"{label}: generate")
        length = backend.window_length  # a sequence model: windows of frames
        generate = _generate_windows if length else _generate_all
        generate(backend, sticks[:3])  # warm up (allocations, first-run planning)
        generated, seconds = _timed(generate, backend, sticks)
        rows.append(StageSpeed("generate", label, count, seconds,
                               f"windows of {length}, stride {window_stride(length)}, "
                               "cross-faded" if length else "one video (batch 1)"))
        if config.video_batch > 1 and not length:  # (windows: one video at a time)
            say(f"{label}: generate x{config.video_batch}")
            batch = config.video_batch
            _, seconds = _timed(_generate_all, backend, sticks, batch)
            rows.append(StageSpeed("generate", label, count * batch, seconds,
                                   f"{batch} videos per call"))
        if backend.has_face_refiner:
            say(f"{label}: refine")
            images, seconds = _timed(_finish_all, backend, generated, boxes)
            rows.append(StageSpeed("refine", label, count, seconds,
                                   f"face refiner + uint8, {with_face} of {count} frames "
                                   "with a face"))
        else:
            images = _finish_all(backend, generated, None)
        if not encoded_done:
            say("encode")
            _, seconds = _timed(_encode, workdir / "encode.mp4", images, info.fps)
            rows.append(StageSpeed("encode", "", count, seconds, "libx264 crf 18"))
            encoded_done = True
        say(f"{label}: end to end")
        job = VideoJob("bench", normalized, count, boxes, lambda: VideoWriter(
            workdir / "stream.mp4", fps=info.fps, width=width, height=height),
            texture=texture, references=references, layout=layout)
        stats = (generate_windowed if length else generate_videos)(
            backend, [job], StreamConfig(), progress)
        rows.append(StageSpeed(
            "end to end, poses cached", label, count, stats.seconds,
            f"render+generate+refine+encode overlapped; generator idle "
            f"{100 * stats.generator_idle:.0f}%"))
        if config.workers > 0:
            rows.append(StageSpeed("end to end, from the video", label, count,
                                   pass_one + stats.seconds,
                                   f"poses ({config.workers} processes), normalize, then the "
                                   "overlapped part"))
    return BenchReport(
        device_description(), load_before, os.getloadavg(), model.preset.name,
        (width, height), Path(video), random_weights, tuple(rows),
        {"torch": torch.__version__, "torch_threads": str(torch.get_num_threads()),
         **_onnxruntime_version()},
    )


def _decode_all(video: str | os.PathLike[str], end: float) -> list[np.ndarray]:
    return [frame.rgb for frame in read_frames(video, None, end)]


def _normalize(poses: PoseSequence, target: PoseSequence) -> tuple[PoseSequence, Any]:
    """Smoothing and normalization, as `pipeline.normalize_source` runs them."""
    return normalize_poses(smooth_poses(poses, SmoothingConfig()),
                           smooth_poses(target, SmoothingConfig()), NormalizeConfig())


def _render_all(conditioning: Conditioning, poses: PoseSequence, width: int, height: int,
                texture: TextureBank | None = None,
                layout: LayoutFunction | None = None) -> np.ndarray:  # (T, H, W, C)
    references = texture.references(poses) if texture is not None else None
    return np.stack([conditioning.encode(
        poses.keypoints[index], poses.skeleton, width, height, source_size=poses.image_size,
        texture=texture, reference=None if references is None else int(references[index]),
        layout=layout)
        for index in range(poses.num_frames)])


def _generate_all(backend: FrameGenerator, sticks: np.ndarray,
                  batch: int = 1) -> list[GeneratedBatch]:
    """Every frame in order, `batch` copies of the video per call; returns the batches."""
    previous: list[Recurrence | None] = [None] * batch
    outputs = []
    for stick in sticks:
        generated = backend.generate(np.repeat(stick[None], batch, axis=0), previous)
        previous = [generated.recurrence(index) for index in range(batch)]
        outputs.append(generated)
    return outputs


def _generate_windows(backend: FrameGenerator, sticks: np.ndarray) -> list[GeneratedBatch]:
    """A sequence model's frames in order, made in cross-faded windows as transfer makes them;
    one batch of one frame each."""
    length = backend.window_length
    blender = WindowBlender(len(sticks), length, window_stride(length))
    poses: dict[int, Any] = {}  # the pose inputs as the backend holds them
    outputs = []
    while not blender.done:
        window = blender.next_window()
        generated = backend.generate_window(sticks[window.start:window.stop])
        for position, index in enumerate(window):
            poses[index] = generated.poses[position]
        outputs += [backend.batch_of([frame], [poses.pop(index)])
                    for index, frame in blender.add(list(generated.frames))]
    return outputs


def _finish_all(backend: FrameGenerator, generated: list[GeneratedBatch],
                boxes: np.ndarray | None) -> list[np.ndarray]:
    """Face refiner and uint8 for each generated frame (boxes (T, 4), or None: no refiner)."""
    return [backend.finish(batch, None if boxes is None else boxes[index:index + 1])
            for index, batch in enumerate(generated)]


def _encode(path: Path, images: list[np.ndarray], fps: float) -> None:
    height, width = images[0].shape[1:3]
    with VideoWriter(path, fps=fps, width=width, height=height) as writer:
        for image in images:
            writer.write(image[0])


def _still_poses(count: int, fps: float, size: tuple[int, int]) -> PoseSequence:
    """A standing figure on every frame, when MediaPipe is not run (`workers = 0`)."""
    keypoints = np.full((count, MEDIAPIPE_HOLISTIC.num_joints, 3), np.nan, np.float32)
    keypoints[..., 2] = 0
    width, height = size
    body = {"nose": (0.5, 0.15), "left_eye": (0.52, 0.13), "right_eye": (0.48, 0.13),
            "left_ear": (0.54, 0.14), "right_ear": (0.46, 0.14),
            "left_shoulder": (0.58, 0.28), "right_shoulder": (0.42, 0.28),
            "left_elbow": (0.62, 0.42), "right_elbow": (0.38, 0.42),
            "left_wrist": (0.64, 0.55), "right_wrist": (0.36, 0.55),
            "left_hip": (0.55, 0.55), "right_hip": (0.45, 0.55),
            "left_knee": (0.56, 0.72), "right_knee": (0.44, 0.72),
            "left_ankle": (0.56, 0.9), "right_ankle": (0.44, 0.9)}
    for name, (x, y) in body.items():
        keypoints[:, MEDIAPIPE_HOLISTIC.index(name)] = (x * width, y * height, 1.0)
    return PoseSequence(keypoints, MEDIAPIPE_HOLISTIC, fps, size, np.ones(count, bool),
                        np.arange(count) / fps)


def _onnxruntime_version() -> dict[str, str]:
    try:
        import onnxruntime
    except ImportError:
        return {}
    return {"onnxruntime": onnxruntime.__version__,
            "onnxruntime_providers": ",".join(onnxruntime.get_available_providers())}


def bench_project(project: Project, config: BenchConfig, source: str | os.PathLike[str] | None = None,
                  checkpoint: str | os.PathLike[str] | None = None,
                  progress: ProgressCallback | None = None,
                  log: Callable[[str], None] | None = None) -> BenchReport:
    """`run_benchmark` for a project: its model (random weights from `config.preset` when it has
    none yet), its target's poses, and `source` (default: the target video itself). Outputs go
    to a temporary folder; the ONNX exports of a real model go to the project's exports/."""
    model = Path(checkpoint) if checkpoint else project.paths.checkpoint
    video = Path(source) if source else project.target.info.path
    target_poses = None
    if project.paths.poses(project.target.video_id).exists():
        target_poses = load_poses(project, project.target)
    trained = model.is_file()
    texture = None
    if trained:
        loaded = Checkpoint.load(model, project.target.info.sha256)
        if loaded.conditioning.texture:
            texture = texture_bank(project, loaded, progress)
    with tempfile.TemporaryDirectory(prefix="motionxfer-bench-") as folder:
        return run_benchmark(video, folder, config, model if trained else None,
                             project.target.info.sha256, target_poses,
                             project.paths.exports if trained else None, progress, log, texture)


def generator_speed(checkpoint: str | os.PathLike[str], config: BackendConfig, frames: int,
                    exports_dir: str | os.PathLike[str], project_id: str | None = None) -> float:
    """Frames/s of the generator alone (batch 1, recurrence included) on `frames` stick figures
    of a standing figure at the model's working size, after two frames of warm-up."""
    model = Checkpoint.load(checkpoint, project_id)
    backend = open_backend(model, config, exports_dir)
    width, height = backend.size
    sticks = _render_all(model.conditioning, _still_poses(frames, 30.0, (width, height)), width,
                         height)
    _generate_all(backend, sticks[:2])
    _, seconds = _timed(_generate_all, backend, sticks)
    return frames / seconds
