"""Train a preset on a target of the synthetic studio data, then measure transfer quality.

    python benchmarks/train_quality.py --data ../shared/data --preset tiny --minutes 30 \
        --target-seconds 60 --workdir /tmp/quality

Steps, each timed:
  1. a project on `studio/target<I>/train/video.mp4` (its first --target-seconds), poses extracted;
  2. train-target with the preset for --minutes of the generator stage (at most --steps steps),
     then the face refiner (skipped with --steps 0 when the project already has a model:
     re-measure a trained project);
  3. transfer of the held-out clip `target<I>/heldout` (self-reconstruction: compared with the
     real held-out frames) and of `source<J>` (cross-identity: compared with the ground-truth
     render `gt/target<I>_source<J>`, the target really performing the source's motion);
  4. SSIM, PSNR and LPIPS (AlexNet) of each against its reference, reference frames resized to
     the model's working size.

The data is rendered (synthetic bodies, exact ground truth): say so when quoting these figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--target", type=int, default=0)
    parser.add_argument("--source", type=int, default=0)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--steps", type=int, default=100_000,
                        help="at most this many generator steps (0: use the project's model)")
    parser.add_argument("--minutes", type=float, default=30.0,
                        help="time budget of the generator stage (0: run all --steps)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--target-seconds", type=float, default=60.0,
                        help="use only the first N seconds of the target's training video")
    parser.add_argument("--eval-seconds", type=float, default=10.0,
                        help="transfer and compare the first N seconds of each clip")
    parser.add_argument("--workdir", type=Path, default=Path("quality-benchmark"))
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from motionxfer.evaluation.evaluate import EvaluateConfig, evaluate_videos
    from motionxfer.inference.frame_generator import BackendConfig
    from motionxfer.inference.transfer import PersonalModel, TransferConfig, transfer
    from motionxfer.pipeline import extract_poses, init_project
    from motionxfer.project import Project
    from motionxfer.training.train import train_plan, training_setup

    studio = args.data / "studio"
    times: dict[str, float] = {}
    started = time.perf_counter()
    project_dir = args.workdir / "project"
    if (project_dir / "motionxfer.json").exists():
        project = Project.open(project_dir)
    else:
        project = init_project(project_dir, studio / f"target{args.target}/train/video.mp4",
                               end=args.target_seconds)
    extract_poses(project, project.target)
    times["poses"] = time.perf_counter() - started

    if args.steps > 0:
        clock = time.perf_counter()
        train_plan(project, training_setup(project, args.preset, False, steps=args.steps,
                                          batch_size=args.batch_size, device=args.device,
                                          max_minutes=args.minutes))
        times["training"] = time.perf_counter() - clock

    model = PersonalModel(project.paths.checkpoint, args.device,
                          project_id=project.target.info.sha256)
    clips = {
        "self_reconstruction": (studio / f"target{args.target}/heldout/video.mp4",
                                studio / f"target{args.target}/heldout/video.mp4"),
        "cross_identity": (studio / f"source{args.source}/video.mp4",
                           studio / f"gt/target{args.target}_source{args.source}/video.mp4"),
    }
    evaluation = EvaluateConfig(masked=False, fid=False, temporal=True, pose=False, face=False,
                                lpips_backbones=("alex",), resize_reference=True)
    results: dict[str, object] = {}
    for name, (driver, reference) in clips.items():
        clock = time.perf_counter()
        output = args.workdir / f"{name}.mp4"
        transferred = transfer(project, driver, output,
                               TransferConfig(BackendConfig(device=args.device),
                                              max_seconds=args.eval_seconds),
                               model=model)
        times[f"transfer_{name}"] = time.perf_counter() - clock
        summary = evaluate_videos(output, reference, evaluation).summary()
        results[name] = {key: summary.get(key) for key in ("ssim", "psnr", "lpips_alex", "tcm")}
        results[name]["frames"] = transferred.frames  # type: ignore[index]
    report = {
        "preset": args.preset, "steps": args.steps, "minutes": args.minutes,
        "target": args.target,
        "source": args.source, "target_seconds": args.target_seconds,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available()
        else platform.processor() or platform.machine(),
        "results": results, "seconds": {k: round(v, 1) for k, v in times.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
