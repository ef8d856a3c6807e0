"""Pose extraction with MediaPipe (0.10.21, `mp.solutions`, runs offline on the CPU).

Body only (`hands=False, face=False`) runs MediaPipe Pose; anything else runs MediaPipe Holistic.
Either way the result is a `PoseSequence` in the `MEDIAPIPE_HOLISTIC` layout (543 joints), so
every later stage reads one layout:

- body joints carry MediaPipe's own visibility, stored as given (consumers threshold it with
  `ExtractConfig.min_visibility`); their coordinates are kept even when the visibility is low;
- hand and face points have visibility 1 where MediaPipe found the hand or the face (it gives no
  per-point visibility there) and are missing (visibility 0, x = y = NaN) elsewhere;
- groups that were not requested are missing on every frame;
- a frame where nobody was found is kept, with `person_present[t] = False`.

Coordinates are pixels of the frame as displayed (x right, y down). Frames larger than
`processing_long_side` are shrunk before MediaPipe sees them (MediaPipe crops and resizes to
256 px internally, so this loses nothing measurable and saves the copy of a large frame);
MediaPipe's normalised coordinates are then multiplied by the full frame size.

With `segmentation=True` MediaPipe also returns a soft person mask per frame; it is kept as
`PersonMasks` (uint8, long side `mask_long_side`) and saved with `PersonMasks.save`, by the
pipeline to `ProjectPaths.person_masks(video_id)`.

mediapipe is imported only inside the functions that run it, so the rest of the package imports
on machines without it (a GPU training box, for instance).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from motionxfer.errors import BadInput, BadVideo, MissingDependency
from motionxfer.io import video
from motionxfer.io.files import load_npz, save_npz
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import (
    BODY_NUM_POINTS,
    FACE_NUM_POINTS,
    FACE_START,
    LEFT_HAND_START,
    MEDIAPIPE_HOLISTIC,
    RIGHT_HAND_START,
)
from motionxfer.progress import ProgressCallback, RateMeter

MEDIAPIPE_PIP = "pip install mediapipe==0.10.21"
HAND_NUM_POINTS = RIGHT_HAND_START - LEFT_HAND_START
PERSON_MASK_FILE_VERSION = 1


@dataclass(frozen=True)
class ExtractConfig:
    """Settings of pose extraction (TOML table `[extract]`).

    hands, face: also find the hands (21 points each) and the face mesh (468 points); either one
        switches from MediaPipe Pose to the slower MediaPipe Holistic.
    min_visibility: body joints below this MediaPipe visibility count as not seen by the stages
        after extraction (the value itself is stored unchanged).
    model_complexity: MediaPipe's pose model, 0 (lite), 1 (full) or 2 (heavy); 0 and 1 ship in
        the mediapipe wheel, 2 is downloaded by mediapipe on first use (needs the internet).
    segmentation: also keep MediaPipe's person mask for every frame (see `PersonMasks`).
    min_detection_confidence, min_tracking_confidence: MediaPipe's thresholds for finding a person
        and for keeping the track from one frame to the next.
    processing_long_side: frames whose long side is larger are shrunk to this before MediaPipe
        runs (0 = never shrink). Coordinates always refer to the full frame.
    mask_long_side: long side in pixels of the stored person masks.
    workers: processes that share a long video, each on a contiguous part (1.3x faster with 2 on
        2 cores); each part starts a fresh track, so joints differ slightly for ~1 s after a part
        starts. 1 (the default) keeps one track; masks need 1.
    """

    hands: bool = True
    face: bool = True
    min_visibility: float = 0.5
    model_complexity: int = 1
    segmentation: bool = False
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    processing_long_side: int = 640
    mask_long_side: int = 256
    workers: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise BadInput(f"workers must be 1 or more, got {self.workers}",
                           hint="use 1 (the default), or the number of CPU cores")
        if self.model_complexity not in (0, 1, 2):
            raise BadInput(
                f"model_complexity must be 0, 1 or 2, got {self.model_complexity}",
                hint="use 1 (the default) unless speed matters more than accuracy",
            )
        for name in ("min_visibility", "min_detection_confidence", "min_tracking_confidence"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise BadInput(f"{name} must be between 0 and 1, got {value}",
                               hint=f"set {name} to a value such as 0.5")
        if self.processing_long_side < 0 or 0 < self.processing_long_side < 64:
            raise BadInput(
                f"processing_long_side must be 0 (off) or at least 64, got "
                f"{self.processing_long_side}",
                hint="use 640 (the default)",
            )
        if self.mask_long_side < 16:
            raise BadInput(f"mask_long_side must be at least 16, got {self.mask_long_side}",
                           hint="use 256 (the default)")

    @property
    def body_only(self) -> bool:
        return not (self.hands or self.face)


@dataclass(frozen=True)
class PersonMasks:
    """MediaPipe's soft person masks, stored small.

    masks: (T, h, w) uint8, 0 background .. 255 person, at `mask_long_side` resolution; all zero on
        frames without a person.
    image_size: (width, height) of the full frames the masks cover.
    """

    masks: np.ndarray
    image_size: tuple[int, int]

    @property
    def num_frames(self) -> int:
        return int(self.masks.shape[0])

    def full_size(self, frame: int) -> np.ndarray:  # (H, W) float32 in [0, 1]
        """The mask of one frame resized to the full frame."""
        mask = cv2.resize(self.masks[frame], self.image_size, interpolation=cv2.INTER_LINEAR)
        return mask.astype(np.float32) / 255.0

    def save(self, path: str | os.PathLike[str]) -> None:
        """Compressed .npz, written atomically."""
        save_npz(path, PERSON_MASK_FILE_VERSION, masks=self.masks.astype(np.uint8),
                 image_size=np.array(self.image_size, np.int32))

    @staticmethod
    def load(path: str | os.PathLike[str]) -> PersonMasks:
        hint = "re-run extract-poses with segmentation = true and --force to rebuild it"
        data = load_npz(path, PERSON_MASK_FILE_VERSION, "person mask file", hint)
        try:
            return PersonMasks(masks=data["masks"],
                               image_size=(int(data["image_size"][0]), int(data["image_size"][1])))
        except KeyError as error:
            raise BadInput(f"cannot read the person mask file {path}: {error}",
                           hint=hint) from error


@dataclass(frozen=True)
class Extraction:
    """What `extract_from_frames` returns: the poses, and the person masks when asked for."""

    poses: PoseSequence
    masks: PersonMasks | None


def import_mediapipe() -> Any:
    """The mediapipe module, or a `MissingDependency` that says how to install it."""
    try:
        import mediapipe
    except ImportError as error:
        raise MissingDependency(
            f"pose extraction needs mediapipe, which is not installed ({error})",
            hint=f"{MEDIAPIPE_PIP}, or import keypoints made elsewhere (docs/keypoints.md)",
        ) from error
    return mediapipe


def extract_from_frames(
    frames: Iterable[np.ndarray],
    fps: float,
    config: ExtractConfig = ExtractConfig(),
    progress: ProgressCallback | None = None,
    total: int | None = None,
    timestamps: Iterable[float] | None = None,
) -> Extraction:
    """Run MediaPipe over `frames`, (H, W, 3) uint8 RGB images of one video, in order.

    `timestamps` (seconds) default to index / fps; `total` is only for progress reports.
    """
    if fps <= 0:
        raise BadInput(f"the frame rate must be positive, got {fps}",
                       hint="pass the video's frame rate")
    if timestamps is None:
        timed: Iterable[tuple[float | None, np.ndarray]] = ((None, f) for f in frames)
    else:
        timed = zip(timestamps, frames, strict=True)
    return _extract_timed(timed, fps, config, progress, total)


@contextlib.contextmanager
def native_logs_silenced() -> Iterator[None]:
    """Hide what MediaPipe's C++ side writes straight to file descriptor 2 (TensorFlow Lite and
    glog lines that GLOG_minloglevel does not stop), keeping Python's own stderr (progress bars,
    warnings) on the terminal. MOTIONXFER_NATIVE_LOGS=1 shows them."""
    if os.environ.get("MOTIONXFER_NATIVE_LOGS") == "1":
        yield
        return
    try:
        sys.stderr.flush()
        original_fd = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded interpreters): nothing to hide
        yield
        return
    python_stderr = sys.stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        redirected = python_stderr.fileno() == 2
    except (OSError, ValueError):  # a stand-in stream (test runners): leave it as it is
        redirected = False
    if redirected:
        sys.stderr = os.fdopen(os.dup(original_fd), "w", buffering=1)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(original_fd, 2)
        os.close(original_fd)
        os.close(devnull)
        if redirected:
            sys.stderr.close()
            sys.stderr = python_stderr


def extract_video(
    path: str | os.PathLike[str],
    config: ExtractConfig = ExtractConfig(),
    start: float | None = None,
    end: float | None = None,
    progress: ProgressCallback | None = None,
    masks_path: str | os.PathLike[str] | None = None,
) -> PoseSequence:
    """Poses of the video at `path` (trimmed to [start, end) seconds when given).

    Timestamps are the frames' own times, counted from `start` (0 for the first frame of an
    untrimmed video); a variable frame rate is resampled to its average (`video.timeline_fps`),
    as every other stage reads it, so pose k belongs to `k / fps` seconds. With `config.segmentation`, the person masks are written to `masks_path`.
    """

    if config.segmentation and masks_path is None:
        raise BadInput(
            "person masks were asked for (segmentation = true) but there is no file to keep them",
            hint="set segmentation = false in the [extract] table, or pass masks_path",
        )
    info = video.probe(path)
    origin = 0.0 if start is None else float(start)
    frames = (
        (frame.time - origin, frame.rgb)
        for frame in video.read_frames(path, start, end, fps=video.timeline_fps(info))
    )
    total: int | None = info.frame_count
    if start is not None or end is not None:
        stop = info.duration if end is None else min(end, info.duration)
        total = max(1, round((stop - origin) * info.fps))
    extraction = _extract_timed(frames, info.fps, config, progress, total)
    if extraction.masks is not None and masks_path is not None:
        extraction.masks.save(masks_path)
    return extraction.poses


def _extract_timed(
    frames: Iterable[tuple[float | None, np.ndarray]],
    fps: float,
    config: ExtractConfig,
    progress: ProgressCallback | None,
    total: int | None,
) -> Extraction:
    mediapipe = import_mediapipe()
    meter = RateMeter(progress, "poses", total, unit="frames")
    keypoint_rows: list[np.ndarray] = []  # each (543, 3)
    present: list[bool] = []
    times: list[float] = []
    mask_rows: list[np.ndarray] = []
    image_size: tuple[int, int] | None = None
    with native_logs_silenced(), _open_model(mediapipe, config) as model:
        for index, (time, rgb) in enumerate(frames):
            image_size = _check_frame(rgb, index, image_size)
            small = _shrink(rgb, config.processing_long_side)
            results = model.process(small)
            keypoint_rows.append(_keypoints_of(results, image_size, config))
            present.append(results.pose_landmarks is not None)
            times.append(index / fps if time is None else float(time))
            if config.segmentation:
                mask_rows.append(_mask_of(results, small.shape, config.mask_long_side))
            meter.advance()
    meter.finish()
    if image_size is None:
        raise BadVideo("the video has no frames to extract poses from",
                       hint="check the file, or the --start/--end range")
    poses = PoseSequence(
        keypoints=np.stack(keypoint_rows).astype(np.float32),
        skeleton=MEDIAPIPE_HOLISTIC,
        fps=float(fps),
        image_size=image_size,
        person_present=np.array(present, bool),
        timestamps=np.array(times, np.float64),
    )
    masks = PersonMasks(np.stack(mask_rows), image_size) if config.segmentation else None
    return Extraction(poses, masks)


class _open_model:
    """MediaPipe Pose or Holistic as a context manager that always closes its graph."""

    def __init__(self, mediapipe: Any, config: ExtractConfig) -> None:
        options = {
            "static_image_mode": False,
            "model_complexity": config.model_complexity,
            "smooth_landmarks": True,
            "enable_segmentation": config.segmentation,
            "min_detection_confidence": config.min_detection_confidence,
            "min_tracking_confidence": config.min_tracking_confidence,
        }
        if config.body_only:
            self.model = mediapipe.solutions.pose.Pose(**options)
        else:
            self.model = mediapipe.solutions.holistic.Holistic(
                refine_face_landmarks=False, **options
            )

    def __enter__(self) -> Any:
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.model.close()


def _check_frame(
    rgb: np.ndarray, index: int, image_size: tuple[int, int] | None
) -> tuple[int, int]:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise BadInput(
            f"frame {index} is not an RGB image: shape {rgb.shape}, dtype {rgb.dtype}",
            hint="pass (H, W, 3) uint8 RGB frames",
        )
    size = (int(rgb.shape[1]), int(rgb.shape[0]))
    if image_size is not None and size != image_size:
        raise BadVideo(
            f"frame {index} is {size[0]}x{size[1]} but the first frame was "
            f"{image_size[0]}x{image_size[1]}",
            hint="re-encode the video at one resolution (ffmpeg -i in.mp4 -vf scale=W:H out.mp4)",
        )
    return size


def _shrink(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """The frame with its long side at most `long_side` (unchanged when 0 or already small)."""
    height, width = rgb.shape[:2]
    if long_side == 0 or max(width, height) <= long_side:
        return np.ascontiguousarray(rgb)
    scale = long_side / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _landmarks_array(landmarks: Any, count: int) -> np.ndarray:  # (count, 3) x, y, visibility
    points = landmarks.landmark
    if len(points) < count:
        raise MissingDependency(
            f"MediaPipe returned {len(points)} landmarks where {count} were expected",
            hint=f"install the tested version: {MEDIAPIPE_PIP}",
        )
    return np.array(
        [(p.x, p.y, p.visibility) for p in points[:count]], dtype=np.float32
    )


def _keypoints_of(results: Any, image_size: tuple[int, int], config: ExtractConfig) -> np.ndarray:
    """(543, 3) keypoints of one frame in pixels, missing joints as (NaN, NaN, 0)."""
    keypoints = np.full((MEDIAPIPE_HOLISTIC.num_joints, 3), np.nan, np.float32)
    keypoints[:, 2] = 0.0
    scale = np.array([image_size[0], image_size[1]], np.float32)

    def put(landmarks: Any, start: int, count: int, with_visibility: bool) -> None:
        if landmarks is None:
            return
        values = _landmarks_array(landmarks, count)
        keypoints[start:start + count, :2] = values[:, :2] * scale
        keypoints[start:start + count, 2] = values[:, 2] if with_visibility else 1.0

    put(results.pose_landmarks, 0, BODY_NUM_POINTS, with_visibility=True)
    if config.hands:
        # Holistic's left_hand_landmarks are the person's left hand (not the image's left).
        put(results.left_hand_landmarks, LEFT_HAND_START, HAND_NUM_POINTS, with_visibility=False)
        put(results.right_hand_landmarks, RIGHT_HAND_START, HAND_NUM_POINTS,
            with_visibility=False)
    if config.face:
        put(results.face_landmarks, FACE_START, FACE_NUM_POINTS, with_visibility=False)
    return keypoints


def _mask_of(results: Any, processed_shape: tuple[int, ...], long_side: int) -> np.ndarray:
    """(h, w) uint8 person mask at `long_side` resolution; zeros when nobody was found."""
    height, width = processed_shape[:2]
    scale = min(1.0, long_side / max(width, height))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    mask = results.segmentation_mask
    if mask is None:
        return np.zeros((size[1], size[0]), np.uint8)
    small = cv2.resize(np.asarray(mask, np.float32), size, interpolation=cv2.INTER_AREA)
    return np.clip(small * 255.0 + 0.5, 0, 255).astype(np.uint8)

