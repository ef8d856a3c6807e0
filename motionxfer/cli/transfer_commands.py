"""transfer and demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from motionxfer.cli.app import command, emit, log, progress_bar
from motionxfer.cli.options import (
    CheckpointOpt,
    DeviceOpt,
    EndOpt,
    PrecisionOpt,
    ProvidersOpt,
    SecondsOpt,
    StartOpt,
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
        typer.Option("--output", "-o", help="Output video (.mp4, .mov, .mkv) for one source; a "
                     "folder for several (for one: an existing folder, or a name without extension): "
                     "<folder>/<source>_transfer.mp4. Default: that name in the current folder. "
                     "Never one of the inputs; two sources with the same file name are refused."),
    ] = None,
    side_by_side: Annotated[
        bool, typer.Option("--side-by-side", help="Write source | stick figure | result "
                           "(| ground truth, with --ground-truth).")
    ] = False,
    ground_truth: Annotated[
        Path | None,
        typer.Option("--ground-truth", help="With --side-by-side and one source: a video of the "
                     "target really doing the source's moves, shown as a fourth panel."),
    ] = None,
    size: Annotated[
        str | None,
        typer.Option("--size", help="Output size WxH, e.g. 1280x720 (each panel of a side by "
                     "side). Default: the target video's size."),
    ] = None,
    height: Annotated[
        int | None,
        typer.Option("--height", help="Output height; the width follows the model's aspect."),
    ] = None,
    crf: Annotated[
        int, typer.Option("--crf", help="Quality, 0-51: lower is better and larger "
                          "(18: visually lossless).")
    ] = 18,
    codec: Annotated[
        str, typer.Option("--codec", help="libx264 (H.264), libx265 (H.265), or a hardware "
                          "encoder this machine has, e.g. h264_nvenc.")
    ] = "libx264",
    start: StartOpt = None,
    end: EndOpt = None,
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

      motionxfer transfer ./me dancer.mp4 --start 12 --end 40 --height 720 --codec libx265

    Without --start/--end, a source trimmed at extract-poses keeps that trim.

      motionxfer transfer ./me dancer.mp4 --method animate     (before the model is trained)
    """
    if method != "personal":
        from motionxfer.cli.animation_commands import transfer_by_animation

        return transfer_by_animation(method, project_dir, sources, output, checkpoint, device,
                                     seconds, threads)
    from motionxfer.errors import BadInput
    from motionxfer.inference.frame_generator import BackendConfig, parse_providers
    from motionxfer.inference.transfer import TransferConfig, parse_size, transfer_many
    from motionxfer.project import Project

    backend_config = BackendConfig(backend=backend, device=device,
                                   providers=parse_providers(providers),
                                   strict_providers=strict_providers, precision=precision,
                                   face_refiner=face_refiner, threads=threads,
                                   cuda_graphs=cuda_graphs)
    config = TransferConfig(backend=backend_config, side_by_side=side_by_side,
                            max_seconds=seconds, start=start, end=end,
                            size=parse_size(size) if size else None, height=height, crf=crf,
                            codec=codec, streaming=streaming, video_batch=video_batch)
    if ground_truth is not None and len(sources) != 1:
        raise BadInput("--ground-truth belongs to one source, and there are "
                       f"{len(sources)}", hint="transfer that source on its own")
    project = Project.open(project_dir)
    if len(sources) == 1:  # -o: a file, or an existing folder
        outputs_dir, names = Path.cwd(), ({sources[0]: output} if output else {})
    else:
        outputs_dir, names = output or Path.cwd(), {}
    truths = {sources[0]: ground_truth} if ground_truth else None
    with progress_bar() as progress:
        results = transfer_many(project, sources, outputs_dir, config, checkpoint, progress,
                                output_names=names, ground_truths=truths)
    for result in results:
        log(f"{result.source.name}: {result.frames} frames at {result.fps:.2f} fps, "
            f"{result.frames_per_second:.1f} frames/s ({result.backend}), "
            f"{result.size[0]}x{result.size[1]} -> {result.output}")
    emit({"outputs": [{"source": str(r.source), "output": str(r.output), "frames": r.frames,
                       "fps": r.fps, "seconds": round(r.seconds, 2), "backend": r.backend,
                       "width": r.size[0], "height": r.size[1]}
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
