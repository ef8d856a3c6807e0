"""A built-in human parser from a person mask and body keypoints: body-part geometry, no network.

Each body segment gets a simple shape built from the joints: capsules along the bones (upper
arms, forearms, hands, thighs, shins, neck), feet from the ankle, heel and toe points, an ellipse
for the head (face points, neck and head top when there is one) and the shoulder-hip quadrilateral
for the torso. Every shape gives a *normalized distance* per pixel: 0 on its axis (or deep
inside), 1 on its expected outline. Each pixel of the person mask goes to the segment with the
smallest normalized distance (a softmax of them gives a soft prior), and segments map to the six
classes by rule: the top covers the torso and the first `sleeve_length` of each arm (shoulder 0,
wrist 1), the bottom covers the first `bottom_length` of each leg (hip 0, ankle 1), the rest of
the limbs, the hands and the neck are skin, the feet are shoes.

Radii are fractions of the torso length (shoulder centre to hip centre), each narrowed or widened
towards the person mask's own half-width along the bone (its distance transform), so thin and
broad bodies and loose clothes fit.

Coordinates: keypoints are (x, y) pixels with pixel centres at +0.5 (x right, y down), as the
project's pose sequences store them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from motionxfer.errors import BadInput
from motionxfer.parsing.labels import BACKGROUND, BOTTOM, HEAD, NUM_CLASSES, SHOES, SKIN, TOP

# Body segments, in the order of the distance stack.
SEGMENT_NAMES: tuple[str, ...] = (
    "head", "neck", "torso",
    "left_upper_arm", "left_forearm", "left_hand",
    "right_upper_arm", "right_forearm", "right_hand",
    "left_thigh", "left_shin", "left_foot",
    "right_thigh", "right_shin", "right_foot",
)
NUM_SEGMENTS = len(SEGMENT_NAMES)
ARM_SEGMENTS = (3, 4, 6, 7)  # upper arms and forearms
LEG_SEGMENTS = (9, 10, 12, 13)  # thighs and shins
# Class of a segment that does not depend on clothing lengths.
_FIXED_CLASS = {0: HEAD, 1: SKIN, 2: TOP, 5: SKIN, 8: SKIN, 11: SHOES, 14: SHOES}

_JOINT_FIELDS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "neck", "head_top",
)
# Names other layouts use for the points this parser groups.
_TOE_NAMES = {
    "left": ("left_big_toe", "left_small_toe", "left_foot_index", "left_toe"),
    "right": ("right_big_toe", "right_small_toe", "right_foot_index", "right_toe"),
}
_HAND_NAMES = {
    "left": ("left_hand", "left_fingertip", "left_pinky", "left_index", "left_thumb"),
    "right": ("right_hand", "right_fingertip", "right_pinky", "right_index", "right_thumb"),
}
_REQUIRED = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


@dataclass(frozen=True)
class JointLayout:
    """Where each body joint the parser uses sits in a keypoint array; None when the layout lacks it.

    `left_toes` / `left_hand` group several points (big and small toe, MediaPipe's foot index;
    hand centre, fingertip, pinky, index, thumb): their mean is used.
    """

    nose: int | None = None
    left_eye: int | None = None
    right_eye: int | None = None
    left_ear: int | None = None
    right_ear: int | None = None
    left_shoulder: int | None = None
    right_shoulder: int | None = None
    left_elbow: int | None = None
    right_elbow: int | None = None
    left_wrist: int | None = None
    right_wrist: int | None = None
    left_hip: int | None = None
    right_hip: int | None = None
    left_knee: int | None = None
    right_knee: int | None = None
    left_ankle: int | None = None
    right_ankle: int | None = None
    left_heel: int | None = None
    right_heel: int | None = None
    neck: int | None = None
    head_top: int | None = None
    left_toes: tuple[int, ...] = ()
    right_toes: tuple[int, ...] = ()
    left_hand: tuple[int, ...] = ()
    right_hand: tuple[int, ...] = ()

    @classmethod
    def from_names(cls, joint_names: tuple[str, ...] | list[str]) -> JointLayout:
        """The layout of keypoints named with COCO / MediaPipe body names (`left_shoulder`, ...).

        Works for the 30-point studio layout (COCO-WholeBody body and feet, neck, pelvis, head
        top, hands) and MediaPipe Pose's 33 landmarks. Raises BadInput without both shoulders
        and both hips.
        """
        index = {str(name): k for k, name in enumerate(joint_names)}
        missing = [name for name in _REQUIRED if name not in index]
        if missing:
            raise BadInput(
                f"the keypoint layout lacks {', '.join(missing)}; the parser needs both "
                "shoulders and both hips",
                hint="name the body joints with COCO/MediaPipe names (left_shoulder, right_hip, ...)",
            )
        values: dict[str, object] = {name: index.get(name) for name in _JOINT_FIELDS}
        for side in ("left", "right"):
            values[f"{side}_toes"] = tuple(index[n] for n in _TOE_NAMES[side] if n in index)
            values[f"{side}_hand"] = tuple(index[n] for n in _HAND_NAMES[side] if n in index)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class GeometryConfig:
    """Knobs of the geometric parser. Radii are fractions of the torso length."""

    sleeve_length: float = 0.3        # part of the arm (shoulder 0 .. wrist 1) the top covers
    bottom_length: float = 1.0        # part of the leg (hip 0 .. ankle 1) the bottom covers
    length_softness: float = 0.04     # width of the top/skin and bottom/skin transitions
    upper_arm_radius: float = 0.16
    forearm_radius: float = 0.13
    hand_radius: float = 0.13
    thigh_radius: float = 0.22
    shin_radius: float = 0.16
    foot_radius: float = 0.12
    neck_radius: float = 0.14
    head_width: float = 0.24          # head ellipse semi-axis across the face
    head_height: float = 0.28         # head ellipse semi-axis along the neck-to-crown line
    torso_margin: float = 0.08        # widen the shoulder-hip quadrilateral outwards by this
    adapt_radii: bool = True          # move capsule radii towards the mask's own half-width
    temperature: float = 0.35         # softness of the segment memberships in the prior

    def __post_init__(self) -> None:
        for name in ("sleeve_length", "bottom_length"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise BadInput(f"{name} must lie in 0..1, got {value}",
                               hint="0 = bare limb, 0.5 = to the elbow/knee, 1 = to the wrist/ankle")
        if self.temperature <= 0 or self.length_softness <= 0:
            raise BadInput("temperature and length_softness must be positive",
                           hint="use the defaults of GeometryConfig")


@dataclass(frozen=True)
class BodyField:
    """Per-pixel body geometry of one frame, inside the person's bounding box.

    distances: (S, h, w) float32 normalized distance to each segment (inf where a segment is
    missing); along: (S, h, w) float32 position along the arm or leg chain (0 shoulder/hip,
    1 wrist/ankle) for limb segments, nan elsewhere; mask: (h, w) bool person mask in the box;
    box: (top, left) of the box in the frame; frame_shape: (H, W).
    """

    distances: np.ndarray
    along: np.ndarray
    mask: np.ndarray
    box: tuple[int, int]
    frame_shape: tuple[int, int]

    def nearest(self) -> tuple[np.ndarray, np.ndarray]:
        """The nearest segment (h, w) int (-1 outside the mask or when no segment exists) and the
        margin (h, w) float32: second-nearest minus nearest normalized distance (0 outside)."""
        order = np.argsort(self.distances, axis=0)
        nearest = order[0]
        first = np.take_along_axis(self.distances, order[:1], axis=0)[0]
        second = (np.take_along_axis(self.distances, order[1:2], axis=0)[0]
                  if len(self.distances) > 1 else np.full_like(first, np.inf))
        valid = self.mask & np.isfinite(first)
        margin = np.where(valid, np.minimum(second - first, 1e3), 0.0).astype(np.float32)
        return np.where(valid, nearest, -1), margin

    def to_frame(self, values: np.ndarray, fill: float) -> np.ndarray:
        """Place box-sized values (h, w, ...) into a frame-sized array (H, W, ...) filled with `fill`."""
        height, width = self.frame_shape
        out = np.full((height, width) + values.shape[2:], fill, dtype=values.dtype)
        top, left = self.box
        out[top:top + values.shape[0], left:left + values.shape[1]] = values
        return out


@dataclass(frozen=True)
class GeometricParse:
    """labels: (H, W) uint8 six classes (0 outside the mask); prior: (H, W, 6) float32 class
    probabilities (background 1 outside the mask); segment: (H, W) int8 nearest body segment
    (-1 outside); margin: (H, W) float32 second-nearest minus nearest normalized distance."""

    labels: np.ndarray
    prior: np.ndarray
    segment: np.ndarray
    margin: np.ndarray


def _point(keypoints: np.ndarray, present: np.ndarray, index: int | None) -> np.ndarray | None:
    if index is None or not present[index]:
        return None
    return keypoints[index]


def _mean_point(keypoints: np.ndarray, present: np.ndarray, indices) -> np.ndarray | None:
    points = [keypoints[k] for k in indices if k is not None and present[k]]
    return np.mean(points, axis=0) if points else None


def _capsule(points: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of points (N, 2) to the segment start-end, and the position along it in 0..1."""
    direction = end - start
    length_squared = float(direction @ direction)
    if length_squared < 1e-9:
        return np.linalg.norm(points - start, axis=1), np.zeros(len(points))
    along = np.clip((points - start) @ direction / length_squared, 0.0, 1.0)
    closest = start + along[:, None] * direction
    return np.linalg.norm(points - closest, axis=1), along


