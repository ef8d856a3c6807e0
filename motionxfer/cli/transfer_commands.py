"""transfer and demo."""

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
    SecondsOpt,
    ThreadsOpt,
    TrainedProjectArg,
)


@command("transfer")
def transfer(
    project_dir: TrainedProjectArg,
    sources: Annotated[
        list[Path], typer.Argument(help="Source video(s): whose moves the target performs.")
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Output video for one source; a folder for several. "
                     "Default: <source>_transfer.mp4 next to the current folder."),
    ] = None,
    side_by_side: Annotated[
        bool, typer.Option("--side-by-side", help="Write source | stick figure | result.")
    ] = False,
    face_refiner: Annotated[
        bool, typer.Option("--face-refiner/--no-face-refiner", help="Apply the face refiner.")
    ] = True,
    checkpoint: CheckpointOpt = None,
    device: DeviceOpt = "auto",
    seconds: SecondsOpt = None,
    backend: Annotated[
        str, typer.Option("--backend", help="torch (PyTorch) or onnx (ONNX Runtime; exports "
                          "the model on first use).")
    ] = "torch",
    providers: ProvidersOpt = None,
    strict_providers: Annotated[
        bool, typer.Option("--strict-providers", help="onnx: a provider from --providers that "
                           "cannot run is an error instead of a fallback.")
    ] = False,
    precision: PrecisionOpt = "fp32",
    cuda_graphs: Annotated[
        bool, typer.Option("--cuda-graphs", help="Record the generator as a CUDA graph (GPU).")
    ] = False,
    threads: ThreadsOpt = None,
    video_batch: Annotated[
        int, typer.Option("--video-batch", help="Generate frame t of this many sources in one "
                          "call (batch jobs on a GPU).")
    ] = 1,
    streaming: Annotated[
        bool, typer.Option("--streaming/--sequential", help="Overlap stick figures, generator, "
                           "face refiner and encoder (the default), or run them in turn.")
    ] = True,
    method: Annotated[
        str, typer.Option("--method", help="personal (the project's trained model) or animate "
                          "(its first frame moved by an animator, no training; --checkpoint: "
                          "the animator, default the bundled one).")
    ] = "personal",
) -> None:
    """Render the target performing each source's moves, with the source's audio.

    The source's poses are extracted and normalized onto the target first (both cached), then
    the personal model generates the video frame by frame at the source's frame rate.

      motionxfer transfer ./me dancer.mp4 -o me_dancing.mp4

      motionxfer transfer ./me a.mp4 b.mp4 c.mp4 -o out/     (batch: one model load)

      motionxfer transfer ./me dancer.mp4 --backend onnx --providers tensorrt,cuda,cpu
    """
    if method != "personal":
        from motionxfer.cli.animation_commands import transfer_by_animation
        return transfer_by_animation(method, project_dir, sources, output, checkpoint, device,
                                     seconds, threads)
    from motionxfer.inference.frame_generator import BackendConfig, parse_providers
    from motionxfer.inference.transfer import TransferConfig, transfer_many
    from motionxfer.project import Project


    backend_config = BackendConfig(backend=backend, device=device,
                                   providers=parse_providers(providers),
                                   strict_providers=strict_providers, precision=precision,
                                   face_refiner=face_refiner, threads=threads,
                                   cuda_graphs=cuda_graphs)
    config = TransferConfig(backend=backend_config, side_by_side=side_by_side,
                            max_seconds=seconds, streaming=streaming, video_batch=video_batch)
    project = Project.open(project_dir)
    if len(sources) == 1 and output is not None and output.suffix:
        outputs_dir, names = output.parent, {sources[0]: output}
    else:
        outputs_dir, names = output or Path.cwd(), {}
    with progress_bar() as progress:
        results = transfer_many(project, sources, outputs_dir, config, checkpoint, progress,
                                output_names=names)
    for result in results:
        log(f"{result.source.name}: {result.frames} frames at {result.fps:.2f} fps, "
            f"{result.frames_per_second:.1f} frames/s ({result.backend}) -> {result.output}")
    emit({"outputs": [{"source": str(r.source), "output": str(r.output), "frames": r.frames,
                       "fps": r.fps, "seconds": round(r.seconds, 2), "backend": r.backend}
                      for r in results]},
         "\n".join(str(r.output) for r in results))


@command("demo")
def demo(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where the demo project and videos go.")
    ] = Path("motionxfer-demo"),
    samples: Annotated[
        Path | None, typer.Option("--samples", help="The samples folder (default: the repo's).")
    ] = None,
    train_steps: Annotated[
        int, typer.Option("--train-steps", min=0, help="Train the tiny preset from scratch for "
                          "this many steps instead of using the bundled sample model "
                          "(0.3-1.5 s a step on a laptop CPU).")
    ] = 0,
) -> None:
    """The whole job on the bundled samples: init, poses, model, transfer, evaluation.

    Uses samples/target.mp4 (the person), samples/source.mp4 (the dancer) and
    samples/ground_truth.mp4 (that person really doing the dancer's moves) to show, and measure,
    what motionxfer does. Writes transfer.mp4 and side_by_side.mp4 into --workdir.
    """
    from motionxfer.demo import run_demo


    with progress_bar() as progress:
        result = run_demo(workdir, samples, train_steps, progress, log)
    emit(result.to_dict(), "\n".join(str(path) for path in result.videos))
