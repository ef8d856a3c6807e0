"""transfer end to end on a 2-second clip, and its errors (no model, a broken model, nobody in the
source). The personal model is the tiny preset trained for a couple of steps: these tests check
the plumbing (frames, rate, audio, side by side, batch), not the picture quality."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import clips_project, streamed_equals_sequential, write_blank_video
from typer.testing import CliRunner

from motionxfer.checkpoint import Checkpoint
from motionxfer.cli import (
    app,
    commands,  # noqa: F401
    hoist_global_flags,
)
from motionxfer.conditioning import CONDITIONINGS, Conditioning
from motionxfer.errors import BadInput, CheckpointError
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
    assert (info.width, info.height) == (256, 256)  # the target video's size (the tiny preset
    assert result.size == (256, 256)                # works at 128 px: upscaled)


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
        assert (info.width, info.height, info.frame_count) == (3 * 256, 256, 15)


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
    trained = invoke("train-target", project.root, "--steps", "2", "--no-texture",
                     "--conditioning", "label_maps")
    assert trained.exit_code == 0, trained.output
    skeleton = PoseSequence.load(project.paths.poses(project.target.video_id)).skeleton
    channels = label_map_channels(skeleton)
    model = Checkpoint.load(project.paths.checkpoint)
    assert model.conditioning == Conditioning("label_maps", channels) and channels > 3
    assert model.generator.pose_channels == channels
    assert model.face_refiner is not None and model.face_refiner.pose_channels == channels
    assert model.models["discriminator"]  # trained against label maps as well

    info = probe(streamed_equals_sequential(project, source, tmp_path, side_by_side=True))
    assert (info.width, info.height, info.frame_count) == (3 * 256, 256, 15)

    exported = export_project(project)
    assert {m.network for m in exported.models} == {"generator", "face_refiner"}
    assert all(m.max_abs_difference < 1e-3 for m in exported.models if m.precision == "fp32")

    resumed = invoke("train-target", project.root, "--resume", "--steps", "3")
    assert resumed.exit_code == 0, resumed.output
    assert Checkpoint.load(project.paths.checkpoint).conditioning.kind == "label_maps"


def test_the_conditioning_option_names_every_choice() -> None:
    help_text = " ".join(invoke("train-target", "--help").output.split())
    assert all(name in help_text for name in CONDITIONINGS)


# --- hardening: outputs, locks, trims, output options ---------------------------------------

def _copy_project(trained, tmp_path: Path) -> tuple[Project, Path]:
    """A project of its own on a copy of the target clip (same content: the trained model fits),
    so that a test may try to overwrite its target video without touching the fixtures."""
    project, _ = trained
    target = tmp_path / "me.mp4"
    shutil.copyfile(FIXTURES / "target_clip.mp4", target)
    source = tmp_path / "dancer.mp4"
    shutil.copyfile(FIXTURES / "source_clip.mp4", source)
    copy = init_project(tmp_path / "me", target)
    import_keypoints(copy, copy.target, FIXTURES / "target_clip_keypoints.npz")
    import_keypoints(copy, source_record(copy, source), FIXTURES / "source_clip_keypoints.npz")
    copy.paths.checkpoints.mkdir()
    shutil.copyfile(project.paths.checkpoint, copy.paths.checkpoint)
    return copy, source


def said(result) -> str:
    """stderr without the line breaks that rich puts into long messages (and paths)."""
    return "".join(result.stderr.splitlines())


def _digest(path: Path) -> str:
    from motionxfer.io.files import sha256_file

    return sha256_file(path)


def test_output_is_never_one_of_the_inputs(trained, tmp_path: Path) -> None:
    """-o naming the source, the project's target, a hard link to the source, or (batch) a
    default name that is another source's file: refused before any work, inputs intact."""
    project, source = _copy_project(trained, tmp_path)
    (tmp_path / "link.mp4").hardlink_to(source)
    before = {path: _digest(path) for path in (source, project.target.info.path)}
    for output, extra in [(source, []), (project.target.info.path, []),
                          (tmp_path / "link.mp4", []), (source, ["--side-by-side"])]:
        result = invoke("transfer", project.root, source, "-o", output, "--seconds", "0.5",
                        *extra)
        assert result.exit_code == 2, result.output
        assert "would destroy" in said(result) and "fix:" in said(result)
    # batch: out/dancer_transfer.mp4 is itself one of the sources
    out = tmp_path / "out"
    out.mkdir()
    victim = out / "dancer_transfer.mp4"
    shutil.copyfile(source, victim)
    result = invoke("transfer", project.root, source, victim, "-o", out, "--seconds", "0.5")
    assert result.exit_code == 2 and "would destroy" in said(result), result.output
    assert _digest(victim) == before[source]
    assert {path: _digest(path) for path in before} == before


