"""A side-by-side check of normalization: source frame | normalized stick figure | a target frame
of similar pose. Looking at it tells whether poses, scale and placement are right before hours of
training are spent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from motionxfer.conditioning import Conditioning
from motionxfer.io.images import fit_into
from motionxfer.io.video import VideoWriter, read_frames, timeline_fps
from motionxfer.pipeline import (
    check_unchanged,
    load_poses,
    nearest_target_frames,
    normalize_source,
)
from motionxfer.progress import ProgressCallback, RateMeter
from motionxfer.project import Project, VideoRecord


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


def make_preview(
    project: Project, source: VideoRecord, output: str | os.PathLike[str],
    panel_height: int = 360, max_seconds: float | None = None,
    progress: ProgressCallback | None = None, conditioning: Conditioning = Conditioning(),
) -> Path:
    """Write the three-panel preview video (with the source's audio) and return its path. The
    middle panel shows the pose as `conditioning` draws it (the RGB stick figure by default)."""
    output = Path(output)
    normalized, _ = normalize_source(project, source, progress=progress)
    target = project.target
    check_unchanged(target)  # its frames are shown next to the stick figure
    target_poses = load_poses(project, target)
    frame_count = normalized.num_frames
    if max_seconds is not None:
        frame_count = min(frame_count, max(1, int(round(max_seconds * normalized.fps))))
    matches = nearest_target_frames(normalized.slice(0, frame_count), target_poses)

    target_w, target_h = target_poses.image_size
    panel_h = _even(min(panel_height, target_h))
    panel_w = _even(panel_h * target_w / target_h)

    # One sequential pass over the target keeps only the frames that are needed.
    wanted = set(int(i) for i in matches)
    target_panels: dict[int, np.ndarray] = {}
    for frame in read_frames(target.info.path, target.start, target.end,
                             fps=timeline_fps(target.info)):
        if frame.index in wanted:
            target_panels[frame.index] = fit_into(frame.rgb, panel_w, panel_h)
        if len(target_panels) == len(wanted):
            break

    source_start = source.start or 0.0
    end = source_start + frame_count / normalized.fps
    meter = RateMeter(progress, "preview", frame_count)
    with VideoWriter(
        output, fps=normalized.fps, width=3 * panel_w, height=panel_h,
        audio_from=source.info.path, audio_start=source_start, audio_end=end,
    ) as writer:
        for frame in read_frames(source.info.path, source.start, end,
                                 fps=timeline_fps(source.info)):
            if frame.index >= frame_count:
                break
            stick = conditioning.to_rgb(conditioning.encode(
                normalized.keypoints[frame.index], normalized.skeleton, panel_w, panel_h,
                source_size=normalized.image_size,
            ))
            blank = np.zeros((panel_h, panel_w, 3), np.uint8)
            nearest = target_panels.get(int(matches[frame.index]), blank)
            writer.write(np.concatenate([fit_into(frame.rgb, panel_w, panel_h), stick, nearest], 1))
            meter.advance()
    meter.finish()
    return output
