"""The animator's three networks as ONNX, each checked against PyTorch.

    <folder>/keypoint_detector.onnx   image (B, 3, S, S) in [0, 1] -> keypoints (B, K, 2)
                                      [, jacobians (B, K, 2, 2)]
    <folder>/dense_motion.onnx        source_image, source_keypoints [, source_jacobians],
                                      driving_keypoints [, driving_jacobians]
                                      -> flow (B, h, w, 2) [, occlusion (B, 1, h, w)]
    <folder>/generator.onnx           source_image, flow [, occlusion] -> prediction (B, 3, S, S)
    <folder>/animator.json            the model's config, the inputs and outputs, the measured
                                      differences, versions

The motion transfer between them (relative / absolute keypoints, `motion.py`) is a few lines of
arithmetic and a convex hull, left outside the graphs. Batch is dynamic; the image size is fixed
by the model (S = config.image_size). The ops: convolutions, batch norms (folded in eval mode),
average pools, nearest up-sampling, softmax, the Gaussian anti-aliasing convolution, the 2x2
inverse written out, and `grid_sample` (bilinear, zeros padding, align_corners) which ONNX has
as GridSample from opset 16; nothing blocks the export. PyTorch's TorchScript exporter
(`dynamo=False`), as in motionxfer.inference.export.

Checked on export: each file runs in ONNX Runtime's CPU provider on fixed random inputs at batch
1 and batch 2 and must match PyTorch within 1e-3 (the outputs are in [0, 1] or [-1, 1] units).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from motionxfer import __version__
from motionxfer.animation.checkpoint import AnimatorCheckpoint
from motionxfer.animation.dense_motion import DenseMotion
from motionxfer.animation.keypoint_detector import Keypoints
from motionxfer.animation.model import Animator
from motionxfer.errors import BadInput, MissingDependency
from motionxfer.io.files import atomic_path, write_json

TOLERANCE = 1e-3
ONNX_PIP = "pip install 'motionxfer[onnx]'  (onnx and onnxruntime)"


class _Detector(nn.Module):
    def __init__(self, animator: Animator) -> None:
        super().__init__()
        self.detector = animator.keypoint_detector

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        keypoints = self.detector(image)
        return (keypoints.value,) if keypoints.jacobian is None else (
            keypoints.value, keypoints.jacobian)


class _DenseMotion(nn.Module):
    def __init__(self, animator: Animator) -> None:
        super().__init__()
        self.dense_motion = animator.dense_motion
        self.jacobian = animator.config.estimate_jacobian

    def forward(self, source_image: torch.Tensor, *keypoints: torch.Tensor,
                ) -> tuple[torch.Tensor, ...]:
        if self.jacobian:
            source, driving = Keypoints(*keypoints[:2]), Keypoints(*keypoints[2:])
        else:
            source, driving = Keypoints(keypoints[0]), Keypoints(keypoints[1])
        motion = self.dense_motion(source_image, source, driving)
        return (motion.flow,) if motion.occlusion_map is None else (
            motion.flow, motion.occlusion_map)


class _Generator(nn.Module):
    def __init__(self, animator: Animator) -> None:
        super().__init__()
        self.generator = animator.generator

    def forward(self, source_image: torch.Tensor, flow: torch.Tensor,
                occlusion: torch.Tensor | None = None) -> torch.Tensor:
        # masks and sparse_deformed only feed the generator's extra outputs, not the prediction
        motion = DenseMotion(flow, occlusion, flow.new_zeros(()), flow.new_zeros(()))
        return self.generator(source_image, motion)["prediction"]


@dataclass(frozen=True)
class ExportedNetwork:
    name: str
    path: Path
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    max_difference: float | None  # None when not checked


@dataclass(frozen=True)
class AnimatorExport:
    folder: Path
    networks: tuple[ExportedNetwork, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "networks": [
            {"name": n.name, "path": str(n.path), "inputs": list(n.inputs),
             "outputs": list(n.outputs), "max_difference": n.max_difference}
            for n in self.networks]}


def _example_inputs(animator: Animator, batch: int, seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Inputs of each network, computed by the PyTorch networks from random images."""
    config = animator.config
    size = config.image_size
    generator = torch.Generator().manual_seed(seed)
    source = torch.rand(batch, 3, size, size, generator=generator)
    driving = torch.rand(batch, 3, size, size, generator=generator)
    with torch.no_grad():
        source_keypoints = animator.keypoint_detector(source)
        driving_keypoints = animator.keypoint_detector(driving)
        motion = animator.dense_motion(source, source_keypoints, driving_keypoints)
    dense = {"source_image": source, "source_keypoints": source_keypoints.value}
    if config.estimate_jacobian:
        dense["source_jacobians"] = source_keypoints.jacobian
    dense["driving_keypoints"] = driving_keypoints.value
    if config.estimate_jacobian:
        dense["driving_jacobians"] = driving_keypoints.jacobian
    generated = {"source_image": source, "flow": motion.flow}
    if motion.occlusion_map is not None:
        generated["occlusion"] = motion.occlusion_map
    return {"keypoint_detector": {"image": source}, "dense_motion": dense,
            "generator": generated}


