"""The "onnx" backend: ONNX Runtime on the exported graphs (`motionxfer.inference.export`;
exported on first use and kept in the project's exports/ folder), and the choice of execution
providers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from motionxfer.checkpoint import Checkpoint
from motionxfer.errors import BadInput, MissingDependency
from motionxfer.inference.export import (
    checkpoint_file_sha256,
    ensure_export,
    import_onnx,
    refuse_windows,
)
from motionxfer.inference.frame_generator import (
    PROVIDERS,
    BackendConfig,
    FrameGenerator,
    GeneratedBatch,
    Recurrence,
    _same_batch,
)
from motionxfer.io.images import images_to_array, to_images
from motionxfer.networks.face_refiner import crop_faces, paste_residuals

logger = logging.getLogger(__name__)

AUTO_PROVIDERS = ("tensorrt", "cuda", "cpu")
GPU_PIP = "pip install onnxruntime-gpu (instead of onnxruntime), with CUDA 12 and cuDNN 9"


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


class OnnxBackend(FrameGenerator):
    """The exported graphs in ONNX Runtime sessions.

    `static_bindings`: bind fixed input and output buffers (one set per batch size) and update
    them in place, as CUDA graphs require; on by itself with `cuda_graphs`. Without it the
    generator's output stays where ONNX Runtime made it and is bound as the next step's input.
    """

    name = "onnx"

    def __init__(self, checkpoint: Checkpoint, config: BackendConfig,
                 exports_dir: str | os.PathLike[str] | None,
                 static_bindings: bool | None = None) -> None:
        if checkpoint.conditioning.layout:
            raise BadInput(
                "this model predicts the layout of every frame with its layout generator before "
                "the generator runs, and the onnx backend runs the generator alone",
                hint="transfer with the torch backend (--backend torch, the default)")
        refuse_windows(checkpoint)  # windows of frames: the torch backend only
        if exports_dir is None:
            raise BadInput("the onnx backend needs a folder for its ONNX files",
                           hint="pass exports_dir (a project's exports/ folder)")
        exports_dir = Path(exports_dir)
        _, onnxruntime = import_onnx()
        self.onnxruntime = onnxruntime
        self.config = config
        if config.precision == "bf16":
            raise BadInput("the onnx backend runs fp32 or fp16, not bf16",
                           hint="use --precision fp16 (GPU) or fp32, or --backend torch for bf16")
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
        checkpoint_sha256 = checkpoint_file_sha256(checkpoint)
        generator_export = ensure_export(checkpoint, exports_dir, "generator", graph_precision,
                                         checkpoint_sha256)
        self.checkpoint = checkpoint
        self.exports_dir = exports_dir
        width, height = checkpoint.working_size
        channels = checkpoint.conditioning.channels
        shapes = {name: (channels if name != "previous_frame" else
                         checkpoint.generator.image_channels, height, width)
                  for name in ("pose", "previous_pose", "previous_frame")}
        self.session = self._session(generator_export.path, choice.providers, shapes)
        self.providers = tuple(self.session.get_providers())
        self._check_started(choice.providers)
        self.refiner_session = None
        self.crop_size = 0
        if config.face_refiner and self.checkpoint.face_refiner is not None \
                and self.checkpoint.face_refiner_step > 0:
            refiner_export = ensure_export(checkpoint, exports_dir, "face_refiner",
                                           graph_precision, checkpoint_sha256)
            size = self.checkpoint.face_refiner.crop_size
            self.crop_size = size
            self.refiner_session = self._session(
                refiner_export.path, choice.providers,
                {"pose_crop": (self.checkpoint.face_refiner.pose_channels, size, size),
                 "generated_crop": (self.checkpoint.face_refiner.image_channels, size, size)})
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
        poses = images_to_array(stick_figures)  # (B, C, H, W)
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
        previous_frames = np.zeros((len(poses), self.checkpoint.generator.image_channels,
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
        return to_images(frames)

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