def _radius_from_mask(half_width: np.ndarray, start: np.ndarray, end: np.ndarray,
                      box: tuple[int, int], default: float) -> float:
    """The person mask's half-width along the middle of a bone, kept within 0.6..1.5 x default."""
    top, left = box
    samples = start + np.linspace(0.3, 0.7, 7)[:, None] * (end - start)
    cols = np.clip((samples[:, 0] - 0.5 - left).round().astype(int), 0, half_width.shape[1] - 1)
    rows = np.clip((samples[:, 1] - 0.5 - top).round().astype(int), 0, half_width.shape[0] - 1)
    measured = float(np.median(half_width[rows, cols]))
    if measured <= 0:
        return default
    return float(np.clip(measured, 0.6 * default, 1.5 * default))


def body_field(
    mask: np.ndarray,
    keypoints: np.ndarray,
    layout: JointLayout,
    config: GeometryConfig = GeometryConfig(),
    present: np.ndarray | None = None,
) -> BodyField:
    """Normalized distances from every pixel of the person's box to every body segment.

    mask: (H, W) bool person mask; keypoints: (J, 2) pixel coordinates (x, y); present: (J,)
    bool, the joints to use (all finite ones when None). Raises BadInput when the shoulders or
    hips are missing or the mask is empty.
    """
    mask = np.asarray(mask, dtype=bool)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if mask.ndim != 2 or keypoints.ndim != 2 or keypoints.shape[1] != 2:
        raise BadInput(f"expected a (H, W) mask and (J, 2) keypoints, got {mask.shape} and "
                       f"{keypoints.shape}", hint="pass one frame at a time")
    finite = np.isfinite(keypoints).all(axis=1)
    present = finite if present is None else (np.asarray(present, dtype=bool) & finite)

    def point(name: str) -> np.ndarray | None:
        return _point(keypoints, present, getattr(layout, name))

    shoulders = [point("left_shoulder"), point("right_shoulder")]
    hips = [point("left_hip"), point("right_hip")]
    if any(p is None for p in shoulders + hips):
        raise BadInput("the shoulders and hips must be present to parse the body",
                       hint="skip frames where the pose detector lost the torso")
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise BadInput("the person mask is empty", hint="skip frames without a person")
    top, left = int(rows.min()), int(cols.min())
    box_mask = mask[top:rows.max() + 1, left:cols.max() + 1]
    height, width = box_mask.shape
    grid_rows, grid_cols = np.mgrid[0:height, 0:width]
    pixels = np.stack([grid_cols.ravel() + left + 0.5, grid_rows.ravel() + top + 0.5], axis=1)

    mid_shoulder = (shoulders[0] + shoulders[1]) / 2
    mid_hip = (hips[0] + hips[1]) / 2
    torso_length = max(float(np.linalg.norm(mid_shoulder - mid_hip)),
                       0.5 * float(np.linalg.norm(shoulders[0] - shoulders[1])), 4.0)
    half_width = (cv2.distanceTransform(box_mask.astype(np.uint8), cv2.DIST_L2, 3)
                  if config.adapt_radii else None)

    distances = np.full((NUM_SEGMENTS, pixels.shape[0]), np.inf)
    along = np.full((NUM_SEGMENTS, pixels.shape[0]), np.nan)

    def radius(start, end, fraction: float, adapt: bool = True) -> float:
        default = fraction * torso_length
        if half_width is None or not adapt:
            return default
        return _radius_from_mask(half_width, start, end, (top, left), default)

    # Head: an ellipse whose long axis runs from the neck towards the crown.
    neck = point("neck")
    neck = mid_shoulder if neck is None else neck
    face = _mean_point(keypoints, present, [layout.nose, layout.left_eye, layout.right_eye,
                                           layout.left_ear, layout.right_ear])
    crown = point("head_top")
    if face is not None or crown is not None:
        upper = crown if crown is not None else face
        up = upper - neck
        up_length = float(np.linalg.norm(up))
        up = up / up_length if up_length > 1e-6 else np.array([0.0, -1.0])
        semi_height = config.head_height * torso_length
        semi_width = config.head_width * torso_length
        if crown is not None:
            centre = crown - up * semi_height
        else:
            centre = face + up * 0.1 * torso_length
        across = np.array([-up[1], up[0]])
        offset = pixels - centre
        distances[0] = np.hypot(offset @ up / semi_height, offset @ across / semi_width)
        neck_top = centre - up * 0.6 * semi_height
        neck_distance, _ = _capsule(pixels, neck, neck_top)
        distances[1] = neck_distance / (config.neck_radius * torso_length)

    # Torso: the shoulder-hip quadrilateral, widened a little; 0 on its medial line, 1 on its edge.
    corners = np.array([shoulders[0], shoulders[1], hips[1], hips[0]])
    centre = corners.mean(axis=0)
    corners = centre + (corners - centre) * (1.0 + config.torso_margin)
    polygon = (corners - np.array([left, top]) - 0.5).astype(np.float32).reshape(-1, 1, 2)
    inside = np.zeros((height, width), np.uint8)
    cv2.fillPoly(inside, [np.round(polygon).astype(np.int32)], 1)
    depth_in = cv2.distanceTransform(inside, cv2.DIST_L2, 3).ravel()
    depth_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, 3).ravel()
    torso_half = max(float(depth_in.max()), 1.0)
    distances[2] = np.where(inside.ravel() > 0, 1.0 - depth_in / torso_half,
                            1.0 + depth_out / torso_half)

    # Limbs: capsules, with the position along the whole arm / leg chain.
    def chain(segments, root, middle, end, radii, extremity, extremity_radius) -> None:
        if root is None or middle is None:
            return
        first_length = float(np.linalg.norm(middle - root))
        second_length = float(np.linalg.norm(end - middle)) if end is not None else 0.0
        total = max(first_length + second_length, 1e-6)
        split = first_length / total if end is not None else 1.0
        distance, t = _capsule(pixels, root, middle)
        distances[segments[0]] = distance / radius(root, middle, radii[0])
        along[segments[0]] = t * split
        if end is None:
            return
        distance, t = _capsule(pixels, middle, end)
        distances[segments[1]] = distance / radius(middle, end, radii[1])
        along[segments[1]] = split + t * (1.0 - split)
        if len(segments) < 3:
            return
        if extremity is None:  # extend the last bone by a third of its length
            extremity = end + (end - middle) * 0.35
        distance, _ = _capsule(pixels, end, extremity)
        distances[segments[2]] = distance / (extremity_radius * torso_length)

    for side, first in (("left", 3), ("right", 6)):
        hand = _mean_point(keypoints, present, getattr(layout, f"{side}_hand"))
        chain((first, first + 1, first + 2), point(f"{side}_shoulder"), point(f"{side}_elbow"),
              point(f"{side}_wrist"), (config.upper_arm_radius, config.forearm_radius),
              hand, config.hand_radius)
    for side, first in (("left", 9), ("right", 12)):
        knee, ankle = point(f"{side}_knee"), point(f"{side}_ankle")
        chain((first, first + 1), point(f"{side}_hip"), knee, ankle,
              (config.thigh_radius, config.shin_radius), None, 0.0)
        distances[first + 2] = np.inf
        if ankle is None:
            continue
        toes = _mean_point(keypoints, present, getattr(layout, f"{side}_toes"))
        heel = point(f"{side}_heel")
        if toes is None and heel is None:  # only the ankle: a foot below it, along the shin
            below = ankle + (ankle - knee) * 0.25 if knee is not None else ankle + [0.0, 4.0]
            foot_ends = [(ankle, below)]
        else:
            ends = [p for p in (heel, toes) if p is not None]
            foot_ends = [(ankle, p) for p in ends] + ([(heel, toes)] if len(ends) == 2 else [])
        foot_radius = config.foot_radius * torso_length
        distances[first + 2] = np.min(
            [_capsule(pixels, start, end)[0] for start, end in foot_ends], axis=0) / foot_radius

    return BodyField(
        distances=distances.reshape(NUM_SEGMENTS, height, width).astype(np.float32),
        along=along.reshape(NUM_SEGMENTS, height, width).astype(np.float32),
        mask=box_mask,
        box=(top, left),
        frame_shape=mask.shape,
    )


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * values))


