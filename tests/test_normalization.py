"""Global pose normalization on exact ground-truth joints (tests/fixtures/norm_*.npz).

The gallery fixtures are two bodies of different heights (leg lengths 0.76 m and 0.92 m)
performing the same motion in front of the same camera; the studio fixtures are a source dancer,
the target's training video (every 6th frame) and the ground truth of the target performing the
source's motion. scripts/make_normalization_fixtures.py made them from the shared data.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from motionxfer.errors import BadInput, NoPersonFound
from motionxfer.parsing.global_alignment import LayoutExtent
from motionxfer.pose.normalization import (
    AnkleStatistics,
    NormalizeConfig,
    ankle_statistics,
    apply_normalization,
    box_statistics,
    fit_normalization,
    normalization_method,
    normalize_poses,
)
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC, Skeleton

FIXTURES = Path(__file__).parent / "fixtures"
CONFIG = NormalizeConfig()


# EDN's horizontal placement: the source's median column on the target's (the default is
# "source_position", see docs/normalization.md for the measurement behind it).
TARGET_MEDIAN = NormalizeConfig(horizontal="target_median")

def load_fixture(name: str) -> PoseSequence:
    """A PoseSequence of the 30 ground-truth joints; visibility is the fixture's visible flag."""
    with np.load(FIXTURES / f"{name}.npz") as data:
        names = tuple(str(n) for n in data["names"])
        xy = data["kp2d"].astype(np.float32)  # (T, 30, 2)
        visible = data["visible"].astype(np.float32)  # (T, 30)
        fps = float(data["fps"])
        width, height = (int(v) for v in data["image_size"])
    frames = xy.shape[0]
    return PoseSequence(
        keypoints=np.concatenate([xy, visible[..., None]], axis=-1),
        skeleton=Skeleton("ground_truth_30", names, ()),
        fps=fps,
        image_size=(width, height),
        person_present=np.ones(frames, bool),
        timestamps=np.arange(frames) / fps,
    )


def moved(poses: PoseSequence, keypoints: np.ndarray) -> PoseSequence:
    return dataclasses.replace(poses, keypoints=keypoints.astype(np.float32))


def ground_rows(poses: PoseSequence) -> np.ndarray:  # (T,) mean of the two ankles' rows
    left, right = poses.skeleton.index("left_ankle"), poses.skeleton.index("right_ankle")
    return 0.5 * (poses.keypoints[:, left, 1] + poses.keypoints[:, right, 1]).astype(np.float64)


@pytest.fixture(scope="module")
def short_body() -> PoseSequence:
    return load_fixture("norm_gallery_id0")


@pytest.fixture(scope="module")
def tall_body() -> PoseSequence:
    return load_fixture("norm_gallery_id3")


def assert_lands_on(after, wanted, rows_px: float, heights_rel: float) -> None:
    """The normalized source's close/far ankle rows and heights are the target's."""
    assert after.close_ankle_y == pytest.approx(wanted.close_ankle_y, abs=rows_px)
    assert after.far_ankle_y == pytest.approx(wanted.far_ankle_y, abs=rows_px)
    assert after.close_height == pytest.approx(wanted.close_height, rel=heights_rel)
    assert after.far_height == pytest.approx(wanted.far_height, rel=heights_rel)


def test_statistics_of_a_taller_body_are_larger(short_body, tall_body):
    short, tall = ankle_statistics(short_body), ankle_statistics(tall_body)
    assert tall.close_height > short.close_height * 1.1
    assert short.close_ankle_y > short.far_ankle_y + 10  # the motion walks in depth
    assert tall.close_height > tall.far_height  # closer looks bigger
    assert short.frames_used >= CONFIG.min_frames
    assert AnkleStatistics.from_dict(short.to_dict()) == short


@pytest.mark.parametrize("source_name, target_name", [
    ("norm_gallery_id0", "norm_gallery_id3"),
    ("norm_gallery_id3", "norm_gallery_id0"),
])
def test_source_statistics_land_on_the_targets(source_name, target_name):
    # Same motion, two bodies: after normalization the source stands where the target stands and
    # is as tall there. The statistics of the result are measured again from scratch (other
    # frames fall inside the quantile windows), so they agree to a fraction of a pixel, not
    # exactly: 1 px for rows (0.5 % of the frame) and 1.5 % for heights.
    source, target = load_fixture(source_name), load_fixture(target_name)
    normalized, normalization = normalize_poses(source, target, TARGET_MEDIAN)
    after, wanted = ankle_statistics(normalized), ankle_statistics(target)
    assert_lands_on(after, wanted, rows_px=1.0, heights_rel=0.015)
    assert after.median_ankle_x == pytest.approx(wanted.median_ankle_x, abs=1.0)
    assert not normalization.single_scale


