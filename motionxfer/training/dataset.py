"""Training data: the target's frames cached once, stick figures drawn on the fly, (t-1, t) pairs.

Working size. The generator works at the preset's size for the frame *height*; the width keeps the
video's aspect ratio, rounded to the nearest multiple of the generator's `size_multiple`
(2 ** n_downsample). Letterboxing to a square was the alternative; it spends compute on black bars
the generator would have to learn to paint, and a portrait phone video (9:16) would use barely
half of the square. Rounding the width stretches the picture by at most half a multiple (under 2%
at 512 px); the stick figures are drawn with the same scaling, so they stay aligned.

Frames come from the frame cache (`io.frame_cache`, `pipeline.target_frames`): the target's
frames decoded once at the working size and memory-mapped.

Samples. The last part of the video (`holdout_fraction`, at least `min_holdout_seconds`) is held
out for validation. A training sample is a frame t whose frame t-1 also shows the person (both are
needed: the generator is conditioned on the previous frame), drawn from before the held-out part.
With `TrainConfig.sequence = N` a sample is a window of N consecutive frames that all show the
person (`window_starts_of`, `TrainingSamples.windows`, a `WindowBatch`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from motionxfer.conditioning import Conditioning, LayoutFunction
from motionxfer.errors import BadInput, NoPersonFound, ProjectError
from motionxfer.io.frame_cache import FrameCache
from motionxfer.io.images import images_to_tensor
from motionxfer.pose.sequence import PoseSequence
from motionxfer.texture.bank import TextureBank

# draw(keypoints (J, 3), width, height) -> (H, W, C) uint8: the generator's pose input
DrawFunction = Callable[[np.ndarray, int, int], np.ndarray]


# --- train / validation split --------------------------------------------------------------------

@dataclass(frozen=True)
class FrameSplit:
    train: np.ndarray  # (N,) frame indices t for training; t-1 and t both show the person
    validation: np.ndarray  # (V,) held-out frames showing the person, in order
    holdout_start: int  # first held-out frame


def split_frames(person_present: np.ndarray, fps: float, holdout_fraction: float,
                 min_holdout_seconds: float, min_train_seconds: float,
                 min_person_fraction: float, video_name: str) -> FrameSplit:
    """Hold out the end of the video; pick the training pairs; refuse videos too poor to train."""
    total = len(person_present)
    present = int(person_present.sum())
    if present < min_person_fraction * total:
        raise NoPersonFound(
            f"the person is missing in {total - present} of {total} frames of {video_name}",
            hint="film yourself fully in view for the whole video (or trim it with --start/--end "
            "at init), or lower min_person_fraction in [train] of config.toml",
        )
    holdout = max(round(holdout_fraction * total), math.ceil(min_holdout_seconds * fps))
    holdout_start = max(total - holdout, 0)
    indices = np.arange(1, holdout_start)
    train = indices[person_present[indices] & person_present[indices - 1]]
    needed = math.ceil(min_train_seconds * fps)
    if len(train) < needed:
        raise BadInput(
            f"{video_name} is too short to train on: {len(train)} frames with the person "
            f"({len(train) / fps:.1f} s) before the held-out last {total - holdout_start} frames; "
            f"at least {needed} ({min_train_seconds:g} s) are needed",
            hint="film at least a minute of yourself moving (3 minutes is better)",
        )
    validation = np.arange(holdout_start, total)
    return FrameSplit(train=train, validation=validation[person_present[validation]],
                      holdout_start=holdout_start)


def window_starts_of(person_present: np.ndarray, holdout_start: int, length: int) -> np.ndarray:
    """(W,) first frames s of the training windows of `length` frames (`TrainConfig.sequence`):
    every frame s .. s + length - 1 shows the person and lies before the held-out part."""
    usable = np.asarray(person_present[:holdout_start], bool)
    if len(usable) < length:
        return np.zeros(0, np.int64)
    # a window is usable when its frames are: a sliding minimum of the presence
    counts = np.convolve(usable.astype(np.int64), np.ones(length, np.int64), mode="valid")
    return np.flatnonzero(counts == length).astype(np.int64)


# --- samples -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PairBatch:
    """Frames t-1 and t with their stick figures; (B, 3, H, W) float32 in [-1, 1]. `joints`: frame
    t's keypoints (B, J, 3) x, y in pixels of the frames (augmented as they are), visibility, when
    the samples carry them (`TrainingSamples(joints=...)`: the Gromov-Wasserstein loss)."""

    indices: np.ndarray  # (B,) frame indices t
    previous_pose: torch.Tensor
    pose: torch.Tensor
    previous_frame: torch.Tensor
    frame: torch.Tensor
    joints: torch.Tensor | None = None  # (B, J, 3) float32

    def to(self, device: torch.device) -> PairBatch:
        """On `device`; from pinned memory (`pin_memory`) the copy to a GPU is asynchronous."""
        return PairBatch(self.indices, *(tensor.to(device, non_blocking=True) for tensor in (
            self.previous_pose, self.pose, self.previous_frame, self.frame)),
            joints=None if self.joints is None else self.joints.to(device, non_blocking=True))

    def pin_memory(self) -> PairBatch:
        """In page-locked memory, so that `to(cuda)` copies while the GPU computes (only useful,
        and only possible, with CUDA)."""
        return PairBatch(self.indices, *(tensor.pin_memory() for tensor in (
            self.previous_pose, self.pose, self.previous_frame, self.frame)),
            joints=None if self.joints is None else self.joints.pin_memory())


@dataclass(frozen=True)
class PairImages:
    """A PairBatch still as stacked uint8 images, (B, H, W, 3) each: a quarter of its bytes.

    The CUDA data path: the batch-making threads stack and pin these, and the training thread
    copies them to the GPU, where they become floats (`to_batch`); the CPU never converts them.
    """

    indices: np.ndarray  # (B,) frame indices t
    previous_pose: torch.Tensor
    pose: torch.Tensor
    previous_frame: torch.Tensor
    frame: torch.Tensor
    joints: torch.Tensor | None = None  # (B, J, 3) float32, as in PairBatch

    def pin_memory(self) -> PairImages:
        return PairImages(self.indices, *(tensor.pin_memory() for tensor in (
            self.previous_pose, self.pose, self.previous_frame, self.frame)),
            joints=None if self.joints is None else self.joints.pin_memory())

    def to_batch(self, device: torch.device) -> PairBatch:
        """The PairBatch on `device` (the same values `TrainingSamples.pairs` makes)."""
        return PairBatch(self.indices, *(
            images_to_tensor(tensor.to(device, non_blocking=True)) for tensor in (
                self.previous_pose, self.pose, self.previous_frame, self.frame)),
            joints=None if self.joints is None else self.joints.to(device, non_blocking=True))


@dataclass(frozen=True)
class WindowBatch:
    """Windows of N consecutive frames with their pose inputs: `pose` (B, N, C, H, W) and `frame`
    (B, N, 3, H, W), float32 in [-1, 1] (`TrainConfig.sequence`)."""

    indices: np.ndarray  # (B, N) frame indices
    pose: torch.Tensor
    frame: torch.Tensor
    joints: torch.Tensor | None = None  # (B, N, J, 3) float32: each frame's, as in PairBatch

    def to(self, device: torch.device) -> WindowBatch:
        return WindowBatch(
            self.indices, self.pose.to(device, non_blocking=True),
            self.frame.to(device, non_blocking=True),
            None if self.joints is None else self.joints.to(device, non_blocking=True))


def conditioning_drawer(conditioning: Conditioning, poses: PoseSequence) -> DrawFunction:
    """The default drawing: `conditioning`'s encoding of `poses`' keypoints (its pose channels:
    `TrainingSamples` adds the texture)."""
    pose_only = conditioning.without_texture()

    def draw(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
        return pose_only.encode(keypoints, poses.skeleton, width, height,
                                source_size=poses.image_size)

    return draw


@dataclass(frozen=True)
class Augmentation:
    """Small random changes to a training pair, the same for both of its frames (the generator
    learns from the pair's motion): a zoom about the centre by up to `scale`, a shift by up to
    `shift` of the frame size, applied to the frames and to the keypoints before they are drawn,
    and a colour change of the frames by up to `colour` (gain, and an offset of that share of
    half the range). Off by default (`[train] augmentation`)."""

    scale: float = 0.05
    shift: float = 0.04
    colour: float = 0.08

    def draw(self, rng: np.random.Generator) -> tuple[float, float, float, float, float]:
        """(zoom, shift x, shift y as fractions of the size, colour gain, colour offset)."""
        zoom, shift_x, shift_y, gain, offset = rng.uniform(-1.0, 1.0, 5)
        return (1.0 + self.scale * zoom, self.shift * shift_x, self.shift * shift_y,
                1.0 + self.colour * gain, 127.5 * self.colour * offset)


def zoom_and_shift(size: tuple[int, int], zoom: float, shift_x: float,
                   shift_y: float) -> np.ndarray:
    """(2, 3) affine matrix of a zoom about the centre of a (width, height) picture, then a shift
    by fractions of its size."""
    width, height = size
    return np.array([[zoom, 0.0, (1 - zoom) * width / 2 + shift_x * width],
                     [0.0, zoom, (1 - zoom) * height / 2 + shift_y * height]])


@dataclass(frozen=True)
class TextureInputs:
    """The texture channels of the pose inputs: `bank`'s frame `references[t]` re-posed to the
    pose of frame t (`TextureBank.training_references`: never t's own neighbours)."""

    bank: TextureBank
    references: np.ndarray  # (T,) int64, -1: the bank's nearest


class TrainingSamples:
    """Frames from the cache and stick figures drawn from `poses` at the cache's size, followed
    by the layout `layout` predicts from them when it is set (`training.layout`: set once the
    layout stage has trained it) and the re-posed texture with `texture`; `augmentation` changes
    each training pair a little (never the validation frames). `joints`: indices of the joints
    whose keypoints of frame t a pair carries (`PairBatch.joints`, at the cache's size); None:
    none."""

    def __init__(self, frames: FrameCache, poses: PoseSequence, draw: DrawFunction,
                 augmentation: Augmentation | None = None,
                 texture: TextureInputs | None = None,
                 joints: np.ndarray | None = None) -> None:
        if len(frames) != poses.num_frames:
            raise ProjectError(
                f"the target's frame cache has {len(frames)} frames but its poses have "
                f"{poses.num_frames}",
                hint="re-run extract-poses with --force, then train again",
            )
        self.frames = frames
        self.poses = poses
        self.draw = draw
        self.augmentation = augmentation
        self.texture = texture
        self.joints = None if joints is None else np.asarray(joints, np.int64)
        self.layout: LayoutFunction | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.frames.size

    def stick_figure(self, index: int) -> np.ndarray:  # (H, W, C) uint8
        """Frame `index`'s pose input (the stick figure, and the texture when there is one)."""
        return self._pose_input(self.poses.keypoints[index], index)

    def _pose_input(self, keypoints: np.ndarray, index: int) -> np.ndarray:
        width, height = self.size
        drawn = self.draw(keypoints, width, height)
        if self.layout is not None:
            drawn = np.concatenate([drawn, self.layout(drawn)], axis=-1)
        if self.texture is None:
            return drawn
        reposed = self.texture.bank.encode(keypoints, self.poses.image_size,
                                           int(self.texture.references[index]))
        return np.concatenate([drawn, reposed], axis=-1)

    def frame(self, index: int) -> np.ndarray:  # (H, W, 3) uint8
        return np.asarray(self.frames.frames[index])

    def pairs(self, indices: Sequence[int], seed: int = 0) -> PairBatch:
        """The (t-1, t) pairs of frames `indices` (each t >= 1); `seed` draws the augmentation
        (a pure function of the seed and the frame: resuming replays it)."""
        return self.pair_images(indices, seed).to_batch(torch.device("cpu"))

    def pair_images(self, indices: Sequence[int], seed: int = 0) -> PairImages:
        """The same pairs as uint8 images (made into a PairBatch on the training device)."""
        indices = np.asarray(indices, np.int64)
        if (indices < 1).any():
            raise ValueError("a training pair needs t >= 1")
        pairs = [self._pair(int(t), seed) for t in indices]

        def stacked(position: int) -> torch.Tensor:  # (B, H, W, C) uint8
            return torch.from_numpy(np.stack([pair[position] for pair in pairs]))

        joints = (None if self.joints is None
                  else torch.from_numpy(np.stack([pair[4] for pair in pairs])))  # (B, J, 3)
        return PairImages(indices=indices, previous_pose=stacked(0), pose=stacked(1),
                          previous_frame=stacked(2), frame=stacked(3), joints=joints)

    def windows(self, indices: np.ndarray, seed: int = 0) -> WindowBatch:
        """The windows of frames `indices` (B, N), each a run of consecutive frames, augmented
        alike within a window (a pure function of the seed and the window's last frame)."""
        indices = np.asarray(indices, np.int64)
        if indices.ndim != 2 or (np.diff(indices, axis=1) != 1).any():
            raise ValueError(f"windows must be runs of consecutive frames, got {indices.tolist()}")
        runs = [self._run(row.tolist(), seed) for row in indices]
        poses = torch.from_numpy(np.stack([np.stack(inputs) for inputs, _, _ in runs]))
        frames = torch.from_numpy(np.stack([np.stack(images) for _, images, _ in runs]))
        joints = (None if self.joints is None
                  else torch.from_numpy(np.stack([chosen for _, _, chosen in runs])))
        batch, length = indices.shape

        def floats(images: torch.Tensor) -> torch.Tensor:  # (B, N, H, W, C) -> (B, N, C, H, W)
            converted = images_to_tensor(images.flatten(0, 1))
            return converted.reshape(batch, length, *converted.shape[1:])

        return WindowBatch(indices, floats(poses), floats(frames), joints)

    def _frame_joints(self, keypoints: np.ndarray) -> np.ndarray:
        """The chosen joints (J', 3) float32 of keypoints (J, 3) in pixels of the pose's frames:
        x, y in pixels of the cache's frames, visibility."""
        if self.joints is None:
            return np.zeros((0, 3), np.float32)
        chosen = keypoints[self.joints].astype(np.float32)
        width, height = self.size
        source_width, source_height = self.poses.image_size
        chosen[:, :2] *= np.array([width / source_width, height / source_height], np.float32)
        return chosen

    def _pair(self, t: int, seed: int) -> tuple[np.ndarray, ...]:
        """(pose input t-1, pose input t, frame t-1, frame t, frame t's chosen joints), augmented
        alike."""
        inputs, frames, joints = self._run([t - 1, t], seed)
        return (*inputs, *frames, joints[-1])

    def _run(self, indices: list[int], seed: int,
             ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """The pose inputs and frames of consecutive frames `indices`, augmented alike (the draw
        keyed by the last frame), and each frame's chosen joints (N, J', 3)."""
        last = indices[-1]
        if self.augmentation is None:
            return ([self.stick_figure(index) for index in indices],
                    [self.frame(index) for index in indices],
                    np.stack([self._frame_joints(self.poses.keypoints[index])
                              for index in indices]))
        zoom, shift_x, shift_y, gain, offset = self.augmentation.draw(
            np.random.default_rng([seed % 2**63, last]))
        width, height = self.size
        on_frames = zoom_and_shift(self.size, zoom, shift_x, shift_y)
        on_poses = zoom_and_shift(self.poses.image_size, zoom, shift_x, shift_y)
        inputs, joints = [], []
        for index in indices:
            keypoints = self.poses.keypoints[index].copy()
            keypoints[:, :2] = keypoints[:, :2] @ on_poses[:, :2].T + on_poses[:, 2]
            inputs.append(self._pose_input(keypoints, index))
            joints.append(self._frame_joints(keypoints))  # moved as the frame's pose input
        frames = [np.clip(cv2.warpAffine(self.frame(index), on_frames, (width, height),
                                         flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REFLECT101) * gain + offset,
                          0, 255).astype(np.uint8) for index in indices]
        return inputs, frames, np.stack(joints)
