"""transfer and demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from motionxfer.cli.app import command, emit, log, progress_bar


@command("transfer")
def transfer(
    project_dir: Annotated[Path, typer.Argument(help="The project with a trained model.")],
    sources: Annotated[
        list[Path], typer.Argument(help="Source video(s): whose moves the target performs.")
    ],
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Output video for one source; a folder for several. "
                     "Default: <source>_transfer.mp4 next to the current folder."),
    ] = None,
    side_by_side: Annotated[
        bool, typer.Option("--side-by-side", help="Write source | stick figure | result.")
    ] = False,
    face_refiner: Annotated[
        bool, typer.Option("--face-refiner/--no-face-refiner", help="Apply the face refiner.")
    ] = True,
    checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", help="Default: the project's model.")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    seconds: Annotated[
        Optional[float], typer.Option("--seconds", help="Only the first N seconds.")
    ] = None,
) -> None:
    """Render the target performing each source's moves, with the source's audio.

    The source's poses are extracted and normalized onto the target first (both cached), then
    the personal model generates the video frame by frame at the source's frame rate.

      motionxfer transfer ./me dancer.mp4 -o me_dancing.mp4

      motionxfer transfer ./me a.mp4 b.mp4 c.mp4 -o out/     (batch: one model load)
    """
    from motionxfer.project import Project
    from motionxfer.transfer import TransferConfig, transfer_many

    project = Project.open(project_dir)
    config = TransferConfig(face_refiner=face_refiner, side_by_side=side_by_side, device=device,
                            max_seconds=seconds)
    if len(sources) == 1 and output is not None and output.suffix:
        outputs_dir, names = output.parent, {sources[0]: output}
    else:
        outputs_dir, names = output or Path.cwd(), {}
    with progress_bar() as progress:
        results = transfer_many(project, sources, outputs_dir, config, checkpoint, progress,
                                output_names=names)
    for result in results:
        log(f"{result.source.name}: {result.frames} frames at {result.fps:.2f} fps, "
            f"{result.frames_per_second:.1f} frames/s -> {result.output}")
    emit({"outputs": [{"source": str(r.source), "output": str(r.output), "frames": r.frames,
                       "fps": r.fps, "seconds": round(r.seconds, 2)} for r in results]},
         "\n".join(str(r.output) for r in results))


@command("demo")
def demo(
    workdir: Annotated[
        Path, typer.Option("--workdir", help="Where the demo project and videos go.")
    ] = Path("motionxfer-demo"),
    samples: Annotated[
        Optional[Path], typer.Option("--samples", help="The samples folder (default: the repo's).")
    ] = None,
    train_steps: Annotated[
        int, typer.Option("--train-steps", help="Extra training steps on top of the bundled "
                          "sample model (0: use it as it is).")
    ] = 0,
    from_scratch: Annotated[
        bool, typer.Option("--from-scratch", help="Train the tiny preset from nothing "
                           "(--train-steps of them) instead of starting from the sample model.")
    ] = False,
) -> None:
    """The whole job on the bundled samples: init, poses, model, transfer, evaluation.

    Uses samples/target.mp4 (the person), samples/source.mp4 (the dancer) and
    samples/ground_truth.mp4 (that person really doing the dancer's moves) to show, and measure,
    what motionxfer does. Writes transfer.mp4 and side_by_side.mp4 into --workdir.
    """
    from motionxfer.demo import run_demo

    with progress_bar() as progress:
        result = run_demo(workdir, samples, train_steps, from_scratch, progress, log)
    emit(result.to_dict(), "\n".join(str(path) for path in result.videos))
