"""Training an animator: the CLI on two fixture clips, exact resumption after Ctrl-C, the
checkpoint format and its mix-ups with personal models."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from motionxfer.animation.checkpoint import ANIMATOR_FORMAT, AnimatorCheckpoint
from motionxfer.animation.train import AnimatorTrainConfig, log_path, train_animator
from motionxfer.checkpoint import Checkpoint, weights_digest
from motionxfer.cli import app, commands, hoist_global_flags  # noqa: F401  (registers commands)
from motionxfer.errors import BadInput, CheckpointError

torch.set_num_threads(1)
FIXTURES = Path(__file__).parent / "fixtures"
SAMPLES = Path(__file__).parent.parent / "samples"
runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, hoist_global_flags([str(a) for a in args]))


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for name in ("target_clip.mp4", "source_clip.mp4"):
        shutil.copy(FIXTURES / name, folder / name)
    return folder


def test_train_animator_cli_writes_a_self_describing_checkpoint(videos: Path,
                                                                tmp_path: Path) -> None:
    output = tmp_path / "animator.pt"
    result = invoke("--json", "train-animator", videos, "-o", output, "--steps", "3",
                    "--log-every", "1", "--threads", "1", "--no-jacobian")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["step"] == 3 and report["stopped"] == "steps" and report["videos"] == 2
    assert report["frames"] == 240
    payload = torch.load(output, weights_only=True)
    assert payload["format"] == ANIMATOR_FORMAT and payload["schema_version"] == 1
    checkpoint = AnimatorCheckpoint.load(output)
    assert checkpoint.step == 3 and checkpoint.trainable
    assert not checkpoint.config.estimate_jacobian  # the ablation flag reached the architecture
    assert checkpoint.train["steps"] == 3 and checkpoint.data["frames"] == 240
    assert checkpoint.person_check["confidence_p05"] > 0
    lines = log_path(output).read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
    assert checkpoint.inference_only().optimizers is None
    # training again onto the same file is refused, with the fix
    again = invoke("train-animator", videos, "-o", output, "--steps", "3")
    assert again.exit_code == 2 and "--resume" in again.output


def test_fomm_learning_rate_schedule() -> None:
    config = AnimatorTrainConfig(steps=100, learning_rate=1e-3)
    rates = [config.learning_rate_at(step) for step in (0, 59, 60, 89, 90, 99)]
    assert rates == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])


def test_resume_after_ctrl_c_is_exact(videos: Path, tmp_path: Path) -> None:
    settings = AnimatorTrainConfig(steps=4, batch_size=1, checkpoint_every=100, log_every=1)
    straight = train_animator(videos, tmp_path / "straight.pt", settings,
                              perceptual_from_cache=False)
    sent = []

    def press_ctrl_c(description: str, done: int, total: int | None, rate: str) -> None:
        if description == "training animator" and done >= 1 and not sent:
            sent.append(done)
            os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: stop after this step

    stopped = train_animator(videos, tmp_path / "resumed.pt", settings,
                             perceptual_from_cache=False, progress=press_ctrl_c)
    assert stopped.stopped == "interrupt" and 1 <= stopped.step < 4
    assert AnimatorCheckpoint.load(tmp_path / "resumed.pt").step == stopped.step
    resumed = train_animator(videos, tmp_path / "resumed.pt", resume=True,
                             perceptual_from_cache=False)
    assert resumed.step == 4 and resumed.steps_this_run == 4 - stopped.step
    digest = [weights_digest(AnimatorCheckpoint.load(tmp_path / name).models)
              for name in ("straight.pt", "resumed.pt")]
    assert digest[0] == digest[1]
    assert straight.step == 4


def test_resume_refuses_other_data_and_fixed_settings(videos: Path, tmp_path: Path) -> None:
    output = tmp_path / "animator.pt"
    train_animator(videos, output, AnimatorTrainConfig(steps=1, batch_size=1),
                   perceptual_from_cache=False)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(FIXTURES / "target_clip.mp4", other / "target_clip.mp4")
    with pytest.raises(BadInput, match="not the data"):
        train_animator(other, output, resume=True, perceptual_from_cache=False, steps=2)
    with pytest.raises(BadInput, match="batch_size cannot change"):
        train_animator(videos, output, resume=True, perceptual_from_cache=False, batch_size=4)
    with pytest.raises(BadInput, match="no folder of videos"):
        train_animator(tmp_path / "empty_missing", tmp_path / "x.pt")


def test_personal_models_and_animators_are_told_apart(tmp_path: Path, videos: Path) -> None:
    personal = SAMPLES / "model.pt"
    with pytest.raises(CheckpointError, match="personal model") as raised:
        AnimatorCheckpoint.load(personal)
    assert "transfer PROJECT" in raised.value.hint
    resumed = tmp_path / "animator.pt"
    shutil.copy(personal, resumed)
    result = invoke("train-animator", videos, "-o", resumed, "--resume")
    assert result.exit_code == 5 and "personal model" in result.output
    output = tmp_path / "real_animator.pt"
    train_animator(videos, output, AnimatorTrainConfig(steps=1, batch_size=1),
                   perceptual_from_cache=False)
    with pytest.raises(CheckpointError, match="animator model") as raised:
        Checkpoint.load(output)
    assert "motionxfer animate" in raised.value.hint


def test_the_animator_presets_are_data_files_read_strictly() -> None:
    from motionxfer.animation.model import preset, preset_names

    assert preset_names() == ["256", "tiny"]
    assert preset("tiny").image_size == 64 and preset("256").image_size == 256
    assert preset("256").keypoint_detector.block_expansion == 32  # the paper's vox-256
