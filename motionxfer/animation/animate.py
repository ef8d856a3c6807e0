"""Animating one image by driving videos, with a trained animator (FOMM, Sec. 4).

    animate_image(image, drivings, outputs, AnimateConfig(...), model=None) -> [AnimateResult]

The model is loaded once for all the driving videos. Everything is checked before the first
output is written: the model file (an animator, not a personal model), the image (read, made RGB,
large enough and not too far from square, somebody in it: `checks`), and every driving video
(decodes, somebody moving in it). Then each driving video is animated in batches of frames and
encoded at its frame rate with its audio copied (VideoWriter's `audio_from`); an output appears
only when complete.

Motion: relative (the default) moves the source's keypoints by the driving keypoints'
displacement since the driving video's first frame, scaled by the ratio of the two bodies' sizes
(`adapt_movement_scale`); the first driving frame should show a pose like the image's. Absolute
uses the driving keypoints as they are, which carries the driving person's shape over too.
Output frames are the model's size (64 x 64 for the tiny preset).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motionxfer.animation.checkpoint import AnimatorCheckpoint
from motionxfer.animation.checks import check_driving_video, check_source_image
from motionxfer.animation.framing import FITS, Fitting, check_picture_shape, fit_square, read_image
from motionxfer.animation.keypoint_detector import Keypoints
from motionxfer.animation.model import Animator
from motionxfer.animation.motion import absolute_motion, relative_motion
from motionxfer.animation.videos import to_uint8_images, to_unit_tensor
from motionxfer.errors import BadInput, BadVideo
from motionxfer.io.video import VideoWriter, probe, read_frames
from motionxfer.progress import ProgressCallback, RateMeter

BUNDLED_ANIMATOR = "animator.pt"  # in samples/, next to the package in a checkout


def default_animator_path() -> Path:
    """samples/animator.pt of the checkout (trained on synthetic videos: samples/README.md)."""
    return Path(__file__).resolve().parent.parent.parent / "samples" / BUNDLED_ANIMATOR


@dataclass(frozen=True)
class AnimateConfig:
    relative: bool = True  # FOMM's relative motion transfer; False: absolute
    adapt_movement_scale: bool = True  # relative: scale the motion by the bodies' size ratio
    fit: str = "auto"  # how non-square pictures become square (animation.framing)
    batch_size: int = 8  # frames per network call
    device: str = "cpu"
    max_seconds: float | None = None  # animate only the first seconds of each driving video
    check_person: bool = True  # refuse images / videos with nobody in them (animation.checks)

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise BadInput(f"no fit {self.fit!r}", hint=f"the fits are: {', '.join(FITS)}")
        if self.batch_size < 1:
            raise BadInput(f"batch size {self.batch_size}", hint="give 1 or more")
        if self.max_seconds is not None and not (math.isfinite(self.max_seconds)
                                                 and self.max_seconds > 0):
            raise BadInput(f"seconds {self.max_seconds}", hint="give a positive duration")


@dataclass(frozen=True)
class AnimateResult:
    driving: Path
    output: Path
    frames: int
    fps: float
    size: int  # output frames are size x size
    seconds: float
    audio: bool  # the driving video's audio was copied
    source_fitting: str  # what was done to the image (Fitting.describe)
    driving_fitting: str

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, object]:
        return {"driving": str(self.driving), "output": str(self.output), "frames": self.frames,
                "fps": self.fps, "size": self.size, "seconds": round(self.seconds, 2),
                "audio": self.audio, "source_fitting": self.source_fitting,
                "driving_fitting": self.driving_fitting}


def load_animator(model: str | Path | AnimatorCheckpoint | None) -> AnimatorCheckpoint:
    """The given checkpoint, the file at `model`, or the bundled sample animator."""
    if isinstance(model, AnimatorCheckpoint):
        return model
    return AnimatorCheckpoint.load(model if model is not None else default_animator_path())


@dataclass(frozen=True)
class _Driving:
    path: Path
    frames: np.ndarray  # (T, S, S, 3) uint8
    fps: float
    fitting: Fitting


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as error:
        raise BadInput(f"no device {name!r}", hint="pass cpu, cuda or auto") from error


def prepare_source(image: np.ndarray, animator: Animator, checkpoint: AnimatorCheckpoint,
                   config: AnimateConfig, what: str, converted: str = "",
                   ) -> tuple[torch.Tensor, Keypoints, Fitting]:
    """(H, W, 3) uint8 -> the model's source tensor (1, 3, S, S), its keypoints, the fitting."""
    size = checkpoint.config.image_size
    height, width = image.shape[:2]
    check_picture_shape(width, height, size, what)
    square, fitting = fit_square(image, size, config.fit)
    fitting = Fitting(fitting.original_size, fitting.size, fitting.mode, converted)
    device = next(animator.parameters()).device
    source = to_unit_tensor(square[None]).to(device)
    with torch.no_grad():
        keypoints, heatmaps = animator.keypoint_detector.heatmaps(source)
    if config.check_person:
        check_source_image(source, heatmaps, checkpoint.person_check, what)
    return source, keypoints, fitting


