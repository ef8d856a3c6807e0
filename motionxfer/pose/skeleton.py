"""Keypoint layouts: joint names, the limbs drawn between them, and named groups.

A `Skeleton` is plain data. Stages find joints by name (`skeleton.index("left_ankle")`), so any
layout whose joints follow these names (MediaPipe, OpenPose, an imported CSV) works with pose
normalization and the face refiner.

A limb joins two *ends*; an end is the mean of one or more joints, so OpenPose's neck can be drawn
as the midpoint of the shoulders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from motionxfer.errors import BadInput
from motionxfer.pose import face_topology

# OpenPose's limb palette (RGB), used in that order for the body limbs.
OPENPOSE_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)


@dataclass(frozen=True)
class Limb:
    start: tuple[int, ...]  # joint indices averaged to one end
    end: tuple[int, ...]
    color: tuple[int, int, int]  # RGB
    group: str  # "body", "left_hand", "right_hand", "face", ...


@dataclass(frozen=True)
class Skeleton:
    name: str
    joint_names: tuple[str, ...]
    limbs: tuple[Limb, ...]
    groups: tuple[tuple[str, int, int], ...] = field(default=())  # (name, first, stop) ranges

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def has(self, name: str) -> bool:
        return name in self.joint_names

    def index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise BadInput(
                f"the keypoint layout '{self.name}' has no joint named '{name}'",
                hint="name the joints with motionxfer's names (left_ankle, right_ankle, nose, ...) "
                "when importing keypoints; see docs/keypoints.md",
            ) from None

    def group(self, name: str) -> slice:
        for group_name, first, stop in self.groups:
            if group_name == name:
                return slice(first, stop)
        raise BadInput(
            f"the keypoint layout '{self.name}' has no '{name}' group",
            hint="extract poses with --hands/--face (MediaPipe holistic) to get them",
        )

    def has_group(self, name: str) -> bool:
        return any(group_name == name for group_name, _, _ in self.groups)

    @property
    def has_face(self) -> bool:
        """Whether the layout shows a face the face refiner can crop: a `face` group (MediaPipe's
        mesh, OpenPose's 70 points) or an eye (the body layouts, whose face box comes from the
        nose, eyes and ears). An animal's snout and ears alone are no face."""
        return self.has_group("face") or self.has("left_eye") or self.has("right_eye")

    @property
    def group_names(self) -> tuple[str, ...]:
        return tuple(group_name for group_name, _, _ in self.groups)

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "joint_names": list(self.joint_names),
                "limbs": [[list(l.start), list(l.end), list(l.color), l.group] for l in self.limbs],
                "groups": [list(g) for g in self.groups],
            }
        )

    @staticmethod
    def from_json(text: str) -> Skeleton:
        data = json.loads(text)
        return Skeleton(
            name=data["name"],
            joint_names=tuple(data["joint_names"]),
            limbs=tuple(
                Limb(tuple(start), tuple(end), tuple(color), group)  # type: ignore[arg-type]
                for start, end, color, group in data["limbs"]
            ),
            groups=tuple((g[0], int(g[1]), int(g[2])) for g in data["groups"]),
        )


def chain_limbs(
    pairs: list[tuple[int, int]], offset: int, colors: list[tuple[int, int, int]], group: str
) -> list[Limb]:
    """Limbs for `pairs` of joint indices local to a group starting at `offset`."""
    return [
        Limb((a + offset,), (b + offset,), colors[i % len(colors)], group)
        for i, (a, b) in enumerate(pairs)
    ]


# --- MediaPipe holistic: 33 body + 21 left hand + 21 right hand + 468 face = 543 points -------

MEDIAPIPE_BODY_NAMES = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)
HAND_NAMES = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip", "index_mcp", "index_pip",
    "index_dip", "index_tip", "middle_mcp", "middle_pip", "middle_dip", "middle_tip", "ring_mcp",
    "ring_pip", "ring_dip", "ring_tip", "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)
