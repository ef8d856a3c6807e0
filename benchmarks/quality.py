"""One table of quality: configurations of the personal model against a retrieval floor, at an
equal budget, on both protocols, against the ground truth.

    python benchmarks/quality.py --data ../shared/data --rows retrieval default composite \
        --minutes 10 --steps 100000 --targets 0 --eval-seconds 5

On the studio data (synthetic bodies; read its README): for each target, a project of its
training video (MediaPipe poses, as a user's), then for each row a model trained for the same
budget (`--minutes` of wall time and at most `--steps` generator steps, whichever ends first;
face refiner `--face-steps`), and two protocols:

- self-reconstruction: the target's held-out clip (other moves, never trained on) is driven by its
  own poses and compared with its real frames;
- cross-identity: each source's dance is transferred onto the target and compared with the
  ground truth of that target really performing it (`gt/targetI_sourceJ`).

The `retrieval` row trains nothing: for every driving frame it shows the target's training frame
whose normalized pose is nearest (the floor any learned method must clear). The `reposed` row
trains nothing either: that frame re-posed part by part to the driving pose (`texture.bank`, what
the `texture` row's generator starts from), over the background plate. Scores: SSIM, PSNR,
Mask-SSIM (with the data's person masks), LPIPS and its mean over the worst 10% of frames
(`lpips_worst_decile`) and on crops of the hands, feet and face at the ground truth's keypoints
(`lpips_hands`, `lpips_feet`, `lpips_face`), TCM, AKD and MKR of the body and AKD of the hands
and feet (MediaPipe's body points on both videos: wrist, fingers' base, ankle, heel, toe), the
share of frames read as facing the other way and the body AKD with those flips undone
(`flip_body`, `akd_body_unflipped`; docs/metrics.md), FID with
`--fid` (equal frame counts; slow on a CPU). Generated videos are compared
at the model's working size (the reference is resized to it). A row with a moving average of
the generator's weights (`ema`) is scored twice from its one run: with the average (`ema`) and
with the trained weights (`ema trained weights`, the same trajectory without the average).
Prints the command, the machine, its load, each row's budget as spent, then a markdown table;
`--json` writes every number.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from motionxfer.checkpoint import Checkpoint
from motionxfer.evaluation.evaluate import EvaluateConfig, evaluate_videos
from motionxfer.inference.frame_generator import BackendConfig
from motionxfer.inference.transfer import PersonalModel, TransferConfig, transfer
from motionxfer.io.images import resize_frame, to_images, working_size
from motionxfer.io.video import VideoWriter, probe, read_frames
from motionxfer.networks.registry import MASK_GAIN_ARCHITECTURES
from motionxfer.pipeline import (
    extract_poses,
    import_keypoints,
    init_project,
    load_poses,
    nearest_target_frames,
    normalize_source,
    source_record,
    target_frames,
)
from motionxfer.pose.sequence import PoseSequence
from motionxfer.presets import load_preset
from motionxfer.project import Project
from motionxfer.texture.bank import TextureBank
from motionxfer.training.config import TrainConfig
from motionxfer.training.losses import LossWeights
from motionxfer.training.train import compositing_plate, train_plan, training_setup
from motionxfer.training.trainer import TRAINED_GENERATOR

# Each row: the training settings it changes (TrainConfig fields). "retrieval" and "reposed"
# train nothing.
UNTRAINED = ("retrieval", "reposed")
ROWS: dict[str, dict[str, object]] = {
    "retrieval": {},
    "reposed": {},
    "default": {},  # today's defaults (compositing over the plate, no texture: docs/quality.md)
    "texture": {"texture": True},  # REMOT's texture alignment (with today's compositing)
    # rows without the texture say so (the texture was the default for a while, docs/quality.md)
    "composite": {"texture": False},  # compositing over the plate: the default before texture
    "generate": {"background": "generate", "texture": False},  # EDN's whole-frame generation
    "label_maps": {"conditioning": "label_maps", "texture": False},
    "augmentation": {"augmentation": True, "texture": False},
    "composite+label_maps": {"conditioning": "label_maps", "texture": False},
    # the episodic memory's replay of the worst frames; its warm-up shortened from the default
    # 1000 steps, which a CPU budget of minutes does not reach (about 350 steps in 6 minutes)
    "replay": {"replay": True, "replay_warmup": 100, "texture": False},
    # a local GAN per key part (hands, feet, face crops): see the lpips_* part columns
    "part_gan": {"part_gan": True, "texture": False},
    # the Gromov-Wasserstein structure of VGG features at the body joints, generated vs real
    "gw": {"gw_loss": True, "texture": False},
    "texture+attention": {"texture": True, "texture_attention": True},
    # the components of "human motion copy" on top of the texture model
    "texture+replay": {"texture": True, "replay": True, "replay_warmup": 100},
    "texture+part_gan": {"texture": True, "part_gan": True},
    "texture+gw": {"texture": True, "gw_loss": True},
    "texture+all": {"texture": True, "replay": True, "replay_warmup": 100, "part_gan": True,
                    "gw_loss": True},
    # REMOT's layout GAN: the predicted six-class parsing joins the pose input (the layout
    # stage's layout_steps come before the generator's budget; the parsing cache is made by the
    # built-in parser when missing)
    "layout": {"layout": True, "texture": False},
    "texture+layout": {"texture": True, "layout": True},
    # ... and REMOT's region generation and whole composition on that layout and texture
    "texture+layout+regions": {"texture": True, "layout": True, "regions": True},
    # windows of 4 frames generated jointly instead of the recurrence (see the warp_error column),
    # on today's defaults and on the texture model
    "sequence": {"sequence": 4, "texture": False},
    "texture+sequence": {"sequence": 4, "texture": True},
    "sequence+gw": {"sequence": 4, "gw_loss": True, "texture": False},  # the two together
    # the stick figure's torso filled with a grey that says which way the body faces: a cue for
    # the detector's flips (flip_body) that a blurred head and a top alike front and back lose
    "facing": {"facing": True, "texture": False},
    # inference from a moving average of the generator's weights (decay 0.999, at most
    # (1 + n) / (10 + n) after n steps: about the last tenth of a 2000-step run)
    "ema": {"ema": 0.999, "texture": False},
    # today's defaults with other loss weights (LOSSES): sharper texture from the GAN terms?
    "adversarial4": {},
    "perceptual3": {},
    "perceptual30": {},
    "perceptual100": {},
    "mask10": {},
}
# The rows that change the preset's [losses] (LossWeights fields) as well
LOSSES: dict[str, dict[str, float]] = {
    "adversarial4": {"adversarial": 4.0, "temporal_adversarial": 4.0},  # the GAN terms x4
    "perceptual3": {"perceptual": 3.0},  # the VGG perceptual loss's weight from 10 to 3
    # ... and from 10 to 30: at 3 FID rose by 11-16 on target0 (seventh session), so more weight
    # on the VGG features might sharpen the texture that FID sees
    "perceptual30": {"perceptual": 30.0},
    # ... and to 100: from 3 to 10 to 30 FID fell each time (seventh and eighth sessions)
    "perceptual100": {"perceptual": 100.0},
    # the painted mask's L1 against the person's pixels from 1 to 10: L1's optimum for a 0/1
    # target is 0 or 1, so a heavier term might paint the person less transparent (measured in
    # docs/quality.md, seventh session: FID lower on target0, not on target1)
    "mask10": {"mask": 10.0},
}
METRICS = ("ssim", "psnr", "mask_ssim", "lpips", "lpips_worst_decile", "lpips_hands",
           "lpips_feet", "lpips_face", "fid", "tcm", "warp_error", "akd_body", "mkr_body",
           "akd_body_unflipped", "flip_body", "akd_hands", "akd_feet")


def mask_video(masks_npz: Path, output: Path, fps: float) -> Path:
    """The data's person masks as a white-on-black video (what evaluate's `mask` reads)."""
    if output.exists():
        return output
    with np.load(masks_npz) as data:
        masks = data["mask"]  # (T, H, W) bool
    height, width = masks.shape[1:]
    with VideoWriter(output, fps=fps, width=width, height=height, crf=0) as writer:
        for mask in masks:
            writer.write(np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=2))
    return output


def driving_poses(project: Project, driver: Path, seconds: float) -> PoseSequence:
    """The first `seconds` of a driving video's poses, normalized onto the target."""
    normalized, _ = normalize_source(project, source_record(project, driver))
    return normalized.slice(0, min(normalized.num_frames, round(seconds * normalized.fps)))


