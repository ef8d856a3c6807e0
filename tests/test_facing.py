"""The facing fill: which way a body faces, drawn into the stick figure's torso, recorded in the
checkpoint, refused where it cannot be drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from motionxfer.checkpoint import Checkpoint
from motionxfer.conditioning import Conditioning
from motionxfer.errors import BadInput
from motionxfer.pose.render import RenderStyle, facing, facing_grey, render_stick_figure
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC, Limb, Skeleton
from motionxfer.training.config import TrainConfig
from motionxfer.training.train import train_target
from tests.test_train import BODY, make_project, quick_config, tiny_preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def body(points: dict[str, tuple[float, float]] = BODY) -> np.ndarray:
    """(J, 3) MediaPipe keypoints of a 64 px frame: the given joints seen, the rest missing."""
    keypoints = np.full((MEDIAPIPE_HOLISTIC.num_joints, 3), np.nan, np.float32)
    keypoints[:, 2] = 0.0
    for name, (x, y) in points.items():
        keypoints[MEDIAPIPE_HOLISTIC.index(name)] = (x, y, 1.0)
    return keypoints


def mirrored(points: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """The same figure seen from behind: each left joint where its right one was."""
    swap = {"left": "right", "right": "left"}
    return {(swap[name.split("_")[0]] + name[name.index("_"):] if name.split("_")[0] in swap
             else name): xy for name, xy in points.items()}


def test_facing_is_positive_toward_the_camera_negative_away_and_zero_side_on():
    toward = facing(body(), MEDIAPIPE_HOLISTIC)
    # BODY: shoulders 12 px apart, the hips' midpoint 18 px below the shoulders'
    assert toward == pytest.approx(12 / 18)
    assert facing(body(mirrored(BODY)), MEDIAPIPE_HOLISTIC) == pytest.approx(-12 / 18)
    side_on = {**BODY, "left_shoulder": (32, 20), "right_shoulder": (32, 20),
               "left_hip": (32, 38), "right_hip": (32, 38)}
    assert facing(body(side_on), MEDIAPIPE_HOLISTIC) == pytest.approx(0.0)
    # lying on the floor (the figure turned by 90 degrees about the origin) faces the same way
    turned = {name: (-y, x) for name, (x, y) in BODY.items()}
    assert facing(body(turned), MEDIAPIPE_HOLISTIC) == pytest.approx(toward)


def test_facing_needs_both_shoulders_and_hips():
    assert facing(body({k: v for k, v in BODY.items() if k != "left_hip"}),
                  MEDIAPIPE_HOLISTIC) is None
    faint = body()
    faint[MEDIAPIPE_HOLISTIC.index("right_shoulder"), 2] = 0.1  # below the drawing's 0.3
    assert facing(faint, MEDIAPIPE_HOLISTIC) is None
    animal = Skeleton("fish", ("head", "tail"), (Limb((0,), (1,), (255, 0, 0), "body"),))
    assert facing(np.array([[1, 1, 1], [5, 5, 1]], np.float32), animal) is None


def test_the_fill_greys_the_torso_under_the_strokes():
    fill = RenderStyle(facing_fill=True)
    inside = (58, 58)  # (y, x) at 128 px: inside the torso, off the strokes
    plain = render_stick_figure(body(), MEDIAPIPE_HOLISTIC, 128, 128, (64, 64))
    front = render_stick_figure(body(), MEDIAPIPE_HOLISTIC, 128, 128, (64, 64), fill)
    back = render_stick_figure(body(mirrored(BODY)), MEDIAPIPE_HOLISTIC, 128, 128, (64, 64), fill)
    assert not plain[inside].any()
    assert front[inside].tolist() == [facing_grey(12 / 18)] * 3
    assert back[inside].tolist() == [facing_grey(-12 / 18)] * 3
    assert facing_grey(12 / 18) > 128 > facing_grey(-12 / 18) > 0  # never the background's 0
    # outside the torso, the same strokes
    changed = np.any(front != plain, axis=-1)
    rows, columns = np.nonzero(changed)
    assert 38 <= rows.min() and rows.max() <= 78 and 50 <= columns.min() and columns.max() <= 78


def test_the_conditioning_records_the_fill_and_draws_it():
    conditioning = Conditioning.for_skeleton("stick_figure", MEDIAPIPE_HOLISTIC, facing=True)
    assert conditioning.channels == 3  # the same three channels
    assert Conditioning.from_dict(conditioning.to_dict(), "test") == conditioning
    assert conditioning.without_texture().facing
    assert not Conditioning.from_dict({"kind": "stick_figure", "channels": 3}, "old").facing
    drawn = conditioning.encode(body(), MEDIAPIPE_HOLISTIC, 128, 128, (64, 64))
    assert drawn[58, 58].tolist() == [facing_grey(12 / 18)] * 3
    with pytest.raises(BadInput, match="label maps"):
        Conditioning.for_skeleton("label_maps", MEDIAPIPE_HOLISTIC, facing=True)
    with pytest.raises(BadInput, match="facing"):
        TrainConfig(facing=True, conditioning="label_maps")


def test_training_with_the_fill_records_it_and_resume_keeps_it(tmp_path: Path) -> None:
    project = make_project(tmp_path / "me")
    config = quick_config(steps=2, face_refiner=False, facing=True)
    result = train_target(project, config, tiny_preset())
    assert Checkpoint.load(result.checkpoint).conditioning.facing
    with pytest.raises(BadInput, match="facing"):
        train_target(project, quick_config(steps=4, face_refiner=False, facing=False), None,
                     resume=True)
