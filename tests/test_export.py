"""ONNX export of the tiny preset: equal to PyTorch (fp32 tight, fp16 looser) at any size, named
after the checkpoint, reused when valid, rebuilt when stale or damaged, refused when off."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from typer.testing import CliRunner

from motionxfer.checkpoint import Checkpoint
from motionxfer.cli import app, commands, hoist_global_flags  # noqa: F401
from motionxfer.errors import CheckpointError
from motionxfer.inference.bench import random_checkpoint
from motionxfer.inference.export import (
    ExportConfig,
    ensure_export,
    export_models,
    export_path,
    sidecar_path,
    valid_export,
)
from motionxfer.io.files import sha256_file
from motionxfer.pipeline import init_project

FIXTURES = Path(__file__).parent / "fixtures"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    checkpoint = random_checkpoint(folder / "model.pt", "tiny", (128, 128))
    result = export_models(Checkpoint.load(checkpoint), folder / "exports")
    return checkpoint, result


def run_onnx(path: Path, *inputs: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [entry.name for entry in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs, strict=True)))[0]


def test_tiny_export_equals_pytorch_at_other_sizes_and_batches(exported) -> None:
    checkpoint, result = exported
    assert {(m.network, m.precision) for m in result.models} == {
        ("generator", "fp32"), ("generator", "fp16"),
        ("face_refiner", "fp32"), ("face_refiner", "fp16")}
    for model in result.models:
        assert model.max_abs_difference <= (1e-4 if model.precision == "fp32" else 2e-2)
        meta = json.loads(sidecar_path(model.path).read_text())
        assert meta["checkpoint_sha256"] == result.checkpoint_sha256 == sha256_file(checkpoint)
        assert meta["onnx_sha256"] == sha256_file(model.path)
        assert result.checkpoint_sha256[:16] in model.path.name
    generator = Checkpoint.load(checkpoint).build_generator()
    refiner = Checkpoint.load(checkpoint).build_face_refiner()
    rng = np.random.default_rng(1)
    poses = [rng.uniform(-1, 1, (3, 3, 48, 80)).astype(np.float32) for _ in range(3)]
    crops = [rng.uniform(-1, 1, (5, 3, 32, 32)).astype(np.float32) for _ in range(2)]
    with torch.no_grad():
        expected = generator(*map(torch.from_numpy, poses)).numpy()
        expected_crops = refiner(*map(torch.from_numpy, crops)).numpy()
    paths = {(m.network, m.precision): m.path for m in result.models}
    assert np.abs(run_onnx(paths["generator", "fp32"], *poses) - expected).max() < 1e-4
    assert np.abs(run_onnx(paths["generator", "fp16"], *poses) - expected).max() < 2e-2
    assert np.abs(run_onnx(paths["face_refiner", "fp32"], *crops) - expected_crops).max() < 1e-4
    # fp16 is not fp32 under another name
    assert np.abs(run_onnx(paths["generator", "fp16"], *poses) - expected).max() > 1e-5


def test_a_valid_export_is_reused(exported) -> None:
    checkpoint, result = exported
    before = {m.path: m.path.stat().st_mtime_ns for m in result.models}
    again = export_models(Checkpoint.load(checkpoint), result.models[0].path.parent)
    assert all(m.reused for m in again.models)
    assert {m.path: m.path.stat().st_mtime_ns for m in again.models} == before


def test_an_export_of_another_checkpoint_is_never_used(tmp_path: Path, exported) -> None:
    _, result = exported
    exports = tmp_path / "exports"
    shutil.copytree(result.models[0].path.parent, exports)
    retrained = random_checkpoint(tmp_path / "model.pt", "tiny", (128, 128), seed=1)
    new_sha = sha256_file(retrained)
    assert valid_export(export_path(exports, "generator", new_sha, "fp32"), "generator",
                        new_sha, "fp32") is None
    # a file renamed to the new checkpoint's name still names the old one in its sidecar
    old = export_path(exports, "generator", result.checkpoint_sha256, "fp32")
    renamed = export_path(exports, "generator", new_sha, "fp32")
    shutil.copyfile(old, renamed)
    shutil.copyfile(sidecar_path(old), sidecar_path(renamed))
    assert valid_export(renamed, "generator", new_sha, "fp32") is None
    model = ensure_export(Checkpoint.load(retrained), exports, "generator", "fp32")
    assert not model.reused and model.path == renamed
    assert json.loads(sidecar_path(renamed).read_text())["checkpoint_sha256"] == new_sha
    # the old checkpoint's files were removed with the new export
    assert not old.exists() and not sidecar_path(old).exists()


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "no sidecar", "bad sidecar"])
def test_a_damaged_export_is_detected_and_rebuilt(tmp_path: Path, exported, damage: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    checkpoint, result = exported
    exports = tmp_path / "exports"
    shutil.copytree(result.models[0].path.parent, exports)
    path = export_path(exports, "generator", result.checkpoint_sha256, "fp32")
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped byte":
        path.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    elif damage == "no sidecar":
        sidecar_path(path).unlink()
    else:
        sidecar_path(path).write_text("{not json")
    assert valid_export(path, "generator", result.checkpoint_sha256, "fp32") is None
    with caplog.at_level(logging.WARNING):
        model = ensure_export(Checkpoint.load(checkpoint), exports, "generator", "fp32")
    assert not model.reused
    assert "damaged" in caplog.text and path.name in caplog.text
    assert sha256_file(path) == model.sha256
    assert valid_export(path, "generator", result.checkpoint_sha256, "fp32") is not None
    run_onnx(path, *(np.zeros((1, 3, 64, 64), np.float32) for _ in range(3)))


def test_an_export_off_by_more_than_the_tolerance_is_refused(tmp_path: Path, exported) -> None:
    checkpoint, _ = exported
    with pytest.raises(CheckpointError, match="differs from PyTorch") as error:
        export_models(Checkpoint.load(checkpoint), tmp_path, ExportConfig(fp16_tolerance=1e-7),
                      networks=("generator",))
    assert "fp32" in error.value.hint
    assert not list(tmp_path.glob("*fp16*"))  # nothing that could pass for an export
    assert list(tmp_path.glob("generator-*-fp32.onnx"))  # the fp32 one passed


def test_export_command(tmp_path: Path) -> None:
    project = init_project(tmp_path / "me", FIXTURES / "target_clip.mp4")
    random_checkpoint(project.paths.checkpoint, "tiny", (128, 128),
                      project_id=project.target.info.sha256)
    runner = CliRunner()
    result = runner.invoke(app, hoist_global_flags(
        ["export", str(project.root), "--no-fp16", "--json"]))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [m["precision"] for m in report["models"]] == ["fp32", "fp32"]
    for model in report["models"]:
        assert Path(model["path"]).parent == project.paths.exports
        assert model["max_abs_difference"] < 1e-4
