"""Training on CPU with tiny networks on a synthetic target: data, overfitting, checkpoints, errors.

The synthetic target is a coloured stick person swaying and waving in front of a flat wall,
drawn from known keypoints, so the generator has a learnable mapping from stick figure to frame.
Frames are 32 or 64 px; the project's frame cache is written directly (no video decoding).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from motionxfer import checkpoint as checkpoint_module
from motionxfer.checkpoint import (
    CHECKPOINT_SCHEMA,
    Checkpoint,
    new_payload,
    read_checkpoint,
    save_checkpoint,
)
from motionxfer.conditioning import Conditioning
from motionxfer.errors import BadInput, CheckpointError, MissingDependency, NoPersonFound
from motionxfer.io.files import fingerprint
from motionxfer.io.frame_cache import FrameCache, build_frame_cache, open_frame_cache
from motionxfer.io.images import to_tensor, working_size
from motionxfer.io.video import VideoInfo
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC
from motionxfer.presets import Preset, load_preset, preset_configs
from motionxfer.project import Project
from motionxfer.settings import config_template
from motionxfer.training.batches import batch_indices, batch_maker, on_device
from motionxfer.training.config import TrainConfig
from motionxfer.training.dataset import (
    Augmentation,
    PairBatch,
    TrainingSamples,
    split_frames,
)
from motionxfer.training.distributed import SINGLE_PROCESS
from motionxfer.training.interrupt import Interrupted, deferred_interrupt
from motionxfer.training.train import train_plan, train_target, training_setup
from motionxfer.training.trainer import Trainer, learning_rate_factor

FPS = 30.0
LIMBS = [
    ("left_shoulder", "left_elbow", (200, 50, 50)), ("left_elbow", "left_wrist", (220, 80, 80)),
    ("right_shoulder", "right_elbow", (50, 200, 50)), ("right_elbow", "right_wrist", (80, 220, 80)),
    ("left_hip", "left_knee", (50, 50, 200)), ("left_knee", "left_ankle", (80, 80, 220)),
    ("right_hip", "right_knee", (200, 200, 50)), ("right_knee", "right_ankle", (220, 220, 80)),
    ("left_shoulder", "right_hip", (240, 240, 240)),
    ("right_shoulder", "left_hip", (240, 240, 240)),
]
BODY = {  # on a 64 px frame
    "nose": (32, 12), "left_eye": (34, 10), "right_eye": (30, 10), "left_ear": (36, 11),
    "right_ear": (28, 11), "left_shoulder": (38, 20), "right_shoulder": (26, 20),
    "left_elbow": (42, 30), "right_elbow": (22, 30), "left_wrist": (44, 38),
    "right_wrist": (20, 38), "left_hip": (36, 38), "right_hip": (28, 38), "left_knee": (37, 48),
    "right_knee": (27, 48), "left_ankle": (38, 58), "right_ankle": (26, 58),
}


def synthetic_poses(frames: int, size: int) -> PoseSequence:
    skeleton = MEDIAPIPE_HOLISTIC
    poses = PoseSequence.empty(skeleton, frames, FPS, (size, size))
    keypoints = poses.keypoints.copy()
    time = np.arange(frames) / FPS
    sway = 6 * np.sin(2 * np.pi * 0.5 * time)
    wave = 10 * np.sin(2 * np.pi * 0.8 * time)
    for name, (x, y) in BODY.items():
        lift = 0.0
        if "wrist" in name or "elbow" in name:
            lift = (1 if "left" in name else -1) * (1.0 if "wrist" in name else 0.5)
        keypoints[:, skeleton.index(name), 0] = (x + sway) * size / 64
        keypoints[:, skeleton.index(name), 1] = (y - lift * wave) * size / 64
        keypoints[:, skeleton.index(name), 2] = 1.0
    return PoseSequence(keypoints, skeleton, FPS, (size, size), np.ones(frames, bool),
                        time.astype(np.float64))


def draw_person(keypoints: np.ndarray, size: int) -> np.ndarray:
    """The 'real' frame: thick coloured limbs and a round head on a flat wall."""
    image = np.full((size, size, 3), (90, 120, 150), np.uint8)
    if not np.isfinite(keypoints[:, :2]).any():
        return image  # nobody in this frame

    def point(name: str) -> tuple[int, int]:
        x, y = keypoints[MEDIAPIPE_HOLISTIC.index(name), :2]
        return round(float(x)), round(float(y))

    for start, end, color in LIMBS:
        cv2.line(image, point(start), point(end), color, max(2, size // 16))
    cv2.circle(image, point("nose"), max(2, size // 10), (230, 190, 160), -1)
    return image


def draw_joints(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    """A stand-in stick figure for the tests: one coloured dot per visible joint."""
    image = np.zeros((height, width, 3), np.uint8)
    for joint, (x, y, visibility) in enumerate(keypoints):
        if visibility > 0 and np.isfinite(x):
            color = (255, (joint * 37) % 256, (joint * 91) % 256)
            cv2.circle(image, (int(x), int(y)), max(1, width // 32), color, -1)
    return image


def make_project(root: Path, frames: int = 120, size: int = 32,
                 person_present: np.ndarray | None = None, sha256: str = "ab" * 32) -> Project:
    """A project whose target has poses and a frame cache at `size` (the working size)."""
    poses = synthetic_poses(frames, size)
    if person_present is not None:  # frames without the person have no keypoints
        keypoints = poses.keypoints.copy()
        keypoints[~person_present] = (np.nan, np.nan, 0.0)
        poses = dataclasses.replace(poses, keypoints=keypoints, person_present=person_present)
    project = Project.create(root, config_template())
    info = VideoInfo(
        path=root / "target.mp4", sha256=sha256, fps=FPS, frame_count=frames,
        frame_count_exact=True, width=size, height=size, rotation=0, duration=frames / FPS,
        variable_frame_rate=False, has_audio=False, codec="h264",
    )
    record = project.add_video(info, "target")
    poses.save(project.paths.poses(record.video_id))
    key = fingerprint("frames", sha256, record.start, record.end)
    build_frame_cache((draw_person(poses.keypoints[t], size) for t in range(frames)),
                      project.paths.frames_cache(record.video_id, size), (size, size), key)
    return project


def tiny_preset(size: int = 32) -> Preset:
    return dataclasses.replace(load_preset("tiny"), size=size)


def quick_config(**changes: object) -> TrainConfig:
    values: dict[str, object] = {
        "steps": 6, "batch_size": 1, "perceptual": False, "face_refiner": True,
        "face_refiner_steps": 2, "face_batch_size": 2, "checkpoint_every": 100,
        "sample_every": 3, "validate_every": 3, "log_every": 2, "validation_frames": 4,
        "num_workers": 0, "device": "cpu", "texture": False,  # the base machinery (test_texture)
    }
    values.update(changes)
    return TrainConfig(**values)  # type: ignore[arg-type]


def stop_with_ctrl_c(project: Project, config: TrainConfig, step: int) -> None:
    """Train `project` from scratch and press Ctrl-C after `step` steps (it saves and stops)."""
    def press_ctrl_c(description: str, done: int, total: int | None, rate: str) -> None:
        if done == step:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_target(project, config, tiny_preset(), progress=press_ctrl_c, draw=draw_joints)
    assert Checkpoint.load(project.paths.checkpoint).generator_step == step


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- data ----------------------------------------------------------------------------------------

def test_working_size_keeps_the_aspect_at_the_preset_height() -> None:
    assert working_size((1920, 1080), 512, 16) == (912, 512)
    assert working_size((1080, 1920), 512, 16) == (288, 512)
    assert working_size((256, 256), 128, 8) == (128, 128)
    assert working_size((10, 1000), 64, 8) == (8, 64)  # never narrower than one multiple


def test_split_holds_out_the_end_and_skips_frames_without_the_person() -> None:
    present = np.ones(300, bool)
    present[[50, 120]] = False
    split = split_frames(present, 30.0, 0.1, 1.0, 2.0, 0.5, "me.mp4")
    assert split.holdout_start == 270  # 10 % = 30 frames = 1 s
    assert split.train.max() < 270 and 0 not in split.train
    for missing in (50, 51, 120, 121):  # t or t-1 without the person
        assert missing not in split.train
    assert list(split.validation) == list(range(270, 300))
    # a short video: the 1 s minimum wins over 10 %
    assert split_frames(np.ones(100, bool), 30.0, 0.1, 1.0, 2.0, 0.5, "x").holdout_start == 70


def test_a_video_too_short_or_mostly_without_the_person_is_refused() -> None:
    with pytest.raises(BadInput, match="too short") as short:
        split_frames(np.ones(80, bool), 30.0, 0.1, 1.0, 2.0, 0.5, "me.mp4")
    assert "film" in short.value.hint
    mostly_missing = np.zeros(600, bool)
    mostly_missing[:200] = True
    with pytest.raises(NoPersonFound, match="missing in 400 of 600") as missing:
        split_frames(mostly_missing, 30.0, 0.1, 1.0, 2.0, 0.5, "me.mp4")
    assert "min_person_fraction" in missing.value.hint


def test_frame_cache_round_trip_and_staleness(tmp_path: Path) -> None:
    frames = [np.full((40, 80, 3), value, np.uint8) for value in (10, 20, 30)]
    path = tmp_path / "frames_20.u8"
    cache = build_frame_cache(iter(frames), path, (40, 20), "source-a")
    assert cache.frames.shape == (3, 20, 40, 3) and cache.size == (40, 20)
    assert int(cache.frames[2, 5, 5, 0]) == 30
    assert open_frame_cache(path, (40, 20), "source-a") is not None
    assert open_frame_cache(path, (40, 20), "source-b") is None  # another video or trim
    assert open_frame_cache(path, (48, 20), "source-a") is None  # another size
    with open(path, "ab") as handle:  # a damaged file
        handle.write(b"x")
    assert open_frame_cache(path, (40, 20), "source-a") is None
    header = json.loads((tmp_path / "frames_20.u8.json").read_text())
    assert header["shape"] == [3, 20, 40, 3] and header["source_sha256"] == "source-a"


def test_uint8_pairs_for_a_gpu_become_the_same_batch_at_a_quarter_of_the_bytes(
        tmp_path: Path) -> None:
    project = make_project(tmp_path / "me")
    record = project.target
    cache = open_frame_cache(project.paths.frames_cache(record.video_id, 32), (32, 32),
                             fingerprint("frames", record.info.sha256, record.start, record.end))
    assert cache is not None
    samples = TrainingSamples(cache, PoseSequence.load(project.paths.poses(record.video_id)),
                              draw_joints)
    images = samples.pair_images([5, 9])
    assert images.frame.dtype == torch.uint8 and images.frame.shape == (2, 32, 32, 3)
    batch, converted = samples.pairs([5, 9]), images.to_batch(torch.device("cpu"))
    for name in ("previous_pose", "pose", "previous_frame", "frame"):
        assert torch.equal(getattr(batch, name), getattr(converted, name)), name
        assert getattr(images, name).nbytes * 4 == getattr(batch, name).nbytes
    # training on the CPU takes float batches from the threads, a GPU the uint8 images
    make = batch_maker(samples, np.arange(1, 60), 2, 0, "generator", SINGLE_PROCESS,
                       torch.device("cpu"))
    assert isinstance(make(3), PairBatch)
    assert on_device(make(3), torch.device("cpu")) is not None
    assert np.array_equal(make(3).indices, batch_indices(np.arange(1, 60), 2, 0, "generator", 3))


def test_batches_are_a_pure_function_of_seed_stage_and_step() -> None:
    candidates = np.arange(10, 60)
    first = batch_indices(candidates, 4, 0, "generator", 7)
    assert np.array_equal(first, batch_indices(candidates, 4, 0, "generator", 7))
    assert not np.array_equal(first, batch_indices(candidates, 4, 0, "generator", 8))
    assert set(first) <= set(candidates)


def test_learning_rate_is_constant_then_decays_linearly_to_zero() -> None:
    assert learning_rate_factor(0, 100, 0.5) == 1.0
    assert learning_rate_factor(49, 100, 0.5) == 1.0
    assert learning_rate_factor(75, 100, 0.5) == pytest.approx(0.5)
    assert learning_rate_factor(100, 100, 0.5) == 0.0


def test_train_config_rejects_bad_values() -> None:
    with pytest.raises(BadInput, match="gan_mode"):
        TrainConfig(gan_mode="wgan")
    with pytest.raises(BadInput, match="device"):
        TrainConfig(device="tpu")


# --- learning ------------------------------------------------------------------------------------

def test_tiny_preset_overfits_a_fixed_batch() -> None:
    """30 steps on one batch of two 64 px pairs divide the reconstruction error by 3 or more
    (measured: 0.35 -> 0.09 mean absolute error in [-1, 1] after 20 steps)."""
    torch.manual_seed(0)
    preset = tiny_preset(64)
    poses = synthetic_poses(20, 64)
    indices = np.array([5, 12])

    def images(frames: list[int], real: bool) -> torch.Tensor:
        return to_tensor([draw_person(poses.keypoints[t], 64) if real
                          else draw_joints(poses.keypoints[t], 64, 64) for t in frames])

    batch = PairBatch(indices, images([4, 11], False), images([5, 12], False),
                      images([4, 11], True), images([5, 12], True))
    trainer = Trainer(preset, quick_config(steps=1000), torch.device("cpu"), None, False)

    def error() -> float:
        with torch.no_grad():
            _, frame = trainer.generate_pair(batch)
        return float((frame - batch.frame).abs().mean())

    before = error()
    for _ in range(30):
        losses = trainer.generator_step(batch)
    assert error() < before / 3
    assert {"G_adversarial", "G_feature_matching", "G_temporal_adversarial", "D_spatial",
            "D_temporal"} <= set(losses)


def test_generator_step_updates_generator_and_both_discriminators() -> None:
    torch.manual_seed(0)
    trainer = Trainer(tiny_preset(), quick_config(), torch.device("cpu"), None, False)
    before = {name: [p.detach().clone() for p in module.parameters()]
              for name, module in trainer.modules().items()}
    poses = synthetic_poses(4, 32)
    batch = PairBatch(np.array([2]), *(to_tensor([draw_joints(poses.keypoints[t], 32, 32)])
                                       for t in (1, 2)),
                      *(to_tensor([draw_person(poses.keypoints[t], 32)]) for t in (1, 2)))
    trainer.generator_step(batch)
    for name, module in trainer.modules().items():
        changed = [not torch.equal(old, new) for old, new in zip(before[name], module.parameters())]
        assert all(changed), f"{name}: {changed.count(False)} parameters did not move"


# --- the whole loop, checkpoints and resumption --------------------------------------------------

def test_time_budget_ends_the_generator_stage_early_and_resume_goes_on(tmp_path: Path) -> None:
    """max_minutes: the generator stage stops at the first step past the budget, finished like
    a last step (logged, validated, saved); the face refiner still trains; --resume continues."""
    project = make_project(tmp_path / "me")
    budget = 1e-6  # minutes: over after the first step
    result = train_target(project, quick_config(steps=50, max_minutes=budget), tiny_preset(),
                          draw=draw_joints)
    assert result.generator_steps == 1 and result.face_refiner_steps == 2
    assert result.validation is not None
    lines = [json.loads(line) for line in project.paths.train_log.read_text().splitlines()]
    assert {"stage": "generator", "step": 1} == {k: lines[0][k] for k in ("stage", "step")}
    resumed = train_target(project, quick_config(steps=3, max_minutes=0.0), resume=True,
                           draw=draw_joints)
    assert resumed.generator_steps == 3 and resumed.steps_this_run == 2



def test_train_target_writes_checkpoint_log_samples_and_scores(tmp_path: Path) -> None:
    project = make_project(tmp_path / "me")
    result = train_target(project, quick_config(), tiny_preset(), draw=draw_joints)
    assert result.generator_steps == 6 and result.face_refiner_steps == 2
    assert result.steps_this_run == 8 and result.checkpoint == project.paths.checkpoint
    assert result.validation is not None and result.validation.frames == 4
    assert 0 < result.validation.ssim <= 1 and result.validation.psnr > 5
    lines = [json.loads(line) for line in project.paths.train_log.read_text().splitlines()]
    steps = [line["step"] for line in lines if "validation" not in line]
    assert steps == [2, 4, 6, 2]  # generator every 2 steps, then the face refiner's last step
    assert any("validation" in line for line in lines)
    grids = sorted(path.name for path in project.paths.training_samples.iterdir())
    assert grids == ["face_step_0000002.png", "step_0000003.png", "step_0000006.png"]
    grid = cv2.imread(str(project.paths.training_samples / "step_0000003.png"))
    assert grid.shape == (32, 96, 3)  # one row (batch 1): stick figure | generated | real

    saved = Checkpoint.load(result.checkpoint)
    generator = saved.build_generator()
    assert saved.preset.name == "tiny" and saved.working_size == (32, 32)
    assert saved.generator_step == 6 and saved.project_id == "ab" * 32 and saved.trainable
    assert saved.conditioning == Conditioning("stick_figure", 3)
    refiner = saved.build_face_refiner()
    assert refiner is not None and not refiner.training
    pose = torch.zeros(1, 3, 32, 32)
    assert generator(pose, pose, torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path: Path) -> None:
    """Stop with Ctrl-C after step 3 of 6 (checkpoint saved), resume: same weights as 6 steps in
    one go, bit for bit on the CPU."""
    config = quick_config(steps=6, face_refiner=False, batch_size=2, num_workers=1)
    straight = make_project(tmp_path / "straight")
    train_target(straight, config, tiny_preset(), draw=draw_joints)

    interrupted = make_project(tmp_path / "interrupted")
    stop_with_ctrl_c(interrupted, config, 3)
    result = train_target(interrupted, config, None, resume=True, draw=draw_joints)
    assert result.generator_steps == 6 and result.steps_this_run == 3

    expected = Checkpoint.load(straight.paths.checkpoint)
    resumed = Checkpoint.load(interrupted.paths.checkpoint)
    for name in ("generator", "discriminator", "temporal_discriminator"):
        for key, tensor in expected.models[name].items():
            assert torch.equal(tensor, resumed.models[name][key]), f"{name}.{key}"
    assert expected.training.optimizers["generator"]["state"][0]["exp_avg"].equal(
        resumed.training.optimizers["generator"]["state"][0]["exp_avg"])


def test_a_real_ctrl_c_finishes_the_step_saves_and_stops(tmp_path: Path) -> None:
    project = make_project(tmp_path / "me")
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the test run started in background

    def ctrl_c_at_step_two(description: str, done: int, total: int | None, rate: str) -> None:
        if done == 2:
            os.kill(os.getpid(), signal.SIGINT)  # caught: training stops after this step

    with pytest.raises(KeyboardInterrupt):
        train_target(project, quick_config(steps=6), tiny_preset(), progress=ctrl_c_at_step_two,
                     draw=draw_joints)
    assert Checkpoint.load(project.paths.checkpoint).generator_step == 2
    assert signal.getsignal(signal.SIGINT) is before  # handler put back


def test_sigterm_is_treated_like_ctrl_c(tmp_path: Path) -> None:
    """A scheduler's preemption, `docker stop` or systemd: stop after the step, save, exit 143."""
    project = make_project(tmp_path / "me")
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    def terminated_at_step_two(description: str, done: int, total: int | None, rate: str) -> None:
        if done == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # caught: training stops after this step

    with pytest.raises(Interrupted) as stopped:
        train_target(project, quick_config(steps=6), tiny_preset(),
                     progress=terminated_at_step_two, draw=draw_joints)
    assert stopped.value.signal_number == signal.SIGTERM
    assert Checkpoint.load(project.paths.checkpoint).generator_step == 2
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # put back


