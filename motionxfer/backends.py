"""Frame generators: the personal model run by PyTorch or by ONNX Runtime, behind one interface.

    backend = open_backend(checkpoint, BackendConfig(backend="onnx"), exports_dir=...)
    generated = backend.generate(stick_figures, previous)      # (B, H, W, 3) uint8 in
    frames = backend.finish(generated, face_boxes)             # (B, H, W, 3) uint8 out
    previous = [generated.recurrence(i) for i in range(len(generated))]

The generator is recurrent: frame t is made from the stick figures of t and t-1 and the frame it
made for t-1. A batch is any set of videos, each at its own frame: `previous[i]` is where video
i stands (None at its first frame), so several videos share one generator call and each keeps
its own recurrence. When `previous` is exactly the last batch, in order, the batch's tensors are
used as they are (no gather, nothing leaves the device).

`finish` applies the face refiner to the frames whose box is finite and converts to uint8. It is
off the recurrence (the generator is fed its unrefined frame, as in training), so a pipeline can
run it in another thread while the generator makes the next frame.

Backends:

- "torch": PyTorch eager on `device` ("auto": CUDA when torch sees a GPU). `precision` "bf16"
  (CPU or CUDA) or "fp16" (CUDA only) runs the networks under autocast; `cuda_graphs` records
  the generator once per batch shape and replays it (CUDA only; it removes the per-layer launch
  cost that bounds small frames).
- "onnx": ONNX Runtime on the exported graphs (`motionxfer.export`; exported on first use and
  kept in the project's exports/ folder). Execution providers are tried in the order given, or
  TensorRT, CUDA, CPU when none is given. A provider that this onnxruntime lacks (or that fails
  to start, e.g. without the CUDA libraries) is skipped with one warning line and the next one
  is used; CPU is always the last resort. `strict_providers=True` makes that an error instead.
  TensorRT builds its engines once and caches them in exports/tensorrt/ (fp16 engines when
  `precision="fp16"`, built from the fp32 graph); the CUDA provider runs the fp16 graph for
  "fp16". `cuda_graphs` turns on the CUDA provider's graph capture, with fixed input and output
  buffers. Face crops are cut and pasted with the same PyTorch CPU functions as the torch
  backend (`crop_faces`, `paste_residuals`); only the refiner network runs in ONNX Runtime.

Agreement: the onnx backend (fp32, CPU) matches the torch backend to about 1e-5 on the [-1, 1]
range, which after rounding to uint8 leaves a few pixels one grey level apart (a PSNR above 60 dB
between the two videos; tests/test_backends.py checks 45 dB). No GPU was available when this was
written: the CUDA, TensorRT, fp16-on-GPU and CUDA-graph paths follow the libraries' documented
APIs but were run here only up to their CPU fallbacks and error messages.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motionxfer.checkpoint import CheckpointInfo, load_face_refiner, load_generator
from motionxfer.errors import BadInput, MissingDependency
from motionxfer.networks.face_refiner import crop_faces, paste_residuals, refine_faces

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
PRECISIONS = ("fp32", "fp16", "bf16")
PROVIDERS = {  # our short names -> ONNX Runtime's
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
AUTO_PROVIDERS = ("tensorrt", "cuda", "cpu")
GPU_PIP = "pip install onnxruntime-gpu (instead of onnxruntime), with CUDA 12 and cuDNN 9"


@dataclass(frozen=True)
class BackendConfig:
    """How to run the personal model.

    backend: "torch" or "onnx".
    device: torch only: "auto", "cpu", "cuda" or "cuda:N".
    providers: onnx only: short names in order of preference ("tensorrt", "cuda", "cpu");
        None picks TensorRT, CUDA, CPU, whichever this onnxruntime has.
    strict_providers: onnx only: a provider that cannot be used is an error, not a warning.
    precision: "fp32", "fp16" (CUDA, TensorRT) or "bf16" (torch only).
    face_refiner: apply the face refiner when the checkpoint has a trained one.
    threads: CPU threads for the networks (None: the library's default, one per core). For
        torch this sets the process-wide `torch.set_num_threads`.
    cuda_graphs: record the generator as a CUDA graph (torch on CUDA, or the onnx CUDA provider).
    """

    backend: str = "torch"
    device: str = "auto"
    providers: tuple[str, ...] | None = None
    strict_providers: bool = False
    precision: str = "fp32"
    face_refiner: bool = True
    threads: int | None = None
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise BadInput(f"unknown backend {self.backend!r}", hint="use --backend torch or onnx")
        if self.precision not in PRECISIONS:
            raise BadInput(f"unknown precision {self.precision!r}",
                           hint="use --precision fp32, fp16 or bf16")
        if self.providers is not None:
            unknown = [name for name in self.providers if name not in PROVIDERS]
            if unknown or not self.providers:
                raise BadInput(f"unknown execution provider(s): {', '.join(unknown) or 'none'}",
                               hint="use --providers with tensorrt, cuda and/or cpu, "
                                    "e.g. --providers cuda,cpu")
        if self.threads is not None and self.threads < 1:
            raise BadInput(f"threads must be at least 1, got {self.threads}",
                           hint="leave it out to use every core")


def parse_providers(text: str | None) -> tuple[str, ...] | None:
    """"tensorrt,cuda,cpu" -> ("tensorrt", "cuda", "cpu"); None or "auto" -> None."""
    if text is None or text.strip().lower() in ("", "auto"):
        return None
    names = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in PROVIDERS]
    if unknown:
        raise BadInput(f"unknown execution provider(s): {', '.join(unknown)}",
                       hint="use tensorrt, cuda and/or cpu, e.g. --providers tensorrt,cuda,cpu")
    return names


@dataclass(frozen=True)
class ProviderChoice:
    providers: tuple[str, ...]  # short names to try, in order; always ends with "cpu"
    unavailable: tuple[str, ...]  # asked for, but this onnxruntime does not have them

    def warning(self) -> str | None:
        if not self.unavailable:
            return None
        missing = ", ".join(PROVIDERS[name] for name in self.unavailable)
        return (f"{missing} not available in this onnxruntime: running on "
                f"{PROVIDERS[self.providers[0]]} (for a GPU: {GPU_PIP})")


def choose_providers(requested: tuple[str, ...] | None, available: Sequence[str],
                     strict: bool = False) -> ProviderChoice:
    """The providers to use, from those asked for (None: TensorRT, CUDA, CPU) and those that
    onnxruntime has. Unavailable ones are skipped (`unavailable` lists those that were asked for
    explicitly); CPU ends the list. `strict`: an unavailable one is a MissingDependency."""
    order = AUTO_PROVIDERS if requested is None else requested
    present = [name for name in order if PROVIDERS[name] in available]
    missing = tuple(name for name in order if PROVIDERS[name] not in available)
    if strict and missing and requested is not None:
        raise MissingDependency(
            f"{', '.join(PROVIDERS[name] for name in missing)} not available in this onnxruntime "
            f"(it has {', '.join(available)})",
            hint=f"{GPU_PIP}; or drop --strict-providers to fall back to the CPU",
        )
    if "cpu" not in present:
        present.append("cpu")
    return ProviderChoice(tuple(present), missing if requested is not None else ())


# --- the interface ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recurrence:
    """Where one video's generator stands: slot `index` of the batch it was generated in."""

    batch: GeneratedBatch
    index: int


@dataclass(frozen=True, eq=False)
class GeneratedBatch:
    """The generator's output for a batch: frames and stick figures in the backend's own arrays
    (torch tensors on the device, or numpy arrays), (B, 3, H, W) in [-1, 1]."""

    frames: Any
    poses: Any
    device_values: Any = field(default=None, repr=False)  # onnx: (pose, frame) OrtValues

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def recurrence(self, index: int) -> Recurrence:
        return Recurrence(self, index)


def stick_figures_to_array(stick_figures: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [-1, 1], as `dataset.to_tensor` computes."""
    if stick_figures.ndim != 4 or stick_figures.shape[-1] != 3 or stick_figures.dtype != np.uint8:
        raise ValueError(f"expected (B, H, W, 3) uint8 stick figures, got {stick_figures.shape} "
                         f"{stick_figures.dtype}")
    array = stick_figures.transpose(0, 3, 1, 2).astype(np.float32)
    return array / np.float32(127.5) - np.float32(1.0)


def _same_batch(previous: Sequence[Recurrence | None], count: int) -> GeneratedBatch | None:
    """The batch when `previous` is all of it, in order (the fast path)."""
    if not previous or previous[0] is None:
        return None
    batch = previous[0].batch
    if len(previous) != count or len(batch) != count:
        return None
    for index, item in enumerate(previous):
        if item is None or item.batch is not batch or item.index != index:
            return None
    return batch


class FrameGenerator:
    """What every backend offers. `size` is (width, height) of the frames it makes."""

    name = ""
    info: CheckpointInfo
    has_face_refiner: bool

    @property
    def size(self) -> tuple[int, int]:
        return self.info.working_size

    def describe(self) -> str:
        raise NotImplementedError

    def generate(self, stick_figures: np.ndarray,
                 previous: Sequence[Recurrence | None]) -> GeneratedBatch:
        """(B, H, W, 3) uint8 stick figures at `size`, each video's recurrence -> the batch."""
        raise NotImplementedError

    def finish(self, generated: GeneratedBatch, face_boxes: np.ndarray | None) -> np.ndarray:
        """Refine the faces (boxes (B, 4) in pixels, NaN rows: no face) -> (B, H, W, 3) uint8."""
        raise NotImplementedError

    def _check(self, stick_figures: np.ndarray, previous: Sequence[Recurrence | None]) -> None:
        width, height = self.size
        if stick_figures.shape[1:3] != (height, width):
            raise ValueError(f"stick figures are {stick_figures.shape[2]}x"
                             f"{stick_figures.shape[1]}, the model makes {width}x{height}")
        if len(previous) != len(stick_figures):
            raise ValueError(f"{len(stick_figures)} stick figures but {len(previous)} recurrences")


def open_backend(checkpoint: str | os.PathLike[str], config: BackendConfig = BackendConfig(),
                 project_id: str | None = None,
                 exports_dir: str | os.PathLike[str] | None = None) -> FrameGenerator:
    """The personal model in `checkpoint`, run as `config` says. `exports_dir` (the project's
    exports/ folder) is where the onnx backend keeps its ONNX files and TensorRT engines."""
    if config.backend == "torch":
        return TorchBackend(checkpoint, config, project_id)
    if exports_dir is None:
        raise BadInput("the onnx backend needs a folder for its ONNX files",
                       hint="pass exports_dir (a project's exports/ folder)")
    return OnnxBackend(checkpoint, config, Path(exports_dir), project_id)


# --- PyTorch -------------------------------------------------------------------------------------

def to_uint8_images(frames: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8 (the rounding of `dataset.to_images`)."""
    scaled = ((frames.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class TorchBackend(FrameGenerator):
    name = "torch"

    def __init__(self, checkpoint: str | os.PathLike[str], config: BackendConfig = BackendConfig(),
                 project_id: str | None = None) -> None:
        from motionxfer.train import resolve_device

        self.config = config
        self.device = resolve_device(config.device)
        cuda = self.device.type == "cuda"
        if config.precision == "fp16" and not cuda:
            raise BadInput("fp16 with the torch backend needs a CUDA GPU (PyTorch's CPU "
                           "convolutions have no fast half-precision path)",
                           hint="use --precision bf16 or fp32 on the CPU, or --backend onnx")
        if config.cuda_graphs and not cuda:
            raise BadInput("CUDA graphs need a CUDA GPU, and this run is on the "
                           f"{self.device.type.upper()}",
                           hint="drop --cuda-graphs, or run on a GPU (--device cuda)")
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.generator, self.info = load_generator(checkpoint, self.device, project_id)
        self.refiner = None
        if config.face_refiner:
            self.refiner, _ = load_face_refiner(checkpoint, self.device, project_id)
        self.has_face_refiner = self.refiner is not None
        self._graphs: dict[tuple[int, ...], _GraphedGenerator] = {}

    def describe(self) -> str:
        extras = " cuda-graphs" if self.config.cuda_graphs else ""
        return f"torch {self.device} {self.config.precision}{extras}"

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.config.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if self.config.precision == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype,
                              cache_enabled=not self.config.cuda_graphs)

    @torch.inference_mode()
    def generate(self, stick_figures: np.ndarray,
                 previous: Sequence[Recurrence | None]) -> GeneratedBatch:
        self._check(stick_figures, previous)
        poses = torch.from_numpy(stick_figures_to_array(stick_figures)).to(self.device)
        same = _same_batch(previous, len(stick_figures))
        if same is not None:
            previous_poses, previous_frames = same.poses, same.frames
        else:
            previous_poses, previous_frames = self._gather(poses, previous)
        with self._autocast():
            if self.config.cuda_graphs:
                frames = self._graphed(poses.shape).run(poses, previous_poses, previous_frames)
            else:
                frames = self.generator(poses, previous_poses, previous_frames)
        return GeneratedBatch(frames.float(), poses)

    def _gather(self, poses: torch.Tensor, previous: Sequence[Recurrence | None],
                ) -> tuple[torch.Tensor, torch.Tensor]:
        first_poses, zeros = self.generator.first_frame_inputs(poses)
        pose_rows, frame_rows = [], []
        for index, item in enumerate(previous):
            if item is None:
                pose_rows.append(first_poses[index:index + 1])
                frame_rows.append(zeros[index:index + 1])
            else:
                pose_rows.append(item.batch.poses[item.index:item.index + 1])
                frame_rows.append(item.batch.frames[item.index:item.index + 1])
        return torch.cat(pose_rows), torch.cat(frame_rows)

    def _graphed(self, shape: torch.Size) -> _GraphedGenerator:
        key = tuple(shape)
        if key not in self._graphs:
            self._graphs[key] = _GraphedGenerator(self.generator, shape, self.device)
        return self._graphs[key]

    @torch.inference_mode()
    def finish(self, generated: GeneratedBatch, face_boxes: np.ndarray | None) -> np.ndarray:
        frames = generated.frames
        if self.refiner is not None and face_boxes is not None:
            boxes = torch.as_tensor(np.asarray(face_boxes, np.float32), device=self.device)
            if torch.isfinite(boxes).all(dim=1).any():
                with self._autocast():
                    frames = refine_faces(self.refiner, frames, generated.poses, boxes.float())
        return to_uint8_images(frames)


class _GraphedGenerator:
    """The generator recorded as a CUDA graph for one input shape: inputs are copied into
    fixed buffers, the graph is replayed, the output buffer is copied out."""

    def __init__(self, generator: torch.nn.Module, shape: torch.Size, device: torch.device) -> None:
        self.inputs = [torch.zeros(shape, device=device) for _ in range(3)]
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):  # warm up cuDNN's algorithm choice outside the recording
                generator(*self.inputs)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = generator(*self.inputs)

    def run(self, *tensors: torch.Tensor) -> torch.Tensor:
        for buffer, tensor in zip(self.inputs, tensors, strict=True):
            buffer.copy_(tensor)
        self.graph.replay()
        return self.output.clone()


# --- ONNX Runtime --------------------------------------------------------------------------------

class OnnxBackend(FrameGenerator):
    """The exported graphs in ONNX Runtime sessions.

    `static_bindings`: bind fixed input and output buffers (one set per batch size) and update
    them in place, as CUDA graphs require; on by itself with `cuda_graphs`. Without it the
    generator's output stays where ONNX Runtime made it and is bound as the next step's input.
    """

    name = "onnx"

    def __init__(self, checkpoint: str | os.PathLike[str], config: BackendConfig,
                 exports_dir: Path, project_id: str | None = None,
                 static_bindings: bool | None = None) -> None:
        from motionxfer.export import ensure_export, import_onnx
        from motionxfer.fileio import sha256_file

        _, onnxruntime = import_onnx()
        self.onnxruntime = onnxruntime
        self.config = config
        if config.precision == "bf16":
            raise BadInput("the onnx backend runs fp32 or fp16, not bf16",
                           hint="use --precision fp16 (GPU) or fp32, or --backend torch for bf16")
        checkpoint = Path(checkpoint)
        choice = choose_providers(config.providers, onnxruntime.get_available_providers(),
                                  config.strict_providers)
        warning = choice.warning()
        if warning:
            logger.warning(warning)
        first = choice.providers[0]
        if config.cuda_graphs and first != "cuda":
            raise BadInput(f"CUDA graphs need the CUDA execution provider, and this run uses "
                           f"{PROVIDERS[first]}",
                           hint="drop --cuda-graphs, or pass --providers cuda (onnxruntime-gpu)")
        self.static_bindings = config.cuda_graphs if static_bindings is None else static_bindings
        self.device_type = "cuda" if first in ("cuda", "tensorrt") else "cpu"
        # TensorRT makes its own fp16 engine from the fp32 graph; the CUDA provider (and the
        # CPU, when asked) runs the fp16 graph.
        graph_precision = "fp32" if first == "tensorrt" else config.precision
        checkpoint_sha256 = sha256_file(checkpoint)
        generator_export = ensure_export(checkpoint, exports_dir, "generator", graph_precision,
                                         checkpoint_sha256, project_id)
        self.info = checkpoint_description(checkpoint, project_id)
        self.exports_dir = exports_dir
        width, height = self.info.working_size
        channels = self.info.generator.pose_channels
        shapes = {name: (channels if name != "previous_frame" else
                         self.info.generator.image_channels, height, width)
                  for name in ("pose", "previous_pose", "previous_frame")}
        self.session = self._session(generator_export.path, choice.providers, shapes)
        self.providers = tuple(self.session.get_providers())
        self._check_started(choice.providers)
        self.refiner_session = None
        self.crop_size = 0
        if config.face_refiner and self.info.face_refiner is not None \
                and self.info.face_refiner_step > 0:
            refiner_export = ensure_export(checkpoint, exports_dir, "face_refiner",
                                           graph_precision, checkpoint_sha256, project_id)
            size = self.info.face_refiner.crop_size
            self.crop_size = size
            self.refiner_session = self._session(
                refiner_export.path, choice.providers,
                {"pose_crop": (self.info.face_refiner.pose_channels, size, size),
                 "generated_crop": (self.info.face_refiner.image_channels, size, size)})
        self.has_face_refiner = self.refiner_session is not None
        self._static: dict[int, _StaticBindings] = {}

    def describe(self) -> str:
        extras = " cuda-graphs" if self.config.cuda_graphs else ""
        return f"onnx {self.providers[0]} {self.config.precision}{extras}"

    def _session(self, path: Path, providers: tuple[str, ...],
                 shapes: dict[str, tuple[int, int, int]]) -> Any:
        onnxruntime = self.onnxruntime
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if self.config.threads is not None:
            options.intra_op_num_threads = self.config.threads
        options.log_severity_level = 3  # errors only: a provider that fails is reported below
        entries = [(PROVIDERS[name], self._provider_options(name, shapes)) for name in providers]
        return onnxruntime.InferenceSession(str(path), options,
                                            providers=[name for name, _ in entries],
                                            provider_options=[opts for _, opts in entries])

    def _provider_options(self, name: str, shapes: dict[str, tuple[int, int, int]],
                          ) -> dict[str, Any]:
        if name == "tensorrt":
            cache = self.exports_dir / "tensorrt"
            cache.mkdir(parents=True, exist_ok=True)

            def profile(batch: int) -> str:
                return ",".join(f"{input_name}:{batch}x" + "x".join(map(str, shape))
                                for input_name, shape in shapes.items())

            # (values as the strings ONNX Runtime parses; Python's True would become "True")
            return {
                "device_id": "0",
                "trt_fp16_enable": "True" if self.config.precision == "fp16" else "False",
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": str(cache),
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": str(cache),
                # One engine for batches of 1 to 8 videos at the working size.
                "trt_profile_min_shapes": profile(1),
                "trt_profile_opt_shapes": profile(1),
                "trt_profile_max_shapes": profile(8),
            }
        if name == "cuda":
            return {
                "device_id": "0",
                "cudnn_conv_algo_search": "EXHAUSTIVE",
                "do_copy_in_default_stream": "1",
                "enable_cuda_graph": "1" if self.config.cuda_graphs else "0",
            }
        return {}

    def _check_started(self, providers: tuple[str, ...]) -> None:
        """ONNX Runtime drops a provider that fails to start (missing CUDA libraries) and goes
        on with the next: say so, or stop when the user was strict."""
        wanted = PROVIDERS[providers[0]]
        if self.providers[0] == wanted:
            return
        message = (f"{wanted} could not start (onnxruntime fell back to {self.providers[0]}): "
                   "check the CUDA, cuDNN and TensorRT libraries")
        if self.config.strict_providers and self.config.providers is not None:
            raise MissingDependency(message, hint=f"{GPU_PIP}; or drop --strict-providers")
        logger.warning(message)

    # --- generation --------------------------------------------------------------------------
    def generate(self, stick_figures: np.ndarray,
                 previous: Sequence[Recurrence | None]) -> GeneratedBatch:
        self._check(stick_figures, previous)
        poses = stick_figures_to_array(stick_figures)  # (B, 3, H, W)
        same = _same_batch(previous, len(stick_figures))
        if self.static_bindings:
            previous_poses, previous_frames = ((same.poses, same.frames) if same is not None
                                               else self._gather(poses, previous))
            return self._run_static(poses, previous_poses, previous_frames)
        onnxruntime = self.onnxruntime
        pose_value = onnxruntime.OrtValue.ortvalue_from_numpy(poses, self.device_type, 0)
        if same is not None and same.device_values is not None:
            previous_pose_value, previous_frame_value = same.device_values
        else:
            previous_poses, previous_frames = self._gather(poses, previous)
            previous_pose_value = onnxruntime.OrtValue.ortvalue_from_numpy(
                previous_poses, self.device_type, 0)
            previous_frame_value = onnxruntime.OrtValue.ortvalue_from_numpy(
                previous_frames, self.device_type, 0)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input("pose", pose_value)
        binding.bind_ortvalue_input("previous_pose", previous_pose_value)
        binding.bind_ortvalue_input("previous_frame", previous_frame_value)
        binding.bind_output("frame", self.device_type, 0)
        self.session.run_with_iobinding(binding)
        frame_value = binding.get_outputs()[0]  # stays on the device for the next frame
        frames = np.array(binding.copy_outputs_to_cpu()[0], dtype=np.float32, copy=True)
        return GeneratedBatch(frames, poses, (pose_value, frame_value))  # (B, 3, H, W)

    def _gather(self, poses: np.ndarray, previous: Sequence[Recurrence | None],
                ) -> tuple[np.ndarray, np.ndarray]:
        previous_poses = poses.copy()
        previous_frames = np.zeros((len(poses), self.info.generator.image_channels,
                                    *poses.shape[2:]), np.float32)
        for index, item in enumerate(previous):
            if item is not None:
                previous_poses[index] = item.batch.poses[item.index]
                previous_frames[index] = item.batch.frames[item.index]
        return previous_poses, previous_frames

    def _run_static(self, poses: np.ndarray, previous_poses: np.ndarray,
                    previous_frames: np.ndarray) -> GeneratedBatch:
        batch = len(poses)
        if batch not in self._static:
            self._static[batch] = _StaticBindings(self, poses.shape,
                                                  previous_frames.shape)
        bindings = self._static[batch]
        bindings.values["pose"].update_inplace(poses)
        bindings.values["previous_pose"].update_inplace(np.ascontiguousarray(previous_poses))
        bindings.values["previous_frame"].update_inplace(np.ascontiguousarray(previous_frames))
        self.session.run_with_iobinding(bindings.binding)
        frames = np.array(bindings.binding.copy_outputs_to_cpu()[0], dtype=np.float32, copy=True)
        return GeneratedBatch(frames, poses.copy())

    def finish(self, generated: GeneratedBatch, face_boxes: np.ndarray | None) -> np.ndarray:
        frames = torch.from_numpy(generated.frames)
        if self.refiner_session is not None and face_boxes is not None:
            frames = self._refine(frames, torch.from_numpy(generated.poses),
                                  torch.as_tensor(np.asarray(face_boxes, np.float32)))
        return to_uint8_images(frames)

    @torch.inference_mode()
    def _refine(self, frames: torch.Tensor, poses: torch.Tensor,
                boxes: torch.Tensor) -> torch.Tensor:
        """`refine_faces` with the refiner network in ONNX Runtime."""
        valid = torch.isfinite(boxes).all(dim=1)
        if not valid.any():
            return frames
        chosen = boxes[valid]
        generated_crops = crop_faces(frames[valid], chosen, self.crop_size)
        pose_crops = crop_faces(poses[valid], chosen, self.crop_size)
        refined_crops = self.refiner_session.run(None, {
            "pose_crop": np.ascontiguousarray(pose_crops.numpy()),
            "generated_crop": np.ascontiguousarray(generated_crops.numpy()),
        })[0]
        residuals = torch.from_numpy(refined_crops) - generated_crops
        refined = frames.clone()
        refined[valid] = paste_residuals(frames[valid], residuals, chosen)
        return refined.clamp(-1, 1)


class _StaticBindings:
    """Input and output buffers allocated once for a batch size, bound once."""

    def __init__(self, backend: OnnxBackend, pose_shape: tuple[int, ...],
                 frame_shape: tuple[int, ...]) -> None:
        new = backend.onnxruntime.OrtValue.ortvalue_from_shape_and_type
        device = backend.device_type
        self.values = {
            "pose": new(pose_shape, np.float32, device, 0),
            "previous_pose": new(pose_shape, np.float32, device, 0),
            "previous_frame": new(frame_shape, np.float32, device, 0),
            "frame": new(frame_shape, np.float32, device, 0),
        }
        self.binding = backend.session.io_binding()
        for name in ("pose", "previous_pose", "previous_frame"):
            self.binding.bind_ortvalue_input(name, self.values[name])
        self.binding.bind_ortvalue_output("frame", self.values["frame"])


def checkpoint_description(checkpoint: Path, project_id: str | None) -> CheckpointInfo:
    """What the checkpoint says about itself, read and validated as `load_generator` does."""
    from motionxfer.checkpoint import checkpoint_info, read_checkpoint

    return checkpoint_info(read_checkpoint(checkpoint, project_id), checkpoint)
