"""evaluate_videos end to end on tiny videos (64x64, 8 frames), the report and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from motionxfer import model_cache
from motionxfer.errors import BadInput
from motionxfer.evaluation.evaluate import (
    EvaluateConfig,
    PartScores,
    evaluate_videos,
    self_reconstruction,
)
from motionxfer.evaluation.metrics.image import worst_fraction_mean
from motionxfer.io.video import VideoWriter
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC

FIXTURE = Path(__file__).parent / "fixtures" / "metrics_clip.npz"
FRAMES = 8
# The learned metrics run when their weights are cached (CI fetches them); else they must be
# reported as skipped.
LEARNED = {"lpips": True, "fid": True}
OFF = {"masked": False, "lpips": False, "fid": False, "pose": False, "face": False}


@pytest.fixture(scope="module")
def clip() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {key: data[key][:FRAMES] for key in ("frames", "masks")}


def _write(path: Path, frames: np.ndarray) -> Path:
    with VideoWriter(path, fps=30, width=frames.shape[2], height=frames.shape[1], crf=0) as writer:
        for frame in frames:
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def videos(clip, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    frames = clip["frames"]
    flicker = np.clip(frames.astype(np.int16)
                      + np.where(np.arange(FRAMES) % 2, 14, -14)[:, None, None, None], 0, 255)
    mask_rgb = np.repeat(clip["masks"][..., None].astype(np.uint8) * 255, 3, axis=-1)
    return {
        "reference": _write(folder / "reference.mp4", frames),
        "copy": _write(folder / "copy.mp4", frames),
        "flicker": _write(folder / "flicker.mp4", flicker.astype(np.uint8)),
        "mask": _write(folder / "mask.mp4", mask_rgb),
        "small": _write(folder / "small.mp4", frames[:, :32, :32]),
    }


def test_a_video_against_itself(videos):
    result = evaluate_videos(videos["copy"], videos["reference"],
                             EvaluateConfig(pose=False, face=False),
                             mask=videos["mask"])
    assert result.frames == FRAMES and result.frame_size == (64, 64)
    assert result.metric("ssim").value == pytest.approx(1.0)
    psnr = result.metric("psnr")
    assert psnr.value is None and np.all(np.isposinf(psnr.per_frame))
    assert "8 identical frame(s)" in psnr.note
    assert result.metric("mask_ssim").value == pytest.approx(1.0)
    tcm = result.metric("tcm")
    assert np.isnan(tcm.per_frame[0]) and tcm.value == 1.0
    for name in ("lpips_alex", "fid"):
        if result.has(name):
            assert abs(result.metric(name).value) < 1e-6
        else:
            assert "motionxfer models fetch" in dict(result.skipped)[name]
    json.dumps(result.to_dict())  # the summary is JSON-serialisable


def test_flicker_is_seen(videos):
    result = evaluate_videos(videos["flicker"], videos["reference"], EvaluateConfig(**OFF))
    assert result.metric("tcm").value < 0.2
    assert result.metric("warp_error").value > 5 * result.metric("warp_error_reference").value
    assert 20 < result.metric("psnr").value < 30
    assert result.metric("ssim").value < 0.999  # SSIM barely sees a uniform brightness change


def test_the_worst_decile_is_the_mean_of_the_worst_tenth_of_the_frames():
    values = np.arange(20, dtype=np.float64)[::-1]  # any order
    assert worst_fraction_mean(values, 0.1) == 18.5  # frames 18 and 19: lower is better
    assert worst_fraction_mean(values, 0.1, higher_is_better=True) == 0.5
    assert worst_fraction_mean(np.array([0.2, np.nan, 0.4, np.inf]), 0.1) == 0.4  # finite only
    assert worst_fraction_mean(np.array([0.3, 0.1, 0.2]), 0.1) == 0.3  # at least one frame
    assert worst_fraction_mean(np.arange(21.0), 0.1) == 19.0  # ceil(2.1) = 3 frames: 18..20
    assert worst_fraction_mean(np.array([np.nan]), 0.1) is None
    with pytest.raises(ValueError):
        worst_fraction_mean(values, 0.0)


def test_lpips_worst_decile_is_summarised_from_the_per_frame_lpips(videos):
    """8 flickering frames: the worst decile is the single worst frame's LPIPS."""
    result = evaluate_videos(videos["flicker"], videos["reference"],
                             EvaluateConfig(**{**OFF, "lpips": True}))
    if not result.has("lpips_alex"):
        pytest.skip("the LPIPS weights are not cached: " + dict(result.skipped)["lpips_alex"])
    per_frame = result.metric("lpips_alex").per_frame
    worst = result.metric("lpips_alex_worst_decile")
    assert worst.value == pytest.approx(float(per_frame.max()))
    assert worst.value > result.metric("lpips_alex").value  # the frames differ
    assert worst.per_frame is None and "worst 1 of 8" in worst.note
    assert result.summary()["lpips_alex_worst_decile"] == worst.value


