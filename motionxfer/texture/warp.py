"""A frame of the target re-posed part by part: REMOT's texture, warped to the driving pose.

The person in a reference frame is split into the built-in parser's body segments
(`parsing.geometry`: head, neck, torso, upper arms, forearms, hands, thighs, shins, feet) and
each segment is moved by its own affine map, from the reference frame's joints to the driving
pose's:

- the torso by the least-squares affine map of its four corners (shoulders and hips);
- the head and neck by the least-squares similarity of the face points and the neck;
- a limb segment along its bone: the bone's end points map onto the driving bone's, stretched
  along it by the ratio of the bone lengths (at most `max_stretch`, since a bone seen end-on in
  one frame has almost no length) and across it by the body's scale (the torso lengths' ratio);
- a hand or a foot by its own bone (wrist to hand points, ankle to toes) when both frames see
  it, else by the forearm's or the shin's map.

The segments are drawn back to front (torso, legs, head, arms, hands), each grown by a pixel or
two into its neighbours so that the joints do not open into gaps. The result is the reference's
real colours in roughly the driving pose, and an alpha of where the person is; the generator
corrects what a piecewise affine map cannot (cloth folds, occlusion, a turned body).

OpenCV's `warpAffine` moves the segments: the warp is not in the generator's gradient (it
prepares an input), so a differentiable warp (kornia) would only cost time. Coordinates are
(x, y) pixels of the images, pixel centres at +0.5, as the project's poses store them.
"""

from __future__ import annotations

import cv2
import numpy as np

from motionxfer.parsing.geometry import SEGMENT_NAMES, JointLayout

# Back to front: what is drawn later covers what was drawn before.
DRAWING_ORDER = tuple(SEGMENT_NAMES.index(name) for name in (
    "torso", "left_thigh", "right_thigh", "left_shin", "right_shin", "left_foot", "right_foot",
    "neck", "head", "left_upper_arm", "right_upper_arm", "left_forearm", "right_forearm",
    "left_hand", "right_hand",
))
_LIMBS = (  # segment, root joint, end joint
    ("left_upper_arm", "left_shoulder", "left_elbow"),
    ("left_forearm", "left_elbow", "left_wrist"),
    ("right_upper_arm", "right_shoulder", "right_elbow"),
    ("right_forearm", "right_elbow", "right_wrist"),
    ("left_thigh", "left_hip", "left_knee"),
    ("left_shin", "left_knee", "left_ankle"),
    ("right_thigh", "right_hip", "right_knee"),
    ("right_shin", "right_knee", "right_ankle"),
)
_EXTREMITIES = (  # segment, root joint, the layout's point group, the segment it else follows
    ("left_hand", "left_wrist", "left_hand", "left_forearm"),
    ("right_hand", "right_wrist", "right_hand", "right_forearm"),
    ("left_foot", "left_ankle", "left_toes", "left_shin"),
    ("right_foot", "right_ankle", "right_toes", "right_shin"),
)
Affine = np.ndarray  # (2, 3) float64: [x', y'] = A @ [x, y, 1]


def affine_fit(source: np.ndarray, target: np.ndarray) -> Affine | None:
    """The least-squares affine map of points (N, 2) onto (N, 2); None below 3 points or when
    they are (nearly) on a line."""
    if len(source) < 3:
        return None
    design = np.concatenate([source, np.ones((len(source), 1))], axis=1)  # (N, 3)
    solution, _, rank, _ = np.linalg.lstsq(design, target, rcond=None)
    return solution.T if rank == 3 else None


def similarity_fit(source: np.ndarray, target: np.ndarray) -> Affine | None:
    """The least-squares rotation, uniform scale and shift of points (N, 2) onto (N, 2) (N >= 2,
    not all at one place); None otherwise. In complex numbers: target ~ a * source + b."""
    if len(source) < 2:
        return None
    z = source[:, 0] + 1j * source[:, 1]
    w = target[:, 0] + 1j * target[:, 1]
    z_centred, w_centred = z - z.mean(), w - w.mean()
    spread = float(np.vdot(z_centred, z_centred).real)
    if spread < 1e-6:
        return None
    a = np.vdot(z_centred, w_centred) / spread
    b = w.mean() - a * z.mean()
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def bone_map(source_root: np.ndarray, source_end: np.ndarray, target_root: np.ndarray,
             target_end: np.ndarray, across_scale: float, max_stretch: float = 2.5,
             ) -> Affine | None:
    """The affine map of a limb segment: the source bone onto the target bone, lengths in ratio
    (within [1 / max_stretch, max_stretch]) along it, `across_scale` across it. None for a bone
    of (almost) no length in either frame."""
    source_axis, target_axis = source_end - source_root, target_end - target_root
    source_length, target_length = np.linalg.norm(source_axis), np.linalg.norm(target_axis)
    if min(source_length, target_length) < 1e-3:
        return None
    along = float(np.clip(target_length / source_length, 1 / max_stretch, max_stretch))
    u, v = source_axis / source_length, target_axis / target_length
    source_frame = np.stack([u, [-u[1], u[0]]])  # rows: along and across, in the source
    target_frame = np.stack([v, [-v[1], v[0]]], axis=1)  # columns: the same in the target
    linear = target_frame @ np.diag([along, across_scale]) @ source_frame
    return np.concatenate([linear, (target_root - linear @ source_root)[:, None]], axis=1)


