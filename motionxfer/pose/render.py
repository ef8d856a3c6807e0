"""Stick figures: the generator's input, drawn OpenPose style with OpenCV.

Pure functions of arrays. Coordinates follow the PoseSequence convention: pixels of `source_size`
with the image's left/top edge at 0 (a pixel's centre at +0.5). They are scaled to the output size
and drawn with anti-aliased lines at 1/16 pixel precision (OpenCV's `shift`), so a figure moves
smoothly when its joints move by less than a pixel.

Drawing order is fixed, later strokes on top: body limbs (every limb whose group is not a hand or
the face, in the skeleton's order), body joint dots, left hand, right hand, face. Within the
hands and the face, limbs of one colour are drawn in one call (the order among colours is that of
their first limb). The same keypoints always give the same bytes.

`render_label_maps` draws the same strokes as separate channels (see `label_map_channel_names`).

With `RenderStyle.facing_fill`, the torso (shoulders and hips) is first filled with a grey that
says which way the body faces (`facing`): light with the chest toward the camera, dark with the
back, mid-grey side on. Left and right limbs have their own colours, so the facing is in a plain
stick figure too, but only as an arrangement of colours a generator must learn to read; the
head's strokes are the same from the front and the back, and clothes often look alike from
both sides (docs/metrics.md, "Facing").
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from motionxfer.errors import BadInput
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import Skeleton

SHIFT = 4  # fractional bits of the coordinates given to OpenCV
_ONE = 1 << SHIFT
_LIMIT = float(1 << 20)  # output pixels; farther points are clipped so fixed point stays in int32
GROUPED_GROUPS = ("left_hand", "right_hand", "face")  # one label channel each; the rest: per limb
_BODY, _HAND, _FACE = 0, 1, 2  # stroke kinds: which line width


@dataclass(frozen=True)
class RenderStyle:
    """How stick figures look. Widths and radii are fractions of the output's shorter side.

    min_visibility: a joint is drawn when its visibility is at least this; a limb end that is the
        mean of several joints needs all of them.
    line_width, hand_line_width, face_line_width: stroke widths; drawn as the nearest odd number
        of pixels, at least 1 (see `stroke_widths`): 4/512 draws 5 px at 512, 3 px at 256.
    joint_radius: radius of the dots on the body's limb ends (0: no dots); hands and face have none.
    draw_hands, draw_face: switch the hands and the face off (their label channels stay, empty).
    facing_fill: fill the torso with the grey of `facing` under the strokes (stick figures only).
    """

    min_visibility: float = 0.3
    line_width: float = 4 / 512
    hand_line_width: float = 2 / 512
    face_line_width: float = 1 / 512
    joint_radius: float = 3 / 512
    draw_hands: bool = True
    draw_face: bool = True
    facing_fill: bool = False

    def __post_init__(self) -> None:
        for name in ("line_width", "hand_line_width", "face_line_width", "joint_radius"):
            if not getattr(self, name) >= 0.0:
                raise BadInput(
                    f"render style {name} = {getattr(self, name)!r} must not be negative",
                    hint="give widths as fractions of the output's shorter side",
                )

    def stroke_widths(self, width: int, height: int) -> tuple[int, int, int]:
        """Body, hand and face stroke widths in pixels of a width x height output.

        OpenCV draws anti-aliased strokes an odd number of pixels wide (1, 3, 5, ...), so each
        width is the odd number nearest to the requested one (2 -> 3, 4 -> 5), at least 1.
        """
        side = min(width, height)
        return tuple(  # type: ignore[return-value]
            2 * int(fraction * side // 2) + 1
            for fraction in (self.line_width, self.hand_line_width, self.face_line_width)
        )


def _opencv_thickness(stroke_width: int) -> int:
    """OpenCV's `thickness` that draws an anti-aliased stroke `stroke_width` (odd) pixels wide:
    1 for 1, otherwise stroke_width - 1 (OpenCV widens thickness t to 2 * ceil(t / 2) + 1)."""
    return 1 if stroke_width <= 1 else stroke_width - 1


@dataclass(frozen=True)
class _Batch:
    limbs: np.ndarray  # positions into the plan's ordered limbs drawn in one call
    kind: int  # _BODY, _HAND or _FACE
    group: str
    color: tuple[int, ...]  # RGB, or (255,) for a label channel
    channel: int  # label channel (label-map batches only)


@dataclass(frozen=True)
class _Plan:
    """Index arrays for one skeleton, built once: every limb end of a frame in one numpy step."""

    start_joints: np.ndarray  # (L, K) joint indices, padded with 0
    start_mask: np.ndarray  # (L, K) bool, which of the K entries are real
    end_joints: np.ndarray
    end_mask: np.ndarray
    groups: tuple[str, ...]  # (L,) group of each ordered limb
    color_batches: tuple[_Batch, ...]  # RGB drawing, in drawing order, body batches first
    body_batches: int  # how many of them
    label_batches: tuple[_Batch, ...]  # label maps
    dot_joints: np.ndarray  # (D, K) body limb ends that get a dot
    dot_mask: np.ndarray
    dot_colors: tuple[tuple[int, int, int], ...]
    channel_names: tuple[str, ...]


def _padded(ends: list[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
    width = max((len(end) for end in ends), default=1)
    joints = np.zeros((len(ends), width), np.intp)
    mask = np.zeros((len(ends), width), bool)
    for row, end in enumerate(ends):
        joints[row, : len(end)] = end
        mask[row, : len(end)] = True
    return joints, mask


def _build_plan(skeleton: Skeleton) -> _Plan:
    body = [limb for limb in skeleton.limbs if limb.group not in GROUPED_GROUPS]
    ordered = body + [limb for group in GROUPED_GROUPS
                      for limb in skeleton.limbs if limb.group == group]
    start_joints, start_mask = _padded([limb.start for limb in ordered])
    end_joints, end_mask = _padded([limb.end for limb in ordered])

    color_batches: list[_Batch] = [
        _Batch(np.array([position]), _BODY, limb.group, limb.color, -1)
        for position, limb in enumerate(body)
    ]
    label_batches: list[_Batch] = [
        _Batch(np.array([position]), _BODY, limb.group, (255,), position)
        for position, limb in enumerate(body)
    ]
    channel_names = [f"limb_{position}" for position in range(len(body))]
    for group in GROUPED_GROUPS:
        positions = [p for p, limb in enumerate(ordered) if limb.group == group]
        if not positions:
            continue
        kind = _FACE if group == "face" else _HAND
        colors: dict[tuple[int, int, int], list[int]] = {}
        for position in positions:
            colors.setdefault(ordered[position].color, []).append(position)
        color_batches += [_Batch(np.array(members), kind, group, color, -1)
                          for color, members in colors.items()]
        label_batches.append(_Batch(np.array(positions), kind, group, (255,), len(channel_names)))
        channel_names.append(group)

    dots: dict[tuple[int, ...], tuple[int, int, int]] = {}
    for limb in body:
        dots.setdefault(limb.start, limb.color)
        dots.setdefault(limb.end, limb.color)
    dot_joints, dot_mask = _padded(list(dots))
    return _Plan(
        start_joints=start_joints, start_mask=start_mask, end_joints=end_joints,
        end_mask=end_mask, groups=tuple(limb.group for limb in ordered),
        color_batches=tuple(color_batches), body_batches=len(body),
        label_batches=tuple(label_batches),
        dot_joints=dot_joints, dot_mask=dot_mask, dot_colors=tuple(dots.values()),
        channel_names=tuple(channel_names),
    )


_PLANS: dict[int, tuple[Skeleton, _Plan]] = {}


def _plan(skeleton: Skeleton) -> _Plan:
    # Keyed by identity: hashing a 543-joint skeleton costs more than drawing a limb. The entry
    # holds the skeleton, so its id cannot be reused while cached.
    cached = _PLANS.get(id(skeleton))
    if cached is not None and cached[0] is skeleton:
        return cached[1]
    if len(_PLANS) >= 32:
        _PLANS.clear()
    plan = _build_plan(skeleton)
    _PLANS[id(skeleton)] = (skeleton, plan)
    return plan


def label_map_channels(skeleton: Skeleton) -> int:
    """How many channels `render_label_maps` gives for this layout."""
    return len(_plan(skeleton).channel_names)


def label_map_channel_names(skeleton: Skeleton) -> tuple[str, ...]:
    """Channel order of the label maps: "limb_<k>" for the k-th body limb (every limb outside the
    hands and face, in the skeleton's order), then "left_hand", "right_hand", "face" for those the
    layout has."""
    return _plan(skeleton).channel_names


def _mean_points(xy: np.ndarray, seen: np.ndarray, joints: np.ndarray,
                 mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) mean point of each end and (N,) whether all of its joints are seen."""
    valid = np.all(seen[joints] | ~mask, axis=1)
    points = np.where(mask[..., None], xy[joints], 0.0).sum(axis=1) / mask.sum(axis=1)[:, None]
    return points, valid


def _fixed_segments(keypoints: np.ndarray, skeleton: Skeleton, width: int, height: int,
                    source_size: tuple[int, int] | None, style: RenderStyle
                    ) -> tuple[_Plan, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Limb segments as fixed-point OpenCV coordinates (L, 2, 2), which are drawable (L,), the
    joints in OpenCV output coordinates (J, 2) and which joints are drawable (J,)."""
    if keypoints.shape != (skeleton.num_joints, 3):
        raise BadInput(
            f"keypoints of shape {keypoints.shape} for the {skeleton.num_joints}-joint layout "
            f"'{skeleton.name}'",
            hint="pass one frame's keypoints, (joints, 3): x, y, visibility",
        )
    if width < 1 or height < 1:
        raise BadInput(f"cannot render a {width}x{height} image", hint="give a positive size")
    plan = _plan(skeleton)
    source_width, source_height = source_size if source_size is not None else (width, height)
    scale = np.array([width / source_width, height / source_height])
    # continuous coordinates (edge at 0) -> OpenCV's (pixel centre at integer)
    xy = keypoints[:, :2].astype(np.float64) * scale - 0.5  # (J, 2)
    seen = drawable_joints(keypoints, style)  # (J,)
    xy = np.where(seen[:, None], np.clip(xy, -_LIMIT, _LIMIT), 0.0)
    starts, start_valid = _mean_points(xy, seen, plan.start_joints, plan.start_mask)
    ends, end_valid = _mean_points(xy, seen, plan.end_joints, plan.end_mask)
    segments = np.rint(np.stack([starts, ends], axis=1) * _ONE).astype(np.int32)  # (L, 2, 2)
    return plan, segments, start_valid & end_valid, xy, seen


def _enabled(group: str, style: RenderStyle) -> bool:
    if group in ("left_hand", "right_hand"):
        return style.draw_hands
    if group == "face":
        return style.draw_face
    return True


def render_stick_figure(
    keypoints: np.ndarray,
    skeleton: Skeleton,
    width: int,
    height: int,
    source_size: tuple[int, int] | None = None,
    style: RenderStyle = RenderStyle(),
) -> np.ndarray:
    """One frame's stick figure on black: (height, width, 3) uint8 RGB.

    keypoints: (J, 3) x, y, visibility in pixels of `source_size` (width, height); None means the
    output's own pixels.
    """
    plan, segments, drawable, xy, seen = _fixed_segments(keypoints, skeleton, width, height,
                                                         source_size, style)
    image = np.zeros((height, width, 3), np.uint8)
    if style.facing_fill:
        _fill_torso(image, keypoints, skeleton, xy, style.min_visibility)
    thickness = [_opencv_thickness(w) for w in style.stroke_widths(width, height)]
    for index, batch in enumerate(plan.color_batches):
        if index == plan.body_batches:  # body limbs done: their dots, then hands and face
            _draw_dots(image, plan, xy, seen, style, width, height)
        if not _enabled(batch.group, style):
            continue
        members = batch.limbs[drawable[batch.limbs]]
        if members.size:
            cv2.polylines(image, segments[members], False, batch.color, thickness[batch.kind],
                          cv2.LINE_AA, SHIFT)
    if len(plan.color_batches) == plan.body_batches:
        _draw_dots(image, plan, xy, seen, style, width, height)
    return image


FACING_JOINTS = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


def facing(keypoints: np.ndarray, skeleton: Skeleton, min_visibility: float = 0.3
           ) -> float | None:
    """Which way one frame's body faces: about +0.7 square to the camera, -0.7 with the back to
    it, 0 side on (clipped to [-1, 1]); None when a shoulder or hip is missing or not visible.

    With s = left shoulder - right shoulder and d = the hips' midpoint - the shoulders' midpoint
    (image coordinates, y down), facing = (s_x d_y - s_y d_x) / |d|^2: a person's left is on the
    image's right when they face the camera, whatever the body's tilt; the shoulder width over
    the torso length makes it fall toward 0 as the body turns side on.
    """
    if not all(skeleton.has(name) for name in FACING_JOINTS):
        return None
    joints = keypoints[[skeleton.index(name) for name in FACING_JOINTS]]
    if not (np.isfinite(joints).all() and (joints[:, 2] >= min_visibility).all()):
        return None
    left_shoulder, right_shoulder, left_hip, right_hip = joints[:, :2].astype(np.float64)
    across = left_shoulder - right_shoulder
    down = (left_hip + right_hip - left_shoulder - right_shoulder) / 2
    length = float(down @ down)
    if length == 0.0:
        return None
    return float(np.clip((across[0] * down[1] - across[1] * down[0]) / length, -1.0, 1.0))


def facing_grey(value: float) -> int:
    """The torso fill of a facing value: 128 side on, up to 255 facing the camera, down to 1."""
    return round(128 + 127 * value)


def _fill_torso(image: np.ndarray, keypoints: np.ndarray, skeleton: Skeleton, xy: np.ndarray,
                min_visibility: float) -> None:
    value = facing(keypoints, skeleton, min_visibility)
    if value is None:
        return
    corners = [skeleton.index(name) for name in
               ("left_shoulder", "right_shoulder", "right_hip", "left_hip")]
    polygon = np.rint(xy[corners] * _ONE).astype(np.int32)
    cv2.fillPoly(image, [polygon], (facing_grey(value),) * 3, cv2.LINE_AA, SHIFT)


def drawable_joints(keypoints: np.ndarray, style: RenderStyle) -> np.ndarray:
    """(J,) bool: the joints a stick figure draws (finite x, y and visibility >= the minimum)."""
    return np.isfinite(keypoints[:, :2]).all(axis=1) & (keypoints[:, 2] >= style.min_visibility)


def _draw_dots(image: np.ndarray, plan: _Plan, xy: np.ndarray, seen: np.ndarray,
               style: RenderStyle, width: int, height: int) -> None:
    radius = int(round(style.joint_radius * min(width, height) * _ONE))
    if radius <= 0 or plan.dot_joints.shape[0] == 0:
        return
    centres, valid = _mean_points(xy, seen, plan.dot_joints, plan.dot_mask)
    fixed = np.rint(centres * _ONE).astype(np.int32).tolist()
    for index in np.flatnonzero(valid).tolist():
        cv2.circle(image, fixed[index], radius, plan.dot_colors[index], -1, cv2.LINE_AA, SHIFT)


def render_label_maps(
    keypoints: np.ndarray,
    skeleton: Skeleton,
    width: int,
    height: int,
    source_size: tuple[int, int] | None = None,
    style: RenderStyle = RenderStyle(),
) -> np.ndarray:
    """The same strokes as `render_stick_figure`, one channel per body limb, then one per hand and
    one for the face: (C, height, width) uint8, 255 on a stroke (anti-aliased edges), 0 elsewhere.
    Channel order: `label_map_channel_names(skeleton)`. Joint dots are not drawn."""
    plan, segments, drawable, _, _ = _fixed_segments(keypoints, skeleton, width, height,
                                                     source_size, style)
    maps = np.zeros((len(plan.channel_names), height, width), np.uint8)
    thickness = [_opencv_thickness(w) for w in style.stroke_widths(width, height)]
    for batch in plan.label_batches:
        if not _enabled(batch.group, style):
            continue
        members = batch.limbs[drawable[batch.limbs]]
        if members.size:
            cv2.polylines(maps[batch.channel], segments[members], False, 255,
                          thickness[batch.kind], cv2.LINE_AA, SHIFT)
    return maps


def render_sequence(poses: PoseSequence, width: int, height: int,
                    style: RenderStyle = RenderStyle()) -> Iterator[np.ndarray]:
    """The stick figure of every frame, (height, width, 3) uint8 RGB, scaled from the poses'
    image size; frames without a person are black."""
    for keypoints in poses.keypoints:
        yield render_stick_figure(keypoints, poses.skeleton, width, height, poses.image_size, style)