def test_masked_metrics_use_the_mask_video(videos, clip):
    result = evaluate_videos(videos["flicker"], videos["reference"],
                             EvaluateConfig(**{**OFF, "masked": True}), mask=videos["mask"])
    mask_psnr = result.metric("mask_psnr").per_frame
    psnr = result.metric("psnr").per_frame
    # the flicker covers the whole frame; masked, the black background matches
    assert np.all(mask_psnr > psnr + 5)


def test_precomputed_poses_give_pose_metrics(videos):
    generator = np.random.default_rng(0)
    keypoints = np.full((FRAMES, MEDIAPIPE_HOLISTIC.num_joints, 3), np.nan, np.float32)
    keypoints[..., 2] = 0.0
    body = MEDIAPIPE_HOLISTIC.group("body")
    keypoints[:, body, :2] = generator.uniform(5, 60, (FRAMES, body.stop, 2))
    keypoints[:, body, 2] = 1.0
    reference = PoseSequence(keypoints, MEDIAPIPE_HOLISTIC, 30.0, (64, 64),
                             np.ones(FRAMES, bool), np.arange(FRAMES) / 30.0)
    shifted = keypoints.copy()
    shifted[..., 1] += 2.0
    result = evaluate_videos(videos["copy"], videos["reference"],
                             EvaluateConfig(**{**OFF, "pose": True, "face": True}),
                             reference_poses=reference,
                             generated_poses=reference.with_keypoints(shifted))
    assert result.metric("akd_body").value == pytest.approx(2.0)
    assert result.metric("mkr_body").value == 0.0
    # a shift is not a flip: the facing metrics report none
    assert result.metric("flip_body").value == 0.0
    assert result.metric("akd_body_unflipped").value == pytest.approx(2.0)
    assert "face" in dict(result.skipped)  # no face landmarks in these poses


def test_self_reconstruction_skips_to_the_held_out_frames(videos, tmp_path, clip):
    held_out = _write(tmp_path / "held_out.mp4", clip["frames"][3:])
    result = self_reconstruction(held_out, videos["reference"], 3, EvaluateConfig(**OFF))
    assert result.frames == FRAMES - 3
    assert result.metric("ssim").value == pytest.approx(1.0)
    shifted = evaluate_videos(held_out, videos["reference"], EvaluateConfig(**OFF))
    assert shifted.metric("ssim").value < 0.99  # without the skip the frames do not match


def test_different_sizes_are_refused_unless_resized(videos):
    with pytest.raises(BadInput, match="--resize-reference"):
        evaluate_videos(videos["small"], videos["reference"], EvaluateConfig(**OFF))
    result = evaluate_videos(videos["small"], videos["reference"],
                             EvaluateConfig(**OFF, resize_reference=True))
    assert result.frame_size == (32, 32)
    assert 0.0 < result.metric("ssim").value < 1.0


def test_missing_weights_are_skipped_with_the_fetch_command(videos, tmp_path, monkeypatch):
    monkeypatch.setenv(model_cache.CACHE_ENVIRONMENT_VARIABLE, str(tmp_path / "empty-cache"))
    result = evaluate_videos(videos["copy"], videos["reference"],
                             EvaluateConfig(**{**OFF, **LEARNED}))
    skipped = dict(result.skipped)
    assert "motionxfer models fetch alexnet" in skipped["lpips_alex"]
    assert "motionxfer models fetch fid_inception" in skipped["fid"]
    assert not result.has("lpips_alex") and result.has("ssim")


def test_bad_settings_are_refused():
    with pytest.raises(BadInput):
        EvaluateConfig(lpips_backbones=("squeeze",))
    with pytest.raises(BadInput):
        EvaluateConfig(flow="raft")


