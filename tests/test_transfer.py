"""transfer end to end on a 2-second clip, and its errors (no model, a broken model, nobody in the
source). The personal model is the tiny preset trained for a couple of steps: these tests check
the plumbing (frames, rate, audio, side by side, batch), not the picture quality."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import clips_project, write_blank_video
from typer.testing import CliRunner

from motionxfer.checkpoint import Checkpoint
from motionxfer.cli import (
    app,
    commands,  # noqa: F401
    hoist_global_flags,
)
from motionxfer.conditioning import CONDITIONINGS, Conditioning
from motionxfer.errors import CheckpointError
from motionxfer.inference.export import export_project
from motionxfer.inference.transfer import TransferConfig, transfer, transfer_many
from motionxfer.io.video import probe, read_frames
from motionxfer.pipeline import import_keypoints, init_project, source_record
from motionxfer.pose.render import label_map_channels
from motionxfer.pose.sequence import PoseSequence
from motionxfer.project import Project
from motionxfer.training.train import train_plan, training_setup

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, hoist_global_flags([str(a) for a in args]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Project, Path]:
    """A project whose poses are the clips' ground-truth keypoints (no MediaPipe needed) and a
    tiny model trained for 2 steps."""
    folder = tmp_path_factory.mktemp("transfer")
    project, source = clips_project(folder)
    train_plan(project, training_setup(project, "tiny", False, steps=2, batch_size=1,
                                      perceptual=False, face_refiner=False))
    return project, source


def test_two_second_transfer_keeps_rate_frames_and_audio(trained, tmp_path: Path) -> None:
    project, source = trained
    output = tmp_path / "me dancing.mp4"
    result = transfer(project, source, output, TransferConfig(max_seconds=2.0))
    info = probe(output)
    assert result.frames == 60 and info.frame_count == 60
    assert info.fps == pytest.approx(30.0)
    assert info.has_audio  # the source's audio, copied
    assert (info.width, info.height) == (128, 128)  # the tiny preset's working size


def test_side_by_side_and_batch(trained, tmp_path: Path) -> None:
    project, source = trained
    second = tmp_path / "second dancer.mp4"
    shutil.copyfile(source, second)
    import_keypoints(project, source_record(project, second),
                     FIXTURES / "source_clip_keypoints.npz")
    results = transfer_many(project, [source, second], tmp_path,
                            TransferConfig(side_by_side=True, max_seconds=0.5))
    assert [r.output.name for r in results] == ["dancer_transfer.mp4",
                                                "second dancer_transfer.mp4"]
    for result in results:
        info = probe(result.output)
        assert (info.width, info.height, info.frame_count) == (3 * 128, 128, 15)


def test_transfer_command(trained, tmp_path: Path) -> None:
    project, source = trained
    output = tmp_path / "out.mp4"
    result = invoke("transfer", project.root, source, "-o", output, "--seconds", "1", "--json")
    assert result.exit_code == 0, result.output
    assert probe(output).frame_count == 30


def test_missing_checkpoint_is_a_clear_error(trained, tmp_path: Path) -> None:
    project, source = trained
    result = invoke("transfer", project.root, source, "-o", tmp_path / "x.mp4",
                    "--checkpoint", tmp_path / "nothing.pt")
    assert result.exit_code == CheckpointError.exit_code
    assert "no trained model" in result.stderr and "train-target" in result.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_corrupt_checkpoint_is_a_clear_error(trained, tmp_path: Path) -> None:
    project, source = trained
    broken = tmp_path / "broken.pt"
    broken.write_bytes(project.paths.checkpoint.read_bytes()[:5000])
    result = invoke("transfer", project.root, source, "-o", tmp_path / "x.mp4",
                    "--checkpoint", broken)
    assert result.exit_code == CheckpointError.exit_code, result.output
    assert result.stderr.count("error:") == 1 and "fix:" in result.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_checkpoint_of_another_project_is_refused(trained, tmp_path: Path) -> None:
    project, source = trained
    other = init_project(tmp_path / "other", FIXTURES / "gt_target0_source0_clip.mp4")
    with pytest.raises(CheckpointError, match="another"):
        transfer(other, source, tmp_path / "x.mp4", checkpoint=project.paths.checkpoint)


def test_source_with_nobody_in_it(trained, tmp_path: Path) -> None:
    project, _ = trained
    wall = write_blank_video(tmp_path / "wall.mp4", frames=10)
    before = (project.paths.manifest.read_bytes())
    result = invoke("transfer", project.root, wall, "-o", tmp_path / "x.mp4")
    assert result.exit_code == 2, result.output
    assert "no person" in result.stderr
    assert project.paths.manifest.read_bytes() == before
    assert not (tmp_path / "x.mp4").exists()


def test_generated_frames_depend_on_the_pose(trained, tmp_path: Path) -> None:
    """Not a quality test: two different poses must not give the same picture."""
    from motionxfer.io.video import read_frames

    project, source = trained
    output = tmp_path / "a.mp4"
    transfer(project, source, output, TransferConfig(max_seconds=2.0))
    frames = [f.rgb.astype(np.int16) for f in read_frames(output)]
    assert np.abs(frames[0] - frames[-1]).mean() > 0.5


def test_holdout_self_reconstruction(trained) -> None:
    """evaluate --holdout renders the held-out end of the target video (the last second of the
    4-second clip: the training split's holdout) and compares it with the real frames."""
    project, _ = trained
    result = invoke("evaluate", project.root, "--holdout", "--no-masked", "--no-lpips",
                    "--no-fid", "--no-temporal", "--no-pose", "--no-face", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    rendered = project.paths.logs / "holdout.mp4"
    assert probe(rendered).frame_count == 30
    assert summary["frames"] == 30
    assert 0.0 < summary["summary"]["ssim"] < 1.0


def test_evaluate_without_reference_says_how(trained, tmp_path: Path) -> None:
    project, source = trained
    result = invoke("evaluate", source)
    assert result.exit_code == 2
    assert "--reference" in result.stderr and "--holdout" in result.stderr


def test_label_map_conditioning_trains_transfers_and_exports(tmp_path: Path) -> None:
    """The per-limb label maps, chosen with --conditioning, reach every stage: the networks get
    one input channel per label map, the checkpoint records the choice, and transfer (streamed
    and sequential, side by side) and the ONNX export draw the same maps."""
    project, source = clips_project(tmp_path)
    settings = project.paths.config.read_text().replace(
        "[train]\n", '[train]\npreset = "tiny"\nperceptual = false\nnum_workers = 0\n'
        "face_refiner_steps = 2\nvalidation_frames = 2\n")
    project.paths.config.write_text(settings)
    trained = invoke("train-target", project.root, "--steps", "2", "--conditioning",
                     "label_maps")
    assert trained.exit_code == 0, trained.output
    skeleton = PoseSequence.load(project.paths.poses(project.target.video_id)).skeleton
    channels = label_map_channels(skeleton)
    model = Checkpoint.load(project.paths.checkpoint)
    assert model.conditioning == Conditioning("label_maps", channels) and channels > 3
    assert model.generator.pose_channels == channels
    assert model.face_refiner is not None and model.face_refiner.pose_channels == channels
    assert model.models["discriminator"]  # trained against label maps as well

    streamed, sequential = tmp_path / "streamed.mp4", tmp_path / "sequential.mp4"
    transfer(project, source, streamed, TransferConfig(max_seconds=0.5, side_by_side=True))
    transfer(project, source, sequential, TransferConfig(max_seconds=0.5, side_by_side=True,
                                                         streaming=False))
    info = probe(streamed)
    assert (info.width, info.height, info.frame_count) == (3 * 128, 128, 15)
    frames = [[frame.rgb for frame in read_frames(path)] for path in (streamed, sequential)]
    assert all(np.array_equal(a, b) for a, b in zip(*frames, strict=True))

    exported = export_project(project)
    assert {m.network for m in exported.models} == {"generator", "face_refiner"}
    assert all(m.max_abs_difference < 1e-3 for m in exported.models if m.precision == "fp32")

    resumed = invoke("train-target", project.root, "--resume", "--steps", "3")
    assert resumed.exit_code == 0, resumed.output
    assert Checkpoint.load(project.paths.checkpoint).conditioning.kind == "label_maps"


def test_the_conditioning_option_names_every_choice() -> None:
    help_text = " ".join(invoke("train-target", "--help").output.split())
    assert all(name in help_text for name in CONDITIONINGS)
