"""The personal model as ONNX: the generator and the face refiner, fp32 and fp16, checked on export.

    exports/
      generator-<checkpoint sha256[:16]>-fp32.onnx        the graph and its weights
      generator-<checkpoint sha256[:16]>-fp32.onnx.json   sidecar: the checkpoint's full sha256,
                                                          the ONNX file's sha256, the measured
                                                          difference to PyTorch, versions
      generator-...-fp16.onnx, face_refiner-...-fp32.onnx, ...
      tensorrt/                                           TensorRT engines (built on the GPU)

Exporter. PyTorch's TorchScript-based exporter (`torch.onnx.export(..., dynamo=False)`), opset 17:
it needs nothing beyond torch, where the torch.export-based one needs onnxscript; the networks
are plain convolutions, instance norms, reflection pads, nearest resizes and tanh, which both
translate the same way.

Shapes. The generator's inputs `pose`, `previous_pose`, `previous_frame` and its output `frame`
are (batch, 3, height, width) float32 in [-1, 1] with batch, height and width dynamic (height and
width must stay multiples of 2 ** n_downsample, as in PyTorch). The face refiner maps
`pose_crop`, `generated_crop` (batch, 3, s, s) to `refined_crop`, with a dynamic batch and the
crop size s fixed by its config (the feathering window is baked in). Cropping and pasting stay
outside the graph (`motionxfer.inference.backends` runs them as PyTorch CPU ops): they are two bilinear
resamplings of a 64 px crop, cheap next to the networks.

fp16. The fp32 graph converted with ONNX Runtime's float16 tool (weights and activations in
half precision) with float32 kept at the inputs and outputs, so every backend feeds and reads
the same arrays. It is for the CUDA provider; TensorRT builds its fp16 engine from the fp32 graph
(`trt_fp16_enable`), and on the CPU the fp32 graph is faster.

Checked on export. Each file is run with ONNX Runtime's CPU provider and compared with the
PyTorch network on the same fixed random input, at the working size (batch 1) and at a second,
smaller size with batch 2 (so the dynamic axes are exercised); the largest absolute difference is
stored in the sidecar and must stay under the tolerance (fp32 1e-3, fp16 2e-2 of the [-1, 1]
range: 0.13 and 2.5 grey levels out of 255). Measured on the presets with random weights: fp32
about 1e-5, fp16 about 6e-3.

Staleness and damage. The checkpoint's sha256 names the files and is repeated in full in the
sidecar, and the sidecar holds the sha256 of the ONNX file. An export is used only when the
sidecar is there, names this checkpoint and matches the file's bytes: another checkpoint's export
is never picked up, and a truncated or altered file is rebuilt. Files are written atomically, the
sidecar last, so a crash leaves no export that looks valid.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motionxfer import __version__
from motionxfer.checkpoint import Checkpoint
from motionxfer.errors import BadInput, CheckpointError, MissingDependency
from motionxfer.io.files import atomic_path, sha256_file, write_json
from motionxfer.networks.registry import SEQUENCE_ARCHITECTURES
from motionxfer.progress import ProgressCallback, RateMeter
from motionxfer.project import Project

logger = logging.getLogger(__name__)

EXPORT_FORMAT = "motionxfer-onnx-export"
EXPORT_VERSION = 1
NETWORKS = ("generator", "face_refiner")
PRECISIONS = ("fp32", "fp16")
ONNX_PIP = "pip install 'motionxfer[onnx]'  (onnx and onnxruntime)"

GENERATOR_INPUTS = ("pose", "previous_pose", "previous_frame")
GENERATOR_OUTPUT = "frame"
FACE_REFINER_INPUTS = ("pose_crop", "generated_crop")
FACE_REFINER_OUTPUT = "refined_crop"


@dataclass(frozen=True)
class ExportConfig:
    """Settings of the ONNX export (TOML table `[export]`).

    fp16: also write the half-precision variant (for the CUDA provider).
    opset: the ONNX operator set the graphs use.
    fp32_tolerance, fp16_tolerance: the largest absolute difference to PyTorch (outputs span
        [-1, 1]) that a check on export accepts.
    """

    fp16: bool = True
    opset: int = 17
    fp32_tolerance: float = 1e-3
    fp16_tolerance: float = 2e-2

    def __post_init__(self) -> None:
        if not 13 <= self.opset <= 20:
            raise BadInput(f"opset must be between 13 and 20, got {self.opset}",
                           hint="use 17 (the default)")
        if self.fp32_tolerance <= 0 or self.fp16_tolerance <= 0:
            raise BadInput("the export tolerances must be positive",
                           hint="use fp32_tolerance = 1e-3 and fp16_tolerance = 2e-2")

    def precisions(self) -> tuple[str, ...]:
        return PRECISIONS if self.fp16 else ("fp32",)

    def tolerance(self, precision: str) -> float:
        return self.fp16_tolerance if precision == "fp16" else self.fp32_tolerance


@dataclass(frozen=True)
class ExportedModel:
    """One verified ONNX file."""

    network: str  # "generator" or "face_refiner"
    precision: str  # "fp32" or "fp16"
    path: Path
    sha256: str  # of the ONNX file
    max_abs_difference: float  # to PyTorch fp32, on the check inputs
    tolerance: float
    reused: bool  # True when a valid export was already there

    def to_dict(self) -> dict[str, Any]:
        return {"network": self.network, "precision": self.precision, "path": str(self.path),
                "sha256": self.sha256, "max_abs_difference": self.max_abs_difference,
                "tolerance": self.tolerance, "reused": self.reused}


@dataclass(frozen=True)
class ExportResult:
    checkpoint: Path
    checkpoint_sha256: str
    models: tuple[ExportedModel, ...]
    removed: tuple[Path, ...]  # exports of other checkpoints that were deleted

    def to_dict(self) -> dict[str, Any]:
        return {"checkpoint": str(self.checkpoint), "checkpoint_sha256": self.checkpoint_sha256,
                "models": [model.to_dict() for model in self.models],
                "removed": [str(path) for path in self.removed]}


# --- names and sidecars ----------------------------------------------------------------------------

def export_path(exports_dir: str | os.PathLike[str], network: str, checkpoint_sha256: str,
                precision: str) -> Path:
    """Where the export of `network` for the checkpoint with this sha256 lives."""
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, not {network!r}")
    if precision not in PRECISIONS:
        raise BadInput(f"precision must be fp32 or fp16, not {precision!r}",
                       hint="use --precision fp32 or --precision fp16")
    return Path(exports_dir) / f"{network}-{checkpoint_sha256[:16]}-{precision}.onnx"


def sidecar_path(onnx_path: Path) -> Path:
    return onnx_path.with_name(onnx_path.name + ".json")


def import_onnx() -> tuple[Any, Any]:
    """(onnx, onnxruntime), or a `MissingDependency` saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as error:
        raise MissingDependency(f"ONNX export and the onnx backend need onnx and onnxruntime "
                                f"({error})", hint=ONNX_PIP) from error
    return onnx, onnxruntime


