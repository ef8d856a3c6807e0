"""Frame generators by name: the personal model run by PyTorch or by ONNX Runtime, behind the one
interface of `motionxfer.inference.frame_generator`.

    checkpoint = Checkpoint.load(path, project_id)
    backend = open_backend(checkpoint, BackendConfig(backend="onnx"), exports_dir=...)

Backends:

- "torch": PyTorch eager on `device` ("auto": CUDA when torch sees a GPU). `precision` "bf16"
  (CPU or CUDA) or "fp16" (CUDA only) runs the networks under autocast; `cuda_graphs` records
  the generator once per batch shape and replays it (CUDA only; it removes the per-layer launch
  cost that bounds small frames).
- "onnx": ONNX Runtime on the exported graphs (`motionxfer.inference.export`; exported on first use and
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

import os

from motionxfer.checkpoint import Checkpoint
from motionxfer.inference.frame_generator import BACKENDS, BackendConfig, FrameGenerator
from motionxfer.inference.onnx_backend import OnnxBackend
from motionxfer.inference.torch_backend import TorchBackend

BACKEND_CLASSES: dict[str, type[FrameGenerator]] = {"torch": TorchBackend, "onnx": OnnxBackend}
assert tuple(BACKEND_CLASSES) == BACKENDS


def open_backend(checkpoint: Checkpoint, config: BackendConfig = BackendConfig(),
                 exports_dir: str | os.PathLike[str] | None = None) -> FrameGenerator:
    """The personal model in `checkpoint`, run as `config` says. `exports_dir` (the project's
    exports/ folder) is where the onnx backend keeps its ONNX files and TensorRT engines."""
    return BACKEND_CLASSES[config.backend](checkpoint, config, exports_dir)
