"""Transfer: a source video's motion performed by the project's target person.

source video -> poses (cached) -> normalized onto the target -> stick figures -> generator,
frame by frame, fed its own previous output -> face refiner -> H.264 video at the source's frame
rate with the source's audio.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motionxfer.checkpoint import CheckpointInfo, load_face_refiner, load_generator
from motionxfer.dataset import to_images, to_tensor
from motionxfer.errors import CheckpointError
from motionxfer.networks.face_refiner import face_boxes, refine_faces
from motionxfer.pipeline import normalize_source, source_record
from motionxfer.pose import PoseSequence
from motionxfer.preview import fit_into
from motionxfer.progress import ProgressCallback, RateMeter
from motionxfer.project import Project, VideoRecord
from motionxfer.render import render_stick_figure
from motionxfer.train import resolve_device
from motionxfer.video import VideoWriter, read_frames


@dataclass(frozen=True)
class TransferConfig:
    face_refiner: bool = True  # apply the face refiner when the checkpoint has one
    side_by_side: bool = False  # write source | stick figure | result
    device: str = "auto"  # "auto", "cpu" or "cuda"
    max_seconds: float | None = None  # only the first N seconds of the source
    crf: int = 18  # H.264 quality (lower is better and larger)


@dataclass(frozen=True)
class TransferResult:
    source: Path
    output: Path
    frames: int
    fps: float
    seconds: float  # wall time spent
    checkpoint: Path

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class PersonalModel:
    """The trained generator and face refiner, run one frame at a time.

    Holds the previous stick figure and generated frame, as the generator is conditioned on
    them. `reset()` before each new video.
    """

    def __init__(self, checkpoint: str | os.PathLike[str], device: str = "auto",
                 face_refiner: bool = True, project_id: str | None = None) -> None:
        self.device = resolve_device(device)
        self.generator, self.info = load_generator(checkpoint, self.device, project_id)
        self.face_refiner = None
        if face_refiner:
            self.face_refiner, _ = load_face_refiner(checkpoint, self.device, project_id)
        self.reset()

    @property
    def size(self) -> tuple[int, int]:  # (width, height)
        return self.info.working_size

    def reset(self) -> None:
        self._previous_pose: torch.Tensor | None = None
        self._previous_frame: torch.Tensor | None = None

    @torch.no_grad()
    def step(self, stick_figure: np.ndarray, face_box: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 stick figure at `size` (+ face box (4,) in pixels) -> (H, W, 3) uint8."""
        pose = to_tensor([stick_figure]).to(self.device)  # (1, 3, H, W) in [-1, 1]
        if self._previous_pose is None:
            self._previous_pose, self._previous_frame = self.generator.first_frame_inputs(pose)
        frame = self.generator(pose, self._previous_pose, self._previous_frame)
        self._previous_pose, self._previous_frame = pose, frame
        if self.face_refiner is not None and face_box is not None:
            boxes = torch.as_tensor(face_box, dtype=frame.dtype, device=self.device)[None]
            frame = refine_faces(self.face_refiner, frame, pose, boxes)
        return to_images(frame)[0]


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
        model = PersonalModel(checkpoint_path, config.device, config.face_refiner,
                              project_id=project.target.info.sha256)
    record = source_record(project, source)
    normalized, _ = normalize_source(project, record, progress=progress)
    frames = write_transfer(model, record, normalized, Path(output), config, progress)
    return TransferResult(record.info.path, Path(output), frames, normalized.fps,
                          time.perf_counter() - started, checkpoint_path)


def write_transfer(
    model: PersonalModel, source: VideoRecord, normalized: PoseSequence, output: Path,
    config: TransferConfig, progress: ProgressCallback | None = None,
) -> int:
    """Generate every frame of `normalized` and encode them; returns the number of frames."""
    width, height = model.size
    frame_count = normalized.num_frames
    if config.max_seconds is not None:
        frame_count = min(frame_count, max(1, int(round(config.max_seconds * normalized.fps))))
    boxes = face_boxes(normalized, (width, height))  # (T, 4), NaN where no face
    start = source.start or 0.0
    end = start + frame_count / normalized.fps
    out_width = 3 * width if config.side_by_side else width
    model.reset()
    meter = RateMeter(progress, f"transfer {source.info.path.name}", frame_count)
    source_frames = read_frames(source.info.path, source.start, end) if config.side_by_side else None
    with VideoWriter(output, fps=normalized.fps, width=out_width, height=height, crf=config.crf,
                     audio_from=source.info.path, audio_start=start, audio_end=end) as writer:
        for index in range(frame_count):
            stick = render_stick_figure(normalized.keypoints[index], normalized.skeleton,
                                        width, height, source_size=normalized.image_size)
            box = boxes[index] if np.isfinite(boxes[index]).all() else None
            generated = model.step(stick, box)
            if source_frames is not None:
                source_frame = next(source_frames, None)
                shown = (fit_into(source_frame.rgb, width, height) if source_frame
                         else np.zeros_like(generated))
                generated = np.concatenate([shown, stick, generated], axis=1)
            writer.write(generated)
            meter.advance()
    meter.finish()
    return frame_count


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
    model = PersonalModel(checkpoint_path, config.device, config.face_refiner,
                          project_id=project.target.info.sha256)
    return [
        transfer(project, source,
                 output_names.get(source) or Path(output_dir) / f"{Path(source).stem}_transfer.mp4",
                 config, checkpoint_path, progress, model)
        for source in sources
    ]


def checkpoint_summary(info: CheckpointInfo) -> dict[str, object]:
    return {"preset": info.preset, "working_size": list(info.working_size),
            "generator_step": info.generator_step, "face_refiner_step": info.face_refiner_step}