def read_driving(path: Path, animator: Animator, checkpoint: AnimatorCheckpoint,
                 config: AnimateConfig) -> _Driving:
    """Decode and fit a driving video, and check that somebody moves in it."""
    size = checkpoint.config.image_size
    info = probe(path)
    check_picture_shape(info.width, info.height, size, f"the driving video {path.name}")
    frames, fitting = [], None
    for frame in read_frames(path, end=config.max_seconds):
        square, fitting = fit_square(frame.rgb, size, config.fit)
        frames.append(square)
    if not frames or fitting is None:
        raise BadVideo(f"{path} has no frames", hint="pass another driving video")
    stacked = np.stack(frames)
    if config.check_person:
        sampled = to_unit_tensor(stacked[:: max(1, len(stacked) // 64)])
        device = next(animator.parameters()).device
        with torch.no_grad():
            heatmaps = animator.keypoint_detector.heatmaps(sampled.to(device))[1]
        check_driving_video(sampled, heatmaps.cpu(), checkpoint.person_check,
                            f"the driving video {path.name}")
    return _Driving(path, stacked, info.fps, fitting)


@torch.no_grad()
def animate_frames(animator: Animator, source: torch.Tensor, source_keypoints: Keypoints,
                   driving_frames: np.ndarray, config: AnimateConfig,
                   meter: RateMeter | None = None):  # -> Iterator[np.ndarray (n, S, S, 3)]
    """Yield the animated frames, a batch at a time, for (T, S, S, 3) uint8 driving frames."""
    device = source.device
    initial = animator.detect(to_unit_tensor(driving_frames[:1]).to(device))
    for start in range(0, len(driving_frames), config.batch_size):
        chunk = to_unit_tensor(driving_frames[start:start + config.batch_size]).to(device)
        count = chunk.shape[0]
        driving = animator.detect(chunk)
        if config.relative:
            wanted = relative_motion(source_keypoints, driving, initial,
                                     adapt_movement_scale=config.adapt_movement_scale)
        else:
            wanted = absolute_motion(driving)
        batch = Keypoints(source_keypoints.value.expand(count, -1, -1),
                          None if source_keypoints.jacobian is None else
                          source_keypoints.jacobian.expand(count, -1, -1, -1))
        images = animator.animate(source.expand(count, -1, -1, -1), wanted, batch)["prediction"]
        if meter is not None:
            meter.advance(count)
        yield to_uint8_images(images)


def animate_image(image: str | Path | np.ndarray, drivings: list[str | Path],
                  outputs: list[str | Path], config: AnimateConfig | None = None,
                  model: str | Path | AnimatorCheckpoint | None = None,
                  progress: ProgressCallback | None = None,
                  image_name: str | None = None) -> list[AnimateResult]:
    """Animate `image` (a file, or an (H, W, 3) uint8 RGB array) by each driving video, into
    the output of the same position. Nothing is written unless every input is usable."""
    config = config or AnimateConfig()
    if len(drivings) != len(outputs) or not drivings:
        raise BadInput(f"{len(drivings)} driving videos for {len(outputs)} outputs",
                       hint="give one output per driving video")
    checkpoint = load_animator(model)
    device = _device(config.device)
    animator = checkpoint.build_animator(device)
    if isinstance(image, np.ndarray):
        what, rgb, converted = image_name or "the image", image, ""
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise BadInput(f"{what} is {rgb.shape} {rgb.dtype}",
                           hint="give (H, W, 3) uint8 RGB pixels")
    else:
        what = f"the image {Path(image).name}"
        rgb, converted = read_image(image)
    source, source_keypoints, source_fitting = prepare_source(
        rgb, animator, checkpoint, config, what, converted)
    size = checkpoint.config.image_size
    prepared = [read_driving(Path(path), animator, checkpoint, config) for path in drivings]
    results = []
    for driving, output in zip(prepared, outputs):
        output = Path(output)
        began = time.perf_counter()
        meter = RateMeter(progress, f"animating {driving.path.name}", len(driving.frames))
        with VideoWriter(output, fps=driving.fps, width=size, height=size,
                         audio_from=driving.path, audio_end=config.max_seconds) as writer:
            for frames in animate_frames(animator, source, source_keypoints, driving.frames,
                                         config, meter):
                for frame in frames:
                    writer.write(frame)
            audio = writer.audio_copied
        meter.finish()
        results.append(AnimateResult(
            driving=driving.path, output=output, frames=len(driving.frames), fps=driving.fps,
            size=size, seconds=time.perf_counter() - began, audio=audio,
            source_fitting=source_fitting.describe(), driving_fitting=driving.fitting.describe()))
    return results
