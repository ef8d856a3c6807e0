"""Evaluation protocols that need the personal model.

Self-reconstruction (EDN, iPER and most papers): the model is driven by the poses of the held-out
end of its own target video, which training never saw, and its frames are compared with the real
ones. The held-out part is found exactly as training found it (`dataset.split_frames` with the
checkpoint's own training settings).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from motionxfer.evaluation.evaluate import EvaluateConfig, EvaluationResult, self_reconstruction
from motionxfer.inference.transfer import TransferConfig, open_model, write_transfer
from motionxfer.pipeline import check_unchanged, load_poses, texture_bank
from motionxfer.progress import ProgressCallback
from motionxfer.project import Project
from motionxfer.training.dataset import split_frames


def evaluate_holdout(
    project: Project, config: EvaluateConfig = EvaluateConfig(),
    checkpoint: str | os.PathLike[str] | None = None,
    transfer_config: TransferConfig = TransferConfig(),
    output: str | os.PathLike[str] | None = None, progress: ProgressCallback | None = None,
) -> tuple[EvaluationResult, Path]:
    """Render the held-out part of the target video from its own poses, then compare it with
    the real frames. Returns the evaluation and the rendered video (`logs/holdout.mp4`)."""
    model = open_model(project, project.find_checkpoint(checkpoint), transfer_config)
    train = model.checkpoint.train
    target = project.target
    check_unchanged(target)  # its frames are the reference
    poses = load_poses(project, target)
    split = split_frames(
        poses.person_present, poses.fps, train.holdout_fraction, train.min_holdout_seconds,
        min_train_seconds=0.0, min_person_fraction=0.0,
        video_name=target.info.path.name,
    )
    offset = (target.start or 0.0)
    held_out = dataclasses.replace(target, start=offset + split.holdout_start / poses.fps)
    output = Path(output) if output else project.paths.logs / "holdout.mp4"
    if model.checkpoint.conditioning.texture:  # from the training frames only, never these
        model.texture = texture_bank(project, model.checkpoint, progress, split.holdout_start)
    write_transfer(model, held_out, poses.slice(split.holdout_start, poses.num_frames), output,
                   transfer_config, progress)
    first_frame = round(offset * poses.fps) + split.holdout_start
    result = self_reconstruction(output, target.info.path, first_frame,
                                 dataclasses.replace(config, resize_reference=True), progress)
    return result, output