def test_normalized_source_is_close_to_the_ground_truth_transfer(short_body, tall_body):
    # The gallery's second body performs exactly the first one's motion: the ground truth of the
    # transfer. Without normalization the joints are 16 px apart on average; the bodies'
    # proportions differ (legs vs torso), so even a perfect similarity leaves ~2 px.
    normalized, _ = normalize_poses(short_body, tall_body)
    error = np.linalg.norm(normalized.xy - tall_body.xy, axis=-1).mean()
    untouched = np.linalg.norm(short_body.xy - tall_body.xy, axis=-1).mean()
    assert untouched > 12.0
    assert error < 3.5


def test_studio_source_onto_target_training_statistics():
    # A different motion in the target's training video than in the source: the statistics of
    # the normalized source land on the target's within 1.5 px and 3 % (posture mix differs).
    source = load_fixture("norm_studio_source0")
    target_training = load_fixture("norm_studio_target0")
    truth = load_fixture("norm_studio_target0_source0")
    normalized, _ = normalize_poses(source, target_training)
    after, wanted = ankle_statistics(normalized), ankle_statistics(target_training)
    assert_lands_on(after, wanted, rows_px=1.5, heights_rel=0.03)
    # EDN maps the source's depth range onto the target's (not a physical retargeting), so it
    # cannot match the ground truth exactly: 4.1 px measured, 7.7 px without normalization.
    error = np.linalg.norm(normalized.xy - truth.xy, axis=-1).mean()
    assert error < 5.5


def test_scaled_and_shifted_copy_maps_back_exactly(tall_body):
    copy = tall_body.keypoints.copy()
    copy[..., :2] = copy[..., :2] * 0.7 + np.array([31.0, -17.5], np.float32)
    source = moved(tall_body, copy)
    normalized, normalization = normalize_poses(source, tall_body, TARGET_MEDIAN)
    np.testing.assert_allclose(normalization.scale, 1 / 0.7, rtol=1e-4)
    np.testing.assert_allclose(normalized.xy, tall_body.xy, atol=0.5)
    assert np.abs(normalized.xy - tall_body.xy).max() < 0.05  # float16 fixture, float32 maths


def compress_depth(poses: PoseSequence, factor: float, horizon_row: float) -> PoseSequence:
    """The same motion performed over `factor` of the depth range, seen by a pinhole camera.

    Over a flat floor the image size of a body is proportional to its ground row minus the
    horizon row, so moving the ground row g to g' scales the body about its ground point by
    (g' - horizon) / (g - horizon).
    """
    rows = ground_rows(poses)  # (T,)
    middle = np.median(rows)
    new_rows = middle + factor * (rows - middle)
    scale = (new_rows - horizon_row) / (rows - horizon_row)  # (T,)
    keypoints = poses.keypoints.astype(np.float64).copy()
    left, right = poses.skeleton.index("left_ankle"), poses.skeleton.index("right_ankle")
    ground_x = 0.5 * (keypoints[:, left, 0] + keypoints[:, right, 0])
    keypoints[..., 0] = ground_x[:, None] + (keypoints[..., 0] - ground_x[:, None]) * scale[:, None]
    keypoints[..., 1] = new_rows[:, None] + (keypoints[..., 1] - rows[:, None]) * scale[:, None]
    return moved(poses, keypoints)


def test_source_moving_over_half_the_depth_range_spans_the_targets(tall_body):
    # The camera looks slightly down: its horizon is near row 109 of 256.
    source = compress_depth(tall_body, 0.5, horizon_row=109.0)
    source_statistics, target_statistics = ankle_statistics(source), ankle_statistics(tall_body)
    assert source_statistics.depth_range < 0.6 * target_statistics.depth_range
    normalized, normalization = normalize_poses(source, tall_body)
    after = ankle_statistics(normalized)
    assert after.close_ankle_y == pytest.approx(target_statistics.close_ankle_y, abs=1.0)
    assert after.far_ankle_y == pytest.approx(target_statistics.far_ankle_y, abs=1.0)
    assert after.close_height == pytest.approx(target_statistics.close_height, rel=0.015)
    assert after.far_height == pytest.approx(target_statistics.far_height, rel=0.015)
    # and the figure is the target's own again, up to how the heights measured near close and
    # far follow the pinhole model (this motion crouches at some depths): 1.4 px measured
    error = np.linalg.norm(normalized.xy - tall_body.xy, axis=-1)
    assert np.median(error) < 2.0


