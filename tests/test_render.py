"""Stick figures and label maps: pure functions of keypoint arrays."""

from __future__ import annotations

import numpy as np
import pytest

from motionxfer.errors import BadInput
from motionxfer.pose.render import (
    RenderStyle,
    label_map_channel_names,
    label_map_channels,
    render_label_maps,
    render_sequence,
    render_stick_figure,
)
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import (
    FACE_START,
    LEFT_HAND_START,
    MEDIAPIPE_HOLISTIC,
    RIGHT_HAND_START,
    Limb,
    Skeleton,
)

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
# 3 px strokes and no joint dots on a 64 px image
THICK = RenderStyle(line_width=3 / 64, hand_line_width=3 / 64, face_line_width=3 / 64,
                    joint_radius=0.0)

# a: 0, b: 1, c: 2, d: 3, e: 4, f: 5
TINY = Skeleton(
    name="tiny",
    joint_names=("a", "b", "c", "d", "e", "f"),
    limbs=(
        Limb((0,), (1,), RED, "body"),  # a - b
        Limb((0, 1), (2,), GREEN, "body"),  # midpoint of a and b - c
        Limb((3,), (4,), BLUE, "left_hand"),  # d - e
        Limb((4,), (5,), WHITE, "face"),  # e - f
    ),
)


def tiny_keypoints(**points: tuple[float, float]) -> np.ndarray:
    """(6, 3) keypoints: the named joints seen at the given (x, y), the rest missing."""
    keypoints = np.full((TINY.num_joints, 3), np.nan, np.float32)
    keypoints[:, 2] = 0.0
    for name, (x, y) in points.items():
        keypoints[TINY.index(name)] = (x, y, 1.0)
    return keypoints


def test_shape_dtype_and_black_background():
    image = render_stick_figure(tiny_keypoints(a=(10, 10), b=(50, 40)), TINY, 64, 48)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert image.any()
    assert not image[0:3, 60:64].any()


def test_deterministic():
    keypoints = tiny_keypoints(a=(10.3, 12.7), b=(50.1, 40.9), c=(33.3, 5.5))
    first = render_stick_figure(keypoints, TINY, 64, 64).tobytes()
    render_stick_figure(tiny_keypoints(a=(1, 1), b=(60, 60)), TINY, 64, 64)
    assert render_stick_figure(keypoints, TINY, 64, 64).tobytes() == first


def test_a_limb_lands_on_its_pixels():
    # Pixel centres are at +0.5: (10.5, 20.5) is the centre of column 10, row 20.
    image = render_stick_figure(tiny_keypoints(a=(10.5, 20.5), b=(50.5, 20.5)), TINY, 64, 64,
                                style=THICK)
    assert tuple(image[20, 30]) == RED  # the middle of the limb, full colour
    assert tuple(image[19, 30]) == RED and tuple(image[21, 30]) == RED  # 3 px wide
    assert not image[23:, :].any()  # nothing below the stroke
    assert not image[:18, :].any()
    assert not image[:, 53:].any()  # nothing beyond the end (round cap of radius 1.5)
    assert not image[:, :8].any()


def test_subpixel_position():
    # A 1 px line at y = 20.75 (continuous) is drawn between rows 20 and 21 with its weight at 20.25
    # in pixel-centre coordinates: the intensity centroid follows within a tenth of a pixel.
    style = RenderStyle(line_width=1 / 64, joint_radius=0.0)
    for y in (20.5, 20.75, 21.0):
        image = render_stick_figure(tiny_keypoints(a=(10.5, y), b=(50.5, y)), TINY, 64, 64,
                                    style=style)
        column = image[:, 30, 0].astype(np.float64)
        centroid = (np.arange(64) * column).sum() / column.sum()
        assert centroid == pytest.approx(y - 0.5, abs=0.1)


def test_invisible_joints_are_not_drawn():
    keypoints = tiny_keypoints(a=(10, 20), b=(50, 20))
    keypoints[1, 2] = 0.1  # below min_visibility 0.3
    assert not render_stick_figure(keypoints, TINY, 64, 64, style=THICK).any()
    dotted = render_stick_figure(keypoints, TINY, 64, 64, style=RenderStyle(joint_radius=4 / 64))
    assert dotted[18:23, 8:13].any()  # the seen joint a keeps its dot
    assert not dotted[:, 30:].any()  # no dot at b, no limb
    keypoints[1, 2] = 1.0
    keypoints[1, :2] = np.nan
    assert not render_stick_figure(keypoints, TINY, 64, 64, style=THICK).any()
    # a limb end that is the mean of a and b needs both: with b missing the green limb goes too
    keypoints = tiny_keypoints(a=(10, 20), c=(30, 60))
    assert not render_stick_figure(keypoints, TINY, 64, 64, style=THICK).any()
    keypoints = tiny_keypoints(a=(10, 20), b=(50, 20), c=(30, 60))
    image = render_stick_figure(keypoints, TINY, 64, 64, style=THICK)
    assert tuple(image[40, 30]) == GREEN  # on the way from (30, 20) to (30, 60)