def segment_class_probabilities(
    field: BodyField, sleeve_length: float, bottom_length: float, softness: float
) -> np.ndarray:
    """P(class | segment, pixel): (S, h, w, 6) float32; the limbs' top/bottom versus skin split
    follows the clothing lengths along the chain."""
    shape = field.distances.shape
    probabilities = np.zeros(shape + (NUM_CLASSES,), np.float32)
    for segment, cls in _FIXED_CLASS.items():
        probabilities[segment, ..., cls] = 1.0
    for segments, length, covered in ((ARM_SEGMENTS, sleeve_length, TOP),
                                      (LEG_SEGMENTS, bottom_length, BOTTOM)):
        for segment in segments:
            t = np.nan_to_num(field.along[segment], nan=0.0)
            p_covered = _sigmoid((length - t) / softness)
            if length <= 0.0:
                p_covered = np.zeros_like(t)
            elif length >= 1.0:
                p_covered = np.ones_like(t)
            probabilities[segment, ..., covered] = p_covered
            probabilities[segment, ..., SKIN] = 1.0 - p_covered
    return probabilities


def class_prior(field: BodyField, sleeve_length: float, bottom_length: float,
                config: GeometryConfig = GeometryConfig()) -> np.ndarray:
    """The geometric class prior in the person's box: (h, w, 6) float32, rows sum to 1.

    Segment memberships are a softmax of -distance / temperature; inside the mask the
    background class is 0, outside it is 1.
    """
    logits = -field.distances / config.temperature
    logits = logits - logits.max(axis=0, keepdims=True)
    weights = np.exp(np.where(np.isfinite(logits), logits, -np.inf))  # (S, h, w)
    weights /= np.maximum(weights.sum(axis=0, keepdims=True), 1e-12)
    per_segment = segment_class_probabilities(field, sleeve_length, bottom_length,
                                              config.length_softness)
    prior = np.einsum("shw,shwc->hwc", weights, per_segment)
    prior[~field.mask] = 0.0
    prior[~field.mask, BACKGROUND] = 1.0
    return prior.astype(np.float32)


