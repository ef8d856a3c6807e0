"""train-target: train the project's personal model (generator, then face refiner)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from motionxfer.cli.app import command, emit, log, progress_bar, state
from motionxfer.cli.options import ConditioningOpt


@command("train-target")
def train_target(
    project_dir: Annotated[
        Path, typer.Argument(help="The project folder, with the target's poses extracted.")
    ],
    preset: Annotated[
        str | None,
        typer.Option("--preset", help="Model preset: tiny, 256, 512 (default) or 1024. "
                     "Default: [train] preset of config.toml, else 512."),
    ] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", min=0, help="Generator training steps.")
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1,
                     help="Frame pairs per step (per process under torchrun)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from the project's checkpoint, exactly.")
    ] = False,
    device: Annotated[
        str | None, typer.Option("--device", help="auto (CUDA when present), cpu or cuda.")
    ] = None,
    amp: Annotated[
        bool | None, typer.Option("--amp/--no-amp", help="Mixed precision on CUDA.")
    ] = None,
    face_refiner: Annotated[
        bool | None,
        typer.Option("--face-refiner/--no-face-refiner",
                     help="Train the face refiner after the generator."),
    ] = None,
    perceptual: Annotated[
        bool | None,
        typer.Option("--perceptual/--no-perceptual",
                     help="VGG perceptual loss (needs: motionxfer models fetch vgg16). "
                     "--no-perceptual trains without it, with a warning."),
    ] = None,
    conditioning: ConditioningOpt = None,
    facing: Annotated[
        bool | None,
        typer.Option("--facing/--no-facing",
                     help="Fill the stick figure's torso with a grey that says which way the "
                     "body faces (light: the chest toward the camera, dark: the back), a cue "
                     "that a small or blurred head does not give (stick_figure conditioning; "
                     "docs/training.md). Default: [train] facing."),
    ] = None,
    background: Annotated[
        str | None,
        typer.Option("--background", help="generate: the generator paints the whole frame; "
                     "composite: it paints the person and a mask over the target's background "
                     "plate (still camera only; a moving one falls back to generate). Default: "
                     "[train] background of config.toml, else composite."),
    ] = None,
    augmentation: Annotated[
        bool | None,
        typer.Option("--augmentation/--no-augmentation",
                     help="Small random zoom, shift and colour changes of the training pairs."),
    ] = None,
    texture: Annotated[
        bool | None,
        typer.Option("--texture/--no-texture",
                     help="Give the generator the target's own frame nearest in pose, re-posed "
                     "part by part to the driving pose, and let it blend that real texture into "
                     "what it paints (REMOT's texture alignment; transfer then reads the "
                     "target's frames from the project). Default: [train] texture."),
    ] = None,
    texture_attention: Annotated[
        bool | None,
        typer.Option("--texture-attention/--no-texture-attention",
                     help="With --texture: the generator's features also attend over the "
                     "texture's by similarity at its bottleneck (REMOT's texture alignment "
                     "module), to take what a part needs from where the warp put it."),
    ] = None,
    layout: Annotated[
        bool | None,
        typer.Option("--layout/--no-layout",
                     help="REMOT's layout GAN: first train a small network to predict the "
                     "target's six-class parsing map (background, head, top, bottom, shoes, "
                     "skin) from the pose, against the project's parsing cache (made now by "
                     "the built-in parser when there is none, which needs a still camera; or "
                     "import an external parser's maps first with import-parsing), then give "
                     "the generator that predicted layout as six more input channels. Human "
                     "bodies only; one process only; transfer needs the torch backend. Steps: "
                     "--layout-steps. Default: [train] layout."),
    ] = None,
    regions: Annotated[
        bool | None,
        typer.Option("--regions/--no-regions",
                     help="REMOT's region generation and whole composition (needs --layout and "
                     "--texture): a small network shared by the five body regions (head, top, "
                     "bottom, shoes, skin) paints each one from its predicted layout mask and "
                     "the re-posed texture inside it, each supervised on its own pixels (weight "
                     "region in the losses table); the generator then refines the coarse "
                     "person they make into the whole frame over the background plate. It "
                     "starts as the plain texture generator. Transfer needs the torch backend "
                     "(as the layout does). Default: [train] regions."),
    ] = None,
    layout_steps: Annotated[
        int | None,
        typer.Option("--layout-steps", min=0,
                     help="Steps of the layout stage (with --layout). Default: [train] "
                     "layout_steps (2000)."),
    ] = None,
    replay: Annotated[
        bool | None,
        typer.Option("--replay/--no-replay",
                     help="Episodic memory (Do as I Do): remember each training frame's error "
                     "and fill about a quarter of every generator batch with the frames it "
                     "renders worst, after a warm-up. Frames are then drawn step by step, not "
                     "ahead. One process only. Share, pool and warm-up: replay_share, "
                     "replay_pool, replay_warmup in [train] of config.toml."),
    ] = None,
    part_gan: Annotated[
        bool | None,
        typer.Option("--part-gan/--no-part-gan",
                     help="A local GAN per key part (Do as I Do): crops of the hands, feet and "
                     "face of each generated frame (boxes from the keypoints, smoothed over "
                     "time) are judged by a patch discriminator per part, given the pose crop "
                     "(the face also its landmarks), so the generator sharpens those small "
                     "parts. A layout without them (animals) trains without. One process only. "
                     "Weights: part_adversarial, part_feature_matching in the losses table of "
                     "the preset file (models/preset_*.toml). Default: [train] part_gan."),
    ] = None,
    gw_loss: Annotated[
        bool | None,
        typer.Option("--gw-loss/--no-gw-loss",
                     help="Gromov-Wasserstein structure loss (Do as I Do): the generated frame's "
                     "VGG features at the body joints must relate to each other as the real "
                     "frame's do (the perceptual loss's features: needs --perceptual). Weight: "
                     "gw in the losses table of the preset file. Default: [train] gw_loss."),
    ] = None,
    sequence: Annotated[
        int | None,
        typer.Option("--sequence", min=0,
                     help="0: frame by frame, each frame made from the one generated before it "
                     "(Everybody Dance Now's recurrence). N >= 2: windows of N consecutive "
                     "frames generated jointly, mixed in time at the bottleneck, no feedback of "
                     "the generator's own frames; transfer makes a video in windows overlapping "
                     "by half, cross-faded. Composites over the background plate and blends in "
                     "the re-posed texture as usual; not with --texture-attention, --regions, "
                     "--replay, --part-gan, the 1024 preset or the onnx backend (--gw-loss: "
                     "on every frame of each window). The "
                     "checkpoint records it. Default: [train] sequence, else 0."),
    ] = None,
    ema: Annotated[
        float | None,
        typer.Option("--ema", min=0.0, max=0.9999,
                     help="Keep a moving average of the generator's weights over the steps "
                     "(this decay per step, e.g. 0.999; at most (1 + n) / (10 + n) after n "
                     "steps) and use it for transfer and the face refiner; the checkpoint "
                     "keeps the trained weights too, for --resume. 0: off. Default: [train] "
                     "ema."),
    ] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option("--max-minutes", min=0, help="Stop the generator stage after this many "
                     "minutes (saved and validated; --resume goes on later). 0: no limit."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed.")] = None,
) -> None:
    """Train the target's generator (Everybody Dance Now) and its face refiner.

    Needs the target's poses (motionxfer extract-poses PROJECT). Writes checkpoints/model.pt
    every few hundred steps and on Ctrl-C; --resume continues where it stopped. Losses go to
    logs/train.jsonl, sample grids (stick figure | generated | real) to logs/samples/.
    Settings: the [train] table of config.toml; see docs/training.md.

    On several GPUs: torchrun --nproc-per-node N -m motionxfer train-target PROJECT (one process
    per GPU; only the first one prints, writes files and holds the project's lock).
    """
    from motionxfer.project import Project
    from motionxfer.training.distributed import processes_from_environment
    from motionxfer.training.train import train_plan, training_setup


    processes = processes_from_environment()
    if not processes.is_main:
        state.quiet = True  # one process reports: the others' lines would repeat its own
    project = Project.open(project_dir)
    plan = training_setup(
        project, preset, resume, steps=steps, batch_size=batch_size, device=device, amp=amp,
        face_refiner=face_refiner, perceptual=perceptual, seed=seed, max_minutes=max_minutes,
        conditioning=conditioning, facing=facing, background=background,
        augmentation=augmentation,
        texture=texture, texture_attention=texture_attention, layout=layout,
        layout_steps=layout_steps, regions=regions,
        replay=replay, part_gan=part_gan, gw_loss=gw_loss, sequence=sequence,
        ema=ema,
    )
    chosen, config = plan.preset, plan.config
    batch = f"batch {config.batch_size}"
    if config.replay:
        batch += (f", replaying the worst frames ({config.replay_share:.0%} of each batch "
                  f"from step {config.replay_warmup})")
    if config.sequence:
        batch += f", each a window of {config.sequence} frames"
    if config.part_gan:
        batch += ", with part GANs (hands, feet, face)"
    if config.ema:
        batch += f", transfer from the weights' moving average (decay {config.ema})"
    if processes.distributed:
        batch += (f" per process x {processes.world_size} processes = "
                  f"{config.batch_size * processes.world_size}")
    log(f"{'resuming' if resume else 'training'} preset {chosen.name} "
        f"({chosen.description}): "
        + (f"{config.layout_steps} layout steps, then " if config.layout else "")
        + f"{config.steps} generator steps, {batch}"
        + (f", then {config.face_refiner_steps} face refiner steps"
           if config.face_refiner and config.face_refiner_steps else ""))
    try:
        with progress_bar() as progress:
            result = train_plan(project, plan, progress)
    except KeyboardInterrupt as interrupt:
        log(f"interrupted; the checkpoint is {project.paths.checkpoint}. Continue with: "
            f"motionxfer train-target {project.root} --resume")
        # 130 after Ctrl-C, 143 after SIGTERM: what a shell or scheduler expects of the signal
        raise typer.Exit(128 + getattr(interrupt, "signal_number", 2)) from None
    scores = result.validation
    where = result.device if result.processes == 1 else f"{result.processes} processes"
    log(f"done: {result.steps_this_run} steps in {result.seconds:.0f} s on {where}"
        + (f"; held-out SSIM {scores.ssim:.3f}, PSNR {scores.psnr:.2f} dB" if scores else ""))
    if processes.is_main:
        emit(result.to_dict(), str(result.checkpoint))
