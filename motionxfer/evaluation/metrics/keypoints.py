"""Pose accuracy: AKD and MKR (Siarohin et al. 2019, First Order Motion Model, and its
pose-evaluation scripts), for body joints and for face landmarks.

The same pose detector runs on the reference and on the generated frames; the metrics compare
what it finds. A keypoint is *found* when its coordinates are finite and its visibility is at
least `min_visibility`.

Per frame t, with C_t the keypoints found in both frames and R_t those found in the reference:

    AKD(t)          = mean over j in C_t of ||p_gen(t, j) - p_ref(t, j)||          (pixels)
    AKD_coord(t)    = mean over j in C_t and over x, y of |p_gen - p_ref|          (pixels; what
                      FOMM's released script averages, the absolute coordinate differences)
    AKD_relative(t) = AKD(t) / size_ref(t), size_ref = the long side of the box around the
                      reference's found keypoints of the group (the body height for a standing
                      person; the face height for face landmarks)
    MKR(t)          = |R_t \\ C_t| / |R_t|  (found in the reference, missed in the generated frame)

Summaries: AKD values are averaged over the frames where they are defined (C_t not empty);
MKR pools all frames: sum_t |R_t \\ C_t| / sum_t |R_t|.

Facing: where a group has left and right joints, the generated frame is also scored with its
left and right swapped (AKD_mirror(t)). Frame t is *flipped* when that fits better by more than
`flip_margin` (5%) of the reference's size: the detector reads the generated person as facing
the other way, as it does when the only cue to the facing (a face, the back of the head) is
blurred and the clothes look the same from the front and the back. Then

    flip            = share of the frames with an AKD that are flipped
    AKD_unflipped(t) = AKD_mirror(t) in flipped frames, AKD(t) elsewhere
                      (where the joints are, whichever way the person is read to face)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from motionxfer.pose.sequence import PoseSequence


@dataclass(frozen=True)
class KeypointAccuracy:
    """Per-frame AKD/MKR of one keypoint group; NaN where a value is undefined."""

    group: str
    akd: np.ndarray  # (T,) px
    akd_coordinate: np.ndarray  # (T,) px
    akd_relative: np.ndarray  # (T,) fraction of the reference's body (or face) size
    mkr: np.ndarray  # (T,) in [0, 1]
    found_reference: np.ndarray  # (T,) int
    missed: np.ndarray  # (T,) int
    # with a left/right mirror (module docstring), else None
    flipped: np.ndarray | None = None  # (T,) 1.0 flipped, 0.0 not, NaN where AKD is undefined
    akd_unflipped: np.ndarray | None = None  # (T,) px

    def summary(self) -> dict[str, float | None]:
        def mean(values: np.ndarray) -> float | None:
            defined = values[np.isfinite(values)]
            return float(defined.mean()) if defined.size else None

        total = int(self.found_reference.sum())
        summary = {
            "akd": mean(self.akd),
            "akd_coordinate": mean(self.akd_coordinate),
            "akd_relative": mean(self.akd_relative),
            "mkr": float(self.missed.sum() / total) if total else None,
        }
        if self.flipped is not None and self.akd_unflipped is not None:
            summary |= {"flip": mean(self.flipped), "akd_unflipped": mean(self.akd_unflipped)}
        return summary


def mirror_permutation(names: Sequence[str]) -> np.ndarray | None:
    """For each joint, the index of its left/right counterpart ("left_wrist" <-> "right_wrist",
    "mouth_left" <-> "mouth_right"; a middle joint maps to itself); None when no joint has one."""
    index = {name: i for i, name in enumerate(names)}
    mirror = np.array([
        index.get(name.replace("left", "\0").replace("right", "left").replace("\0", "right"), i)
        for i, name in enumerate(names)])
    return None if np.array_equal(mirror, np.arange(len(names))) else mirror


def found_keypoints(keypoints: np.ndarray, min_visibility: float) -> np.ndarray:  # (T, J) bool
    """keypoints (T, J, 3) x, y, visibility -> which ones count as found."""
    return (np.all(np.isfinite(keypoints[..., :2]), axis=-1)
            & (np.nan_to_num(keypoints[..., 2], nan=0.0) >= min_visibility))


def keypoint_accuracy(
    reference: np.ndarray, generated: np.ndarray, min_visibility: float = 0.5, group: str = "body",
    mirror: np.ndarray | None = None, flip_margin: float = 0.05,
) -> KeypointAccuracy:
    """AKD/MKR of keypoints (T, J, 3) detected in the reference and in the generated frames;
    with `mirror` (`mirror_permutation` of the joints' names), also the flipped frames."""
    if reference.shape != generated.shape or reference.ndim != 3 or reference.shape[2] != 3:
        raise ValueError(f"expected two (T, J, 3) keypoint arrays of one shape, got "
                         f"{reference.shape} and {generated.shape}")
    found_reference = found_keypoints(reference, min_visibility)  # (T, J)
    found_generated = found_keypoints(generated, min_visibility)
    common = found_reference & found_generated
    delta = np.where(common[..., None], generated[..., :2] - reference[..., :2], 0.0)  # (T, J, 2)
    common_count = common.sum(axis=1)  # (T,)
    with np.errstate(invalid="ignore", divide="ignore"):
        akd = np.linalg.norm(delta, axis=-1).sum(axis=1) / common_count
        akd_coordinate = np.abs(delta).sum(axis=(1, 2)) / (2 * common_count)
        akd = np.where(common_count > 0, akd, np.nan)
        akd_coordinate = np.where(common_count > 0, akd_coordinate, np.nan)
        size = _box_long_side(reference[..., :2], found_reference)  # (T,)
        akd_relative = np.where(size > 0, akd / size, np.nan)
        reference_count = found_reference.sum(axis=1)
        missed = (found_reference & ~found_generated).sum(axis=1)
        mkr = np.where(reference_count > 0, missed / reference_count, np.nan)
    flipped = akd_unflipped = None
    if mirror is not None:
        akd_mirror = keypoint_accuracy(reference, generated[:, mirror], min_visibility).akd
        better = np.nan_to_num(akd - akd_mirror, nan=0.0) > flip_margin * size
        flipped = np.where(np.isfinite(akd), better.astype(np.float64), np.nan)
        akd_unflipped = np.where(better, akd_mirror, akd).astype(np.float64)
    return KeypointAccuracy(
        group=group,
        akd=akd.astype(np.float64),
        akd_coordinate=akd_coordinate.astype(np.float64),
        akd_relative=akd_relative.astype(np.float64),
        mkr=mkr.astype(np.float64),
        found_reference=reference_count.astype(np.int64),
        missed=missed.astype(np.int64),
        flipped=flipped,
        akd_unflipped=akd_unflipped,
    )


def _box_long_side(points: np.ndarray, found: np.ndarray) -> np.ndarray:  # (T,)
    """Long side of the box around the found points of each frame (0 with fewer than 2)."""
    x = np.where(found, points[..., 0], np.nan)
    y = np.where(found, points[..., 1], np.nan)
    sizes = np.zeros(points.shape[0])
    enough = found.sum(axis=1) >= 2
    if enough.any():
        width = np.nanmax(x[enough], axis=1) - np.nanmin(x[enough], axis=1)
        height = np.nanmax(y[enough], axis=1) - np.nanmin(y[enough], axis=1)
        sizes[enough] = np.maximum(width, height)
    return sizes


def pose_accuracy(
    reference: PoseSequence, generated: PoseSequence, group: str = "body",
    min_visibility: float = 0.5,
) -> KeypointAccuracy:
    """AKD/MKR of one keypoint group ("body", "face", ...) of two pose sequences.

    Both must use the same keypoint layout; frames are matched by index over the shorter one.
    Keypoints are in pixels of each sequence's frames, which must have one size.
    """
    if reference.skeleton.name != generated.skeleton.name:
        raise ValueError(f"cannot compare poses of layouts {reference.skeleton.name} and "
                         f"{generated.skeleton.name}")
    if tuple(reference.image_size) != tuple(generated.image_size):
        raise ValueError(f"poses of {reference.image_size} and {generated.image_size} frames")
    joints = reference.skeleton.group(group)
    frames = min(reference.num_frames, generated.num_frames)
    return keypoint_accuracy(reference.keypoints[:frames, joints],
                             generated.keypoints[:frames, joints], min_visibility, group,
                             mirror_permutation(reference.skeleton.joint_names[joints]))