def test_source_resolution_does_not_matter(short_body, tall_body):
    # The same source filmed at twice the resolution gives the same figure in the target's frame.
    doubled = short_body.keypoints.copy()
    doubled[..., :2] *= 2.0
    large = dataclasses.replace(short_body, keypoints=doubled, image_size=(512, 512))
    from_large, _ = normalize_poses(large, tall_body)
    from_small, _ = normalize_poses(short_body, tall_body)
    np.testing.assert_allclose(from_large.xy, from_small.xy, atol=1e-3)


def test_horizontal_placement(short_body, tall_body):
    target_statistics = ankle_statistics(tall_body)
    shifted = short_body.keypoints.copy()
    shifted[..., 0] += 60.0  # the source dances right of centre
    source = moved(short_body, shifted)
    source_statistics = ankle_statistics(source)
    follow_target, _ = normalize_poses(source, tall_body, TARGET_MEDIAN)
    keep_source, _ = normalize_poses(source, tall_body)  # the default
    assert ankle_statistics(follow_target).median_ankle_x == pytest.approx(
        target_statistics.median_ankle_x, abs=1.0)
    assert ankle_statistics(keep_source).median_ankle_x == pytest.approx(
        source_statistics.median_ankle_x, abs=1.0)  # same frame width: the same column
    assert source_statistics.median_ankle_x > target_statistics.median_ankle_x + 40


def test_edn_scale_model_agrees_at_close_and_far(short_body, tall_body):
    edn = NormalizeConfig(scale_model="edn")
    normalized, _ = normalize_poses(short_body, tall_body, edn)
    after, wanted = ankle_statistics(normalized, edn), ankle_statistics(tall_body, edn)
    assert after.close_height == pytest.approx(wanted.close_height, rel=0.015)
    assert after.far_height == pytest.approx(wanted.far_height, rel=0.015)


def test_raised_leg_frames_are_left_out_of_the_statistics(tall_body):
    statistics = ankle_statistics(tall_body)
    left = tall_body.skeleton.index("left_ankle")
    right = tall_body.skeleton.index("right_ankle")
    lifted_frames = np.arange(20, 200, 3)  # 60 frames: a third of the video
    lifted = tall_body.keypoints.copy()
    lifted[lifted_frames, left, 1] -= 0.3 * statistics.median_height
    without = tall_body.keypoints.copy()
    without[np.ix_(lifted_frames, [left, right], [0, 1])] = np.nan
    without[np.ix_(lifted_frames, [left, right], [2])] = 0.0

    with_lifts = ankle_statistics(moved(tall_body, lifted))
    reference = ankle_statistics(moved(tall_body, without))
    # The lifted frames still give a ground row (the standing foot), which the jump detector of
    # their neighbours sees: a frame or two may differ, so rows agree to 0.1 px, not exactly.
    assert abs(with_lifts.frames_used - reference.frames_used) <= 2
    assert with_lifts.frames_used < statistics.frames_used - 50
    for name in ("close_ankle_y", "far_ankle_y", "median_ankle_y"):
        assert getattr(with_lifts, name) == pytest.approx(getattr(reference, name), abs=0.1)
    for name in ("close_height", "far_height"):
        assert getattr(with_lifts, name) == pytest.approx(getattr(reference, name), rel=0.01)
    # counted as standing, the lifted frames would pull the far position up by far more
    # (the jump detector would catch lone lifted frames: switch it off too)
    counting = NormalizeConfig(raised_leg_threshold=5.0, airborne_threshold=5.0)
    counted = ankle_statistics(moved(tall_body, lifted), counting)
    assert counted.far_ankle_y < reference.far_ankle_y - 5.0