HAND_CONNECTIONS = [
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11),
    (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20),
]
HAND_COLORS = [  # one hue per finger, as OpenPose draws hands
    (255, 0, 0), (255, 60, 0), (255, 120, 0), (255, 180, 0),
    (180, 255, 0), (120, 255, 0), (60, 255, 0), (0, 255, 0),
    (0, 255, 120), (0, 255, 180), (0, 255, 255), (0, 180, 255),
    (0, 60, 255), (0, 0, 255), (60, 0, 255), (120, 0, 255),
    (180, 0, 255), (255, 0, 255), (255, 0, 180), (255, 0, 120),
]
FACE_NUM_POINTS = 468
BODY_NUM_POINTS = len(MEDIAPIPE_BODY_NAMES)
LEFT_HAND_START = BODY_NUM_POINTS
RIGHT_HAND_START = LEFT_HAND_START + len(HAND_NAMES)
FACE_START = RIGHT_HAND_START + len(HAND_NAMES)


def _mediapipe_body_limbs() -> list[Limb]:
    i = MEDIAPIPE_BODY_NAMES.index
    shoulders = (i("left_shoulder"), i("right_shoulder"))
    hips = (i("left_hip"), i("right_hip"))
    ends: list[tuple[tuple[int, ...], tuple[int, ...]]] = [
        (shoulders, (i("nose"),)),
        (shoulders, (i("right_shoulder"),)),
        ((i("right_shoulder"),), (i("right_elbow"),)),
        ((i("right_elbow"),), (i("right_wrist"),)),
        (shoulders, (i("left_shoulder"),)),
        ((i("left_shoulder"),), (i("left_elbow"),)),
        ((i("left_elbow"),), (i("left_wrist"),)),
        (shoulders, hips),
        (hips, (i("right_hip"),)),
        ((i("right_hip"),), (i("right_knee"),)),
        ((i("right_knee"),), (i("right_ankle"),)),
        (hips, (i("left_hip"),)),
        ((i("left_hip"),), (i("left_knee"),)),
        ((i("left_knee"),), (i("left_ankle"),)),
        ((i("nose"),), (i("right_eye"),)),
        ((i("right_eye"),), (i("right_ear"),)),
        ((i("nose"),), (i("left_eye"),)),
        ((i("left_eye"),), (i("left_ear"),)),
    ]
    limbs = [Limb(a, b, OPENPOSE_COLORS[k], "body") for k, (a, b) in enumerate(ends)]
    feet = [
        ("left_ankle", "left_heel"), ("left_heel", "left_foot_index"),
        ("left_ankle", "left_foot_index"), ("right_ankle", "right_heel"),
        ("right_heel", "right_foot_index"), ("right_ankle", "right_foot_index"),
    ]
    foot_colors = [(0, 0, 255), (0, 0, 255), (0, 0, 255), (0, 255, 255), (0, 255, 255),
                   (0, 255, 255)]
    limbs += [Limb((i(a),), (i(b),), c, "body") for (a, b), c in zip(feet, foot_colors)]
    return limbs


def _face_limbs() -> list[Limb]:
    parts = [
        (face_topology.FACE_OVAL, (255, 255, 255)),
        (face_topology.LIPS, (255, 200, 200)),
        (face_topology.LEFT_EYE, (255, 255, 255)),
        (face_topology.RIGHT_EYE, (255, 255, 255)),
        (face_topology.LEFT_EYEBROW, (230, 230, 230)),
        (face_topology.RIGHT_EYEBROW, (230, 230, 230)),
    ]
    return [
        Limb((a + FACE_START,), (b + FACE_START,), color, "face")
        for edges, color in parts
        for a, b in edges
    ]