def valid_export(path: Path, network: str, checkpoint_sha256: str,
                 precision: str) -> ExportedModel | None:
    """The export at `path` when its sidecar names this checkpoint and matches the file's bytes;
    None when it is missing, stale (another checkpoint) or damaged."""
    return _check_export(path, network, checkpoint_sha256, precision)[0]


def _check_export(path: Path, network: str, checkpoint_sha256: str,
                  precision: str) -> tuple[ExportedModel | None, str]:
    """(the export or None, why it cannot be used: "missing", "stale" or "damaged")."""
    sidecar = sidecar_path(path)
    if not path.is_file() or not sidecar.is_file():
        return None, "missing" if not path.exists() else "damaged"
    try:
        meta = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None, "damaged"
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        return None, "damaged"
    if (meta.get("checkpoint_sha256") != checkpoint_sha256 or meta.get("network") != network
            or meta.get("precision") != precision or meta.get("version") != EXPORT_VERSION):
        return None, "stale"
    if sha256_file(path) != meta.get("onnx_sha256"):
        return None, "damaged"
    return ExportedModel(network, precision, path, str(meta["onnx_sha256"]),
                         float(meta["max_abs_difference"]), float(meta["tolerance"]),
                         reused=True), ""


# --- export ----------------------------------------------------------------------------------------

