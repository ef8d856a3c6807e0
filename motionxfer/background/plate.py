"""The static background plate of a video, from its frames and person masks.

Per pixel, the plate is the median colour over the sampled frames where the person (their mask
dilated by `mask_dilation` pixels, to leave out soft edges and shadows next to the body) does
not cover it. Pixels the person covers in every sampled frame were never seen: they are filled
by OpenCV's inpainting (Telea) and reported in `seen`. A moving camera breaks the whole idea, so
it is measured: the background of each sampled frame and of the next one (far apart in the
video), with the pixels the person covers in either frame weighted out, are compared by phase
correlation (`cv2.phaseCorrelate`, greyscale, at most `motion_width` pixels wide); the median
length of the global shift found, in full-resolution pixels, is `camera_motion_score`, and above
`motion_threshold` the camera counts as moving. A static camera scores about 0; a pan or tilt
scores about its displacement between samples, small shifts read low (a 1-pixel shift reads
about 0.6 on a 96-pixel test frame). Zooms and rotations about the optical axis are not
measured (phase correlation sees translations).

Memory: frames are consumed one at a time and only `max_frames` of them, spread evenly over the
video when its length is known (otherwise every `stride`-th frame, the first `max_frames`), are
kept: max_frames x H x W x 3 bytes (48 frames of 1080p: 300 MB).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from motionxfer.errors import BadInput


@dataclass(frozen=True)
class PlateConfig:
    """Knobs of the background plate."""

    max_frames: int = 48           # frames kept for the median
    stride: int = 30               # when the frame count is unknown: keep every stride-th frame
    mask_dilation: int = 5         # pixels added around the person mask
    inpaint_radius: int = 5        # cv2.inpaint radius for never-seen pixels
    motion_threshold: float = 0.5  # pixels; a camera_motion_score above it means moving
    motion_width: int = 320        # frames are shrunk to at most this width for the motion check
    rows_per_block: int = 64       # rows per block of the masked median (bounds its memory)

    def __post_init__(self) -> None:
        if self.max_frames < 2 or self.stride < 1:
            raise BadInput("max_frames must be >= 2 and stride >= 1",
                           hint="use the defaults of PlateConfig")


@dataclass(frozen=True)
class PlateResult:
    """plate: (H, W, 3) uint8 (same channel order as the frames); seen: (H, W) bool, pixels
    seen uncovered in at least one sampled frame; moving_camera; camera_motion_score (grey
    levels); frames_used."""

    plate: np.ndarray
    seen: np.ndarray
    moving_camera: bool
    camera_motion_score: float
    frames_used: int


def sample_indices(frame_count: int, max_frames: int) -> np.ndarray:
    """`max_frames` frame indices spread evenly over `frame_count` frames (all when fewer)."""
    if frame_count <= max_frames:
        return np.arange(frame_count)
    return np.unique(np.linspace(0, frame_count - 1, max_frames).round().astype(int))


def dilate_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """A (H, W) bool mask grown by `pixels` (an elliptical structuring element)."""
    if pixels <= 0:
        return np.asarray(mask, dtype=bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(np.asarray(mask, dtype=np.uint8), kernel) > 0


def masked_median(frames: np.ndarray, covered: np.ndarray, rows_per_block: int = 64) -> np.ndarray:
    """Per-pixel median of frames (N, H, W, C) over the frames where covered (N, H, W) is False.

    Returns (H, W, C) float32, nan where every frame is covered."""
    _, height, width, channels = frames.shape
    out = np.full((height, width, channels), np.nan, np.float32)
    for start in range(0, height, rows_per_block):
        block = frames[:, start:start + rows_per_block].astype(np.float32)
        block[covered[:, start:start + rows_per_block]] = np.nan
        seen_any = ~covered[:, start:start + rows_per_block].all(axis=0)
        if seen_any.any():
            values = np.nanmedian(block[:, seen_any], axis=0)  # (n, C)
            out[start:start + rows_per_block][seen_any] = values
    return out


def camera_motion_score(frames: np.ndarray, covered: np.ndarray, motion_width: int = 320) -> float:
    """Median global shift (pixels) between consecutive frames, found on their background.

    frames: (N, H, W, 3) uint8; covered: (N, H, W) bool. For each pair, both frames' grey
    levels (minus their mean) are multiplied by one feathered weight that is 0 where the person
    covers either frame, so the person adds no pattern of its own."""
    width = frames.shape[2]
    factor = min(1.0, motion_width / width)
    feather = 3.0 / factor if factor < 1.0 else 3.0
    greys = [frame.astype(np.float32).mean(axis=2) for frame in frames]
    shifts = []
    window = None
    for index in range(len(frames) - 1):
        either = covered[index] | covered[index + 1]
        if either.all():
            continue
        weight = cv2.GaussianBlur((~either).astype(np.float32), (0, 0), feather)
        weight[either] = 0.0
        pair = []
        for grey in (greys[index], greys[index + 1]):
            weighted = (grey - grey[~either].mean()) * weight
            if factor < 1.0:
                weighted = cv2.resize(weighted, None, fx=factor, fy=factor,
                                      interpolation=cv2.INTER_AREA)
            pair.append(weighted.astype(np.float32))
        if window is None:
            window = cv2.createHanningWindow(pair[0].shape[::-1], cv2.CV_32F)
        (dx, dy), _ = cv2.phaseCorrelate(pair[0], pair[1], window)
        shifts.append(float(np.hypot(dx, dy)) / factor)
    return float(np.median(shifts)) if shifts else 0.0


def estimate_plate(
    frames: Iterable[np.ndarray],
    masks: Iterable[np.ndarray],
    frame_count: int | None = None,
    config: PlateConfig = PlateConfig(),
) -> PlateResult:
    """Estimate the background plate from frames (iterable of (H, W, 3) uint8) and person masks
    (iterable of (H, W) bool), consumed together one frame at a time.

    frame_count: the number of frames, when known, to spread the samples over the whole video.
    Raises BadInput for mismatched sizes or fewer than two frames.
    """
    wanted = (set(sample_indices(frame_count, config.max_frames).tolist())
              if frame_count is not None else None)
    kept_frames, kept_covered = [], []
    for index, (frame, mask) in enumerate(zip(frames, masks)):
        take = index in wanted if wanted is not None else index % config.stride == 0
        if not take:
            continue
        frame, mask = np.asarray(frame), np.asarray(mask, dtype=bool)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise BadInput(f"frame {index} is {frame.shape} {frame.dtype}, not (H, W, 3) uint8",
                           hint="decode the video to rgb24")
        if mask.shape != frame.shape[:2]:
            raise BadInput(f"frame {index} is {frame.shape[:2]} but its mask is {mask.shape}",
                           hint="pass the person masks of this video at its resolution")
        if kept_frames and frame.shape != kept_frames[0].shape:
            raise BadInput(f"frame {index} is {frame.shape[:2]}, earlier ones "
                           f"{kept_frames[0].shape[:2]}", hint="pass frames of one video")
        kept_frames.append(frame)
        kept_covered.append(dilate_mask(mask, config.mask_dilation))
        if len(kept_frames) >= config.max_frames:
            break
    if len(kept_frames) < 2:
        raise BadInput(f"only {len(kept_frames)} frame(s) to estimate the background from",
                       hint="pass a longer video (a few seconds at least)")
    stack, covered = np.stack(kept_frames), np.stack(kept_covered)  # (N, H, W, 3), (N, H, W)
    median = masked_median(stack, covered, config.rows_per_block)
    seen = np.isfinite(median[..., 0])
    plate = np.nan_to_num(median, nan=0.0).round().clip(0, 255).astype(np.uint8)
    if (~seen).any() and seen.any():
        plate = cv2.inpaint(plate, (~seen).astype(np.uint8) * 255, config.inpaint_radius,
                            cv2.INPAINT_TELEA)
    score = camera_motion_score(stack, covered, config.motion_width)
    return PlateResult(plate=plate, seen=seen, moving_camera=score > config.motion_threshold,
                       camera_motion_score=score, frames_used=len(kept_frames))


def difference_mask(frame: np.ndarray, plate: np.ndarray, cover: np.ndarray,
                    threshold: float = 30.0, cleanup: int = 2) -> np.ndarray:
    """The person's mask in one frame of a still camera: pixels whose colour differs from the
    background plate by more than `threshold` grey levels (the largest channel difference),
    inside `cover` (where the pose says the person may be, `cover.pose_cover`), cleaned by a
    morphological opening then closing of `cleanup` pixels and with its holes filled.

    frame, plate: (H, W, 3) uint8; cover: (H, W) bool. Returns (H, W) bool. Clothes of the
    wall's colour leave holes the closing cannot bridge; a person's shadow on the floor outside
    the cover is cut away by the cover."""
    difference = np.abs(frame.astype(np.int16) - plate.astype(np.int16)).max(axis=2)
    mask = ((difference > threshold) & np.asarray(cover, dtype=bool)).astype(np.uint8)
    if cleanup > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * cleanup + 1, 2 * cleanup + 1))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled > 0


def composite_at_size(generated: np.ndarray, plate: np.ndarray, full_plate: np.ndarray,
                      threshold: float = 8.0, softness: float = 4.0) -> np.ndarray:
    """A frame made over the background at the working size, put over the full-size plate.

    generated, plate: (h, w, 3) uint8 at the working size (the frame and the plate it was
    composited over); full_plate: (H, W, 3) uint8, the same background at the output's size.
    Where the frame differs from its plate by more than `threshold` grey levels (a ramp of
    `softness` either side) the generated pixels are kept, upscaled; elsewhere the full-size
    plate shows, as sharp as the video. Returns (H, W, 3) uint8.
    """
    height, width = full_plate.shape[:2]
    difference = np.abs(generated.astype(np.int16) - plate.astype(np.int16)).max(axis=-1)
    person = np.clip((difference - threshold + softness) / (2 * softness), 0, 1)
    person = cv2.dilate(person.astype(np.float32), np.ones((3, 3), np.uint8))
    weight = cv2.resize(person, (width, height), interpolation=cv2.INTER_LINEAR)[..., None]
    upscaled = cv2.resize(generated, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(weight * upscaled + (1 - weight) * full_plate + 0.5, 0, 255).astype(np.uint8)