def test_a_second_stop_signal_interrupts_at_once() -> None:
    with deferred_interrupt() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signal_number == signal.SIGTERM
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_resumed_run_logs_each_step_once(tmp_path: Path) -> None:
    """Killed (no save) after step 3 with a checkpoint of step 2: the resumed run logs 3 again,
    and the log holds every step once, the validations included."""
    project = make_project(tmp_path / "me")
    config = quick_config(steps=6, face_refiner=False, log_every=1, checkpoint_every=2,
                          validate_every=3)

    def killed_after_step_three(description: str, done: int, total: int | None,
                                rate: str) -> None:
        if done == 3:
            raise SystemExit(137)  # as abrupt as a kill -9 for the loop: nothing more is saved

    with pytest.raises(SystemExit):
        train_target(project, config, tiny_preset(), progress=killed_after_step_three,
                     draw=draw_joints)
    assert Checkpoint.load(project.paths.checkpoint).generator_step == 2
    with open(project.paths.train_log, "a") as log:
        log.write('{"stage": "generator", "st')  # a line cut by the kill
    train_target(project, config, None, resume=True, draw=draw_joints)
    lines = [json.loads(line) for line in project.paths.train_log.read_text().splitlines()]
    losses = [line["step"] for line in lines if "validation" not in line]
    validations = [line["step"] for line in lines if "validation" in line]
    assert losses == [1, 2, 3, 4, 5, 6] and validations == [3, 6]


