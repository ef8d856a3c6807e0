"""Where the person may be, from the pose alone: the region a background plate must not use.

Without person masks (MediaPipe's segmentation is off by default), each frame's cover is the
convex hull of its seen joints, grown by a fraction of the person's height on every side so
that hair, loose clothes and feet beyond the ankle joints stay inside. It covers more than the
person (the space between an arm and the body), which costs only samples: the plate takes each
pixel from the frames where no cover lies on it, and a person who moves leaves every pixel
free in many frames.
"""

from __future__ import annotations

import cv2
import numpy as np

from motionxfer.pose.sequence import PoseSequence

DEFAULT_MARGIN = 0.15  # of the person's height in the frame


def pose_cover(keypoints: np.ndarray, source_size: tuple[int, int], size: tuple[int, int],
               margin: float = DEFAULT_MARGIN, min_visibility: float = 0.5) -> np.ndarray:
    """One frame's cover: (height, width) bool at `size` (width, height), from keypoints (J, 3)
    in pixels of `source_size`. No joint seen: the whole frame (nothing can be trusted)."""
    width, height = size
    seen = (keypoints[:, 2] >= min_visibility) & np.isfinite(keypoints[:, :2]).all(axis=1)
    cover = np.zeros((height, width), np.uint8)
    if seen.sum() < 2:
        cover[:] = 1
        return cover.astype(bool)
    scale = np.array([width / source_size[0], height / source_size[1]], np.float64)
    points = keypoints[seen, :2].astype(np.float64) * scale  # (N, 2) in output pixels
    extent = max(points[:, 1].max() - points[:, 1].min(), points[:, 0].max() - points[:, 0].min())
    grow = max(2, int(round(margin * extent)))
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(cover, hull, 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return cv2.dilate(cover, kernel).astype(bool)


def pose_covers(poses: PoseSequence, size: tuple[int, int], margin: float = DEFAULT_MARGIN,
                min_visibility: float = 0.5):
    """`pose_cover` of every frame, as an iterator of (height, width) bool; a frame without the
    person covers nothing."""
    width, height = size
    for index in range(poses.num_frames):
        if not poses.person_present[index]:
            yield np.zeros((height, width), bool)
        else:
            yield pose_cover(poses.keypoints[index], poses.image_size, size, margin,
                             min_visibility)
