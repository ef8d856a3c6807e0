"""`PoseSequence`: the keypoints of one video, the value every stage after extraction reads."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np

from motionxfer.errors import BadInput
from motionxfer.io.files import load_npz, save_npz
from motionxfer.pose.skeleton import KNOWN_SKELETONS, Skeleton

POSE_FILE_VERSION = 1


@dataclass(frozen=True)
class PoseSequence:
    """Keypoints of every frame of a video, in pixels of the frame as displayed (rotation applied).

    keypoints: (T, J, 3) float32 x, y, visibility in [0, 1]. A joint that was not found has
        visibility 0 and x = y = NaN.
    person_present: (T,) bool, False for frames where nobody was detected (kept, never dropped).
    timestamps: (T,) float64 seconds of each frame from the start of the (trimmed) video.
    image_size: (width, height) of the frames the coordinates refer to.
    """

    keypoints: np.ndarray
    skeleton: Skeleton
    fps: float
    image_size: tuple[int, int]
    person_present: np.ndarray
    timestamps: np.ndarray

    def __post_init__(self) -> None:
        frames, joints, channels = self.keypoints.shape
        if channels != 3 or joints != self.skeleton.num_joints:
            raise ValueError(
                f"keypoints of shape {self.keypoints.shape} do not fit the "
                f"{self.skeleton.num_joints}-joint layout '{self.skeleton.name}'"
            )
        if self.person_present.shape != (frames,) or self.timestamps.shape != (frames,):
            raise ValueError("person_present and timestamps need one entry per frame")

    @property
    def num_frames(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def xy(self) -> np.ndarray:  # (T, J, 2)
        return self.keypoints[..., :2]

    @property
    def visibility(self) -> np.ndarray:  # (T, J)
        return self.keypoints[..., 2]

    def with_keypoints(self, keypoints: np.ndarray) -> PoseSequence:
        return replace(self, keypoints=keypoints.astype(np.float32, copy=False))

    def slice(self, start: int, stop: int) -> PoseSequence:
        return replace(
            self,
            keypoints=self.keypoints[start:stop],
            person_present=self.person_present[start:stop],
            timestamps=self.timestamps[start:stop],
        )

    @staticmethod
    def empty(skeleton: Skeleton, num_frames: int, fps: float,
              image_size: tuple[int, int]) -> PoseSequence:
        keypoints = np.full((num_frames, skeleton.num_joints, 3), np.nan, np.float32)
        keypoints[..., 2] = 0.0
        return PoseSequence(
            keypoints=keypoints,
            skeleton=skeleton,
            fps=fps,
            image_size=image_size,
            person_present=np.zeros(num_frames, bool),
            timestamps=np.arange(num_frames, dtype=np.float64) / fps,
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Compressed .npz, written atomically."""
        save_npz(
            path, POSE_FILE_VERSION,
            keypoints=self.keypoints.astype(np.float32),
            skeleton=np.array(self.skeleton.to_json()),
            fps=np.float64(self.fps),
            image_size=np.array(self.image_size, np.int32),
            person_present=self.person_present.astype(bool),
            timestamps=self.timestamps.astype(np.float64),
        )

    @staticmethod
    def load(path: str | os.PathLike[str]) -> PoseSequence:
        data = load_npz(path, POSE_FILE_VERSION, "pose file",
                        "re-run extract-poses with --force to rebuild it")
        try:
            skeleton = Skeleton.from_json(str(data["skeleton"]))
            return PoseSequence(
                keypoints=data["keypoints"],
                skeleton=KNOWN_SKELETONS.get(skeleton.name, skeleton),
                fps=float(data["fps"]),
                image_size=(int(data["image_size"][0]), int(data["image_size"][1])),
                person_present=data["person_present"],
                timestamps=data["timestamps"],
            )
        except (KeyError, ValueError) as error:
            raise BadInput(f"cannot read the pose file {path}: {error}",
                           hint="re-run extract-poses with --force to rebuild it") from error