def test_an_existing_model_is_not_overwritten_without_resume(tmp_path: Path) -> None:
    project = make_project(tmp_path / "me")
    train_target(project, quick_config(steps=2, face_refiner=False), tiny_preset(),
                 draw=draw_joints)
    with pytest.raises(CheckpointError, match="already holds") as error:
        train_target(project, quick_config(steps=2), tiny_preset(), draw=draw_joints)
    assert "--resume" in error.value.hint
    with pytest.raises(BadInput, match="preset 'tiny', not '512'"):
        train_target(project, quick_config(steps=4), "512", resume=True, draw=draw_joints)


def test_resume_can_extend_training_and_add_the_face_refiner(tmp_path: Path) -> None:
    project = make_project(tmp_path / "me")
    train_target(project, quick_config(steps=2, face_refiner=False), tiny_preset(),
                 draw=draw_joints)
    assert Checkpoint.load(project.paths.checkpoint).build_face_refiner() is None
    plan = training_setup(project, resume=True, steps=4, face_refiner=True)
    assert plan.preset.name == "tiny" and plan.preset.size == 32 and plan.config.steps == 4
    assert plan.resume_from is not None and plan.resume_from.generator_step == 2
    result = train_plan(project, plan, draw=draw_joints)
    assert (result.generator_steps, result.face_refiner_steps) == (4, 2)
    refiner = Checkpoint.load(project.paths.checkpoint).build_face_refiner()
    assert refiner is not None
    # training the generator longer without the refiner keeps the trained refiner
    train_plan(project, training_setup(project, resume=True, steps=5, face_refiner=False),
               draw=draw_joints)
    kept = Checkpoint.load(project.paths.checkpoint).build_face_refiner()
    assert kept is not None and all(
        torch.equal(a, b)
        for a, b in zip(refiner.state_dict().values(), kept.state_dict().values(), strict=True))


