"""Sequence-to-sequence generation (`TrainConfig.sequence`): the window network's shapes and its
temporal mixing, its texture variant's start, the overlapping windows and their cross-fade, the
window sampler, and a tiny training with and without the texture through the CLI that transfers
(streamed and sequential alike) and resumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import clips_project, streamed_equals_sequential
from typer.testing import CliRunner

from motionxfer.checkpoint import Checkpoint
from motionxfer.cli import app, hoist_global_flags
from motionxfer.errors import BadInput
from motionxfer.inference.bench import BenchConfig, bench_project
from motionxfer.inference.frame_generator import BackendConfig
from motionxfer.inference.transfer import TransferConfig, transfer
from motionxfer.io.video import probe
from motionxfer.networks.generator import GeneratorConfig
from motionxfer.networks.registry import (
    SEQUENCE_ARCHITECTURE,
    SEQUENCE_TEXTURE_ARCHITECTURE,
    build_generator,
)
from motionxfer.networks.sequence_generator import (
    SequenceGenerator,
    blend_windows,
    crossfade_weights,
    generate_windows,
    window_starts,
)
from motionxfer.networks.sequence_texture_generator import SequenceTextureGenerator
from motionxfer.training.batches import window_indices
from motionxfer.training.config import TrainConfig
from motionxfer.training.dataset import window_starts_of

torch.set_num_threads(1)
SMALL = GeneratorConfig(ngf=4, n_downsample=2, n_blocks=2, max_channels=16)


def small_network() -> SequenceGenerator:
    torch.manual_seed(0)
    return SequenceGenerator(SMALL).eval()


def test_the_window_network_makes_one_frame_per_pose_input_with_a_mask_over_the_plate() -> None:
    network = small_network()
    poses = torch.rand(2, 4, 3, 16, 24) * 2 - 1
    with torch.no_grad():
        plain = network(poses)
    assert plain.shape == (2, 4, 3, 16, 24) and network.last_mask is None
    assert plain.abs().max() <= 1
    plate = torch.full((1, 3, 16, 24), 0.5)
    network.set_plate(plate)
    with torch.no_grad():
        composited = network(poses)
    mask = network.last_mask
    assert composited.shape == (2, 4, 3, 16, 24) and mask is not None
    assert mask.shape == (2, 4, 1, 16, 24)
    expected = mask * plain + (1 - mask) * 0.5
    assert torch.allclose(composited, expected, atol=1e-6)
    assert isinstance(build_generator(SMALL, SEQUENCE_ARCHITECTURE), SequenceGenerator)
    with pytest.raises(ValueError, match="local enhancer"):
        SequenceGenerator(GeneratorConfig(local_enhancer=True))


def small_texture_network() -> SequenceTextureGenerator:
    torch.manual_seed(0)
    return SequenceTextureGenerator(GeneratorConfig(pose_channels=7, ngf=4, n_downsample=2,
                                                    n_blocks=2, max_channels=16)).eval()


def test_a_new_sequence_texture_generator_shows_each_frames_texture_over_the_plate() -> None:
    network = small_texture_network()
    poses = torch.rand(2, 3, 7, 16, 24) * 2 - 1
    poses[:, :, -1] = -1.0
    poses[:, :, -1, :, :12] = 1.0  # texture on the left half only
    with torch.no_grad():
        plain = network(poses)
    assert plain.shape == (2, 3, 3, 16, 24) and network.last_mask is None
    plate = torch.full((3, 16, 24), -0.5)
    network.set_plate(plate)
    with torch.no_grad():
        frames = network(poses)
        painted = network.paint(poses.flatten(0, 1), 2)[:, :3].reshape(2, 3, 3, 16, 24)
    mask = network.last_mask
    assert frames.shape == (2, 3, 3, 16, 24) and mask is not None
    assert mask.shape == (2, 3, 1, 16, 24)
    high, low = torch.sigmoid(torch.tensor(3.0)), torch.sigmoid(torch.tensor(-3.0))
    assert torch.allclose(mask[..., :12], high, atol=1e-6)  # the corrections start at zero
    assert torch.allclose(mask[..., 12:], low, atol=1e-6)
    person = high * poses[:, :, 3:6] + (1 - high) * painted  # blend a * sigmoid(3)
    expected = mask * person + (1 - mask) * plate
    assert torch.allclose(frames[..., :12], expected[..., :12], atol=1e-5)
    assert (frames[..., 12:] - plate[..., 12:]).abs().max() < 0.1  # mostly the plate
    assert torch.allclose(plain[..., 12:], painted[..., 12:], atol=1e-5)  # no texture there
    assert isinstance(build_generator(network.config, SEQUENCE_TEXTURE_ARCHITECTURE),
                      SequenceTextureGenerator)
    with pytest.raises(ValueError, match="texture"):
        SequenceTextureGenerator(SMALL)  # 3 pose channels: no room for the texture


def test_the_temporal_mixing_carries_one_frame_into_its_neighbours() -> None:
    network = small_network()
    poses = torch.rand(1, 4, 3, 16, 16) * 2 - 1
    changed = poses.clone()
    changed[0, 0] = -poses[0, 0]  # only frame 0's input
    with torch.no_grad():
        before, after = network(poses), network(changed)
    assert (after[0, 1] - before[0, 1]).abs().max() > 1e-4  # frame 1 sees frame 0
    assert (after[0, 2] - before[0, 2]).abs().max() > 1e-4  # two convolutions: frame 2 too
    # beyond the receptive field (+-2 frames) nothing changes: the mixing is local in time
    assert torch.allclose(after[0, 3], before[0, 3], atol=1e-6)
    # and the window's frames are made independently of the batch's other windows
    with torch.no_grad():
        pair = network(torch.cat([poses, changed]))
    assert torch.allclose(pair[0], before[0], atol=1e-5)


def test_windows_cover_the_video_and_end_on_its_last_frame() -> None:
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]
    assert window_starts(11, 4, 2) == [0, 2, 4, 6, 7]
    assert window_starts(3, 4, 2) == [0]
    assert window_starts(0, 4, 2) == []
    with pytest.raises(ValueError):
        window_starts(10, 4, 5)
    assert np.allclose(crossfade_weights(4, 2), [1 / 3, 2 / 3, 2 / 3, 1 / 3])
    assert np.allclose(crossfade_weights(6, 2), [1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3])


def test_overlapping_windows_are_cross_faded_linearly() -> None:
    # window k holds the constant k everywhere: where two overlap the frame is their weighted mean
    frames = blend_windows([np.full((4, 2), float(k)) for k in range(3)], 8, 4, 2)
    values = [float(frame[0]) for frame in frames]
    assert np.allclose(values, [0, 0, 1 / 3, 2 / 3, 4 / 3, 5 / 3, 2, 2])
    # windows that agree give back the frames unchanged, whatever the overlap
    video = np.random.default_rng(0).random((11, 3))
    windows = [video[start:start + 4] for start in window_starts(11, 4, 2)]
    assert np.allclose(np.stack(blend_windows(windows, 11, 4, 2)), video)
    with pytest.raises(ValueError):
        blend_windows(windows[:-1], 11, 4, 2)


def test_generating_in_windows_equals_blending_the_windows_by_hand() -> None:
    network = small_network()
    poses = torch.rand(7, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        frames = generate_windows(network, poses, 4)
        windows = [network(poses[start:start + 4][None])[0] for start in window_starts(7, 4, 2)]
    assert frames.shape == (7, 3, 16, 16)
    assert torch.allclose(frames, torch.stack(blend_windows(windows, 7, 4, 2)), atol=1e-6)
    assert torch.allclose(frames[0], windows[0][0], atol=1e-6)  # one window only there


def test_windows_for_training_lie_where_the_person_is_before_the_held_out_part() -> None:
    present = np.ones(20, bool)
    present[5] = False
    starts = window_starts_of(present, holdout_start=15, length=4)
    assert starts.tolist() == [0, 1, 6, 7, 8, 9, 10, 11]  # no window holds frame 5 or 15+
    first = window_indices(starts, 3, 4, seed=1, step=7)
    assert first.shape == (3, 4)
    assert (np.diff(first, axis=1) == 1).all() and np.isin(first[:, 0], starts).all()
    assert np.array_equal(first, window_indices(starts, 3, 4, seed=1, step=7))  # resumable
    assert not all(np.array_equal(first, window_indices(starts, 3, 4, seed=1, step=step))
                   for step in range(8, 12))


def test_sequence_settings_refuse_what_they_do_not_combine_with() -> None:
    assert TrainConfig(sequence=4, texture=False).sequence == 4
    assert TrainConfig(sequence=4, texture=True).texture  # windows take the texture
    assert TrainConfig(sequence=4, gw_loss=True).gw_loss  # the GW term on every window frame
    for wrong in ({"sequence": 1}, {"sequence": -2},
                  {"sequence": 4, "replay": True}, {"sequence": 4, "part_gan": True},
                  {"sequence": 4, "texture_attention": True},
                  {"sequence": 4, "layout": True, "regions": True}):
        with pytest.raises(BadInput):
            TrainConfig(**wrong)


@pytest.fixture
def project(tmp_path: Path):
    return clips_project(tmp_path)


@pytest.mark.parametrize("texture", [True, False], ids=["texture", "no_texture"])
def test_training_with_sequence_transfers_streamed_as_sequential_and_resumes(
        project, tmp_path: Path, texture: bool) -> None:
    project, source = project
    settings = project.paths.config.read_text().replace(
        "[train]\n", '[train]\npreset = "tiny"\nperceptual = false\nnum_workers = 0\n'
        "face_refiner = false\nvalidation_frames = 5\n")
    project.paths.config.write_text(settings)
    runner = CliRunner()
    result = runner.invoke(app, hoist_global_flags(
        ["train-target", str(project.root), "--steps", "2", "--sequence", "4"]
        + (["--texture"] if texture else ["--no-texture"])))
    assert result.exit_code == 0, result.output
    model = Checkpoint.load(project.paths.checkpoint)
    architecture = SEQUENCE_TEXTURE_ARCHITECTURE if texture else SEQUENCE_ARCHITECTURE
    assert model.architecture == architecture and model.train.sequence == 4
    assert model.conditioning.texture == model.train.texture == texture
    assert (model.generator.pose_channels, model.generator.extra_outputs) == (
        (7, 2) if texture else (3, 1))
    assert "background" in model.models  # composited over the plate (the default)
    if not texture:  # the compositing mask's contrast at inference (the texture has its own)
        assert model.build_generator().mask_gain == model.train.mask_gain
    log = project.paths.train_log.read_text()
    assert "G_mask" in log and "G_temporal_adversarial" in log

    streamed = streamed_equals_sequential(project, source, tmp_path, crf=0)
    assert probe(streamed).frame_count == 15
    with pytest.raises(BadInput, match="sequence"):
        transfer(project, source, tmp_path / "onnx.mp4",
                 TransferConfig(max_seconds=0.5, backend=BackendConfig(backend="onnx")))
    # bench times the windows (and the texture's re-posing in the render stage); onnx cannot run
    report = bench_project(project, BenchConfig(seconds=0.5, workers=0, video_batch=1))
    rows = {(row.stage, row.backend.split(" ")[0]): row for row in report.rows}
    assert rows[("generate", "torch")].frames == 15
    assert "windows of 4" in rows[("generate", "torch")].note
    assert rows[("end to end, poses cached", "torch")].frames == 15
    assert rows[("generate", "onnx")].frames == 0 and "sequence" in rows[("generate", "onnx")].note

    resumed = runner.invoke(app, hoist_global_flags(
        ["train-target", str(project.root), "--resume", "--steps", "3"]))
    assert resumed.exit_code == 0, resumed.output
    again = Checkpoint.load(project.paths.checkpoint)
    assert again.architecture == architecture and again.generator_step == 3
    assert again.train.sequence == 4 and again.conditioning.texture == texture
