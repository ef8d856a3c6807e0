"""Texture alignment: the part-by-part warp, the bank's choice of reference frames, the texture
channels of the conditioning, the blending network, and training with `--texture` through
transfer (streamed and sequential), ONNX export and resume."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import clips_project, fast_training_settings, streamed_equals_sequential
from typer.testing import CliRunner

from motionxfer.checkpoint import Checkpoint
from motionxfer.cli import app, hoist_global_flags
from motionxfer.conditioning import Conditioning
from motionxfer.errors import BadInput
from motionxfer.inference.export import export_project
from motionxfer.inference.frame_generator import BackendConfig
from motionxfer.inference.transfer import TransferConfig, transfer
from motionxfer.io.video import probe
from motionxfer.networks import texture_generator
from motionxfer.networks.generator import GeneratorConfig
from motionxfer.networks.registry import ATTENTIVE_TEXTURE_ARCHITECTURE, TEXTURE_ARCHITECTURE
from motionxfer.networks.texture_generator import AttentiveTextureGenerator, TextureGenerator
from motionxfer.parsing.geometry import SEGMENT_NAMES, JointLayout
from motionxfer.pipeline import load_poses, texture_bank
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC
from motionxfer.texture import bank as bank_module
from motionxfer.texture.bank import (
    TextureBank,
    nearest_frames,
    pose_distances,
    smooth_references,
)
from motionxfer.texture.warp import affine_fit, bone_map, repose, similarity_fit

torch.set_num_threads(1)


def apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ affine[:, :2].T + affine[:, 2]


def test_the_fits_recover_known_maps() -> None:
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (6, 2))
    affine = np.array([[1.2, 0.3, 5.0], [-0.1, 0.9, -7.0]])
    assert np.allclose(affine_fit(points, apply(affine, points)), affine)
    angle, scale = 0.4, 1.3
    similarity = np.array([[scale * np.cos(angle), -scale * np.sin(angle), 2.0],
                           [scale * np.sin(angle), scale * np.cos(angle), 3.0]])
    assert np.allclose(similarity_fit(points[:2], apply(similarity, points[:2])), similarity)
    assert affine_fit(points[:2], points[:2]) is None  # too few points
    assert similarity_fit(points[:1].repeat(2, 0), points[:2]) is None  # one place


def test_a_bone_maps_onto_the_driving_bone_stretched_along_it_only() -> None:
    source = np.array([10.0, 10.0]), np.array([10.0, 30.0])  # 20 px, pointing down
    target = np.array([50.0, 50.0]), np.array([80.0, 50.0])  # 30 px, pointing right
    affine = bone_map(*source, *target, across_scale=1.0)
    assert np.allclose(apply(affine, np.stack(source)), np.stack(target))
    across = apply(affine, np.array([[14.0, 10.0]]))[0]  # 4 px beside the root
    assert np.isclose(np.linalg.norm(across - target[0]), 4.0)  # across: the body's scale
    short = bone_map(np.array([0.0, 0.0]), np.array([0.0, 1.0]), np.array([0.0, 0.0]),
                     np.array([0.0, 100.0]), 1.0, max_stretch=2.5)
    assert np.isclose(np.linalg.norm(apply(short, np.array([[0.0, 1.0]]))[0]), 2.5)  # clamped
    assert bone_map(source[0], source[0], *target, 1.0) is None


def test_repose_moves_each_segment_by_its_own_map() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    segments = np.full((40, 40), -1, np.int8)
    torso, head = SEGMENT_NAMES.index("torso"), SEGMENT_NAMES.index("head")
    image[10:20, 10:20] = (200, 0, 0)
    segments[10:20, 10:20] = torso
    image[2:6, 12:16] = (0, 0, 200)
    segments[2:6, 12:16] = head
    shift = {torso: np.array([[1.0, 0, 15], [0, 1.0, 5]]),  # 15 right, 5 down
             head: np.array([[1.0, 0, 0], [0, 1.0, 0]])}  # stays
    colour, alpha = repose(image, segments, shift, grow=0)
    assert alpha[17, 30] == 255 and tuple(colour[17, 30]) == (200, 0, 0)
    assert alpha[15, 15] == 0 and colour[15, 15].max() == 0  # where the torso was
    assert tuple(colour[3, 13]) == (0, 0, 200)
    colour, alpha = repose(image, segments, {torso: shift[torso]}, grow=0)
    assert alpha[3, 13] == 0  # a segment without a map is not drawn


def standing(count: int, offset: float = 0.0) -> PoseSequence:
    """`count` frames of the holistic layout: a figure whose arms rise with the frame index."""
    names = MEDIAPIPE_HOLISTIC.joint_names
    keypoints = np.zeros((count, len(names), 3), np.float32)
    place = {"nose": (32, 10), "left_eye": (34, 8), "right_eye": (30, 8),
             "left_shoulder": (40, 20), "right_shoulder": (24, 20), "left_elbow": (44, 30),
             "right_elbow": (20, 30), "left_wrist": (46, 40), "right_wrist": (18, 40),
             "left_hip": (37, 40), "right_hip": (27, 40), "left_knee": (37, 50),
             "right_knee": (27, 50), "left_ankle": (37, 60), "right_ankle": (27, 60)}
    for name, (x, y) in place.items():
        keypoints[:, names.index(name)] = (x + offset, y, 1.0)
    raise_by = np.arange(count, dtype=np.float32)
    for name in ("left_wrist", "right_wrist"):
        keypoints[:, names.index(name), 1] -= raise_by
    return PoseSequence(keypoints, MEDIAPIPE_HOLISTIC, 30.0, (64, 64), np.ones(count, bool),
                        np.arange(count) / 30.0)


def painted_bank(poses: PoseSequence) -> TextureBank:
    """Frames of a grey room with the figure drawn thick in red: the plate differs there."""
    import cv2

    plate = np.full((64, 64, 3), 90, np.uint8)
    frames = np.repeat(plate[None], poses.num_frames, axis=0)
    layout = JointLayout.from_names(poses.skeleton.joint_names)
    bones = [("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
             ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
             ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"),
             ("right_knee", "right_ankle"), ("left_shoulder", "right_hip"),
             ("right_shoulder", "left_hip"), ("nose", "left_shoulder")]
    for index, frame in enumerate(frames):
        for start, end in bones:
            a = poses.keypoints[index, getattr(layout, start), :2].astype(int)
            b = poses.keypoints[index, getattr(layout, end), :2].astype(int)
            cv2.line(frame, tuple(int(v) for v in a), tuple(int(v) for v in b), (220, 30, 30), 4)
    return TextureBank(frames, poses, plate)


def test_nearest_frames_keep_their_distance_from_the_query_frame() -> None:
    xy = np.arange(10, dtype=np.float64)[:, None, None].repeat(3, 1).repeat(2, 2)  # (10, 3, 2)
    seen = np.ones((10, 3), bool)
    assert list(nearest_frames(xy, seen, xy, seen)) == list(range(10))
    gapped = nearest_frames(xy, seen, xy, seen, query_frames=np.arange(10), gap=3)
    assert all(abs(int(found) - index) >= 3 for index, found in enumerate(gapped))
    assert list(gapped[:2]) == [3, 4] and gapped[9] == 6
    nothing = nearest_frames(xy[:1], np.zeros((1, 3), bool), xy, seen)
    assert nothing[0] == -1


def test_smooth_references_find_the_cheapest_path_of_distances_and_changes() -> None:
    rng = np.random.default_rng(0)
    bank = rng.normal(0, 4, (4, 3, 2))
    query = bank[[0, 1, 0, 1, 2]] + rng.normal(0, 1.5, (5, 3, 2))
    seen, bank_seen = np.ones((5, 3), bool), np.ones((4, 3), bool)
    distance = pose_distances(query[:, None], seen[:, None], bank[None], bank_seen[None])
    assert list(smooth_references(query, seen, bank, bank_seen, 0.0)) == list(
        nearest_frames(query, seen, bank, bank_seen))
    for switch in (0.5, 3.0, 50.0):
        def cost(path: tuple[int, ...], switch: float = switch) -> float:
            return float(distance[np.arange(5), list(path)].sum()
                         + switch * np.count_nonzero(np.diff(path)))
        best = min(itertools.product(range(4), repeat=5), key=cost)  # every path, by brute force
        found = smooth_references(query, seen, bank, bank_seen, switch, candidates=4)
        assert cost(tuple(found)) == pytest.approx(cost(best))
    held = smooth_references(query, seen, bank, bank_seen, 50.0, candidates=4)
    assert len(set(held)) == 1  # a change costs more than any distance here
    # a query with no pose keeps the path's reference; a frame that may not be picked is not
    blind = seen.copy()
    blind[2] = False
    path = smooth_references(query, blind, bank, bank_seen, 0.0)
    assert path[2] == path[1]
    closed = bank_seen.copy()
    closed[0] = False
    assert 0 not in smooth_references(query, seen, bank, closed, 3.0)


def test_the_bank_re_poses_its_nearest_frame_and_keeps_it_while_it_fits() -> None:
    poses = standing(12)
    bank = painted_bank(poses)
    assert bank.nearest(poses.keypoints[7]) == 7
    references = bank.training_references(gap=4)
    assert all(abs(int(found) - index) >= 4 for index, found in enumerate(references))
    encoded = bank.encode(poses.keypoints[5], (64, 64), reference=9)
    assert encoded.shape == (64, 64, 4) and encoded.dtype == np.uint8
    layout = bank.layout
    wrist = poses.keypoints[5, layout.left_wrist, :2].astype(int)
    assert encoded[wrist[1], wrist[0], 3] > 128  # the arm was moved to frame 5's wrist
    assert encoded[wrist[1], wrist[0], 0] > 150  # in the reference's red
    assert encoded[2, 2, 3] == 0  # the room is not texture
    # a driving video that moves by less than a pixel a frame keeps one reference for a while
    slow = standing(12)
    slow.keypoints[:, :, 1] += np.linspace(0, 0.8, 12, dtype=np.float32)[:, None]
    chosen = bank.references(slow)
    assert len(np.unique(chosen)) < len(np.unique(
        [bank.nearest(keypoints) for keypoints in slow.keypoints]))
    assert len(np.unique(bank.references(slow, switch_cost=0.0))) >= len(np.unique(chosen))


def test_the_bank_refuses_a_target_that_never_shows_its_torso() -> None:
    poses = standing(4)
    layout = JointLayout.from_names(poses.skeleton.joint_names)
    poses.keypoints[:, layout.left_hip, 2] = 0.0
    with pytest.raises(BadInput, match="shoulders and hips"):
        TextureBank(np.zeros((4, 64, 64, 3), np.uint8), poses, None)


def test_texture_conditioning_adds_four_channels_and_needs_a_bank() -> None:
    conditioning = Conditioning.for_skeleton("stick_figure", MEDIAPIPE_HOLISTIC, texture=True)
    assert (conditioning.channels, conditioning.pose_channels) == (7, 3)
    assert bank_module.TEXTURE_CHANNELS == texture_generator.TEXTURE_CHANNELS
    assert Conditioning.from_dict(conditioning.to_dict(), "here") == conditioning
    assert not Conditioning.from_dict({"kind": "stick_figure", "channels": 3}, "old").texture
    poses = standing(6)
    with pytest.raises(BadInput, match="texture"):
        conditioning.encode(poses.keypoints[0], poses.skeleton, 64, 64)
    encoded = conditioning.encode(poses.keypoints[0], poses.skeleton, 64, 64,
                                  texture=painted_bank(poses))
    assert encoded.shape == (64, 64, 7)
    assert conditioning.to_rgb(encoded).shape == (64, 64, 3)


def small_texture_generator() -> TextureGenerator:
    torch.manual_seed(0)
    return TextureGenerator(GeneratorConfig(pose_channels=7, ngf=4, n_downsample=1, n_blocks=1,
                                            max_channels=8)).eval()


def test_a_new_texture_generator_shows_the_texture_over_the_plate() -> None:
    generator = small_texture_generator()
    plate = torch.full((3, 16, 24), -0.5)
    generator.set_plate(plate)
    pose = torch.rand(1, 7, 16, 24) * 2 - 1
    pose[:, -1] = -1.0
    pose[:, -1, :, :12] = 1.0  # texture on the left half only
    with torch.no_grad():
        frame = generator(pose, pose, torch.zeros(1, 3, 16, 24))
    mask = generator.last_mask
    assert mask is not None
    assert torch.allclose(mask[..., :12], torch.sigmoid(torch.tensor(3.0)), atol=1e-6)
    assert torch.allclose(mask[..., 12:], torch.sigmoid(torch.tensor(-3.0)), atol=1e-6)
    blend = torch.sigmoid(torch.tensor(3.0))
    with torch.no_grad():
        painted = generator.generator(pose, pose, torch.zeros(1, 3, 16, 24))[:, :3]
    person = blend * pose[:, 3:6] + (1 - blend) * painted
    expected = mask * person + (1 - mask) * plate
    assert torch.allclose(frame[..., :12], expected[..., :12], atol=1e-5)
    assert (frame[..., 12:] - plate[..., 12:]).abs().max() < 0.1  # mostly the plate


def test_the_blend_passes_the_texture_through_where_the_network_trusts_it() -> None:
    generator = small_texture_generator()
    last = generator.generator.network.output[1]  # the 7x7 conv before tanh
    with torch.no_grad():
        last.weight[3:].zero_()
        last.bias[3:] = 20.0  # mask and blend corrections: tanh(20) = 1
    pose = torch.rand(2, 7, 16, 24) * 2 - 1
    pose[:, -1] = 1.0  # texture alpha everywhere
    zeros = torch.zeros(2, 3, 16, 24)
    with torch.no_grad():
        frame = generator(pose, pose, zeros)
    assert torch.allclose(frame, pose[:, 3:6], atol=1e-3)  # no plate: the texture itself
    generator.set_plate(torch.zeros(3, 16, 24))
    pose[:, -1] = -1.0  # no texture: the painted person, composited
    with torch.no_grad():
        frame = generator(pose, pose, zeros)
        painted = generator.generator(pose, pose, zeros)[:, :3]
    mask = generator.last_mask
    assert mask is not None and torch.allclose(mask, torch.sigmoid(torch.tensor(3.0)))
    assert torch.allclose(frame, mask * painted, atol=1e-5)  # over a black plate


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return clips_project(tmp_path_factory.mktemp("texture"))


def test_training_with_texture_transfers_exports_and_resumes(project, tmp_path: Path) -> None:
    project, source = project
    fast_training_settings(project)
    runner = CliRunner()
    result = runner.invoke(app, hoist_global_flags(
        ["train-target", str(project.root), "--steps", "2", "--texture"]))
    assert result.exit_code == 0, result.output
    model = Checkpoint.load(project.paths.checkpoint)
    assert model.architecture == TEXTURE_ARCHITECTURE and model.conditioning.texture
    assert model.train.texture and model.generator.pose_channels == 7

    streamed = streamed_equals_sequential(project, source, tmp_path)
    assert probe(streamed).frame_count == 15
    bank = texture_bank(project, model)
    assert bank.size == model.working_size
    held_out = texture_bank(project, model, before_frame=60)  # the held-out protocol's bank
    assert bank.allowed[60:].any() and not held_out.allowed[60:].any()
    assert len(bank.frames) == load_poses(project, project.target).num_frames
    exported = export_project(project)
    assert all(m.max_abs_difference < 1e-3 for m in exported.models if m.precision == "fp32")

    resumed = runner.invoke(app, hoist_global_flags(
        ["train-target", str(project.root), "--resume", "--steps", "3"]))
    assert resumed.exit_code == 0, resumed.output
    again = Checkpoint.load(project.paths.checkpoint)
    assert again.conditioning.texture and again.generator_step == 3


def test_the_texture_attention_starts_as_the_plain_blend_and_reads_the_texture() -> None:
    config = GeneratorConfig(pose_channels=7, ngf=4, n_downsample=2, n_blocks=1, max_channels=8)
    torch.manual_seed(0)
    plain = TextureGenerator(config).eval()
    attentive = AttentiveTextureGenerator(config).eval()
    attentive.generator.load_state_dict(plain.generator.state_dict())
    pose = torch.rand(1, 7, 16, 16) * 2 - 1
    zeros = torch.zeros(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(attentive(pose, pose, zeros), plain(pose, pose, zeros))  # gain 0
    attentive(pose, pose, zeros).square().sum().backward()
    assert attentive.attention.gain.grad is not None  # it runs inside the generator
    assert attentive.attention.gain.grad.abs().item() > 0
    module = attentive.attention
    features = torch.rand(1, module.value.out_channels, 4, 4)
    with torch.no_grad():
        module.gain.fill_(1.0)
        one = module(features, pose[:, -4:])
        other = module(features, pose[:, -4:].flip(-1))
    assert not torch.allclose(one, other)  # the attended values come from the texture
    with pytest.raises(RuntimeError, match="inside the generator"):
        attentive._attend(attentive, (features,))


def test_training_with_texture_attention_exports_the_attention(tmp_path: Path) -> None:
    project, source = clips_project(tmp_path)
    fast_training_settings(project)
    refused = CliRunner().invoke(app, hoist_global_flags(
        ["train-target", str(project.root), "--steps", "1", "--no-texture",
         "--texture-attention"]))
    assert refused.exit_code != 0 and "needs texture = true" in refused.output
    result = CliRunner().invoke(app, hoist_global_flags(
        ["train-target", str(project.root), "--steps", "1", "--texture", "--texture-attention"]))
    assert result.exit_code == 0, result.output
    model = Checkpoint.load(project.paths.checkpoint)
    assert model.architecture == ATTENTIVE_TEXTURE_ARCHITECTURE
    assert any(key.startswith("attention.") for key in model.models["generator"])
    exported = export_project(project)
    assert all(m.max_abs_difference < 1e-3 for m in exported.models if m.precision == "fp32")
    transfer(project, source, tmp_path / "attended.mp4",
             TransferConfig(max_seconds=0.2, backend=BackendConfig(backend="onnx")))
    assert probe(tmp_path / "attended.mp4").frame_count == 6
