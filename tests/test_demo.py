"""The demo: the whole job on a samples folder, and the bundled sample model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from motionxfer.checkpoint import Checkpoint
from motionxfer.conditioning import Conditioning
from motionxfer.demo import default_samples_dir, run_demo
from motionxfer.errors import BadInput
from motionxfer.io.files import sha256_file
from motionxfer.io.video import probe
from motionxfer.networks.registry import COMPOSITING_ARCHITECTURE

FIXTURES = Path(__file__).parent / "fixtures"


def test_bundled_sample_model_belongs_to_the_bundled_target() -> None:
    samples = default_samples_dir()
    path = samples / "model.pt"
    assert path.stat().st_size <= 25 * 1024 * 1024
    model = Checkpoint.load(path, sha256_file(samples / "target.mp4"))
    assert model.preset.name == "tiny" and model.generator_step > 0 and model.face_refiner_step > 0
    # today's defaults: the stick figure alone, the person composited over the plate
    assert model.conditioning == Conditioning("stick_figure", 3, texture=False)
    assert model.architecture == COMPOSITING_ARCHITECTURE and "background" in model.models


def test_demo_runs_the_whole_job(tmp_path: Path) -> None:
    """On 4-second samples, training 2 steps from scratch: poses, model, transfer with audio,
    side by side, scores against the ground truth."""
    samples = tmp_path / "samples"
    samples.mkdir()
    shutil.copyfile(FIXTURES / "target_clip.mp4", samples / "target.mp4")
    shutil.copyfile(FIXTURES / "source_clip.mp4", samples / "source.mp4")
    shutil.copyfile(FIXTURES / "gt_target0_source0_clip.mp4", samples / "ground_truth.mp4")
    lines: list[str] = []
    result = run_demo(tmp_path / "work", samples, train_steps=2, log=lines.append)
    transfer, side_by_side = result.videos
    assert probe(transfer).frame_count == 120 and probe(transfer).has_audio
    # the target video's size; source | stick figure | generated | ground truth, as in the README
    assert (probe(transfer).width, probe(transfer).height) == (256, 256)
    assert (probe(side_by_side).width, probe(side_by_side).height) == (4 * 256, 256)
    assert probe(result.project / "logs" / "demo_working_size.mp4").height == 128  # scored
    assert {"ssim", "psnr"} <= set(result.scores)  # LPIPS too when its weights are cached
    assert 0.0 < result.scores["ssim"] < 1.0
    assert any("against the ground truth" in line for line in lines)


def test_demo_without_samples_says_where_to_run_it(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="lacks") as error:
        run_demo(tmp_path / "work", tmp_path)
    assert "--samples" in error.value.hint
