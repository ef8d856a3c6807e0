"""Compositing the person over the target's background plate: the network, the mask's target, the
pose cover, the cached plate, and training with `background = "composite"` through transfer and
ONNX export."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import clips_project, fast_training_settings
from typer.testing import CliRunner

from motionxfer.background.cover import pose_cover
from motionxfer.background.plate import composite_at_size
from motionxfer.checkpoint import Checkpoint
from motionxfer.cli import app, hoist_global_flags
from motionxfer.errors import BadInput
from motionxfer.inference.export import export_project
from motionxfer.inference.transfer import TransferConfig, transfer
from motionxfer.io.frame_cache import FrameCache
from motionxfer.io.images import resize_frame, to_images
from motionxfer.io.video import probe, read_frames
from motionxfer.networks.compositing_generator import CompositingGenerator, sharpen_mask
from motionxfer.networks.generator import GeneratorConfig
from motionxfer.networks.registry import COMPOSITING_ARCHITECTURE
from motionxfer.pipeline import load_poses, target_plate
from motionxfer.project import Project
from motionxfer.training.config import TrainConfig
from motionxfer.training.losses import person_pixels
from motionxfer.training.train import compositing_plate, prepare_frames

FIXTURES = Path(__file__).parent / "fixtures"
torch.set_num_threads(1)


def small_generator(mask_bias: float) -> CompositingGenerator:
    torch.manual_seed(0)
    generator = CompositingGenerator(GeneratorConfig(ngf=4, n_downsample=1, n_blocks=1,
                                                     max_channels=8))
    last = generator.generator.network.output[1]  # the 7x7 conv before tanh
    with torch.no_grad():
        last.weight[3:].zero_()
        last.bias[3] = mask_bias  # the mask channel: tanh(+-20) = +-1
    return generator.eval()


def test_the_mask_chooses_between_the_painted_person_and_the_plate() -> None:
    plate = torch.linspace(-1, 1, 3 * 16 * 24).reshape(3, 16, 24)
    pose = torch.rand(2, 3, 16, 24) * 2 - 1
    zeros = torch.zeros(2, 3, 16, 24)
    background_only = small_generator(-20.0)
    background_only.set_plate(plate)
    with torch.no_grad():
        frame = background_only(pose, pose, zeros)
    assert torch.allclose(frame, plate.expand(2, -1, -1, -1), atol=1e-6)
    assert background_only.last_mask is not None and background_only.last_mask.max() < 1e-6
    person_only = small_generator(20.0)
    person_only.set_plate(plate)
    with torch.no_grad():
        frame = person_only(pose, pose, zeros)
        painted = person_only.generator(pose, pose, zeros)[:, :3]
    assert torch.allclose(frame, painted, atol=1e-6)
    # another frame size: the plate is resized to it
    with torch.no_grad():
        smaller = background_only(pose[:, :, :8, :12], pose[:, :, :8, :12], zeros[:, :, :8, :12])
    assert smaller.shape == (2, 3, 8, 12)
    assert torch.allclose(smaller, torch.nn.functional.interpolate(
        plate[None], size=(8, 12), mode="bilinear", align_corners=False), atol=1e-6)


def test_the_mask_gain_firms_the_mask_about_one_half_at_inference_only() -> None:
    mask = torch.tensor([0.0, 0.2, 0.45, 0.5, 0.6, 0.8, 1.0])
    assert torch.equal(sharpen_mask(mask, 1.0), mask)
    assert torch.allclose(sharpen_mask(mask, 2.0),
                          torch.tensor([0.0, 0.0, 0.4, 0.5, 0.7, 1.0, 1.0]))
    # A half-sure mask (0.75 everywhere): gain 2 shows the painted person alone, while the
    # mask training supervises (last_mask) stays the painted one.
    plate = torch.full((3, 8, 8), -1.0)
    pose = torch.rand(1, 3, 8, 8) * 2 - 1
    generator = small_generator(0.0)
    with torch.no_grad():
        generator.generator.network.output[1].bias[3] = float(np.arctanh(0.5))  # mask 0.75
        generator.set_plate(plate)
        soft = generator(pose, pose, torch.zeros_like(pose))
        painted = generator.generator(pose, pose, torch.zeros_like(pose))[:, :3]
        generator.mask_gain = 2.0
        firm = generator(pose, pose, torch.zeros_like(pose))
    assert torch.allclose(generator.last_mask, torch.full_like(generator.last_mask, 0.75))
    assert torch.allclose(soft, 0.75 * painted + 0.25 * plate, atol=1e-5)
    assert torch.allclose(firm, painted, atol=1e-5)
    with pytest.raises(BadInput, match="mask_gain must be at least 1"):
        TrainConfig(mask_gain=0.5)


def test_a_frame_made_over_the_small_plate_goes_over_the_full_one() -> None:
    rng = np.random.default_rng(0)
    full_plate = rng.integers(0, 255, (64, 96, 3), np.uint8)  # detail the small plate lacks
    plate = resize_frame(full_plate, (48, 32))
    generated = plate.copy()
    generated[10:20, 10:20] = (250, 20, 20)  # the person
    out = composite_at_size(generated, plate, full_plate)
    assert out.shape == (64, 96, 3)
    assert np.array_equal(out[50:, 60:], full_plate[50:, 60:])  # far from the person: sharp
    assert np.abs(out[24:36, 24:36].astype(int) - (250, 20, 20)).max() < 12  # the person


def test_person_pixels_are_where_the_frame_differs_from_the_plate() -> None:
    plate = torch.full((1, 3, 20, 20), -0.2)
    frames = plate.repeat(2, 1, 1, 1).clone()
    frames[:, :, 5:10, 5:10] += 0.8  # 100 grey levels brighter: a person
    frames[1, 0, 15:, 15:] += 0.04  # 5 grey levels: sensor noise, not a person
    mask = person_pixels(frames, plate)
    assert mask.shape == (2, 1, 20, 20)
    assert mask[:, :, 5:10, 5:10].min() > 0.99
    assert mask[1, :, 15:, 15:].max() < 0.03 and mask[0, :, :5].max() < 0.01


def test_the_pose_cover_holds_every_seen_joint_with_a_margin() -> None:
    keypoints = np.array([[40, 20, 1], [60, 20, 1], [50, 60, 1], [50, 100, 1], [10, 10, 0]],
                         np.float32)
    cover = pose_cover(keypoints, (128, 128), (64, 64))  # half size
    for x, y, seen in keypoints:
        if seen:
            assert cover[int(y / 2), int(x / 2)]
    assert not cover[5, 5]  # an unseen joint is not covered
    assert cover[int(100 / 2) + 4, 25] and not cover[63, 63]  # below the feet: the margin
    nobody = pose_cover(np.zeros((5, 3), np.float32), (128, 128), (64, 64))
    assert nobody.all()  # no joint seen: nothing can be trusted as background


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("composite")
    project, source = clips_project(folder)
    return project, source


def test_the_background_plate_is_the_room_without_the_person(project) -> None:
    project, _ = project
    size = (128, 128)
    frames = prepare_frames(project, size, None)
    plate = compositing_plate(frames, load_poses(project, project.target), "target_clip.mp4")
    assert plate is not None and plate.shape == (1, 3, 128, 128)
    plate_image = to_images(plate)[0].astype(np.float32)
    # the corners of the room are free of the person in every frame: the plate is the room there
    corner = np.abs(plate_image[:16, :16] - frames.frames[0][:16, :16].astype(np.float32)).mean()
    assert corner < 8.0
    # a camera that pans: no plate, the whole frame is generated
    panning = np.stack([np.roll(frame, 3 * index, axis=1)
                        for index, frame in enumerate(frames.frames)])
    moved = compositing_plate(FrameCache(Path("memory"), panning),
                              load_poses(project, project.target), "panning.mp4")
    assert moved is None


def test_a_person_who_never_leaves_a_place_is_told_the_plate_is_guessed_there(
        project, caplog: pytest.LogCaptureFixture) -> None:
    project, _ = project
    frames = prepare_frames(project, (128, 128), None)
    poses = load_poses(project, project.target)
    middle = poses.num_frames // 2  # that moment in every frame: the person never moves
    still = np.repeat(np.asarray(frames.frames[middle])[None], poses.num_frames, axis=0)
    standing = dataclasses.replace(
        poses, keypoints=np.repeat(poses.keypoints[middle][None], poses.num_frames, axis=0))
    with caplog.at_level("WARNING"):
        assert compositing_plate(FrameCache(Path("memory"), still), standing,
                                 "still.mp4") is not None
    assert "behind the person in every sampled frame" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        compositing_plate(frames, poses, "moving.mp4")
    assert "behind the person" not in caplog.text


def test_training_with_composite_transfers_exports_and_resumes(project, tmp_path: Path) -> None:
    project, source = project
    fast_training_settings(project)
    runner = CliRunner()
    result = runner.invoke(app, hoist_global_flags(
        ["train-target", str(project.root), "--steps", "2", "--background", "composite",
         "--no-texture", "--augmentation"]))
    assert result.exit_code == 0, result.output
    model = Checkpoint.load(project.paths.checkpoint)
    assert model.architecture == COMPOSITING_ARCHITECTURE and model.train.augmentation
    assert model.build_generator().mask_gain == model.train.mask_gain  # used at inference
    assert model.generator.extra_outputs == 1
    assert tuple(model.models["background"]["plate"].shape) == (1, 3, 128, 128)
    assert "G_mask" in (project.paths.train_log.read_text())  # the mask was supervised

    output = tmp_path / "composited.mp4"
    transfer(project, source, output, TransferConfig(max_seconds=0.5))
    assert probe(output).frame_count == 15
    # larger than the working size: the frames go over the plate at the output's size. A model
    # whose mask is 0 makes its plate: the output shows the full-size plate, not an upscale.
    empty = Checkpoint.load(project.paths.checkpoint)
    empty.models["generator"]["generator.network.output.1.weight"][3:] = 0.0
    empty.models["generator"]["generator.network.output.1.bias"][3:] = -20.0
    empty.save(tmp_path / "empty.pt")
    larger = tmp_path / "larger.mp4"
    transfer(project, source, larger, TransferConfig(max_seconds=0.2, size=(256, 256)),
             checkpoint=tmp_path / "empty.pt")
    project.paths.plate(project.target.video_id).unlink()  # made again beside a transfer
    with Project.open(project.root).locked("transfer", shared=True):
        full_plate = target_plate(project)
    assert full_plate is not None and full_plate.shape == (256, 256, 3)  # the video's size
    cached = project.paths.plate(project.target.video_id).stat().st_mtime_ns
    assert np.array_equal(target_plate(project), full_plate)
    assert project.paths.plate(project.target.video_id).stat().st_mtime_ns == cached
    frame = next(iter(read_frames(larger))).rgb
    small = resize_frame(resize_frame(full_plate, (128, 128)), (256, 256))
    corner = np.abs(frame[:40, :40].astype(int) - full_plate[:40, :40])
    assert corner.mean() < 4  # the background is the full plate's (up to the video encoding)
    assert corner.mean() < np.abs(small[:40, :40].astype(int) - full_plate[:40, :40]).mean()
    exported = export_project(project)
    assert all(m.max_abs_difference < 1e-3 for m in exported.models if m.precision == "fp32")
    slim = tmp_path / "slim.pt"
    Checkpoint.load(project.paths.checkpoint).inference_only().save(slim)
    assert "background" in Checkpoint.load(slim).models

    resumed = runner.invoke(app, hoist_global_flags(
        ["train-target", str(project.root), "--resume", "--steps", "3"]))
    assert resumed.exit_code == 0, resumed.output
    again = Checkpoint.load(project.paths.checkpoint)
    assert again.architecture == COMPOSITING_ARCHITECTURE and again.generator_step == 3
    assert torch.equal(again.models["background"]["plate"], model.models["background"]["plate"])