def test_training_needs_the_vgg_weights_unless_told_otherwise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MOTIONXFER_CACHE", str(tmp_path / "empty-cache"))
    project = make_project(tmp_path / "me")
    with pytest.raises(MissingDependency) as error:
        train_target(project, quick_config(perceptual=True), tiny_preset(), draw=draw_joints)
    assert "models fetch vgg16" in error.value.hint and "--no-perceptual" in error.value.hint
    assert not project.paths.checkpoint.exists()
    with caplog.at_level("WARNING"):
        train_target(project, quick_config(steps=1, face_refiner=False), tiny_preset(),
                     draw=draw_joints)
    assert "without the VGG perceptual loss" in caplog.text


def test_the_perceptual_loss_trains_when_the_features_are_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from motionxfer.networks import vgg

    class SmallFeatures(torch.nn.Module):  # five maps, as VGG16Features returns
        def __init__(self) -> None:
            super().__init__()
            self.convs = torch.nn.ModuleList(torch.nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1)
                                             for i in range(5))

        def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
            maps = []
            for conv in self.convs:
                images = torch.relu(conv(images))
                maps.append(images)
            return maps

    monkeypatch.setattr(vgg.VGG16Features, "from_cache",
                        classmethod(lambda cls, **options: SmallFeatures()))
    project = make_project(tmp_path / "me")
    result = train_target(project, quick_config(steps=2, perceptual=True, log_every=1,
                                                face_refiner_steps=1),
                          tiny_preset(), draw=draw_joints)
    lines = [json.loads(line) for line in project.paths.train_log.read_text().splitlines()]
    assert all(line["G_perceptual"] > 0 for line in lines if line.get("stage") == "generator"
               and "validation" not in line)
    assert "F_perceptual" in result.losses