def _output_names(animator: Animator) -> dict[str, tuple[str, ...]]:
    config = animator.config
    return {
        "keypoint_detector": ("keypoints", "jacobians") if config.estimate_jacobian
        else ("keypoints",),
        "dense_motion": ("flow", "occlusion") if config.use_occlusion else ("flow",),
        "generator": ("prediction",),
    }


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def export_animator_onnx(checkpoint: AnimatorCheckpoint, folder: str | Path, opset: int = 17,
                         check: bool = True) -> AnimatorExport:
    """Write the three ONNX files and animator.json into `folder`; check each one."""
    try:
        import onnxruntime
    except ImportError as error:
        raise MissingDependency("ONNX export needs onnx and onnxruntime",
                                hint=ONNX_PIP) from error
    if opset < 16:
        raise BadInput(f"opset {opset}: the animator's warps need GridSample (opset 16)",
                       hint="pass --opset 16 or later")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    animator = checkpoint.build_animator("cpu")
    wrappers = {"keypoint_detector": _Detector(animator), "dense_motion": _DenseMotion(animator),
                "generator": _Generator(animator)}
    examples = _example_inputs(animator, 1, seed=0)
    checks = _example_inputs(animator, 2, seed=1)
    output_names = _output_names(animator)
    exported = []
    for name, module in wrappers.items():
        module.eval()
        inputs = examples[name]
        path = folder / f"{name}.onnx"
        axes = {key: {0: "batch"} for key in (*inputs, *output_names[name])}
        with atomic_path(path) as temporary, _quiet_exporter(), torch.no_grad():
            torch.onnx.export(module, tuple(inputs.values()), str(temporary),
                              input_names=list(inputs), output_names=list(output_names[name]),
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
        difference = None
        if check:
            session = onnxruntime.InferenceSession(str(path),
                                                   providers=["CPUExecutionProvider"])
            difference = 0.0
            for values in (inputs, checks[name]):
                with torch.no_grad():
                    expected = module(*values.values())
                expected = expected if isinstance(expected, tuple) else (expected,)
                got = session.run(None, {key: value.numpy() for key, value in values.items()})
                for want, have in zip(expected, got):
                    difference = max(difference, float(np.abs(want.numpy() - have).max()))
            if difference > TOLERANCE:
                path.unlink()
                raise BadInput(f"the ONNX {name} differs from PyTorch by {difference:.2e} "
                               f"(tolerance {TOLERANCE})",
                               hint="report this as a bug; try another --opset")
        exported.append(ExportedNetwork(name, path, tuple(inputs), output_names[name],
                                        difference))
    write_json(folder / "animator.json", {
        "format": "motionxfer-animator-onnx", "tool_version": __version__,
        "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "opset": opset,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": checkpoint.config.to_dict(), "step": checkpoint.step,
        "networks": json.loads(json.dumps(AnimatorExport(folder, tuple(exported)).to_dict()))
        ["networks"]})
    return AnimatorExport(folder, tuple(exported))
