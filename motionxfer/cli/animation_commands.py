"""animate, train-animator, export-animator: the First Order Motion Model (one image, no
personal training)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from motionxfer.cli.app import command, emit, log, progress_bar
from motionxfer.cli.options import SecondsOpt, ThreadsOpt

AnimatorModelOpt = Annotated[
    Path | None, typer.Option("--model", "-m", help="Animator model (train-animator). Default: "
                              "the bundled sample, trained on synthetic videos.")
]
FitOpt = Annotated[
    str, typer.Option("--fit", help="How a non-square picture becomes the model's square frame: "
                      "auto (crop when nearly square, else pad), crop or pad.")
]


def _threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


@command("train-animator")
def train_animator(
    videos: Annotated[Path, typer.Argument(help="A folder of training videos (searched "
                                           "recursively): many people, varied moves.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The animator checkpoint to "
                                         "write (and, with --resume, to continue).")],
    preset: Annotated[str, typer.Option("--preset", help="tiny (64 px, CPU) or 256 (the "
                                        "paper's, GPU).")] = "tiny",
    steps: Annotated[int | None, typer.Option("--steps", min=0, help="Training steps "
                                              "(default 20000).")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", min=1,
                                                   help="Frame pairs per step (default 2).")] = None,
    max_minutes: Annotated[float | None, typer.Option(
        "--max-minutes", min=0, help="Stop after this many minutes of training (saved; "
        "--resume goes on later). 0: no limit.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the checkpoint at -o "
                                         "exactly.")] = False,
    discriminator: Annotated[bool, typer.Option(
        "--discriminator/--no-discriminator", help="Add FOMM's optional LSGAN discriminator "
        "with feature matching.")] = False,
    occlusion: Annotated[bool, typer.Option(
        "--occlusion/--no-occlusion", help="Predict an occlusion map (off: the paper's "
        "ablation).")] = True,
    jacobian: Annotated[bool, typer.Option(
        "--jacobian/--no-jacobian", help="Estimate local affine motion per keypoint (off: the "
        "paper's ablation).")] = True,
    checkpoint_every: Annotated[int | None, typer.Option("--checkpoint-every", min=1)] = None,
    log_every: Annotated[int | None, typer.Option("--log-every", min=1)] = None,
    device: Annotated[str | None, typer.Option("--device", help="cpu (default), cuda or "
                                               "auto.")] = None,
    fit: FitOpt = "auto",
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
    threads: ThreadsOpt = None,
) -> None:
    """Train an animator (First Order Motion Model) on any folder of videos.

    Pairs of frames of the same video reconstruct each other; no labels, no poses. Writes the
    checkpoint every few hundred steps, at the end, when --max-minutes runs out and on Ctrl-C;
    --resume continues it exactly. Losses go to <output>.train.jsonl. See docs/animation.md.

      motionxfer train-animator videos/ --preset tiny -o animator.pt --max-minutes 20
    """
    from motionxfer.animation.train import AnimatorTrainConfig
    from motionxfer.animation.train import train_animator as train

    _threads(threads)
    settings = {"steps": steps, "batch_size": batch_size, "max_minutes": max_minutes,
                "checkpoint_every": checkpoint_every, "log_every": log_every,
                "device": device, "seed": seed}
    given = {key: value for key, value in settings.items() if value is not None}
    config = None
    if not resume:
        config = AnimatorTrainConfig(**given, discriminator=discriminator, fit=fit)
        given = {}
    log(f"{'resuming' if resume else 'training'} animator {output} on {videos}"
        + ("" if resume else f" (preset {preset}, {config.steps} steps, batch "
           f"{config.batch_size})"))
    with progress_bar() as progress:
        result = train(videos, output, config, preset, resume=resume, use_occlusion=occlusion,
                       estimate_jacobian=jacobian, progress=progress, **given)
    why = {"steps": "all steps done", "time": "time budget reached",
           "interrupt": "interrupted"}[result.stopped]
    log(f"{why}: {result.steps_this_run} steps in {result.seconds:.0f} s "
        f"({result.steps_per_second:.2f} steps/s), step {result.step}; "
        f"{result.frames} frames of {result.videos} videos")
    if result.stopped != "steps":
        log(f"continue with: motionxfer train-animator {videos} -o {output} --resume")
    emit(result.to_dict(), str(result.checkpoint))
    if result.stopped == "interrupt":
        raise typer.Exit(130)


def _outputs(stem: str, drivings: list[Path], output: Path | None) -> list[Path]:
    """-o FILE for one driving video, -o FOLDER (or the current folder) for several."""
    if len(drivings) == 1 and output is not None and output.suffix:
        return [output]
    folder = output or Path.cwd()
    return [folder / f"{stem}_{driving.stem}.mp4" for driving in drivings]


@command("animate")
def animate(
    image: Annotated[Path, typer.Argument(help="The picture to animate (PNG, JPEG; grayscale "
                                          "and RGBA are converted).")],
    drivings: Annotated[list[Path], typer.Argument(help="Driving video(s): whose motion the "
                                                   "picture copies.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Output video for one driving video; a folder for several. "
        "Default: <image>_<driving>.mp4 in the current folder.")] = None,
    model: AnimatorModelOpt = None,
    absolute: Annotated[bool, typer.Option(
        "--absolute", help="Absolute motion: the driving keypoints as they are (the driving "
        "person's shape too). Default: relative to the first driving frame.")] = False,
    adapt_scale: Annotated[bool, typer.Option(
        "--adapt-scale/--no-adapt-scale", help="Relative motion: scale it by the ratio of the "
        "two bodies' sizes.")] = True,
    fit: FitOpt = "auto",
    person_check: Annotated[bool, typer.Option(
        "--person-check/--no-person-check", help="Refuse pictures and videos with nobody in "
        "them (docs/animation.md says how it decides).")] = True,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1,
                                            help="Frames per network call.")] = 8,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")] = "cpu",
    seconds: SecondsOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Animate one picture with the motion of driving videos (First Order Motion Model).

    No personal training: one animator model, trained on many videos, moves any picture like
    the ones it was trained on. The bundled model knows only the project's synthetic people;
    real photographs need a model trained on real footage (motionxfer train-animator).

      motionxfer animate photo.jpg dancer.mp4 -o photo_dancing.mp4

      motionxfer animate photo.jpg a.mp4 b.mp4 -o out/      (one model load)
    """
    from motionxfer.animation.animate import AnimateConfig, animate_image

    _threads(threads)
    config = AnimateConfig(relative=not absolute, adapt_movement_scale=adapt_scale, fit=fit,
                           batch_size=batch_size, device=device, max_seconds=seconds,
                           check_person=person_check)
    outputs = _outputs(image.stem, drivings, output)
    with progress_bar() as progress:
        results = animate_image(image, drivings, outputs, config, model, progress)
    log(f"{image.name}: {results[0].source_fitting}")
    for result in results:
        log(f"{result.driving.name}: {result.frames} frames at {result.fps:.2f} fps, "
            f"{result.frames_per_second:.1f} frames/s, "
            f"{'audio kept' if result.audio else 'no audio'} -> {result.output}")
    emit({"outputs": [result.to_dict() for result in results]},
         "\n".join(str(result.output) for result in results))