def refuse_windows(checkpoint: Checkpoint) -> None:
    """A sequence model (`TrainConfig.sequence`) has no ONNX export: its graph takes windows of
    frames, not the recurrent generator's three inputs that the onnx backend binds."""
    if checkpoint.architecture in SEQUENCE_ARCHITECTURES:
        raise BadInput(
            f"{checkpoint.path or 'this checkpoint'} is a sequence model (windows of "
            f"{checkpoint.train.sequence} frames): there is no ONNX export or onnx backend for it "
            "yet",
            hint="run it with --backend torch, or train frame by frame (--sequence 0) to "
            "export it")


def export_models(
    checkpoint: Checkpoint, exports_dir: str | os.PathLike[str],
    config: ExportConfig = ExportConfig(), force: bool = False,
    networks: tuple[str, ...] = NETWORKS, precisions: tuple[str, ...] | None = None,
    progress: ProgressCallback | None = None,
) -> ExportResult:
    """Export the checkpoint's generator (and face refiner, when it has a trained one) to ONNX in
    `exports_dir`, verified against PyTorch. Valid exports already there are kept unless `force`.
    Exports of other checkpoints in `exports_dir` are deleted. A sequence model is refused
    (`refuse_windows`)."""
    refuse_windows(checkpoint)
    import_onnx()
    exports_dir = Path(exports_dir)
    generator = checkpoint.build_generator("cpu")
    refiner = checkpoint.build_face_refiner("cpu")
    checkpoint_sha256 = checkpoint_file_sha256(checkpoint)
    precisions = precisions or config.precisions()
    modules = {"generator": generator, "face_refiner": refiner}
    wanted = [(network, precision) for network in networks for precision in precisions
              if modules[network] is not None]
    meter = RateMeter(progress, "export", len(wanted), unit="files")
    models = []
    for network, precision in wanted:
        path = export_path(exports_dir, network, checkpoint_sha256, precision)
        existing = None if force else valid_export(path, network, checkpoint_sha256, precision)
        if existing is None:
            existing = _export_one(modules[network], network, precision, path, checkpoint,
                                   checkpoint_sha256, config)
        models.append(existing)
        meter.advance()
    meter.finish()
    removed = remove_stale_exports(exports_dir, checkpoint_sha256)
    assert checkpoint.path is not None  # checkpoint_file_sha256 checked it
    return ExportResult(checkpoint.path, checkpoint_sha256, tuple(models), removed)


def checkpoint_file_sha256(checkpoint: Checkpoint) -> str:
    """The sha256 of the file the checkpoint was read from: what names its exports."""
    if checkpoint.path is None or not checkpoint.path.is_file():
        raise CheckpointError("only a checkpoint saved to a file can be exported",
                              hint="save it first (Checkpoint.save)")
    return sha256_file(checkpoint.path)


def ensure_export(
    checkpoint: Checkpoint, exports_dir: str | os.PathLike[str], network: str,
    precision: str, checkpoint_sha256: str | None = None,
    config: ExportConfig = ExportConfig(),
) -> ExportedModel:
    """A valid export of one network of the checkpoint: the one in `exports_dir`, or a new one
    when it is missing, belongs to another checkpoint or is damaged (the old file is replaced)."""
    checkpoint_sha256 = checkpoint_sha256 or checkpoint_file_sha256(checkpoint)
    path = export_path(exports_dir, network, checkpoint_sha256, precision)
    existing, why = _check_export(path, network, checkpoint_sha256, precision)
    if existing is not None:
        return existing
    if why == "damaged":
        logger.warning(
            "%s is damaged (its bytes do not match its sidecar): exporting it again", path.name)
    result = export_models(checkpoint, exports_dir, config, networks=(network,),
                           precisions=(precision,))
    if not result.models:
        raise CheckpointError(f"{checkpoint.path} has no trained {network.replace('_', ' ')}",
                              hint="train it (train-target), or pass --no-face-refiner")
    return result.models[0]


