"""A folder of videos as the animator's training data: every frame fitted to S x S, in memory.

FOMM learns from pairs of frames of the same video: one is the source, the other the driving
frame that the networks must reconstruct from it. `VideoFrames.pair_batch(step_generator, B)`
draws B such pairs (a video uniformly, then two frames of it uniformly, and a horizontal flip of
both with probability 1/2) from a generator seeded per step, so the batches of step k are the
same in a resumed run as in an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from motionxfer.animation.framing import fit_square
from motionxfer.errors import BadInput
from motionxfer.io.files import fingerprint
from motionxfer.io.video import read_frames
from motionxfer.progress import ProgressCallback

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")


def find_videos(folder: str | Path) -> list[Path]:
    """The videos in `folder` and its subfolders, sorted; BadInput when there are fewer than 1."""
    folder = Path(folder)
    if folder.is_file() and folder.suffix.lower() in VIDEO_SUFFIXES:
        return [folder]
    if not folder.is_dir():
        raise BadInput(f"no folder of videos at {folder}", hint="pass a folder of .mp4 files")
    videos = sorted(path for path in folder.rglob("*")
                    if path.suffix.lower() in VIDEO_SUFFIXES and path.is_file()
                    and not path.name.startswith("."))
    if not videos:
        raise BadInput(f"{folder} holds no video ({', '.join(VIDEO_SUFFIXES)})",
                       hint="put the training clips (several people, varied moves) in it")
    return videos


@dataclass(frozen=True)
class VideoFrames:
    """Frames of each video, (T_i, S, S, 3) uint8, fitted by centre crop or pad."""

    paths: tuple[Path, ...]
    frames: tuple[np.ndarray, ...]
    size: int
    aspects: tuple[float, ...]  # width / height of each video before fitting

    @property
    def frame_count(self) -> int:
        return sum(len(video) for video in self.frames)

    def fingerprint(self) -> str:
        """Names and frame counts: a resumed run must see the same data."""
        return fingerprint([(path.name, len(video)) for path, video in
                            zip(self.paths, self.frames)], self.size)

    def describe(self) -> dict[str, object]:
        return {"videos": [path.name for path in self.paths], "frames": self.frame_count,
                "size": self.size, "aspects": [round(a, 3) for a in self.aspects],
                "fingerprint": self.fingerprint()}

    def pair_batch(self, generator: torch.Generator,
                   batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(source, driving) each (B, 3, S, S) float in [0, 1]."""
        sources, drivings = [], []
        for _ in range(batch_size):
            video = self.frames[int(torch.randint(len(self.frames), (1,), generator=generator))]
            first, second = torch.randint(len(video), (2,), generator=generator).tolist()
            flip = bool(torch.rand((), generator=generator) < 0.5)
            pair = [video[first], video[second]]
            if flip:
                pair = [image[:, ::-1] for image in pair]
            sources.append(pair[0])
            drivings.append(pair[1])
        return to_unit_tensor(np.stack(sources)), to_unit_tensor(np.stack(drivings))

    def sample(self, count: int, seed: int = 0) -> torch.Tensor:
        """`count` frames spread over the videos, (count, 3, S, S) in [0, 1]."""
        generator = np.random.default_rng(seed)
        chosen = []
        for index in range(count):
            video = self.frames[index % len(self.frames)]
            chosen.append(video[int(generator.integers(len(video)))])
        return to_unit_tensor(np.stack(chosen))


def to_unit_tensor(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [0, 1] (the animator's range)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


def to_uint8_images(tensor: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8."""
    scaled = (tensor.detach().float().clamp(0, 1) * 255.0).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def load_video_frames(folder: str | Path, size: int, fit: str = "auto",
                      max_frames_per_video: int | None = None,
                      progress: ProgressCallback | None = None) -> VideoFrames:
    """Decode every video of `folder` (every `stride`-th frame when a video is longer than
    `max_frames_per_video`), fitted to size x size."""
    paths = find_videos(folder)
    all_frames, aspects = [], []
    for number, path in enumerate(paths):
        frames = []
        aspect = 1.0
        for frame in read_frames(path):
            square, fitting = fit_square(frame.rgb, size, fit)
            aspect = fitting.original_size[0] / fitting.original_size[1]
            frames.append(square)
        if len(frames) < 2:
            raise BadInput(f"{path} has {len(frames)} frame(s)",
                           hint="every training video needs at least 2 frames")
        if max_frames_per_video and len(frames) > max_frames_per_video:
            stride = -(-len(frames) // max_frames_per_video)
            frames = frames[::stride]
        all_frames.append(np.stack(frames))
        aspects.append(aspect)
        if progress is not None:
            progress("reading videos", number + 1, len(paths), f"{path.name}")
    return VideoFrames(tuple(paths), tuple(all_frames), size, tuple(aspects))