def part_maps(source: np.ndarray, source_seen: np.ndarray, target: np.ndarray,
              target_seen: np.ndarray, layout: JointLayout,
              max_stretch: float = 2.5) -> dict[int, Affine]:
    """Each body segment's map from the source keypoints (J, 2) onto the target's (J, 2), where
    both frames see what it needs (`*_seen` (J,) bool). Segments left out are not drawn."""
    both = source_seen & target_seen & np.isfinite(source).all(1) & np.isfinite(target).all(1)

    def pair(*indices: int | None) -> tuple[np.ndarray, np.ndarray] | None:
        chosen = [index for index in indices if index is not None and both[index]]
        return (source[chosen], target[chosen]) if chosen else None

    def mean_point(group: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
        chosen = [index for index in group if both[index]]
        if not chosen:
            return None
        return source[chosen].mean(axis=0), target[chosen].mean(axis=0)

    maps: dict[int, Affine] = {}
    corners = [getattr(layout, name) for name in ("left_shoulder", "right_shoulder",
                                                  "left_hip", "right_hip")]
    if any(index is None or not both[index] for index in corners):
        return maps  # without the torso there is no body to place
    torso = affine_fit(source[corners], target[corners])
    if torso is None:
        return maps
    maps[SEGMENT_NAMES.index("torso")] = torso
    mid = np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]])  # shoulder and hip centres
    source_length = np.linalg.norm(np.diff(mid @ source[corners], axis=0))
    target_length = np.linalg.norm(np.diff(mid @ target[corners], axis=0))
    scale = float(np.clip(target_length / max(source_length, 1e-3), 1 / max_stretch, max_stretch))

    neck = layout.neck if layout.neck is not None and both[layout.neck] else None
    head_points = pair(layout.nose, layout.left_eye, layout.right_eye, layout.left_ear,
                       layout.right_ear, layout.head_top)
    if head_points is not None:
        neck_source = source[neck] if neck is not None else 0.5 * (source[corners[0]]
                                                                   + source[corners[1]])
        neck_target = target[neck] if neck is not None else 0.5 * (target[corners[0]]
                                                                   + target[corners[1]])
        head = similarity_fit(np.vstack([head_points[0], neck_source]),
                              np.vstack([head_points[1], neck_target]))
        if head is not None:
            maps[SEGMENT_NAMES.index("head")] = maps[SEGMENT_NAMES.index("neck")] = head

    for segment, root, end in _LIMBS:
        ends = pair(getattr(layout, root)), pair(getattr(layout, end))
        if ends[0] is None or ends[1] is None:
            continue
        limb = bone_map(ends[0][0][0], ends[1][0][0], ends[0][1][0], ends[1][1][0], scale,
                        max_stretch)
        if limb is not None:
            maps[SEGMENT_NAMES.index(segment)] = limb
    for segment, root, group, parent in _EXTREMITIES:
        root_point, tip = pair(getattr(layout, root)), mean_point(getattr(layout, group))
        own = (bone_map(root_point[0][0], tip[0], root_point[1][0], tip[1], scale, max_stretch)
               if root_point is not None and tip is not None else None)
        borrowed = maps.get(SEGMENT_NAMES.index(parent))
        if own is not None or borrowed is not None:
            maps[SEGMENT_NAMES.index(segment)] = own if own is not None else borrowed
    return maps


def repose(image: np.ndarray, segments: np.ndarray, maps: dict[int, Affine],
           grow: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Move each segment of `image` (H, W, 3) uint8 by its map. `segments`: (H, W) int, the body
    segment of each person pixel (-1 elsewhere). Returns the re-posed colours (H, W, 3) uint8
    (premultiplied: black where no part lands, darker at soft edges) and the person's alpha (H, W) uint8 in 0..255."""
    height, width = segments.shape
    person = segments >= 0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    colour = np.zeros((height, width, 3), np.float32)
    alpha = np.zeros((height, width), np.float32)
    for segment in DRAWING_ORDER:
        if segment not in maps:
            continue
        part = segments == segment
        if not part.any():
            continue
        part = cv2.dilate(part.astype(np.uint8), kernel).astype(bool) & person if grow else part
        moved = cv2.warpAffine(part.astype(np.float32), maps[segment], (width, height),
                               flags=cv2.INTER_LINEAR, borderValue=0.0)
        if not moved.any():
            continue
        pixels = cv2.warpAffine(image, maps[segment], (width, height), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        colour += moved[..., None] * (pixels - colour)
        alpha += moved * (1.0 - alpha)
    return (np.clip(colour + 0.5, 0, 255).astype(np.uint8),
            np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8))