def remove_stale_exports(exports_dir: Path, checkpoint_sha256: str) -> tuple[Path, ...]:
    """Delete the exports (and sidecars) that belong to another checkpoint."""
    if not exports_dir.is_dir():
        return ()
    removed = []
    keep = checkpoint_sha256[:16]
    for network in NETWORKS:
        for path in sorted(exports_dir.glob(f"{network}-*-fp*.onnx")):
            if path.name.split("-")[1] != keep:
                for stale in (path, sidecar_path(path)):
                    if stale.exists():
                        stale.unlink()
                        removed.append(stale)
    return tuple(removed)


def _export_one(module: torch.nn.Module, network: str, precision: str, path: Path,
                checkpoint: Checkpoint, checkpoint_sha256: str,
                config: ExportConfig) -> ExportedModel:
    onnx, _ = import_onnx()
    tolerance = config.tolerance(precision)
    checks = check_inputs(network, checkpoint)
    with atomic_path(path, ".onnx") as temporary:
        model = onnx.load_from_string(onnx_bytes(module, network, checkpoint, config.opset))
        onnx.checker.check_model(model)
        if precision == "fp16":
            # (the converter appends its input casts after the nodes that read them, which the
            # checker refuses and ONNX Runtime accepts: the run below is the check)
            model = to_fp16(model)
        temporary.write_bytes(model.SerializeToString())
        difference = max_difference(module, temporary, checks)
        if not difference <= tolerance:  # also catches NaN
            raise CheckpointError(
                f"the {precision} ONNX {network.replace('_', ' ')} differs from PyTorch by "
                f"{difference:.3g} (tolerance {tolerance:g})",
                hint="use the fp32 export (--no-fp16, or --precision fp32), or raise the "
                     f"tolerance with {precision}_tolerance in the [export] table of config.toml",
            )
    onnx_sha256 = sha256_file(path)
    write_json(sidecar_path(path), {
        "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "network": network,
        "precision": precision, "checkpoint_sha256": checkpoint_sha256,
        "onnx_sha256": onnx_sha256, "opset": config.opset,
        "inputs": list(GENERATOR_INPUTS if network == "generator" else FACE_REFINER_INPUTS),
        "outputs": [GENERATOR_OUTPUT if network == "generator" else FACE_REFINER_OUTPUT],
        "checked_shapes": [list(inputs[0].shape) for inputs in checks],
        "max_abs_difference": difference, "tolerance": tolerance,
        "preset": checkpoint.preset.name, "working_size": list(checkpoint.working_size),
        "tool_version": __version__, "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    return ExportedModel(network, precision, path, onnx_sha256, difference, tolerance,
                         reused=False)


def onnx_bytes(module: torch.nn.Module, network: str, checkpoint: Checkpoint, opset: int) -> bytes:
    """The fp32 ONNX graph of `module` (the generator or the face refiner)."""
    import io

    module = module.float().eval()
    if network == "generator":
        width, height = checkpoint.working_size
        example = tuple(torch.zeros(1, checkpoint.conditioning.channels if name != "previous_frame"
                                    else checkpoint.generator.image_channels, height, width)
                        for name in GENERATOR_INPUTS)
        names, output = GENERATOR_INPUTS, GENERATOR_OUTPUT
        axes = {0: "batch", 2: "height", 3: "width"}
    else:
        assert checkpoint.face_refiner is not None
        size = checkpoint.face_refiner.crop_size
        example = (torch.zeros(1, checkpoint.face_refiner.pose_channels, size, size),
                   torch.zeros(1, checkpoint.face_refiner.image_channels, size, size))
        names, output = FACE_REFINER_INPUTS, FACE_REFINER_OUTPUT
        axes = {0: "batch"}
    buffer = io.BytesIO()
    with _quiet_exporter(), torch.no_grad():
        try:
            torch.onnx.export(
                module, example, buffer, dynamo=False, opset_version=opset,
                input_names=list(names), output_names=[output],
                dynamic_axes={name: axes for name in (*names, output)},
                do_constant_folding=True,
            )
        except TypeError as error:  # a torch without the TorchScript-based exporter
            raise MissingDependency(
                f"this PyTorch ({torch.__version__}) cannot export with the TorchScript-based "
                f"ONNX exporter: {error}",
                hint="install a PyTorch between 2.2 and 2.13, or the onnxscript package",
            ) from error
    return buffer.getvalue()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Hide the exporter's known, harmless warnings (the legacy-exporter deprecation, constant
    folding of strided slices, instance norm "train=True": it uses the input's statistics, as the
    network does in eval mode); any other warning still shows."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=".*Constant folding - Only steps=1.*")
        warnings.filterwarnings("ignore", message=".*'instance_norm' is set to train=True.*")
        # the generator's check that the frame size is a multiple of 2 ** n_downsample runs in
        # Python; ONNX Runtime users are checked by motionxfer.inference.backends instead
        warnings.filterwarnings("ignore", message=".*Converting a tensor to a Python boolean.*")
        yield