def test_scaled_from_source_size():
    small = tiny_keypoints(a=(10.25, 20.5), b=(50.75, 30.0), c=(30.0, 60.0))
    large = small.copy()
    large[:, 0] *= 4.0  # a 256 x 128 source drawn into 64 x 64
    large[:, 1] *= 2.0
    direct = render_stick_figure(small, TINY, 64, 64)
    scaled = render_stick_figure(large, TINY, 64, 64, source_size=(256, 128))
    np.testing.assert_array_equal(direct, scaled)


def test_stroke_widths_follow_the_output_size():
    style = RenderStyle()
    assert style.stroke_widths(512, 512) == (5, 3, 1)
    assert style.stroke_widths(1024, 768) == (7, 3, 1)
    assert style.stroke_widths(64, 64) == (1, 1, 1)
    # and the drawn stroke has that width: the summed intensity across it (+ AA fringe < 0.5)
    for fraction, wanted in ((1 / 64, 1), (3 / 64, 3), (4 / 64, 5), (7 / 64, 7)):
        style = RenderStyle(line_width=fraction, joint_radius=0.0)
        image = render_stick_figure(tiny_keypoints(a=(5.5, 30.5), b=(60.5, 30.5)), TINY, 64, 64,
                                    style=style)
        across = image[:, 32, 0].astype(np.float64).sum() / 255
        assert wanted <= across < wanted + 0.5


def test_later_groups_are_drawn_on_top():
    # the face limb e - f crosses the red body limb a - b and the blue hand limb d - e
    keypoints = tiny_keypoints(a=(5.5, 30.5), b=(60.5, 30.5), d=(32.5, 2.5), e=(32.5, 20.5),
                               f=(32.5, 60.5))
    image = render_stick_figure(keypoints, TINY, 64, 64, style=THICK)
    assert tuple(image[30, 32]) == WHITE  # face over body
    assert tuple(image[10, 32]) == BLUE
    assert tuple(image[30, 10]) == RED


def test_joint_dots():
    keypoints = tiny_keypoints(a=(10.5, 20.5), b=(50.5, 20.5))
    dotted = render_stick_figure(keypoints, TINY, 64, 64,
                                 style=RenderStyle(line_width=1 / 64, joint_radius=4 / 64))
    plain = render_stick_figure(keypoints, TINY, 64, 64,
                                style=RenderStyle(line_width=1 / 64, joint_radius=0.0))
    assert tuple(dotted[23, 10]) == RED  # 3 px below the joint: inside the dot only
    assert not plain[23, 10].any()


def test_hands_and_face_switched_off_draw_nothing_there():
    keypoints = tiny_keypoints(a=(5.5, 30.5), b=(20.5, 30.5), d=(40.5, 5.5), e=(40.5, 30.5),
                               f=(40.5, 60.5))
    no_hands = render_stick_figure(keypoints, TINY, 64, 64,
                                   style=RenderStyle(draw_hands=False, joint_radius=0.0))
    no_face = render_stick_figure(keypoints, TINY, 64, 64,
                                  style=RenderStyle(draw_face=False, joint_radius=0.0))
    assert not no_hands[2:20, 36:45].any() and no_face[2:20, 36:45].any()
    assert not no_face[35:60, 36:45].any() and no_hands[35:60, 36:45].any()
    assert no_hands[30, 10].any() and no_face[30, 10].any()  # the body stays


def holistic_keypoints() -> np.ndarray:
    """(543, 3) a body, both hands and the face in separate parts of a 256 x 256 image."""
    skeleton = MEDIAPIPE_HOLISTIC
    keypoints = np.full((skeleton.num_joints, 3), np.nan, np.float32)
    keypoints[:, 2] = 0.0
    body = {
        "nose": (128, 40), "left_eye": (134, 34), "right_eye": (122, 34), "left_ear": (142, 38),
        "right_ear": (114, 38), "left_shoulder": (160, 70), "right_shoulder": (96, 70),
        "left_elbow": (180, 110), "right_elbow": (76, 110), "left_wrist": (190, 150),
        "right_wrist": (66, 150), "left_hip": (148, 150), "right_hip": (108, 150),
        "left_knee": (150, 200), "right_knee": (106, 200), "left_ankle": (152, 240),
        "right_ankle": (104, 240),
    }
    for name, (x, y) in body.items():
        keypoints[skeleton.index(name)] = (x, y, 0.9)
    angles = np.linspace(0.0, 2 * np.pi, 21, endpoint=False)
    for start, centre in ((LEFT_HAND_START, (230.0, 200.0)), (RIGHT_HAND_START, (20.0, 200.0))):
        keypoints[start:start + 21, 0] = centre[0] + 12 * np.cos(angles)
        keypoints[start:start + 21, 1] = centre[1] + 12 * np.sin(angles)
        keypoints[start:start + 21, 2] = 0.9
    face = np.random.default_rng(0).uniform(-10, 10, (468, 2))
    keypoints[FACE_START:, :2] = face + (220.0, 30.0)  # away from the head, to tell it apart
    keypoints[FACE_START:, 2] = 0.9
    return keypoints