def test_missing_ankles_get_interpolated_normalization(tall_body, short_body):
    source_statistics, target_statistics = ankle_statistics(short_body), ankle_statistics(tall_body)
    full = fit_normalization(short_body, source_statistics, target_statistics)
    gap = slice(100, 112)
    left, right = short_body.skeleton.index("left_ankle"), short_body.skeleton.index("right_ankle")
    keypoints = short_body.keypoints.copy()
    keypoints[gap, left] = (np.nan, np.nan, 0.0)
    keypoints[gap, right] = (np.nan, np.nan, 0.0)
    source = moved(short_body, keypoints)
    normalization = fit_normalization(source, source_statistics, target_statistics)
    normalized = apply_normalization(source, normalization, tall_body.image_size)

    assert normalization.interpolated[gap].all()
    assert not full.interpolated[gap].any()
    np.testing.assert_array_equal(normalization.interpolated[:95], full.interpolated[:95])
    assert np.isfinite(normalization.scale).all() and np.isfinite(normalization.offset).all()
    # the scale in the gap stays between its values at the gap's edges (plus smoothing slack)
    edges = normalization.scale[[99, 112]]
    assert (normalization.scale[gap] > edges.min() - 0.01).all()
    assert (normalization.scale[gap] < edges.max() + 0.01).all()
    # ... is close to what the ankles would have given (a 12-frame gap in smooth motion)
    np.testing.assert_allclose(normalization.scale[gap], full.scale[gap], rtol=0.02)
    # other joints of gap frames are moved; the missing ankles stay missing
    assert np.isfinite(normalized.keypoints[gap, 0, :2]).all()
    assert np.isnan(normalized.keypoints[gap, left, :2]).all()
    assert (normalized.keypoints[gap, left, 2] == 0).all()
    # frames far from the gap are untouched by it
    np.testing.assert_allclose(normalization.scale[:80], full.scale[:80], rtol=1e-9)


def test_a_jump_does_not_move_the_ground(tall_body):
    # Lift the whole body by 15 % of its height for 6 frames: a jump, not a step back.
    statistics = ankle_statistics(tall_body)
    jump = slice(60, 66)
    keypoints = tall_body.keypoints.copy()
    keypoints[jump, :, 1] -= 0.15 * statistics.median_height
    jumping = moved(tall_body, keypoints)
    normalized, normalization = normalize_poses(jumping, tall_body)
    assert normalization.interpolated[jump].all()
    # the figure rises by the jump, scaled by the body scale (1 here), not by a depth change
    rise = tall_body.xy[jump, :, 1] - normalized.xy[jump, :, 1]
    assert np.median(rise) == pytest.approx(0.15 * statistics.median_height, rel=0.1)


def test_source_that_stays_at_one_depth_gets_one_scale(tall_body, short_body):
    # Freeze the short body's ground row: every frame moved to stand at its median row.
    rows = ground_rows(short_body)
    keypoints = short_body.keypoints.copy()
    keypoints[..., 1] += (np.median(rows) - rows)[:, None].astype(np.float32)
    still = moved(short_body, keypoints)
    normalized, normalization = normalize_poses(still, tall_body)
    source_statistics, target_statistics = ankle_statistics(still), ankle_statistics(tall_body)
    assert normalization.single_scale
    np.testing.assert_allclose(
        normalization.scale, target_statistics.median_height / source_statistics.median_height
    )
    assert np.median(ground_rows(normalized)) == pytest.approx(
        target_statistics.median_ankle_y, abs=1.0)


def test_inputs_are_not_changed(short_body, tall_body):
    source_before = short_body.keypoints.copy()
    target_before = tall_body.keypoints.copy()
    normalized, normalization = normalize_poses(short_body, tall_body)
    np.testing.assert_array_equal(short_body.keypoints, source_before)
    np.testing.assert_array_equal(tall_body.keypoints, target_before)
    assert normalized.keypoints is not short_body.keypoints
    again = apply_normalization(short_body, normalization, tall_body.image_size)
    np.testing.assert_array_equal(again.keypoints, normalized.keypoints)
    np.testing.assert_array_equal(normalized.visibility, short_body.visibility)


def test_apply_keeps_nan_and_sets_the_target_image_size(short_body, tall_body):
    keypoints = short_body.keypoints.copy()
    keypoints[5, 3] = (np.nan, np.nan, 0.0)
    source = moved(short_body, keypoints)
    _, normalization = normalize_poses(short_body, tall_body)
    normalized = apply_normalization(source, normalization, (640, 480))
    assert normalized.image_size == (640, 480)
    assert np.isnan(normalized.keypoints[5, 3, :2]).all()
    expected = short_body.xy[7] * normalization.scale[7] + normalization.offset[7]
    np.testing.assert_allclose(normalized.xy[7], expected, atol=1e-4)
    with pytest.raises(BadInput):
        apply_normalization(source.slice(0, 10), normalization, (640, 480))


