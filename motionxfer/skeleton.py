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

from motionxfer import face_topology
from motionxfer.errors import BadInput

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