def test_report_and_cli(videos, tmp_path):
    from typer.testing import CliRunner

    from motionxfer.cli import app, commands  # noqa: F401  (registers the commands)

    report = tmp_path / "report.html"
    result = CliRunner().invoke(app, [
        "evaluate", str(videos["flicker"]), "--reference", str(videos["reference"]),
        "--mask", str(videos["mask"]), "--no-lpips", "--no-fid", "--no-pose", "--no-face",
        "--report", str(report), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["frames"] == FRAMES and summary["report"] == str(report)
    assert summary["settings"]["lpips"] is False
    assert math.isfinite(summary["summary"]["psnr"])
    text = report.read_text()
    assert text.count("data:image/png;base64,") >= 6  # plots and frame panels, embedded
    assert "Best and worst frames by SSIM" in text and "Settings" in text
    assert "<script" not in text and "http" not in text.split("</title>")[1]  # self-contained


# --- the key parts ----------------------------------------------------------------------------

def test_part_scores_average_each_groups_crops_per_frame():
    """A stand-in distance (mean absolute difference of the crops): a change inside the left
    hand's box scores on the hands only, a frame without a box has no score."""
    reference = np.full((3, 48, 48, 3), 100, np.uint8)
    generated = reference.copy()
    generated[0, :16, :16] = 200  # frame 0: the left hand and around it (bilinear reaches out)
    nan = [math.nan] * 4
    boxes = np.array([[[4, 4, 12, 12], [30, 4, 38, 12], [20, 30, 36, 46]],
                      [[4, 4, 12, 12], nan, [20, 30, 36, 46]],
                      [nan, nan, nan]], np.float32)  # (T, P, 4)

    def mean_difference(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return np.abs(first.astype(np.float64) - second).mean(axis=(1, 2, 3))

    scorer = PartScores(("left_hand", "right_hand", "face"), boxes,
                        {"stand_in": mean_difference}, batch_size=2)
    for index in range(3):
        scorer.add(index, reference[index], generated[index])
    scores = scorer.per_frame(3)
    assert set(scores) == {("hands", "stand_in"), ("face", "stand_in")}  # no feet in the layout
    hands, face = scores["hands", "stand_in"], scores["face", "stand_in"]
    assert hands[0] == pytest.approx(50.0)  # (100 for the left hand + 0 for the right) / 2
    assert hands[1] == 0.0 and math.isnan(hands[2])
    assert face[:2].tolist() == [0.0, 0.0] and math.isnan(face[2])


def _part_poses(feet_shift: float = 0.0) -> PoseSequence:
    keypoints = np.full((FRAMES, MEDIAPIPE_HOLISTIC.num_joints, 3), np.nan, np.float32)
    keypoints[..., 2] = 0.0
    for name, (x, y) in {"nose": (32, 10), "left_eye": (35, 8), "right_eye": (29, 8),
                         "left_shoulder": (40, 20), "right_shoulder": (24, 20),
                         "left_wrist": (16, 40), "right_wrist": (48, 40),
                         "left_ankle": (24, 58), "right_ankle": (40, 58)}.items():
        shift = feet_shift if "ankle" in name else 0.0
        keypoints[:, MEDIAPIPE_HOLISTIC.index(name)] = (x + shift, y, 1.0)
    return PoseSequence(keypoints, MEDIAPIPE_HOLISTIC, 30.0, (64, 64), np.ones(FRAMES, bool),
                        np.arange(FRAMES) / 30.0)


def test_part_lpips_and_akd_come_from_the_reference_keypoints(clip, tmp_path):
    frames = clip["frames"]
    damaged = frames.copy()
    damaged[:, 34:46, 10:22] = np.random.default_rng(0).integers(0, 256, (FRAMES, 12, 12, 3))
    reference = _write(tmp_path / "reference.mp4", frames)
    generated = _write(tmp_path / "damaged_hand.mp4", damaged)
    result = evaluate_videos(generated, reference,
                             EvaluateConfig(**{**OFF, "lpips": True, "pose": True}),
                             reference_poses=_part_poses(), generated_poses=_part_poses(3.0))
    assert result.metric("akd_feet").value == pytest.approx(3.0)
    assert result.metric("akd_hands").value == 0.0 and result.metric("mkr_hands").value == 0.0
    if not result.has("lpips_alex"):
        pytest.skip("the LPIPS weights are not cached: " + dict(result.skipped)["lpips_alex"])
    hands, feet, face = (result.metric(f"lpips_alex_{group}") for group in ("hands", "feet",
                                                                          "face"))
    assert hands.per_frame.shape == (FRAMES,) and np.isfinite(hands.per_frame).all()
    assert hands.value > 5 * max(feet.value, face.value)
    assert result.metric("lpips_alex").value < hands.value  # the damage is a small part
    without = evaluate_videos(generated, reference,
                              EvaluateConfig(**{**OFF, "lpips": True, "pose": True,
                                                "parts": False}),
                              reference_poses=_part_poses(), generated_poses=_part_poses(3.0))
    assert not without.has("lpips_alex_hands") and not without.has("akd_feet")