def test_too_few_standing_frames_is_no_person_found(tall_body):
    keypoints = tall_body.keypoints.copy()
    left = tall_body.skeleton.index("left_ankle")
    keypoints[10:, left] = (np.nan, np.nan, 0.0)  # the feet leave the picture after 10 frames
    with pytest.raises(NoPersonFound) as caught:
        ankle_statistics(moved(tall_body, keypoints))
    assert "feet" in caught.value.hint


def test_layout_without_ankles_is_bad_input():
    skeleton = Skeleton("head_only", ("nose", "left_eye"), ())
    poses = PoseSequence.empty(skeleton, 30, 30.0, (64, 64))
    with pytest.raises(BadInput, match="left_ankle"):
        ankle_statistics(poses)


def test_different_layouts_are_bad_input(tall_body):
    other = PoseSequence.empty(MEDIAPIPE_HOLISTIC, tall_body.num_frames, 30.0, (256, 256))
    with pytest.raises(BadInput, match="layout"):
        normalize_poses(tall_body, other)


def test_nonsense_settings_are_bad_input():
    with pytest.raises(BadInput, match="close_quantile"):
        NormalizeConfig(close_quantile=0.3)
    with pytest.raises(BadInput, match="horizontal"):
        NormalizeConfig(horizontal="left")


def test_fit_rejects_statistics_without_height(short_body):
    statistics = ankle_statistics(short_body)
    broken = dataclasses.replace(statistics, far_height=0.0)
    with pytest.raises(BadInput):
        fit_normalization(short_body, statistics, broken)


def test_mediapipe_layout_is_accepted(tall_body):
    # The holistic layout names its joints the same way: copy the ground truth into it.
    poses = PoseSequence.empty(MEDIAPIPE_HOLISTIC, tall_body.num_frames, tall_body.fps,
                               tall_body.image_size)
    keypoints = poses.keypoints.copy()
    for name in ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_ankle",
                 "right_ankle", "left_hip", "right_hip"):
        keypoints[:, MEDIAPIPE_HOLISTIC.index(name)] = tall_body.keypoints[
            :, tall_body.skeleton.index(name)]
    holistic = dataclasses.replace(poses, keypoints=keypoints,
                                   person_present=np.ones(tall_body.num_frames, bool))
    assert ankle_statistics(holistic) == ankle_statistics(tall_body)


# --- layouts without ankles: the bounding box ---------------------------------------------------

MOUSE = Skeleton("mouse", ("nose", "left_ear", "right_ear", "body_centre", "tail_base",
                           "tail_tip"), ())


def mouse_poses(frames: int = 40, size: tuple[int, int] = (128, 128)) -> PoseSequence:
    """A mouse seen from above, walking right and turning: (T, 6, 3) exact points."""
    t = np.arange(frames) / (frames - 1)
    angle = 0.8 * np.sin(2 * np.pi * t)  # (T,) heading
    body = np.array([[14, 0], [9, -4], [9, 4], [0, 0], [-9, 0], [-18, 3]], np.float64)  # (6, 2)
    rotation = np.stack([np.stack([np.cos(angle), -np.sin(angle)], -1),
                         np.stack([np.sin(angle), np.cos(angle)], -1)], -2)  # (T, 2, 2)
    xy = np.einsum("tij,kj->tki", rotation, body) + np.stack(
        [40 + 50 * t, 70 + 6 * np.sin(4 * np.pi * t)], -1)[:, None]  # (T, 6, 2)
    keypoints = np.concatenate([xy, np.full((frames, 6, 1), 0.9)], -1).astype(np.float32)
    return PoseSequence(keypoints=keypoints, skeleton=MOUSE, fps=12.0, image_size=size,
                        person_present=np.ones(frames, bool), timestamps=np.arange(frames) / 12.0)


