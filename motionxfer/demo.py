"""The whole job on the bundled samples, as a user would run it, with the result measured.

samples/ holds a target person (60 s), a source dancer (10 s, with audio), the ground truth of
the target performing the source's moves, and `model.pt`: a personal model of the target trained
by `motionxfer train-target --preset tiny` (the recipe is in samples/README.md).

It writes transfer.mp4 at the target video's size (256 px, the model works at 128 px) and
side_by_side.mp4 (source | stick figure | generated | ground truth); the scores are those of a
render at the model's own size (`logs/demo_working_size.mp4` in the demo's project).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from motionxfer.errors import BadInput
from motionxfer.evaluation.evaluate import EvaluateConfig, evaluate_videos
from motionxfer.inference.transfer import TransferConfig, open_model, transfer
from motionxfer.pipeline import extract_poses, init_project
from motionxfer.progress import ProgressCallback
from motionxfer.project import Project
from motionxfer.training.train import train_plan, training_setup

DEMO_METRICS = ("ssim", "psnr", "lpips_alex")


@dataclass(frozen=True)
class DemoResult:
    project: Path
    videos: list[Path]
    scores: dict[str, float] = field(default_factory=dict)  # against the ground truth
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"project": str(self.project), "videos": [str(v) for v in self.videos],
                "scores": self.scores, "seconds": round(self.seconds, 1)}


def default_samples_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "samples"


def run_demo(
    workdir: str | os.PathLike[str], samples: str | os.PathLike[str] | None = None,
    train_steps: int = 0, progress: ProgressCallback | None = None,
    log: Callable[[str], None] = print,
) -> DemoResult:
    started = time.perf_counter()
    samples = Path(samples) if samples else default_samples_dir()
    from_scratch = train_steps > 0
    needed = ["target.mp4", "source.mp4", "ground_truth.mp4"]
    if not from_scratch:
        needed.append("model.pt")
    missing = [name for name in needed if not (samples / name).is_file()]
    if missing:
        raise BadInput(
            f"the samples folder {samples} lacks {', '.join(missing)}",
            hint="run the demo from a clone of the motionxfer repository, or pass --samples DIR",
        )
    workdir = Path(workdir)
    project_dir = workdir / "project"
    if (project_dir / "motionxfer.json").exists():
        project = Project.open(project_dir)
    else:
        log(f"1/4 project {project_dir} for the person in samples/target.mp4")
        project = init_project(project_dir, samples / "target.mp4")
    log("2/4 poses of the target (cached after the first run)")
    extract_poses(project, project.target, progress=progress)

    if from_scratch:
        log(f"3/4 training the tiny preset for {train_steps} steps (from scratch)")
        train_plan(project, training_setup(project, "tiny", False, steps=train_steps), progress)
    else:
        log("3/4 the sample model (samples/model.pt, see samples/README.md for its recipe)")
        project.paths.checkpoints.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(samples / "model.pt", project.paths.checkpoint)

    log("4/4 transfer of samples/source.mp4, then measured against samples/ground_truth.mp4")
    model = open_model(project, project.paths.checkpoint, TransferConfig())
    result_video = workdir / "transfer.mp4"  # at the target video's size
    side_by_side = workdir / "side_by_side.mp4"  # source | stick figure | result | ground truth
    transfer(project, samples / "source.mp4", result_video, progress=progress, model=model)
    transfer(project, samples / "source.mp4", side_by_side, TransferConfig(side_by_side=True),
             progress=progress, model=model, ground_truth=samples / "ground_truth.mp4")
    # Measured at the model's own size: upscaling to the target's size adds no detail (and
    # costs LPIPS), so the scores say what the model does, as the README reports them.
    measured = project.paths.logs / "demo_working_size.mp4"
    transfer(project, samples / "source.mp4", measured, TransferConfig(height=model.size[1]),
             progress=progress, model=model)
    scores = _scores(measured, samples / "ground_truth.mp4", progress, log)
    return DemoResult(project_dir, [result_video, side_by_side], scores,
                      time.perf_counter() - started)


def _scores(generated: Path, reference: Path, progress: ProgressCallback | None,
            log: Callable[[str], None]) -> dict[str, float]:
    config = EvaluateConfig(masked=False, fid=False, pose=False, face=False, parts=False,
                            lpips_backbones=("alex",), resize_reference=True)
    evaluation = evaluate_videos(generated, reference, config, progress)
    for name, reason in evaluation.skipped:
        log(f"skipped {name}: {reason}")
    summary = evaluation.summary()
    scores = {name: float(summary[name]) for name in DEMO_METRICS if name in summary}
    log("against the ground truth: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    return scores