def test_a_target_with_too_few_frames_is_refused_before_training(tmp_path: Path) -> None:
    project = make_project(tmp_path / "me", frames=60)
    with pytest.raises(BadInput, match="too short"):
        train_target(project, quick_config(), tiny_preset(), draw=draw_joints)
    assert not project.paths.checkpoint.exists()


def test_a_target_mostly_without_the_person_is_refused(tmp_path: Path) -> None:
    present = np.zeros(120, bool)
    present[:40] = True
    project = make_project(tmp_path / "me", person_present=present)
    with pytest.raises(NoPersonFound):
        train_target(project, quick_config(), tiny_preset(), draw=draw_joints)


# --- checkpoint files ----------------------------------------------------------------------------

def small_payload(step: int, project_id: str = "p" * 64) -> dict[str, object]:
    preset = tiny_preset()
    return new_payload(
        preset="tiny", project_id=project_id, working_size=[32, 32], generator_step=step,
        face_refiner_step=0, configs=preset_configs(preset),
        models={"generator": {"weight": torch.full((2,), float(step))}},
    )


def test_missing_corrupt_foreign_and_newer_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint") as missing:
        read_checkpoint(tmp_path / "none.pt")
    assert "train-target" in missing.value.hint

    corrupt = tmp_path / "corrupt.pt"
    save_checkpoint(corrupt, small_payload(1))
    corrupt.write_bytes(corrupt.read_bytes()[: corrupt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt") as damaged:
        read_checkpoint(corrupt)
    assert "train again" in damaged.value.hint
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        read_checkpoint(garbage)

    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not a motionxfer checkpoint"):
        read_checkpoint(other)

    foreign = tmp_path / "foreign.pt"
    save_checkpoint(foreign, small_payload(1, project_id="q" * 64))
    with pytest.raises(CheckpointError, match="another project") as error:
        read_checkpoint(foreign, project_id="p" * 64)
    assert "from scratch" in error.value.hint

    newer = tmp_path / "newer.pt"
    save_checkpoint(newer, {**small_payload(1), "schema_version": CHECKPOINT_SCHEMA + 1})
    with pytest.raises(CheckpointError, match="newer motionxfer") as upgrade:
        read_checkpoint(newer)
    assert "upgrade" in upgrade.value.hint


def test_weights_that_do_not_fit_the_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, small_payload(1))  # "weight" is no parameter of the generator
    with pytest.raises(CheckpointError, match="do not fit"):
        Checkpoint.load(path).build_generator()


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, small_payload(1))

    def disk_full(payload: object, handle: object) -> None:
        handle.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="No space left") as error:
        save_checkpoint(path, small_payload(2))
    assert "previous checkpoint" in error.value.hint and "--resume" in error.value.hint
    monkeypatch.undo()
    assert Checkpoint.load(path).generator_step == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