def test_holistic_figure_switches():
    keypoints = holistic_keypoints()
    full = render_stick_figure(keypoints, MEDIAPIPE_HOLISTIC, 256, 256)
    assert full[185:216, 215:246].any() and full[185:216, 5:36].any()  # hands
    assert full[18:43, 208:233].any()  # face
    bare = render_stick_figure(keypoints, MEDIAPIPE_HOLISTIC, 256, 256,
                               style=RenderStyle(draw_hands=False, draw_face=False))
    assert not bare[185:216, 215:246].any() and not bare[185:216, 5:36].any()
    assert not bare[18:43, 208:233].any()
    hidden = keypoints.copy()
    hidden[LEFT_HAND_START:, 2] = 0.0
    np.testing.assert_array_equal(
        bare, render_stick_figure(hidden, MEDIAPIPE_HOLISTIC, 256, 256))


def test_label_map_channels():
    assert label_map_channels(TINY) == 2 + 1 + 1
    assert label_map_channel_names(TINY) == ("limb_0", "limb_1", "left_hand", "face")
    body_limbs = sum(limb.group == "body" for limb in MEDIAPIPE_HOLISTIC.limbs)
    assert label_map_channels(MEDIAPIPE_HOLISTIC) == body_limbs + 3
    assert label_map_channel_names(MEDIAPIPE_HOLISTIC)[-3:] == ("left_hand", "right_hand", "face")


def test_each_label_channel_holds_only_its_limb():
    keypoints = tiny_keypoints(a=(5.5, 10.5), b=(60.5, 10.5), c=(30.5, 40.5), d=(5.5, 60.5),
                               e=(30.5, 60.5), f=(60.5, 50.5))
    maps = render_label_maps(keypoints, TINY, 64, 64, style=THICK)
    assert maps.shape == (4, 64, 64) and maps.dtype == np.uint8
    for channel, limb in enumerate(TINY.limbs):
        alone = Skeleton("one", TINY.joint_names, (Limb(limb.start, limb.end, WHITE, "body"),))
        stroke = render_stick_figure(keypoints, alone, 64, 64, style=THICK)[..., 0]
        np.testing.assert_array_equal(maps[channel], stroke)


def test_label_maps_of_a_switched_off_group_are_empty():
    keypoints = holistic_keypoints()
    style = RenderStyle(draw_hands=False)
    maps = render_label_maps(keypoints, MEDIAPIPE_HOLISTIC, 128, 128, (256, 256), style)
    full = render_label_maps(keypoints, MEDIAPIPE_HOLISTIC, 128, 128, (256, 256))
    assert not maps[-3:-1].any() and full[-3:-1].all(axis=0).sum() == 0  # hands apart
    assert full[-3].any() and full[-2].any()
    np.testing.assert_array_equal(maps[:-3], full[:-3])
    np.testing.assert_array_equal(maps[-1], full[-1])


def test_render_sequence_matches_single_frames():
    frames = np.stack([tiny_keypoints(a=(10, 10 + t), b=(50, 40)) for t in range(3)])
    frames[2] = np.nan
    frames[2, :, 2] = 0.0
    poses = PoseSequence(frames, TINY, 30.0, (128, 128), np.array([True, True, False]),
                         np.arange(3) / 30.0)
    images = list(render_sequence(poses, 64, 64, RenderStyle()))
    assert len(images) == 3
    np.testing.assert_array_equal(
        images[1], render_stick_figure(frames[1], TINY, 64, 64, (128, 128)))
    assert images[0].any() and not images[2].any()


def test_wrong_shape_is_bad_input():
    with pytest.raises(BadInput):
        render_stick_figure(np.zeros((5, 3), np.float32), TINY, 64, 64)
    with pytest.raises(BadInput):
        render_stick_figure(tiny_keypoints(), TINY, 0, 64)
