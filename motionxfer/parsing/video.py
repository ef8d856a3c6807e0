"""The built-in parser over a whole video: one colour model per person, then every frame.

Two passes over the frames (each pass asks for a fresh iterator, so a video is decoded, never
held): the first fits the person's colour model (`colour_model.fit_colour_model`) on
`fit_frames` frames spread over the video, the second parses every frame with the geometric
prior and that model (`colour_model.refine_parse`). Frames without the person, or without both
shoulders and hips, stay background and are counted. Frames taller than `max_height` are
parsed (and their labels kept) shrunk to that height: the labels of every frame of a long
high-resolution video would not fit in memory, and the parse is faster on fewer pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from motionxfer.errors import BadInput
from motionxfer.parsing.colour_model import (
    ColourModel,
    ParserConfig,
    fit_colour_model,
    refine_parse,
)
from motionxfer.parsing.geometry import JointLayout
from motionxfer.parsing.io import capped_size
from motionxfer.progress import ProgressCallback, RateMeter


@dataclass(frozen=True)
class VideoParse:
    """labels: (T, H, W) uint8 six classes; parsed: (T,) bool, the frames that got a parse
    (the others are all background); model: the person's colour model."""

    labels: np.ndarray
    parsed: np.ndarray
    model: ColourModel


def _spread(count: int, wanted: int) -> set[int]:
    if count <= wanted:
        return set(range(count))
    return set(np.linspace(0, count - 1, wanted).round().astype(int).tolist())


def shrink_frame(frame: np.ndarray, mask: np.ndarray, keypoints: np.ndarray,
                 max_height: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frame (H, W, 3), mask (H, W) bool and keypoints (J, 2) pixels at most `max_height` tall
    (the aspect kept; as they are when they already fit or max_height is None)."""
    height, width = mask.shape
    size = capped_size(width, height, max_height)
    if size == (width, height):
        return frame, mask, keypoints
    frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
    return frame, mask, keypoints * np.array([size[0] / width, size[1] / height])


def parse_video(
    frames: Callable[[], Iterable[np.ndarray]],
    masks: Callable[[], Iterable[np.ndarray]],
    keypoints: np.ndarray,
    present: np.ndarray,
    layout: JointLayout,
    config: ParserConfig | None = None,
    fit_frames: int = 60,
    progress: ProgressCallback | None = None,
    max_height: int | None = None,
) -> VideoParse:
    """Six-class parse of every frame of one person's video.

    frames(): a new iterator of RGB (H, W, 3) uint8 frames; masks(): a new iterator of (H, W)
    bool person masks, one per frame (all False where the person is absent); keypoints:
    (T, J, 2) pixels; present: (T, J) bool, the joints seen; max_height: frames taller than
    this are parsed shrunk to it (`shrink_frame`), and so are the labels. Raises BadInput when
    the frame count differs from the keypoints' or no frame can fit the colour model.
    """
    config = config or ParserConfig()
    count = len(keypoints)
    if fit_frames < 1:
        raise BadInput(f"fit_frames must be at least 1, got {fit_frames}", hint="use e.g. 60")
    chosen = _spread(count, fit_frames)

    def fitting() -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        meter = RateMeter(progress, "parsing: colour model", count)
        for index, (frame, mask) in enumerate(zip(frames(), masks())):
            meter.advance()
            if index in chosen and index < count and np.asarray(mask).any():
                yield (*shrink_frame(frame, np.asarray(mask, dtype=bool), keypoints[index],
                                     max_height), present[index])
        meter.finish()

    picked = list(fitting())
    model = fit_colour_model((p[0] for p in picked), (p[1] for p in picked),
                             (p[2] for p in picked), layout, config, (p[3] for p in picked))
    labels: np.ndarray | None = None  # (T, h, w), allocated at the first frame's working size
    parsed = np.zeros(count, bool)
    seen = 0
    meter = RateMeter(progress, "parsing", count)
    for index, (frame, mask) in enumerate(zip(frames(), masks())):
        if index >= count:
            break
        frame, mask, points = shrink_frame(frame, np.asarray(mask, dtype=bool),
                                           keypoints[index], max_height)
        if labels is None:
            labels = np.zeros((count,) + mask.shape, np.uint8)
        if mask.any():
            try:
                labels[index] = refine_parse(frame, mask, points, layout, model, config,
                                             present[index])
                parsed[index] = True
            except BadInput:  # the torso joints are missing here: the frame stays background
                pass
        seen += 1
        meter.advance()
    meter.finish()
    if seen != count or labels is None:
        raise BadInput(f"the video gave {seen} frames but its poses have {count}",
                       hint="extract the poses again (motionxfer extract-poses --force)")
    return VideoParse(labels=labels, parsed=parsed, model=model)