def retrieval_video(project: Project, driver: Path, output: Path, size: tuple[int, int],
                    seconds: float) -> int:
    """For each driving frame, the target training frame of nearest normalized pose."""
    normalized = driving_poses(project, driver, seconds)
    target = project.target
    nearest = nearest_target_frames(normalized, load_poses(project, target))
    wanted = {int(index) for index in nearest}
    frames = {frame.index: resize_frame(frame.rgb, size)
              for frame in read_frames(target.info.path, target.start, target.end)
              if frame.index in wanted}
    with VideoWriter(output, fps=normalized.fps, width=size[0], height=size[1]) as writer:
        for index in nearest:
            writer.write(frames[int(index)])
    return normalized.num_frames


def reposed_video(project: Project, driver: Path, output: Path, size: tuple[int, int],
                  seconds: float) -> int:
    """For each driving frame, the bank's reference frame re-posed to it, over the plate."""
    driving = driving_poses(project, driver, seconds)
    poses = load_poses(project, project.target)
    frames = target_frames(project, size)
    plate = compositing_plate(frames, poses, project.target.info.path.name)
    plate_image = None if plate is None else to_images(plate)[0]
    bank = TextureBank(frames.frames, poses, plate_image)
    references = bank.references(driving)
    background = (plate_image if plate_image is not None
                  else np.zeros((size[1], size[0], 3), np.uint8)).astype(np.float32)
    with VideoWriter(output, fps=driving.fps, width=size[0], height=size[1]) as writer:
        for index in range(driving.num_frames):
            reposed = bank.encode(driving.keypoints[index], driving.image_size,
                                  int(references[index]))
            alpha = reposed[..., 3:].astype(np.float32) / 255.0
            writer.write(np.clip(reposed[..., :3] + (1 - alpha) * background + 0.5, 0,
                                 255).astype(np.uint8))
    return driving.num_frames


