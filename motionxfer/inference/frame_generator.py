"""The interface every backend offers, and how a backend is chosen (`BackendConfig`).

    generated = backend.generate(pose_inputs, previous)        # (B, H, W, C) uint8 in
    frames = backend.finish(generated, face_boxes)             # (B, H, W, 3) uint8 out
    previous = [generated.recurrence(i) for i in range(len(generated))]

The generator is recurrent: frame t is made from the pose inputs of t and t-1 and the frame it
made for t-1. A batch is any set of videos, each at its own frame: `previous[i]` is where video
i stands (None at its first frame), so several videos share one generator call and each keeps
its own recurrence. When `previous` is exactly the last batch, in order, the batch's tensors are
used as they are (no gather, nothing leaves the device).

`finish` applies the face refiner to the frames whose box is finite and converts to uint8. It is
off the recurrence (the generator is fed its unrefined frame, as in training), so a pipeline can
run it in another thread while the generator makes the next frame. The pose inputs are what the
checkpoint's `Conditioning` encodes (an RGB stick figure, or label maps).

A sequence model (`TrainConfig.sequence = N`, `window_length` N) has no recurrence and makes a
window of N consecutive frames of one video in one call instead:

    generated = backend.generate_window(pose_inputs)          # (N, H, W, C) uint8 in
    frames = backend.finish(blended, face_boxes)              # after the windows' cross-fade

`generate` refuses it (and `generate_window` a recurrent model); transfer runs sequence models
through its window path (`streaming.generate_windowed`, `transfer.write_windowed`). Only the torch backend offers
windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from motionxfer.checkpoint import Checkpoint
from motionxfer.errors import BadInput

BACKENDS = ("torch", "onnx")
PRECISIONS = ("fp32", "fp16", "bf16")
PROVIDERS = {  # our short names -> ONNX Runtime's
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


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


# --- the interface ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Recurrence:
    """Where one video's generator stands: slot `index` of the batch it was generated in."""

    batch: GeneratedBatch
    index: int


@dataclass(frozen=True, eq=False)
class GeneratedBatch:
    """The generator's output for a batch: frames (B, 3, H, W) and pose inputs (B, C, H, W) in
    the backend's own arrays (torch tensors on the device, or numpy arrays), in [-1, 1]."""

    frames: Any
    poses: Any
    device_values: Any = field(default=None, repr=False)  # onnx: (pose, frame) OrtValues

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def recurrence(self, index: int) -> Recurrence:
        return Recurrence(self, index)


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
    checkpoint: Checkpoint
    has_face_refiner: bool

    @property
    def size(self) -> tuple[int, int]:
        return self.checkpoint.working_size

    @property
    def window_length(self) -> int:
        """N for a sequence model (made in windows of N frames), 0 for the recurrent one."""
        return self.checkpoint.train.sequence

    def describe(self) -> str:
        raise NotImplementedError

    def generate(self, stick_figures: np.ndarray,
                 previous: Sequence[Recurrence | None]) -> GeneratedBatch:
        """(B, H, W, C) uint8 pose inputs at `size` (`Conditioning.encode`), each video's
        recurrence -> the batch."""
        raise NotImplementedError

    def generate_window(self, stick_figures: np.ndarray) -> GeneratedBatch:
        """A sequence model's window: (N, H, W, C) uint8 pose inputs of N consecutive frames of
        one video -> their N frames (no recurrence)."""
        raise BadInput(f"the {self.name} backend does not run sequence models",
                       hint="use --backend torch")

    def batch_of(self, frames: Sequence[Any], poses: Sequence[Any]) -> GeneratedBatch:
        """Frames (3, H, W) and pose inputs (C, H, W) in the backend's arrays, one per row, as a
        batch for `finish` (the window path's blended frames)."""
        return GeneratedBatch(np.stack(frames), np.stack(poses))

    def finish(self, generated: GeneratedBatch, face_boxes: np.ndarray | None) -> np.ndarray:
        """Refine the faces (boxes (B, 4) in pixels, NaN rows: no face) -> (B, H, W, 3) uint8."""
        raise NotImplementedError

    def _check(self, stick_figures: np.ndarray, previous: Sequence[Recurrence | None]) -> None:
        width, height = self.size
        channels = self.checkpoint.conditioning.channels
        if stick_figures.ndim != 4 or stick_figures.shape[-1] != channels \
                or stick_figures.dtype != np.uint8:
            raise ValueError(f"expected (B, H, W, {channels}) uint8 pose inputs, got "
                             f"{stick_figures.shape} {stick_figures.dtype}")
        if stick_figures.shape[1:3] != (height, width):
            raise ValueError(f"stick figures are {stick_figures.shape[2]}x"
                             f"{stick_figures.shape[1]}, the model makes {width}x{height}")
        if len(previous) != len(stick_figures):
            raise ValueError(f"{len(stick_figures)} stick figures but {len(previous)} recurrences")
