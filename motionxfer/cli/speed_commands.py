"""export and bench."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from motionxfer.cli.app import command, emit, log, progress_bar
from motionxfer.cli.options import (
    CheckpointOpt,
    DeviceOpt,
    PrecisionOpt,
    ProvidersOpt,
    ThreadsOpt,
    TrainedProjectArg,
)


@command("export")
def export(
    project_dir: TrainedProjectArg,
    fp16: Annotated[
        bool | None, typer.Option("--fp16/--no-fp16",
                                     help="Also write the half-precision variant (for CUDA).")
    ] = None,
    checkpoint: CheckpointOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Export again even when a valid export is there.")
    ] = False,
) -> None:
    """Export the generator and the face refiner to ONNX (fp32, and fp16 unless --no-fp16).

    Each file is checked against PyTorch (the largest difference is printed) and stored in the
    project's exports/ folder under the checkpoint's fingerprint, so a retrained model is never
    run with an old export. `transfer --backend onnx` exports by itself when needed.

      motionxfer export ./me
    """
    from motionxfer.inference.export import ExportConfig, export_project
    from motionxfer.project import Project, config_from_project


    project = Project.open(project_dir)
    config = config_from_project(ExportConfig, project, "export", fp16=fp16)
    with progress_bar() as progress:
        result = export_project(project, config, checkpoint, force, progress)
    for model in result.models:
        log(f"{model.network} {model.precision}: max |ONNX - PyTorch| = "
            f"{model.max_abs_difference:.2g} (tolerance {model.tolerance:g})"
            f"{', already there' if model.reused else ''} -> {model.path}")
    for path in result.removed:
        log(f"removed the stale {path.name}")
    emit(result.to_dict(), "\n".join(str(model.path) for model in result.models))


@command("bench")
def bench(
    project_dir: Annotated[Path, typer.Argument(help="The project (its model and target).")],
    backend: Annotated[
        list[str] | None, typer.Option("--backend", help="torch and/or onnx (repeat the "
                                          "option; default: both).")
    ] = None,
    seconds: Annotated[
        float, typer.Option("--seconds", help="Seconds of the video to run through each stage.")
    ] = 2.0,
    source: Annotated[
        Path | None, typer.Option("--source", help="The video to transfer (default: the "
                                     "target video).")
    ] = None,
    preset: Annotated[
        str, typer.Option("--preset", help="Architecture of the random model used when the "
                          "project has no trained one yet.")
    ] = "tiny",
    height: Annotated[
        int | None, typer.Option("--height", help="Working height of the random model "
                                    "(default: the preset's size).")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Processes for pose extraction (0: skip MediaPipe).")
    ] = 2,
    video_batch: Annotated[
        int, typer.Option("--video-batch", help="Videos per generator call in the batched "
                          "measurement (1: skip it).")
    ] = 2,
    device: DeviceOpt = "auto",
    providers: ProvidersOpt = None,
    precision: PrecisionOpt = "fp32",
    threads: ThreadsOpt = None,
) -> None:
    """Frames per second of each stage of a transfer and end to end, for each backend.

    Stages: decode, poses (MediaPipe, 1 process and --workers processes), normalize, render,
    generate (batch 1 and --video-batch videos), refine, encode; then the overlapped pipeline
    on cached poses, and the whole job from the video. Prints the machine and its load too:
    other programs running at the same time slow every number down.

      motionxfer bench ./me --seconds 4

      motionxfer bench ./me --backend onnx --providers tensorrt --precision fp16
    """
    from motionxfer.inference.bench import BenchConfig, bench_project
    from motionxfer.inference.frame_generator import parse_providers
    from motionxfer.project import Project


    config = BenchConfig(backends=tuple(backend or ("torch", "onnx")), seconds=seconds,
                         preset=preset, height=height, workers=workers, video_batch=video_batch,
                         device=device, providers=parse_providers(providers),
                         precision=precision, threads=threads)
    project = Project.open(project_dir)
    with progress_bar() as progress:
        report = bench_project(project, config, source, progress=progress, log=log)
    emit(report.to_dict(), report.table())