def with_mask_gain(checkpoint: Checkpoint, gain: float) -> Checkpoint:
    """The checkpoint (in memory; its file stays) as if trained with [train] mask_gain = gain:
    the composite's mask contrast is an inference setting, so one model scores every gain."""
    train = dataclasses.replace(checkpoint.train, mask_gain=gain)
    return dataclasses.replace(checkpoint, preset=dataclasses.replace(checkpoint.preset,
                                                                      train=train))


def trained_weights(checkpoint: Checkpoint) -> Checkpoint:
    """A checkpoint with a moving average of the generator (`ema`) as the trained weights
    alone: the same run without the average, but for its face refiner, which learnt on the
    average's frames."""
    models = {**checkpoint.models, "generator": checkpoint.models[TRAINED_GENERATOR]}
    return dataclasses.replace(checkpoint, models=models)


def reusable(row_dir: Path, steps: int, row: str, overrides: dict[str, object]) -> bool:
    """A row trained before (`--reuse`) for the steps asked, with the row's method: every
    choice that some row (or `--seed`) sets is as `overrides` sets it (or at today's default),
    so that a model trained under an older meaning of the row's name is trained again."""
    checkpoint = row_dir / "checkpoints" / "model.pt"
    if not checkpoint.is_file():
        return False
    loaded = Checkpoint.load(checkpoint)
    choices = {"seed", *(name for settings in ROWS.values() for name in settings)}
    weights = {name for settings in LOSSES.values() for name in settings}
    defaults, default_weights = TrainConfig(), LossWeights()
    return loaded.generator_step == steps and all(
        getattr(loaded.train, name) == overrides.get(name, getattr(defaults, name))
        for name in choices) and all(
        getattr(loaded.preset.losses, name) == LOSSES.get(row, {}).get(
            name, getattr(default_weights, name)) for name in weights)