MEDIAPIPE_HOLISTIC = Skeleton(
    name="mediapipe_holistic",
    joint_names=(
        MEDIAPIPE_BODY_NAMES
        + tuple(f"left_hand_{n}" for n in HAND_NAMES)
        + tuple(f"right_hand_{n}" for n in HAND_NAMES)
        + tuple(f"face_{k}" for k in range(FACE_NUM_POINTS))
    ),
    limbs=tuple(
        _mediapipe_body_limbs()
        + chain_limbs(HAND_CONNECTIONS, LEFT_HAND_START, HAND_COLORS, "left_hand")
        + chain_limbs(HAND_CONNECTIONS, RIGHT_HAND_START, HAND_COLORS, "right_hand")
        + _face_limbs()
    ),
    groups=(
        ("body", 0, BODY_NUM_POINTS),
        ("left_hand", LEFT_HAND_START, RIGHT_HAND_START),
        ("right_hand", RIGHT_HAND_START, FACE_START),
        ("face", FACE_START, FACE_START + FACE_NUM_POINTS),
    ),
)

KNOWN_SKELETONS: dict[str, Skeleton] = {MEDIAPIPE_HOLISTIC.name: MEDIAPIPE_HOLISTIC}


# --- Limbs from joint names ----------------------------------------------------------------
# Any layout whose joints follow motionxfer's names gets the same stick figure: OpenPose's
# body limbs, in OpenPose's order and colours (the order MEDIAPIPE_HOLISTIC draws too). A limb
# end names the joints to average; the first option whose joints all exist is used, so "neck"
# falls back to the middle of the shoulders and "mid_hip" to the middle of the hips.

_NECK = (("neck",), ("left_shoulder", "right_shoulder"))
_HIPS = (("mid_hip",), ("left_hip", "right_hip"))
CONVENTIONAL_BODY_LIMBS: tuple[tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]],
                               ...] = (
    (_NECK, (("nose",),)),
    (_NECK, (("right_shoulder",),)),
    ((("right_shoulder",),), (("right_elbow",),)),
    ((("right_elbow",),), (("right_wrist",),)),
    (_NECK, (("left_shoulder",),)),
    ((("left_shoulder",),), (("left_elbow",),)),
    ((("left_elbow",),), (("left_wrist",),)),
    (_NECK, _HIPS),
    (_HIPS, (("right_hip",),)),
    ((("right_hip",),), (("right_knee",),)),
    ((("right_knee",),), (("right_ankle",),)),
    (_HIPS, (("left_hip",),)),
    ((("left_hip",),), (("left_knee",),)),
    ((("left_knee",),), (("left_ankle",),)),
    ((("nose",),), (("right_eye",),)),
    ((("right_eye",),), (("right_ear",),)),
    ((("nose",),), (("left_eye",),)),
    ((("left_eye",),), (("left_ear",),)),
)
_FOOT_LIMBS = (
    ("ankle", "heel"), ("heel", "foot_index"), ("ankle", "foot_index"),
    ("heel", "big_toe"), ("ankle", "big_toe"), ("big_toe", "small_toe"),
)
_FOOT_COLORS = {"left": (0, 0, 255), "right": (0, 255, 255)}


def conventional_limbs(joint_names: tuple[str, ...]) -> tuple[Limb, ...]:
    """The stick-figure limbs among `joint_names` that follow motionxfer's naming convention.

    Body limbs keep their OpenPose colour whichever of them exist; feet, hands
    (`left_hand_wrist`, ...) follow. Empty when no two names form a limb.
    """
    index = {name: k for k, name in enumerate(joint_names)}

    def end(options: tuple[tuple[str, ...], ...]) -> tuple[int, ...] | None:
        for names in options:
            if all(name in index for name in names):
                return tuple(index[name] for name in names)
        return None

    limbs = []
    for number, (start_options, stop_options) in enumerate(CONVENTIONAL_BODY_LIMBS):
        start, stop = end(start_options), end(stop_options)
        if start is not None and stop is not None and start != stop:
            limbs.append(Limb(start, stop, OPENPOSE_COLORS[number], "body"))
    for side in ("left", "right"):
        for first, second in _FOOT_LIMBS:
            a, b = f"{side}_{first}", f"{side}_{second}"
            if a in index and b in index:
                limbs.append(Limb((index[a],), (index[b],), _FOOT_COLORS[side], "body"))
    for side in ("left", "right"):
        for number, (a, b) in enumerate(HAND_CONNECTIONS):
            first, second = f"{side}_hand_{HAND_NAMES[a]}", f"{side}_hand_{HAND_NAMES[b]}"
            if first in index and second in index:
                limbs.append(Limb((index[first],), (index[second],), HAND_COLORS[number],
                                  f"{side}_hand"))
    return tuple(limbs)