def test_torch_failing_to_write_a_checkpoint_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk under torch's C++ writer comes out as RuntimeError, not OSError."""
    path = tmp_path / "model.pt"
    save_checkpoint(path, small_payload(1))

    def writer_fails(payload: object, handle: object) -> None:
        handle.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter "
                           "failed writing file data/3: file write failed")

    monkeypatch.setattr(checkpoint_module.torch, "save", writer_fails)
    with pytest.raises(CheckpointError, match="PytorchStreamWriter failed") as error:
        save_checkpoint(path, small_payload(2))
    assert f"free disk space in {tmp_path}" in error.value.hint
    assert "previous checkpoint there is intact" in error.value.hint
    monkeypatch.undo()
    assert Checkpoint.load(path).generator_step == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary file left


def test_another_runtime_error_while_saving_is_not_called_a_full_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(payload: object, handle: object) -> None:
        raise RuntimeError("Cannot pickle a CUDA graph")

    monkeypatch.setattr(checkpoint_module.torch, "save", bug)
    with pytest.raises(RuntimeError, match="CUDA graph"):
        save_checkpoint(tmp_path / "model.pt", small_payload(2))
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_under_atomic_write_keeps_the_checkpoint_hint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC at the final flush (io.files turns it into DiskFull): still the checkpoint's fix."""
    path = tmp_path / "model.pt"

    def fsync_fails(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(CheckpointError, match="No space left on device") as error:
        save_checkpoint(path, small_payload(2))
    monkeypatch.undo()
    assert "free disk space" in error.value.hint and "nothing was left" in error.value.hint
    assert list(tmp_path.iterdir()) == []


def test_a_disk_that_fills_during_training_leaves_the_last_good_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "me")
    real_save = torch.save
    saves = []

    def fills_up(payload: object, handle: object) -> None:
        saves.append(1)
        if len(saves) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(payload, handle)  # type: ignore[arg-type]

    monkeypatch.setattr(checkpoint_module.torch, "save", fills_up)
    with pytest.raises(CheckpointError, match="No space left"):
        train_target(project, quick_config(steps=4, checkpoint_every=2, face_refiner=False),
                     tiny_preset(), draw=draw_joints)
    monkeypatch.undo()
    assert Checkpoint.load(project.paths.checkpoint).generator_step == 2