def to_fp16(model: Any) -> Any:
    """The graph in half precision, with float32 inputs and outputs."""
    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as error:
        raise MissingDependency(f"the fp16 export needs onnxruntime's float16 tool ({error})",
                                hint="pip install -U onnxruntime, or export with --no-fp16"
                                ) from error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some values are out of fp16 range": clamped, checked
        return convert_float_to_float16(model, keep_io_types=True)


def check_inputs(network: str, checkpoint: Checkpoint) -> list[tuple[np.ndarray, ...]]:
    """Fixed random inputs in [-1, 1]: the working size with batch 1, and a smaller size with
    batch 2 (the dynamic axes)."""
    rng = np.random.default_rng(20190822)
    if network == "generator":
        width, height = checkpoint.working_size
        multiple = checkpoint.generator.size_multiple
        small = (max(multiple, (width // 2) // multiple * multiple),
                 max(multiple, (height // 2 + multiple) // multiple * multiple))
        shapes = [(1, width, height), (2, *small)]
        channels = (checkpoint.conditioning.channels, checkpoint.conditioning.channels,
                    checkpoint.generator.image_channels)
    else:
        assert checkpoint.face_refiner is not None
        size = checkpoint.face_refiner.crop_size
        shapes = [(1, size, size), (2, size, size)]
        channels = (checkpoint.face_refiner.pose_channels, checkpoint.face_refiner.image_channels)
    return [tuple(rng.uniform(-1, 1, (batch, count, h, w)).astype(np.float32)
                  for count in channels) for batch, w, h in shapes]


def max_difference(module: torch.nn.Module, onnx_path: Path,
                   checks: list[tuple[np.ndarray, ...]]) -> float:
    """The largest |ONNX Runtime (CPU) - PyTorch| over the check inputs."""
    _, onnxruntime = import_onnx()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(onnx_path), options,
                                           providers=["CPUExecutionProvider"])
    names = [entry.name for entry in session.get_inputs()]
    largest = 0.0
    with torch.no_grad():
        for inputs in checks:
            expected = module(*(torch.from_numpy(array) for array in inputs)).numpy()
            produced = session.run(None, dict(zip(names, inputs, strict=True)))[0]
            difference = float(np.abs(produced.astype(np.float32) - expected).max())
            if not np.isfinite(difference):
                return float("nan")
            largest = max(largest, difference)
    return largest


def export_project(project: Project, config: ExportConfig = ExportConfig(),
                   checkpoint: str | os.PathLike[str] | None = None, force: bool = False,
                   progress: ProgressCallback | None = None) -> ExportResult:
    """`export_models` for a project: its model (or `checkpoint`) into `project.paths.exports`."""
    model = Checkpoint.load(project.find_checkpoint(checkpoint), project.target.info.sha256)
    return export_models(model, project.paths.exports, config, force, progress=progress)
