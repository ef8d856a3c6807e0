"""`transfer --method animate`: the project's target animated from one frame, no training.

The first frame of the project's target video (from its --start, if it was trimmed) is the
source image of an animator model (motionxfer.animation), moved by each driving video. It gives a
result before the personal model is trained, and a baseline to compare it with. This module sits
with inference because it reads the project; the animation wing itself never does.
"""

from __future__ import annotations

import os
from pathlib import Path

from motionxfer.animation.animate import AnimateConfig, AnimateResult, animate_image
from motionxfer.animation.checkpoint import AnimatorCheckpoint
from motionxfer.errors import BadVideo
from motionxfer.io.video import read_frames
from motionxfer.progress import ProgressCallback
from motionxfer.project import Project


def target_first_frame(project: Project):  # -> np.ndarray (H, W, 3) uint8
    """The first frame of the project's target video (within its trimmed range)."""
    target = project.target
    frames = read_frames(target.info.path, start=target.start, end=target.end)
    try:
        first = next(iter(frames), None)
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()
    if first is None:
        raise BadVideo(f"the target video {target.info.path} has no frame",
                       hint=f"add another target video: motionxfer init {project.root} --target VIDEO")
    return first.rgb


def animate_project(project: Project, drivings: list[str | os.PathLike[str]],
                    output_dir: str | os.PathLike[str], config: AnimateConfig | None = None,
                    model: str | os.PathLike[str] | AnimatorCheckpoint | None = None,
                    progress: ProgressCallback | None = None,
                    output_names: dict[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
                    ) -> list[AnimateResult]:
    """Animate the target's first frame by each driving video: `<output_dir>/<driving
    stem>_animate.mp4`, unless `output_names` gives a driving video its own output path.
    `model`: an animator (default: the bundled sample)."""
    output_names = output_names or {}
    outputs = [Path(output_names.get(driving) or
                    Path(output_dir) / f"{Path(driving).stem}_animate.mp4")
               for driving in drivings]
    image = target_first_frame(project)
    name = f"the first frame of the target video {project.target.info.path.name}"
    return animate_image(image, list(drivings), outputs, config, model, progress,
                         image_name=name)
