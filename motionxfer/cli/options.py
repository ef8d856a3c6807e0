"""Options that several commands share, declared once (Typer's Annotated style)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ProjectArg = Annotated[
    Path, typer.Argument(help="The project folder (one per target person), made by 'init'.")
]
TrainedProjectArg = Annotated[Path, typer.Argument(help="The project with a trained model.")]
StartOpt = Annotated[
    float | None, typer.Option("--start", help="Use the video from this second on.")
]
EndOpt = Annotated[float | None, typer.Option("--end", help="Use the video up to this second.")]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Recompute even if the cached result is up to date.")
]
SourceOpt = Annotated[Path, typer.Option("--source", "-s", help="The source video.")]
SecondsOpt = Annotated[
    float | None, typer.Option("--seconds", help="Only the first N seconds.")
]
CheckpointOpt = Annotated[
    Path | None, typer.Option("--checkpoint", help="Default: the project's model.")
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto (CUDA when present), cpu, cuda or cuda:N.")
]
ProvidersOpt = Annotated[
    str | None, typer.Option("--providers", help="onnx: execution providers in order of "
                             "preference, e.g. tensorrt,cuda,cpu (default: whichever of those "
                             "this onnxruntime has). One that is missing is skipped with a "
                             "warning; CPU is the last resort.")
]
PrecisionOpt = Annotated[
    str, typer.Option("--precision", help="fp32, fp16 (CUDA / TensorRT) or bf16 (torch).")
]
ThreadsOpt = Annotated[
    int | None, typer.Option("--threads", help="CPU threads of the networks "
                             "(default: one per core).")
]
ConditioningOpt = Annotated[
    str | None, typer.Option("--conditioning", help="The generator's pose input: "
                             "stick_figure or label_maps (default: [train] conditioning "
                             "of config.toml, else stick_figure).")
]
