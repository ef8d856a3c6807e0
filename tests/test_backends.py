"""Backends: the onnx backend makes the torch backend's video; execution providers fall back to
the CPU with one clear line (or fail when strict); settings a CPU cannot run are clear errors.

No GPU here: CUDA, TensorRT, fp16 on a GPU and CUDA graphs are checked up to their fallbacks and
messages only."""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from typer.testing import CliRunner

from motionxfer.checkpoint import Checkpoint
from motionxfer.cli import app, commands, hoist_global_flags  # noqa: F401
from motionxfer.errors import BadInput, MissingDependency
from motionxfer.evaluation.metrics.image import psnr
from motionxfer.inference.backends import open_backend
from motionxfer.inference.bench import random_checkpoint
from motionxfer.inference.frame_generator import BackendConfig, parse_providers
from motionxfer.inference.onnx_backend import OnnxBackend, choose_providers
from motionxfer.inference.streaming import VideoJob, generate_videos
from motionxfer.inference.transfer import TransferConfig, open_model, transfer, video_job
from motionxfer.io.video import read_frames
from motionxfer.pipeline import import_keypoints, init_project, normalize_source, source_record

FIXTURES = Path(__file__).parent / "fixtures"
HAS_CUDA_PROVIDER = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
# Thresholds. Before encoding, the two backends' frames differ by at most a grey level in a few
# pixels (float sums in another order): measured 77 dB and up over the 60 frames, so 60 dB.
# After encoding, each video carries its own x264 noise: a random model draws noise-like
# pictures, the hardest content for crf 18 (each video is only ~24 dB from its own frames), and
# x264's decisions (CRF, mb-tree) shift with any change of the input, so two encodes of frames
# that agree to 77 dB measured 34-46 dB apart. Two models that differ (a chaotic random
# generator, `random_checkpoint(previous_frame_gain=1)`, run by the two backends) give 14-22 dB.
# 30 dB holds those apart.
FRAME_PSNR = 60.0
VIDEO_PSNR = 30.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project on the fixture clips (ground-truth keypoints) with a tiny random model."""
    folder = tmp_path_factory.mktemp("backends")
    source = folder / "dancer.mp4"
    shutil.copyfile(FIXTURES / "source_clip.mp4", source)
    project = init_project(folder / "me", FIXTURES / "target_clip.mp4")
    import_keypoints(project, project.target, FIXTURES / "target_clip_keypoints.npz")
    import_keypoints(project, source_record(project, source), FIXTURES / "source_clip_keypoints.npz")
    random_checkpoint(project.paths.checkpoint, "tiny", (128, 128),
                      project_id=project.target.info.sha256, previous_frame_gain=0.1)
    return project, source


# --- provider choice (pure) ----------------------------------------------------------------------

def test_providers_fall_back_to_the_cpu_with_a_message_naming_the_fix() -> None:
    cpu_only = ["AzureExecutionProvider", "CPUExecutionProvider"]
    choice = choose_providers(("tensorrt", "cuda", "cpu"), cpu_only)
    assert choice.providers == ("cpu",) and choice.unavailable == ("tensorrt", "cuda")
    warning = choice.warning()
    assert "CUDAExecutionProvider" in warning and "TensorrtExecutionProvider" in warning
    assert "CPUExecutionProvider" in warning and "onnxruntime-gpu" in warning
    assert choose_providers(("cuda",), cpu_only).providers == ("cpu",)  # CPU: the last resort
    auto = choose_providers(None, cpu_only)
    assert auto.providers == ("cpu",) and auto.warning() is None  # nothing was asked for
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(None, gpu).providers == ("tensorrt", "cuda", "cpu")
    assert choose_providers(("cuda", "cpu"), gpu).providers == ("cuda", "cpu")
    with pytest.raises(MissingDependency, match="CUDAExecutionProvider") as error:
        choose_providers(("cuda", "cpu"), cpu_only, strict=True)
    assert "onnxruntime-gpu" in error.value.hint


def test_provider_names_are_parsed_and_checked() -> None:
    assert parse_providers("TensorRT, cuda,cpu") == ("tensorrt", "cuda", "cpu")
    assert parse_providers("auto") is None and parse_providers(None) is None
    with pytest.raises(BadInput, match="rocm"):
        parse_providers("rocm,cpu")
    with pytest.raises(BadInput, match="backend"):
        BackendConfig(backend="tensorflow")


# --- sessions ------------------------------------------------------------------------------------

@pytest.mark.skipif(HAS_CUDA_PROVIDER, reason="this machine has the CUDA provider")
def test_asking_for_cuda_without_it_runs_on_the_cpu_with_one_warning(
        project, caplog: pytest.LogCaptureFixture) -> None:
    project, _ = project
    with caplog.at_level(logging.WARNING):
        backend = open_backend(Checkpoint.load(project.paths.checkpoint),
                               BackendConfig(backend="onnx", providers=("cuda", "cpu")),
                               project.paths.exports)
    warnings = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "CUDAExecutionProvider not available" in warnings[0].getMessage()
    assert backend.providers[0] == "CPUExecutionProvider"
    assert "CPUExecutionProvider" in backend.describe()
    with pytest.raises(MissingDependency, match="CUDAExecutionProvider"):
        open_backend(Checkpoint.load(project.paths.checkpoint),
                     BackendConfig(backend="onnx", providers=("cuda",), strict_providers=True),
                     project.paths.exports)


def test_settings_a_cpu_cannot_run_are_clear_errors(project) -> None:
    project, _ = project
    checkpoint = Checkpoint.load(project.paths.checkpoint, project.target.info.sha256)
    with pytest.raises(BadInput, match="fp16") as error:
        open_backend(checkpoint, BackendConfig(device="cpu", precision="fp16"))
    assert "bf16" in error.value.hint
    with pytest.raises(BadInput, match="CUDA graphs") as error:
        open_backend(checkpoint, BackendConfig(device="cpu", cuda_graphs=True))
    assert "--cuda-graphs" in error.value.hint
    if not HAS_CUDA_PROVIDER:
        with pytest.raises(BadInput, match="CUDA graphs"):
            open_backend(checkpoint, BackendConfig(backend="onnx", cuda_graphs=True),
                         project.paths.exports)
    with pytest.raises(BadInput, match="bf16"):
        open_backend(checkpoint, BackendConfig(backend="onnx", precision="bf16"),
                     project.paths.exports)


def frames_of(backend, sticks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    previous = [None]
    frames = []
    for stick, box in zip(sticks, boxes, strict=True):
        generated = backend.generate(stick[None], previous)
        previous = [generated.recurrence(0)]
        frames.append(backend.finish(generated, box[None])[0])
    return np.stack(frames)


def test_every_onnx_variant_agrees_with_torch(project) -> None:
    """fp32 with both kinds of bindings within a grey level; fp16 and bf16 close."""
    project, _ = project
    checkpoint = Checkpoint.load(project.paths.checkpoint, project.target.info.sha256)
    rng = np.random.default_rng(0)
    sticks = np.zeros((6, 128, 128, 3), np.uint8)
    for stick in sticks:  # a few random thick strokes, as stick figures have
        for _ in range(6):
            x0, y0, x1, y1 = rng.integers(0, 128, 4)
            stick[min(y0, y1):max(y0, y1) + 3, min(x0, x1):max(x0, x1) + 3] = rng.integers(
                60, 256, 3)
    boxes = np.tile(np.array([[40, 8, 80, 48]], np.float32), (6, 1))
    boxes[2] = np.nan  # no face in frame 2
    reference = frames_of(open_backend(checkpoint, BackendConfig(device="cpu")),
                          sticks, boxes)
    exports = project.paths.exports
    dynamic = frames_of(open_backend(checkpoint, BackendConfig(backend="onnx"),
                                     exports), sticks, boxes)
    static = frames_of(OnnxBackend(checkpoint, BackendConfig(backend="onnx"), exports,
                                   static_bindings=True), sticks, boxes)
    assert np.array_equal(dynamic, static)
    assert np.abs(dynamic.astype(int) - reference).max() <= 1
    assert min_psnr(dynamic, reference) > FRAME_PSNR
    half = frames_of(open_backend(checkpoint, BackendConfig(backend="onnx", precision="fp16"),
                                  exports), sticks, boxes)
    assert 35 < min_psnr(half, reference) < FRAME_PSNR  # close, and really half precision
    bfloat = frames_of(open_backend(checkpoint, BackendConfig(device="cpu", precision="bf16")),
                       sticks, boxes)
    assert 25 < min_psnr(bfloat, reference) < FRAME_PSNR


def min_psnr(frames: np.ndarray, reference: np.ndarray) -> float:
    return min(psnr(one, other) for one, other in zip(reference, frames, strict=True))


class Collector:
    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def write(self, rgb: np.ndarray) -> None:
        self.frames.append(rgb.copy())


def test_onnx_makes_the_same_two_second_video_as_torch(project, tmp_path: Path) -> None:
    project, source = project
    config = {name: TransferConfig(BackendConfig(backend=name, device="cpu"), max_seconds=2.0)
              for name in ("torch", "onnx")}
    videos, frames = {}, {}
    for name in ("torch", "onnx"):
        videos[name] = tmp_path / f"{name}.mp4"
        result = transfer(project, source, videos[name], config[name])
        assert result.frames == 60 and name in result.backend
        # the same frames before encoding
        model = open_model(project, project.paths.checkpoint, config[name])
        record = source_record(project, source)
        job = video_job(model, record, normalize_source(project, record)[0], videos[name],
                        config[name])
        sink = Collector()
        generate_videos(model.backend, [VideoJob(job.name, job.poses, job.frame_count,
                                                 job.face_boxes,
                                                 lambda sink=sink: contextlib.nullcontext(sink))])
        frames[name] = np.stack(sink.frames)
    assert frames["torch"].shape == frames["onnx"].shape == (60, 128, 128, 3)
    assert min_psnr(frames["onnx"], frames["torch"]) > FRAME_PSNR
    assert np.abs(frames["onnx"].astype(int) - frames["torch"]).max() <= 2
    decoded = {name: np.stack([frame.rgb for frame in read_frames(videos[name])])
               for name in videos}
    assert min_psnr(decoded["onnx"], decoded["torch"]) > VIDEO_PSNR


def test_transfer_command_with_the_onnx_backend(project, tmp_path: Path) -> None:
    project, source = project
    output = tmp_path / "out.mp4"
    result = CliRunner().invoke(app, hoist_global_flags([
        "transfer", str(project.root), str(source), "-o", str(output), "--seconds", "0.5",
        "--backend", "onnx", "--providers", "cuda,cpu", "--json"]))
    assert result.exit_code == 0, result.output
    assert output.is_file()
    if not HAS_CUDA_PROVIDER:
        assert result.stderr.count("CUDAExecutionProvider not available") == 1
    result = CliRunner().invoke(app, hoist_global_flags([
        "transfer", str(project.root), str(source), "-o", str(tmp_path / "x.mp4"),
        "--providers", "rocm"]))
    assert result.exit_code == BadInput.exit_code and "rocm" in result.stderr
