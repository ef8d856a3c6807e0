"""Animating one image: the animate command and transfer --method animate on fixture clips,
audio kept, several driving videos with one model load, and bad inputs refused with nothing
written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from conftest import write_blank_video
from typer.testing import CliRunner

from motionxfer.animation.animate import AnimateConfig, animate_image
from motionxfer.animation.checkpoint import AnimatorCheckpoint
from motionxfer.animation.framing import fit_square, to_rgb8
from motionxfer.animation.train import AnimatorTrainConfig, train_animator
from motionxfer.cli import app, commands, hoist_global_flags  # noqa: F401  (registers commands)
from motionxfer.errors import BadInput, NoPersonFound

torch.set_num_threads(1)
FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = Path(__file__).parent.parent / "samples"
DRIVING = FIXTURES / "source_clip.mp4"
runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, hoist_global_flags([str(a) for a in args]))


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("animator")
    videos = folder / "videos"
    videos.mkdir()
    for name in ("target_clip.mp4", "source_clip.mp4"):
        shutil.copy(FIXTURES / name, videos / name)
    output = folder / "animator.pt"
    train_animator(videos, output, AnimatorTrainConfig(steps=2, batch_size=1),
                   perceptual_from_cache=False)
    return output


@pytest.fixture(scope="module")
def person(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    with av.open(str(FIXTURES / "target_clip.mp4")) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def write_image(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), image)
    return path


def video_streams(path: Path) -> tuple[int, int, list[str]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        return frames, stream.width, [s.type for s in container.streams]


def test_animate_cli_keeps_the_audio_and_the_frame_rate(model: Path, person: np.ndarray,
                                                        tmp_path: Path) -> None:
    image = write_image(tmp_path / "photo.png", person[..., ::-1])
    output = tmp_path / "photo_dancing.mp4"
    result = invoke("--json", "animate", image, DRIVING, "-o", output, "--model", model,
                    "--seconds", "1", "--threads", "1")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])["outputs"][0]
    assert report["audio"] and report["frames"] == 30 and report["size"] == 64
    assert "resized to 64x64" in report["source_fitting"]
    frames, width, kinds = video_streams(output)
    assert (frames, width) == (30, 64) and "audio" in kinds


def test_several_driving_videos_one_load_relative_and_absolute_differ(
        model: Path, person: np.ndarray, tmp_path: Path) -> None:
    drivings = [DRIVING, FIXTURES / "target_clip.mp4"]
    outputs = [tmp_path / "a.mp4", tmp_path / "b.mp4"]
    config = AnimateConfig(max_seconds=0.5)
    results = animate_image(person, drivings, outputs, config, model)
    assert [r.frames for r in results] == [15, 15] and all(p.is_file() for p in outputs)
    absolute = animate_image(person, drivings[:1], [tmp_path / "abs.mp4"],
                             AnimateConfig(max_seconds=0.5, relative=False), model)
    assert absolute[0].frames == 15
    first = [next(av.open(str(p)).decode(video=0)).to_ndarray(format="rgb24")
             for p in (outputs[0], tmp_path / "abs.mp4")]
    assert np.abs(first[0].astype(int) - first[1].astype(int)).max() > 0


def test_grayscale_and_rgba_pictures_are_converted(model: Path, person: np.ndarray,
                                                   tmp_path: Path) -> None:
    gray = cv2.cvtColor(person, cv2.COLOR_RGB2GRAY)
    rgb, note = to_rgb8(gray, "gray")
    assert rgb.shape == person.shape and note == "grayscale -> RGB"
    rgba = np.dstack([person[..., ::-1], np.zeros(person.shape[:2], np.uint8)])
    rgb, note = to_rgb8(rgba, "rgba")
    assert note == "RGBA composited on white" and rgb.min() == 255  # fully transparent
    image = write_image(tmp_path / "gray.png", gray)
    result = invoke("animate", image, DRIVING, "-o", tmp_path / "gray.mp4", "--model", model,
                    "--seconds", "0.3")
    assert result.exit_code == 0, result.output
    assert "grayscale -> RGB" in result.output


def test_fitting_crops_nearly_square_and_pads_portraits() -> None:
    portrait = np.zeros((300, 200, 3), np.uint8)
    portrait[:, :, 0] = np.arange(300)[:, None] % 256
    square, fitting = fit_square(portrait, 64)
    assert square.shape == (64, 64, 3) and fitting.mode == "pad"
    nearly = np.zeros((220, 200, 3), np.uint8)
    assert fit_square(nearly, 64)[1].mode == "crop"
    assert fit_square(nearly, 64, "pad")[1].mode == "pad"


def test_bad_inputs_are_refused_and_nothing_is_written(model: Path, person: np.ndarray,
                                                       tmp_path: Path) -> None:
    uniform = write_image(tmp_path / "wall.png", np.full((256, 256, 3), 128, np.uint8))
    wide = write_image(tmp_path / "wide.png", np.random.default_rng(0).integers(
        0, 255, (100, 600, 3), dtype=np.uint8))
    small = write_image(tmp_path / "small.png", cv2.resize(person, (20, 20)))
    good = write_image(tmp_path / "photo.png", person[..., ::-1])
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    empty_room = write_blank_video(tmp_path / "empty_room.mp4", frames=20, size=128)
    cases = [
        (uniform, [DRIVING], "nobody in it"),
        (wide, [DRIVING], "aspect 6.0:1"),
        (small, [DRIVING], "too small"),
        (not_an_image, [DRIVING], "not an image"),
        (good, [DRIVING, empty_room], "nothing moves"),  # the good driving video is not written
        (good, [tmp_path / "missing.mp4"], "missing.mp4"),
    ]
    out = tmp_path / "out"
    for image, drivings, message in cases:
        result = invoke("animate", image, *drivings, "-o", out, "--model", model)
        assert result.exit_code == 2, (message, result.output)
        assert message in result.output.replace("\n", " "), result.output
        assert "fix:" in result.output
        assert not out.exists() or not any(out.iterdir())
    with pytest.raises(NoPersonFound):
        animate_image(np.full((64, 64, 3), 7, np.uint8), [DRIVING], [tmp_path / "x.mp4"],
                      model=model)
    assert not (tmp_path / "x.mp4").exists()
    with pytest.raises(BadInput, match="no fit"):
        AnimateConfig(fit="stretch")


def test_a_personal_model_passed_to_animate_says_which_command_takes_it(
        person: np.ndarray, tmp_path: Path) -> None:
    image = write_image(tmp_path / "photo.png", person[..., ::-1])
    result = invoke("animate", image, DRIVING, "-o", tmp_path / "o.mp4",
                    "--model", SAMPLES / "model.pt")
    assert result.exit_code == 5
    assert "personal model" in result.output and "transfer PROJECT" in result.output
    assert not (tmp_path / "o.mp4").exists()


def test_transfer_method_animate_moves_the_projects_first_frame(model: Path,
                                                                tmp_path: Path) -> None:
    project = tmp_path / "me"
    assert invoke("init", project, "--target", FIXTURES / "target_clip.mp4").exit_code == 0
    output = tmp_path / "me_dancing.mp4"
    result = invoke("--json", "transfer", project, DRIVING, "--method", "animate",
                    "--checkpoint", model, "-o", output, "--seconds", "0.5")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])["outputs"][0]
    assert report["backend"] == "animate" and report["frames"] == 15
    assert output.is_file() and "audio" in video_streams(output)[2]
    wrong = invoke("transfer", project, DRIVING, "--method", "dance", "-o", tmp_path / "w.mp4")
    assert wrong.exit_code == 2 and "personal (the default), animate" in wrong.output
    # an animator where the personal model is expected
    personal = invoke("transfer", project, DRIVING, "--checkpoint", model,
                      "-o", tmp_path / "p.mp4")
    assert personal.exit_code != 0 and "animator model" in personal.output.replace("\n", " ")
    assert not (tmp_path / "p.mp4").exists()
    assert AnimatorCheckpoint.load(model).step == 2


def test_the_bundled_animator_refuses_an_empty_room_and_takes_a_person(
        person: np.ndarray, tmp_path: Path) -> None:
    """The keypoint-confidence check (animation.checks) with the bundled model's statistics."""
    with av.open(str(FIXTURES / "target_clip.mp4")) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24")
                           for frame in container.decode(video=0)])
    room = np.median(frames, axis=0).astype(np.uint8)  # the person walks away: the background
    with pytest.raises(NoPersonFound, match="finds no body"):
        animate_image(room, [DRIVING], [tmp_path / "room.mp4"], AnimateConfig(max_seconds=0.2))
    assert not (tmp_path / "room.mp4").exists()
    results = animate_image(person, [DRIVING], [tmp_path / "person.mp4"],
                            AnimateConfig(max_seconds=0.2))
    assert results[0].frames == 6 and (tmp_path / "person.mp4").is_file()