def test_inference_export_is_smaller_loads_without_flags_and_cannot_resume(
        tmp_path: Path) -> None:
    project = make_project(tmp_path / "me")
    train_target(project, quick_config(steps=2), tiny_preset(), draw=draw_joints)
    full = project.paths.checkpoint
    slim = tmp_path / "slim.pt"
    exported = Checkpoint.load(full).inference_only().save(slim)
    assert not exported.trainable and not Checkpoint.load(slim).trainable
    assert slim.stat().st_size < full.stat().st_size / 3
    generator = Checkpoint.load(slim).build_generator()
    reference = Checkpoint.load(full).build_generator()
    pose = torch.rand(1, 3, 32, 32)
    assert torch.equal(generator(pose, pose, pose), reference(pose, pose, pose))
    assert Checkpoint.load(slim).build_face_refiner() is not None
    slim.replace(full)
    with pytest.raises(CheckpointError, match="inference export"):
        train_target(project, quick_config(steps=4), None, resume=True, draw=draw_joints)


# --- the command ---------------------------------------------------------------------------------

def test_train_target_command_trains_and_prints_the_checkpoint(tmp_path: Path) -> None:
    from motionxfer.cli import (
        app,
        commands,  # noqa: F401  (registers the commands)
    )

    project = make_project(tmp_path / "me", size=128)  # the tiny preset's height: cache ready
    table = ('[train]\npreset = "tiny"\nsteps = 2\nface_refiner_steps = 1\n'
             "validation_frames = 2\nnum_workers = 0\n")
    settings = project.paths.config.read_text().replace("[train]\n", table)
    assert table in settings
    project.paths.config.write_text(settings)
    runner = CliRunner()
    result = runner.invoke(app, ["--json", "train-target", str(project.root), "--no-perceptual",
                                 "--device", "cpu", "--seed", "3"])
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["generator_steps"] == 2 and output["face_refiner_steps"] == 1
    assert Path(output["checkpoint"]) == project.paths.checkpoint
    assert Checkpoint.load(project.paths.checkpoint).train.seed == 3

    again = runner.invoke(app, ["train-target", str(project.root), "--no-perceptual"])
    assert again.exit_code == 5 and "--resume" in again.output
    missing = runner.invoke(app, ["train-target", str(tmp_path / "nowhere")])
    assert missing.exit_code == 3