# --- OpenPose: BODY_25 or COCO (18) body, optional 21 + 21 hand and 70 face points ----------

OPENPOSE_BODY25_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "mid_hip", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear", "left_big_toe",
    "left_small_toe", "left_heel", "right_big_toe", "right_small_toe", "right_heel",
)
OPENPOSE_COCO18_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
    "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
)
# OpenPose's 70 face points (the 68 iBUG 300-W points, then the pupils). "right" is the person's
# right, on the left of a frontal image. Named by part, since they are not MediaPipe's points.
_OPENPOSE_FACE_PARTS = (
    ("jaw", 17, False), ("right_eyebrow", 5, False), ("left_eyebrow", 5, False),
    ("nose_bridge", 4, False), ("nose_base", 5, False), ("right_eye", 6, True),
    ("left_eye", 6, True), ("outer_lip", 12, True), ("inner_lip", 8, True),
)
OPENPOSE_FACE_NAMES = tuple(
    f"face_{part}_{k}" for part, count, _ in _OPENPOSE_FACE_PARTS for k in range(count)
) + ("face_right_pupil", "face_left_pupil")
OPENPOSE_FACE_COLOR = (255, 255, 255)


def _openpose_face_limbs(offset: int) -> list[Limb]:
    limbs, first = [], offset
    for _, count, closed in _OPENPOSE_FACE_PARTS:
        pairs = [(k, k + 1) for k in range(count - 1)] + ([(count - 1, 0)] if closed else [])
        limbs += [Limb((first + a,), (first + b,), OPENPOSE_FACE_COLOR, "face") for a, b in pairs]
        first += count
    return limbs


def openpose_skeleton(body: str = "body25", hands: bool = False, face: bool = False) -> Skeleton:
    """OpenPose's layout: `body` "body25" or "coco18", then the left hand, right hand and face
    when asked for (in that order, as OpenPose writes them)."""
    body_names = {"body25": OPENPOSE_BODY25_NAMES, "coco18": OPENPOSE_COCO18_NAMES}[body]
    names = body_names
    groups = [("body", 0, len(body_names))]
    if hands:
        for side in ("left", "right"):
            groups.append((f"{side}_hand", len(names), len(names) + len(HAND_NAMES)))
            names = names + tuple(f"{side}_hand_{n}" for n in HAND_NAMES)
    limbs = list(conventional_limbs(names))
    if face:
        groups.append(("face", len(names), len(names) + len(OPENPOSE_FACE_NAMES)))
        limbs += _openpose_face_limbs(len(names))
        names = names + OPENPOSE_FACE_NAMES
    suffix = ("_hands" if hands else "") + ("_face" if face else "")
    return Skeleton(f"openpose_{body}{suffix}", names, tuple(limbs), tuple(groups))


OPENPOSE_BODY25 = openpose_skeleton("body25")
OPENPOSE_BODY25_HANDS_FACE = openpose_skeleton("body25", hands=True, face=True)
OPENPOSE_COCO18 = openpose_skeleton("coco18")
for _layout in (OPENPOSE_BODY25, OPENPOSE_BODY25_HANDS_FACE, OPENPOSE_COCO18) + tuple(
    openpose_skeleton(body, hands, face)
    for body in ("body25", "coco18") for hands in (False, True) for face in (False, True)
):
    KNOWN_SKELETONS.setdefault(_layout.name, _layout)
