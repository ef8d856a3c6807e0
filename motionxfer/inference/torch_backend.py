"""The "torch" backend: PyTorch eager on `device` ("auto": CUDA when torch sees a GPU).

`precision` "bf16" (CPU or CUDA) or "fp16" (CUDA only) runs the networks under autocast;
`cuda_graphs` records the generator once per batch shape and replays it (CUDA only; it removes
the per-layer launch cost that bounds small frames).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from motionxfer.checkpoint import Checkpoint
from motionxfer.device import resolve_device
from motionxfer.errors import BadInput
from motionxfer.inference.frame_generator import (
    BackendConfig,
    FrameGenerator,
    GeneratedBatch,
    Recurrence,
    _same_batch,
)
from motionxfer.io.images import images_to_array, to_images
from motionxfer.networks.face_refiner import refine_faces


class TorchBackend(FrameGenerator):
    name = "torch"

    def __init__(self, checkpoint: Checkpoint, config: BackendConfig = BackendConfig(),
                 exports_dir: str | os.PathLike[str] | None = None) -> None:
        self.config = config
        self.checkpoint = checkpoint
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
        if config.cuda_graphs and checkpoint.train.sequence:
            raise BadInput("CUDA graphs record the recurrent generator, and this checkpoint is a "
                           f"sequence model (windows of {checkpoint.train.sequence} frames)",
                           hint="drop --cuda-graphs")
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.generator = checkpoint.build_generator(self.device)
        self.refiner = checkpoint.build_face_refiner(self.device) if config.face_refiner else None
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
        if self.window_length:
            raise BadInput("a sequence model makes windows of frames, not one frame after the "
                           "other", hint="call generate_window (transfer does)")
        poses = torch.from_numpy(images_to_array(stick_figures)).to(self.device)
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

    @torch.inference_mode()
    def generate_window(self, stick_figures: np.ndarray) -> GeneratedBatch:
        if not self.window_length:
            raise BadInput("this checkpoint's generator is recurrent: it makes one frame after "
                           "the other", hint="call generate")
        self._check(stick_figures, [None] * len(stick_figures))
        poses = torch.from_numpy(images_to_array(stick_figures)).to(self.device)  # (N, C, H, W)
        with self._autocast():
            frames = self.generator(poses[None])[0]  # (N, 3, H, W)
        return GeneratedBatch(frames.float(), poses)

    def batch_of(self, frames: Sequence[Any], poses: Sequence[Any]) -> GeneratedBatch:
        return GeneratedBatch(torch.stack(list(frames)), torch.stack(list(poses)))

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
        return to_images(frames)


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