def logged_budget(project: Project) -> dict[str, float | int]:
    """The budget a row was trained with, from its training log: the generator stage's wall
    time (first to last logged step) and steps."""
    records = [json.loads(line) for line in project.paths.train_log.read_text().splitlines()]
    stage = [r for r in records if r.get("stage") == "generator" and "time" in r]
    face = [r["step"] for r in records if r.get("stage") == "face_refiner" and "step" in r]
    return {"minutes": round((stage[-1]["time"] - stage[0]["time"]) / 60, 1),
            "steps": max(r["step"] for r in stage), "face_steps": max(face, default=0),
            "reused": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--rows", nargs="+", default=["retrieval", "default"],
                        choices=sorted(ROWS))
    parser.add_argument("--targets", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--sources", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per row")
    parser.add_argument("--steps", type=int, default=100_000, help="generator steps at most")
    parser.add_argument("--face-steps", type=int, default=0,
                        help="face refiner steps after the generator (0: none)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the preset's")
    parser.add_argument("--layout-steps", type=int, default=None,
                        help="steps of the layout stage of the rows with a layout (default: "
                        "TrainConfig's), before the generator's")
    parser.add_argument("--target-seconds", type=float, default=None,
                        help="use only the first N seconds of each training video")
    parser.add_argument("--eval-seconds", type=float, default=5.0)
    parser.add_argument("--lpips", default="vgg", choices=["vgg", "alex"])
    parser.add_argument("--fid", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("quality-benchmark"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--poses", type=Path, default=None,
                        help="a folder of pose files (written by --save-poses) to import instead "
                        "of running MediaPipe (a machine without it, e.g. a GPU server)")
    parser.add_argument("--reuse", action="store_true",
                        help="score a row's model trained by an earlier run with the same "
                        "--workdir and --steps instead of training it again")
    parser.add_argument("--seed", type=int, default=None,
                        help="train every row from this random seed ([train] seed; default: "
                        "TrainConfig's): rows '<row> seed N' in folders '<row>-seedN', to "
                        "measure how far two runs of one method differ")
    parser.add_argument("--save-poses", type=Path, default=None,
                        help="write every clip's poses to this folder")
    parser.add_argument("--mask-gains", nargs="+", type=float, default=None,
                        help="score each compositing row's model at each of these mask gains "
                        "(an inference setting, [train] mask_gain: one trained model, rows "
                        "'<row> gain G'); default: the gain each checkpoint records")
    args = parser.parse_args()

    studio = args.data / "studio"
    evaluation = EvaluateConfig(fid=args.fid, face=False, lpips_backbones=(args.lpips,),
                                resize_reference=True)
    device = (torch.cuda.get_device_name() if torch.cuda.is_available()
              else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"python benchmarks/quality.py {' '.join(sys.argv[1:])}")
    print(f"machine: {device}; load before {os.getloadavg()[0]:.1f}; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; synthetic studio data\n")
    results: list[dict[str, object]] = []
    for target in args.targets:
        base = args.workdir / f"target{target}" / "poses"
        if (base / "motionxfer.json").exists():
            project = Project.open(base)
        else:
            project = init_project(base, studio / f"target{target}/train/video.mp4",
                                   end=args.target_seconds)
        clips = {"self": (studio / f"target{target}/heldout/video.mp4",
                          studio / f"target{target}/heldout")}
        for source in args.sources:
            clips[f"source{source}"] = (studio / f"source{source}/video.mp4",
                                        studio / f"gt/target{target}_source{source}")
        records = {"train": project.target,
                   **{clip: source_record(project, driver) for clip, (driver, _) in clips.items()}}
        for clip, record in records.items():  # pass 1 once, shared by every row
            name = f"target{target}_{clip}" if clip in ("train", "self") else clip
            if args.poses is not None:
                import_keypoints(project, record, args.poses / f"{name}.npz")
            else:
                extract_poses(project, record)
            if args.save_poses is not None:
                args.save_poses.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(project.paths.poses(record.video_id),
                                args.save_poses / f"{name}.npz")
        for clip, (driver, truth) in clips.items():
            normalize_source(project, source_record(project, driver))
            mask_video(truth / "masks.npz", args.workdir / f"target{target}_{clip}_mask.mp4",
                       probe(truth / "video.mp4").fps)
        preset = load_preset(args.preset)
        size = working_size((project.target.info.width, project.target.info.height),
                            preset.size, preset.generator.size_multiple)
        for row in args.rows:
            overrides = dict(ROWS[row])
            if overrides.get("layout") and args.layout_steps is not None:
                overrides["layout_steps"] = args.layout_steps
            seeded = args.seed is not None and row not in UNTRAINED
            if seeded:
                overrides["seed"] = args.seed
            label = f"{row} seed {args.seed}" if seeded else row
            row_dir = args.workdir / f"target{target}" / (f"{row}-seed{args.seed}" if seeded
                                                         else row)
            budget = {"minutes": 0.0, "steps": 0}
            if (row not in UNTRAINED and args.reuse
                    and reusable(row_dir, args.steps, row, overrides)):
                row_project = Project.open(row_dir)
                budget = logged_budget(row_project)
            elif row not in UNTRAINED:
                if row_dir.exists():
                    shutil.rmtree(row_dir)
                shutil.copytree(project.root, row_dir)
                row_project = Project.open(row_dir)
                plan = training_setup(row_project, args.preset, False, steps=args.steps,
                                      max_minutes=args.minutes, batch_size=args.batch_size,
                                      device=args.device, face_refiner=args.face_steps > 0,
                                      face_refiner_steps=args.face_steps or None)
                losses = dataclasses.replace(plan.preset.losses, **LOSSES.get(row, {}))
                plan = dataclasses.replace(
                    plan, config=dataclasses.replace(plan.config, **overrides),
                    preset=dataclasses.replace(plan.preset, losses=losses))
                started = time.perf_counter()
                trained = train_plan(row_project, plan)
                budget = {"minutes": round((time.perf_counter() - started) / 60, 1),
                          "steps": trained.generator_steps,
                          "face_steps": trained.face_refiner_steps}
            variants: dict[str, Checkpoint | None] = {label: None}  # label -> checkpoint
            if row not in UNTRAINED:
                checkpoint = Checkpoint.load(row_project.paths.checkpoint,
                                             row_project.target.info.sha256)
                variants = {label: checkpoint}
                if args.mask_gains and checkpoint.architecture in MASK_GAIN_ARCHITECTURES:
                    variants = {f"{label} gain {gain:g}": with_mask_gain(checkpoint, gain)
                                for gain in args.mask_gains}
                if TRAINED_GENERATOR in checkpoint.models:  # the average's own comparison
                    variants.update({f"{name} trained weights": trained_weights(variant)
                                     for name, variant in variants.items()})
            else:
                row_dir.mkdir(parents=True, exist_ok=True)
            print(f"target{target} {label}: trained {budget}", flush=True)
            for variant, checkpoint in variants.items():
                model = (None if checkpoint is None
                         else PersonalModel(checkpoint, args.device))
                for clip, (driver, truth) in clips.items():
                    output = row_dir / f"{clip}{variant[len(label):].replace(' ', '_')}.mp4"
                    if row == "retrieval":
                        retrieval_video(project, driver, output, size, args.eval_seconds)
                    elif row == "reposed":
                        reposed_video(project, driver, output, size, args.eval_seconds)
                    else:
                        transfer(row_project, driver, output,  # at the working size, as others
                                 TransferConfig(BackendConfig(device=args.device), size=size,
                                                max_seconds=args.eval_seconds), model=model)
                    mask = args.workdir / f"target{target}_{clip}_mask.mp4"
                    summary = evaluate_videos(output, truth / "video.mp4", evaluation,
                                              mask=mask).summary()
                    scores = {name: summary.get(name.replace("lpips", f"lpips_{args.lpips}", 1)
                                                if name.startswith("lpips") else name)
                              for name in METRICS}
                    results.append({"target": target, "row": variant, "clip": clip, **budget,
                                    **scores})
                    print(f"  {variant} {clip}: " + ", ".join(
                        f"{k} {v:.3f}" for k, v in scores.items() if isinstance(v, float)),
                        flush=True)

    print(f"\nload after {os.getloadavg()[0]:.1f}\n")
    header = ["target", "protocol", "row", "minutes", "steps", *METRICS]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for entry in results:
        protocol = "self" if entry["clip"] == "self" else f"cross {entry['clip']}"
        cells = [f"target{entry['target']}", protocol, str(entry["row"]),
                 str(entry["minutes"]), str(entry["steps"])]
        cells += [f"{entry[name]:.3f}" if isinstance(entry[name], float) else "-"
                  for name in METRICS]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