def test_augmentation_moves_frames_and_poses_alike_and_is_replayed_by_seed() -> None:
    """A 'real' frame that is the pose's own drawing stays on its augmented pose input: the zoom
    and shift reach the keypoints and the pixels the same way, for both frames of the pair."""
    size = 64
    poses = synthetic_poses(20, size)
    frames = np.stack([draw_joints(poses.keypoints[t], size, size) for t in range(20)])
    plain = TrainingSamples(FrameCache(Path("memory"), frames), poses, draw_joints)
    moved = TrainingSamples(FrameCache(Path("memory"), frames), poses, draw_joints,
                            Augmentation(scale=0.2, shift=0.15, colour=0.0))
    batch = moved.pair_images([5, 9], seed=3)
    again = moved.pair_images([5, 9], seed=3)
    other = moved.pair_images([5, 9], seed=4)
    assert torch.equal(batch.pose, again.pose) and torch.equal(batch.frame, again.frame)
    assert not torch.equal(batch.pose, other.pose)
    unchanged = plain.pair_images([5, 9])
    assert not torch.equal(batch.pose, unchanged.pose)  # it really moved
    centre = (slice(None), slice(17, 47), slice(17, 47))  # beyond the borders' reflections
    for inputs, images in ((batch.pose, batch.frame), (batch.previous_pose, batch.previous_frame)):
        drawn = (inputs.numpy().max(axis=-1) > 127)[centre]  # (B, h, w)
        warped = (images.numpy().max(axis=-1) > 127)[centre]
        overlap = (drawn & warped).sum() / (drawn | warped).sum()
        before = (drawn & (unchanged.frame.numpy().max(axis=-1) > 127)[centre]).sum() / drawn.sum()
        assert overlap > 0.5 and before < 0.2, (overlap, before)  # dots' rims differ by a pixel
    coloured = TrainingSamples(FrameCache(Path("memory"), frames), poses, draw_joints,
                               Augmentation(scale=0.0, shift=0.0, colour=0.3))
    tinted = coloured.pair_images([5], seed=1)
    assert torch.equal(tinted.pose, unchanged.pose[:1])  # colour changes the frames only
    assert not torch.equal(tinted.frame, unchanged.frame[:1])