@command("export-animator")
def export_animator(
    output: Annotated[Path, typer.Argument(help="Folder for the three ONNX files.")],
    model: AnimatorModelOpt = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (GridSample needs 16+).")] = 17,
    check: Annotated[bool, typer.Option("--check/--no-check", help="Compare ONNX Runtime's "
                                        "outputs with PyTorch's.")] = True,
) -> None:
    """Export the animator's keypoint detector, dense motion network and generator to ONNX,
    each checked against PyTorch on random inputs."""
    from motionxfer.animation.animate import load_animator
    from motionxfer.animation.export import export_animator_onnx

    result = export_animator_onnx(load_animator(model), output, opset=opset, check=check)
    for network in result.networks:
        log(f"{network.name}: {network.path} (max |onnx - torch| = "
            f"{network.max_difference:.2e})" if network.max_difference is not None
            else f"{network.name}: {network.path}")
    emit(result.to_dict(), "\n".join(str(network.path) for network in result.networks))


def transfer_by_animation(method: str, project_dir: Path, drivings: list[Path],
                          output: Path | None, model: Path | None, device: str,
                          seconds: float | None, threads: int | None) -> None:
    """`transfer PROJECT SOURCES --method animate`: the target's first frame animated."""
    from motionxfer.animation.animate import AnimateConfig
    from motionxfer.errors import BadInput
    from motionxfer.inference.animate import animate_project
    from motionxfer.project import Project

    if method != "animate":
        raise BadInput(f"no transfer method {method!r}",
                       hint="the methods are: personal (the default), animate")
    _threads(threads)
    project = Project.open(project_dir)
    if len(drivings) == 1 and output is not None and output.suffix:
        outputs_dir, names = output.parent, {drivings[0]: output}
    else:
        outputs_dir, names = output or Path.cwd(), {}
    config = AnimateConfig(device=device, max_seconds=seconds)
    with progress_bar() as progress:
        results = animate_project(project, drivings, outputs_dir, config, model, progress,
                                  output_names=names)
    log(f"the target's first frame: {results[0].source_fitting}")
    for result in results:
        log(f"{result.driving.name}: {result.frames} frames at {result.fps:.2f} fps, "
            f"{result.frames_per_second:.1f} frames/s (animate) -> {result.output}")
    emit({"outputs": [{"source": str(r.driving), "output": str(r.output), "frames": r.frames,
                       "fps": r.fps, "seconds": round(r.seconds, 2), "backend": "animate"}
                      for r in results]},
         "\n".join(str(result.output) for result in results))