def test_two_sources_with_one_name_are_refused_before_any_work(trained, tmp_path: Path) -> None:
    project, source = _copy_project(trained, tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"
    shutil.copyfile(source, first)
    shutil.copyfile(FIXTURES / "gt_target0_source0_clip.mp4", second)
    manifest = project.paths.manifest.read_bytes()
    result = invoke("transfer", project.root, first, second, "-o", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "would both be written to" in said(result) and "clip_transfer.mp4" in said(result)
    assert not (tmp_path / "out").exists()
    assert project.paths.manifest.read_bytes() == manifest  # no poses extracted


def test_output_folder_and_unknown_extension(trained, tmp_path: Path) -> None:
    """-o an existing folder: <folder>/<stem>_transfer.mp4 (even with a dot in its name);
    -o out.gif: a clear error before any work."""
    project, source = trained
    folder = tmp_path / "renders.v1"
    folder.mkdir()
    result = invoke("transfer", project.root, source, "-o", folder, "--seconds", "0.5")
    assert result.exit_code == 0, result.output
    assert probe(folder / "dancer_transfer.mp4").frame_count == 15
    result = invoke("transfer", project.root, source, "-o", tmp_path / "new", "--seconds", "0.5")
    assert result.exit_code == 0, result.output  # no extension: a folder, as before
    assert probe(tmp_path / "new" / "dancer_transfer.mp4").frame_count == 15
    result = invoke("transfer", project.root, source, "-o", tmp_path / "out.gif")
    assert result.exit_code == 2, result.output
    assert result.stderr.count("error:") == 1 and ".mp4" in said(result)
    assert "Traceback" not in result.output and not (tmp_path / "out.gif").exists()


@pytest.mark.parametrize("seconds", ["0", "-5"])
def test_seconds_must_be_positive(trained, tmp_path: Path, seconds: str) -> None:
    project, source = trained
    result = invoke("transfer", project.root, source, "-o", tmp_path / "x.mp4",
                    "--seconds", seconds)
    assert result.exit_code == 2, result.output
    assert "--seconds must be more than 0" in said(result) and "fix:" in said(result)
    assert not (tmp_path / "x.mp4").exists()


def test_transfer_keeps_the_trim_of_extract_poses(trained, tmp_path: Path) -> None:
    """A source whose poses were made for 1-3 s is transferred as those 2 s (60 frames), from
    its cached poses, unless --start/--end say otherwise."""
    project, _ = trained
    source = tmp_path / "trimmed dancer.mp4"
    shutil.copyfile(FIXTURES / "gt_target0_source0_clip.mp4", source)
    keypoints = dict(np.load(FIXTURES / "gt_target0_source0_clip_keypoints.npz"))
    for name in ("kp2d", "visible", "in_frame"):
        keypoints[name] = keypoints[name][30:90]
    np.savez(tmp_path / "trimmed.npz", **keypoints)
    record = source_record(project, source, 1.0, 3.0)
    import_keypoints(project, record, tmp_path / "trimmed.npz")
    videos = set(project.videos)
    result = transfer(project, source, tmp_path / "t.mp4")
    assert result.frames == 60 and probe(tmp_path / "t.mp4").frame_count == 60
    assert set(Project.open(project.root).videos) == videos  # no new, untrimmed record
    assert Project.open(project.root).videos[record.video_id].start == 1.0
    # --start/--end within the recorded trim... are a trim of their own (poses re-made):
    # here only checked to be validated before any work.
    with pytest.raises(BadInput, match="past the end"):
        transfer(project, source, tmp_path / "u.mp4", TransferConfig(start=1.0, end=9.0))


def test_output_size_quality_and_codec(trained, tmp_path: Path) -> None:
    project, source = trained
    out = tmp_path / "h.mp4"
    assert invoke("transfer", project.root, source, "-o", out, "--seconds", "0.2",
                  "--height", "64").exit_code == 0
    assert (probe(out).width, probe(out).height) == (64, 64)
    out = tmp_path / "s.mkv"
    result = invoke("transfer", project.root, source, "-o", out, "--seconds", "0.2",
                    "--size", "96x64", "--codec", "libx265", "--crf", "30")
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert (info.width, info.height, info.codec) == (96, 64, "hevc")
    first = next(read_frames(out)).rgb
    assert first[:, :8].mean() < 20 and first[:, -8:].mean() < 20  # letterboxed, not stretched
    for bad in (["--crf", "60"], ["--size", "97x64"], ["--size", "big"],
                ["--codec", "gif"], ["--height", "64", "--size", "64x64"]):
        result = invoke("transfer", project.root, source, "-o", tmp_path / "bad.mp4", *bad)
        assert result.exit_code == 2, (bad, result.output)
        assert result.stderr.count("error:") == 1 and "fix:" in said(result)
    assert not (tmp_path / "bad.mp4").exists()


def test_a_hardware_encoder_opens_or_names_those_that_do(trained, tmp_path: Path) -> None:
    """h264_nvenc where PyAV's FFmpeg has it and a GPU opens it; otherwise a clear error that
    names the encoders that work here."""
    from motionxfer.io.video import available_encoders, encoder_problem

    project, source = trained
    out = tmp_path / "n.mp4"
    result = invoke("transfer", project.root, source, "-o", out, "--seconds", "0.2",
                    "--codec", "h264_nvenc")
    if encoder_problem("h264_nvenc") is None:
        assert result.exit_code == 0, result.output
        assert probe(out).codec == "h264"
    else:
        assert result.exit_code == 2, result.output
        assert "h264_nvenc" in said(result) and "libx264" in said(result)
        assert not out.exists()
    assert "libx264" in available_encoders()


def test_start_and_end_pick_the_part_of_the_source(trained, tmp_path: Path) -> None:
    """--start/--end on a source without recorded trim: that part only, with its audio."""
    project, source = _copy_project(trained, tmp_path)
    keypoints = dict(np.load(FIXTURES / "source_clip_keypoints.npz"))
    for name in ("kp2d", "visible", "in_frame"):
        keypoints[name] = keypoints[name][30:90]
    np.savez(tmp_path / "part.npz", **keypoints)
    import_keypoints(project, source_record(project, source, 1.0, 3.0), tmp_path / "part.npz")
    result = transfer(project, source, tmp_path / "p.mp4", TransferConfig(start=1.0, end=3.0))
    assert result.frames == 60
    info = probe(tmp_path / "p.mp4")
    assert info.frame_count == 60 and info.has_audio and info.duration == pytest.approx(2.0, 0.1)


def test_side_by_side_shows_the_ground_truth(trained, tmp_path: Path) -> None:
    """source | stick figure | generated | ground truth, as the README's picture."""
    project, source = trained
    truth = FIXTURES / "gt_target0_source0_clip.mp4"
    out = tmp_path / "sbs.mp4"
    result = invoke("transfer", project.root, source, "-o", out, "--side-by-side",
                    "--ground-truth", truth, "--seconds", "0.5", "--height", "128")
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert (info.width, info.height, info.frame_count) == (4 * 128, 128, 15)
    written = next(read_frames(out)).rgb[:, 3 * 128:].astype(np.float32)
    real = next(read_frames(truth)).rgb[::2, ::2].astype(np.float32)
    assert np.abs(written - real).mean() < 12  # the real frame (scaled, re-encoded)
    source_panel = next(read_frames(out)).rgb[:, :128].astype(np.float32)
    assert np.abs(source_panel - real).mean() > np.abs(written - real).mean()
    result = invoke("transfer", project.root, source, "-o", out, "--ground-truth", truth)
    assert result.exit_code == 2 and "--side-by-side" in said(result)


def test_transfer_generates_under_the_shared_lock(trained, tmp_path: Path) -> None:
    """While frames are generated the project is read-locked: a writer (train-target) is
    refused with ProjectLocked, another reader gets in."""
    from motionxfer.errors import ProjectLocked

    project, source = trained
    seen: list[str] = []

    def progress(description: str, done: int, total: int | None, rate: str = "") -> None:
        if not description.startswith("transfer") or seen:
            return
        other = Project.open(project.root)  # another open file: as another process would be
        with other.locked("reader", shared=True):
            seen.append("reader admitted")
        try:
            with other.locked("train-target"):
                seen.append("writer admitted")
        except ProjectLocked as error:
            seen.append(f"writer refused: {error.message}")

    transfer(project, source, tmp_path / "x.mp4", TransferConfig(max_seconds=0.2),
             progress=progress)
    assert seen[0] == "reader admitted"
    assert seen[1].startswith("writer refused") and "transfer" in seen[1]
    with Project.open(project.root).locked("train-target"):  # free again afterwards
        pass