def test_a_layout_without_ankles_is_normalized_by_its_bounding_box():
    target = mouse_poses()
    # the same walk filmed closer (twice as large) and elsewhere in a larger frame
    source_keypoints = target.keypoints.copy()
    source_keypoints[..., :2] = target.keypoints[..., :2] * 2.0 + np.array([60.0, 150.0])
    source = dataclasses.replace(target, keypoints=source_keypoints, image_size=(320, 400))
    source_keypoints[3, 3] = (np.nan, np.nan, 0.0)  # a point inside the box: no change
    assert normalization_method(MOUSE) == "bounding_box"
    normalized, normalization = normalize_poses(source, target, TARGET_MEDIAN)
    assert normalization.method == "bounding_box" and normalization.single_scale
    np.testing.assert_allclose(normalization.scale, 0.5)
    assert normalized.image_size == target.image_size
    seen = np.isfinite(normalized.xy).all(axis=-1)
    np.testing.assert_allclose(normalized.xy[seen], target.xy[seen], atol=1e-3)
    statistics = box_statistics(target)
    assert statistics.frames_used == target.num_frames
    assert statistics.bottom_y == pytest.approx(np.median(np.nanmax(target.xy[..., 1], axis=1)))


def test_the_method_follows_the_layout_or_the_setting(short_body, tall_body):
    assert normalization_method(tall_body.skeleton) == "ankles"
    _, by_ankles = normalize_poses(short_body, tall_body)
    assert by_ankles.method == "ankles"
    _, by_box = normalize_poses(short_body, tall_body, NormalizeConfig(method="bounding_box"))
    assert by_box.method == "bounding_box"
    # a person's box: the short body scaled up to the tall one's size, about as the ankles do
    assert np.median(by_box.scale) == pytest.approx(np.median(by_ankles.scale), rel=0.1)
    with pytest.raises(BadInput, match="left_ankle"):
        normalize_poses(mouse_poses(), mouse_poses(), NormalizeConfig(method="ankles"))
    with pytest.raises(BadInput, match="method"):
        NormalizeConfig(method="centroid")


def test_bounding_box_normalization_needs_enough_frames():
    poses = mouse_poses()
    keypoints = poses.keypoints.copy()
    keypoints[10:, 1:] = (np.nan, np.nan, 0.0)  # one point left after frame 10: no box
    with pytest.raises(NoPersonFound, match="at least two joints"):
        box_statistics(dataclasses.replace(poses, keypoints=keypoints))


# --- REMOT's global alignment as a method ------------------------------------------------------

def test_layout_method_places_the_studio_source_near_the_truth():
    # Joint extents (no parsing maps here): 2.6 px measured against the ground truth, 2.9 px
    # for the ankles method with the same horizontal placement, 7.7 px without normalization.
    source = load_fixture("norm_studio_source0")
    target_training = load_fixture("norm_studio_target0")
    truth = load_fixture("norm_studio_target0_source0")
    normalized, normalization = normalize_poses(source, target_training,
                                                NormalizeConfig(method="layout"))
    assert normalization.method == "layout" and normalization.single_scale
    error = np.nanmean(np.linalg.norm(normalized.xy - truth.xy, axis=-1))
    assert error < 3.5


def test_layout_method_maps_a_scaled_copy_back_and_uses_given_extents(tall_body):
    copy = tall_body.keypoints.copy()
    copy[..., :2] = copy[..., :2] * 0.7 + np.array([31.0, -17.5], np.float32)
    source = moved(tall_body, copy)
    config = dataclasses.replace(TARGET_MEDIAN, method="layout")
    normalized, normalization = normalize_poses(source, tall_body, config)
    np.testing.assert_allclose(normalization.scale, 1 / 0.7, rtol=1e-4)
    np.testing.assert_allclose(normalized.xy, tall_body.xy, atol=0.5)
    # Layout extents given (as from parsing maps): their heights set the scale, not the joints'.
    frames = source.num_frames
    short = LayoutExtent(top=np.full(frames, 100.0), bottom=np.full(frames, 149.0),
                         centre_x=np.full(frames, 50.0), centre_y=np.full(frames, 125.0),
                         height=np.full(frames, 50.0))
    tall = LayoutExtent(top=np.full(frames, 50.0), bottom=np.full(frames, 149.0),
                        centre_x=np.full(frames, 60.0), centre_y=np.full(frames, 100.0),
                        height=np.full(frames, 100.0))
    _, given = normalize_poses(source, tall_body, config, short, tall)
    np.testing.assert_allclose(given.scale, 2.0)
    np.testing.assert_allclose(given.offset[0], [60.0 - 2.0 * 50.0, 149.0 - 2.0 * 149.0])
