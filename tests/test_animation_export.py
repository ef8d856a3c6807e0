"""The animator's three networks as ONNX agree with PyTorch, with and without the occlusion map
and the Jacobians; the export command writes them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from motionxfer.animation.checkpoint import NETWORKS, AnimatorCheckpoint
from motionxfer.animation.export import TOLERANCE, export_animator_onnx
from motionxfer.animation.model import Animator, ablation, preset
from motionxfer.cli import app, commands, hoist_global_flags  # noqa: F401  (registers commands)
from motionxfer.errors import BadInput

pytest.importorskip("onnxruntime")
torch.set_num_threads(1)
runner = CliRunner()


def random_checkpoint(path: Path, **switches: bool) -> Path:
    torch.manual_seed(0)
    config = ablation(preset("tiny"), **switches)
    animator = Animator(config)
    models = {name: getattr(animator, name).state_dict() for name in NETWORKS}
    AnimatorCheckpoint(preset="tiny", config=config, train={}, step=0, models=models,
                       data={}, person_check={}).save(path)
    return path


def test_the_export_command_writes_three_checked_networks(tmp_path: Path) -> None:
    model = random_checkpoint(tmp_path / "animator.pt")
    result = runner.invoke(app, hoist_global_flags(
        ["--json", "export-animator", str(tmp_path / "onnx"), "--model", str(model)]))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [n["name"] for n in report["networks"]] == list(NETWORKS)
    assert all(n["max_difference"] < TOLERANCE for n in report["networks"])
    assert report["networks"][0]["outputs"] == ["keypoints", "jacobians"]
    assert report["networks"][1]["outputs"] == ["flow", "occlusion"]
    sidecar = json.loads((tmp_path / "onnx" / "animator.json").read_text())
    assert sidecar["opset"] == 17 and sidecar["config"]["image_size"] == 64


def test_onnx_animation_equals_pytorch_without_occlusion_or_jacobians(tmp_path: Path) -> None:
    import onnxruntime

    model = random_checkpoint(tmp_path / "ablated.pt", use_occlusion=False,
                              estimate_jacobian=False)
    checkpoint = AnimatorCheckpoint.load(model)
    export = export_animator_onnx(checkpoint, tmp_path / "onnx")
    assert export.networks[0].outputs == ("keypoints",)
    assert export.networks[2].inputs == ("source_image", "flow")
    sessions = {n.name: onnxruntime.InferenceSession(str(n.path),
                                                     providers=["CPUExecutionProvider"])
                for n in export.networks}
    animator = checkpoint.build_animator()
    source, driving = torch.rand(3, 3, 64, 64), torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        expected = animator.reconstruct(source, driving)["prediction"].numpy()
    (source_kp,) = sessions["keypoint_detector"].run(None, {"image": source.numpy()})
    (driving_kp,) = sessions["keypoint_detector"].run(None, {"image": driving.numpy()})
    (flow,) = sessions["dense_motion"].run(None, {"source_image": source.numpy(),
                                                  "source_keypoints": source_kp,
                                                  "driving_keypoints": driving_kp})
    (prediction,) = sessions["generator"].run(None, {"source_image": source.numpy(),
                                                      "flow": flow})
    assert np.abs(prediction - expected).max() < TOLERANCE
    with pytest.raises(BadInput, match="GridSample"):
        export_animator_onnx(checkpoint, tmp_path / "old", opset=13)