def parse_geometry(
    mask: np.ndarray,
    keypoints: np.ndarray,
    layout: JointLayout,
    config: GeometryConfig = GeometryConfig(),
    present: np.ndarray | None = None,
) -> GeometricParse:
    """Six-class parse of one frame from its person mask (H, W) bool and keypoints (J, 2).

    Every mask pixel gets the most probable class of the geometric prior (see `class_prior`);
    the clothing lengths come from `config`. See `body_field` for the arguments.
    """
    field = body_field(mask, keypoints, layout, config, present)
    prior = class_prior(field, config.sleeve_length, config.bottom_length, config)
    labels = np.where(field.mask, prior.argmax(axis=-1), BACKGROUND).astype(np.uint8)
    segment, margin = field.nearest()
    background_prior = np.zeros(NUM_CLASSES, np.float32)
    background_prior[BACKGROUND] = 1.0
    full_prior = np.broadcast_to(background_prior, field.frame_shape + (NUM_CLASSES,)).copy()
    top, left = field.box
    full_prior[top:top + prior.shape[0], left:left + prior.shape[1]] = prior
    return GeometricParse(
        labels=field.to_frame(labels, BACKGROUND),
        prior=full_prior,
        segment=field.to_frame(segment.astype(np.int8), -1),
        margin=field.to_frame(margin, 0.0),
    )
