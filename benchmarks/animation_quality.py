"""Measure animators (First Order Motion Model) on the synthetic studio data; print the tables.

    python benchmarks/animation_quality.py --data ../shared/data --model samples/animator.pt \
        --ablation "no occlusion=/tmp/runs/no-occlusion.pt" --frames 300

Protocols (FOMM's, on clips never trained on):
  reconstruction   each held-out clip `studio/target{0,1}/heldout` re-rendered from its own first
                   frame, driven by itself with absolute keypoints (FOMM's reconstruction.py):
                   L1 (mean |generated - real| in [0, 1]), LPIPS (AlexNet), AKD and MKR of the
                   body joints (MediaPipe on both videos).
  cross-identity   the first frame of `studio/target0/heldout` animated by `studio/source0`
                   (relative motion, adapted scale, and absolute), scored against the ground
                   truth `studio/gt/target0_source0` (the target really doing that motion): SSIM,
                   PSNR, LPIPS, TCM, AKD, MKR; side by side with the nearest-neighbour retrieval
                   baseline (for each driving frame, the frame of `studio/target0/train` whose
                   normalized ground-truth pose is closest) at the same resolution.
Every video is compared at the model's size (reference frames resized to it, INTER_AREA); AKD
and MKR come from MediaPipe run on both videos at that size upscaled 4x (bicubic), in pixels of
the model's size (MediaPipe finds almost no body in 64 px frames).
Generated videos are H.264 at crf 18 (as `animate` writes them), so the figures include its loss.
The data is rendered (synthetic bodies): say so when quoting these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from motionxfer.animation.animate import AnimateConfig, animate_frames, load_animator
from motionxfer.animation.framing import fit_square
from motionxfer.evaluation.evaluate import EvaluateConfig, evaluate_videos
from motionxfer.io.video import VideoWriter, read_frames

# the 23 COCO-WholeBody body and foot points, then neck and pelvis (the data's first 25 joints)
POSE_JOINTS = list(range(25))
PELVIS, NECK = 24, 23


def read_fitted(path: Path, size: int, frames: int | None = None) -> np.ndarray:
    """(T, S, S, 3) uint8 frames of `path` fitted to the model's size."""
    out = []
    for frame in read_frames(path):
        out.append(fit_square(frame.rgb, size)[0])
        if frames and len(out) >= frames:
            break
    return np.stack(out)


def write_video(path: Path, frames: np.ndarray, fps: float = 30.0) -> Path:
    with VideoWriter(path, fps=fps, width=frames.shape[2], height=frames.shape[1]) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def animate_video(checkpoint, source_rgb: np.ndarray, driving: np.ndarray,
                  relative: bool) -> np.ndarray:
    animator = checkpoint.build_animator("cpu")
    source = torch.from_numpy(source_rgb[None]).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        keypoints = animator.detect(source)
    config = AnimateConfig(relative=relative, batch_size=16)
    return np.concatenate(list(animate_frames(animator, source, keypoints, driving, config)))


def normalized_poses(kp2d: np.ndarray) -> np.ndarray:
    """(T, 30, 2) pixels -> (T, 25 * 2): centred on the pelvis, scaled by neck-pelvis length."""
    points = kp2d[:, POSE_JOINTS].astype(np.float64)
    centre = points[:, PELVIS:PELVIS + 1]
    torso = np.linalg.norm(points[:, NECK] - points[:, PELVIS], axis=-1)[:, None, None]
    return ((points - centre) / np.maximum(torso, 1e-6)).reshape(len(points), -1)


def nearest_neighbour(data: Path, size: int, frames: int) -> np.ndarray:
    """For each source0 frame, the target0 training frame with the closest normalized pose."""
    train = np.load(data / "studio/target0/train/keypoints.npz")["kp2d"]
    driving = np.load(data / "studio/source0/keypoints.npz")["kp2d"][:frames]
    library, queries = normalized_poses(train), normalized_poses(driving)
    chosen = [int(np.argmin(((library - query) ** 2).sum(1))) for query in queries]
    wanted = set(chosen)
    kept = {}
    for frame in read_frames(data / "studio/target0/train/video.mp4"):
        if frame.index in wanted:
            kept[frame.index] = fit_square(frame.rgb, size)[0]
        if frame.index > max(wanted):
            break
    return np.stack([kept[index] for index in chosen])


def upscaled(path: Path, size: int, frames: int | None) -> Path:
    """A copy of `path` fitted to the model's size, then 4x bicubic (for MediaPipe)."""
    import cv2

    small = read_fitted(path, size, frames)
    big = np.stack([cv2.resize(frame, (4 * size, 4 * size), interpolation=cv2.INTER_CUBIC)
                    for frame in small])
    return write_video(path.with_name(f"{path.stem}_x4.mp4"), big)


def scores(generated: Path, reference: Path, frames: int | None) -> dict[str, float]:
    """Image metrics at the model's size; AKD / MKR by MediaPipe on both videos at the model's
    size upscaled 4x (MediaPipe finds almost no body in 64 px frames)."""
    config = EvaluateConfig(masked=False, fid=False, face=False, pose=False,
                            resize_reference=True, max_frames=frames or 0)
    values = {metric.name: metric.value
              for metric in evaluate_videos(generated, reference, config).metrics}
    size = _size(generated)
    pose_config = EvaluateConfig(ssim=False, psnr=False, masked=False, lpips=False, fid=False,
                                 temporal=False, face=False, pose=True, max_frames=frames or 0)
    poses = evaluate_videos(upscaled(generated, size, frames),
                            upscaled(reference, size, frames), pose_config)
    values.update({metric.name: metric.value for metric in poses.metrics})
    if values.get("akd_body") is not None:
        values["akd_body"] /= 4  # back to pixels of the model's size
    return {name: values.get(name) for name in ("ssim", "psnr", "lpips_alex", "tcm",
                                                "akd_body", "mkr_body")}


def _size(path: Path) -> int:
    for frame in read_frames(path):
        return frame.rgb.shape[0]
    raise ValueError(f"{path} has no frame")


def l1(generated: np.ndarray, reference: np.ndarray) -> float:
    count = min(len(generated), len(reference))
    return float(np.abs(generated[:count].astype(np.float64)
                        - reference[:count].astype(np.float64)).mean() / 255.0)


def reconstruction(name: str, model: Path, data: Path, work: Path, frames: int) -> dict:
    checkpoint = load_animator(model)
    size = checkpoint.config.image_size
    rows = {}
    for target in (0, 1):
        clip = data / f"studio/target{target}/heldout/video.mp4"
        real = read_fitted(clip, size, frames)
        generated = animate_video(checkpoint, real[0], real, relative=False)
        path = write_video(work / f"{name}_reconstruct{target}.mp4".replace(" ", "_"), generated)
        found = scores(path, write_video(work / f"heldout{target}.mp4", real), frames)
        rows[f"target{target}"] = {"l1": l1(generated, real), **found}
    return {key: float(np.mean([row[key] for row in rows.values() if row[key] is not None]))
            if any(row[key] is not None for row in rows.values()) else None
            for key in ("l1", "lpips_alex", "akd_body", "mkr_body")}


def cross_identity(model: Path, data: Path, work: Path, frames: int) -> dict[str, dict]:
    checkpoint = load_animator(model)
    size = checkpoint.config.image_size
    image = read_fitted(data / "studio/target0/heldout/video.mp4", size, 1)[0]
    driving = read_fitted(data / "studio/source0/video.mp4", size, frames)
    truth = data / "studio/gt/target0_source0/video.mp4"
    rows = {}
    for label, relative in (("FOMM, relative", True), ("FOMM, absolute", False)):
        generated = animate_video(checkpoint, image, driving, relative)
        path = write_video(work / f"cross_{'relative' if relative else 'absolute'}.mp4",
                           generated)
        rows[label] = scores(path, truth, frames)
    baseline = write_video(work / "cross_nearest.mp4", nearest_neighbour(data, size, frames))
    rows["nearest-neighbour retrieval"] = scores(baseline, truth, frames)
    still = write_video(work / "cross_still.mp4", np.stack([image] * len(driving)))
    rows["the source image, unmoved"] = scores(still, truth, frames)
    return rows, size


def personal_model(model: Path, data: Path, work: Path, size: int, frames: int | None) -> Path:
    """samples/model.pt (a personal model of target0, trained on the first 60 s of
    studio/target0/train = samples/target.mp4) driven by source0, downscaled to `size`."""
    from motionxfer.inference.transfer import PersonalModel, TransferConfig, transfer
    from motionxfer.pipeline import extract_poses, init_project
    from motionxfer.project import Project

    samples = model.parent
    project_dir = work / "personal_project"
    if (project_dir / "motionxfer.json").exists():
        project = Project.open(project_dir)
    else:
        project = init_project(project_dir, samples / "target.mp4")
    extract_poses(project, project.target)
    project.paths.checkpoints.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, project.paths.checkpoint)
    personal = PersonalModel(project.paths.checkpoint, project_id=project.target.info.sha256)
    rendered = work / "cross_personal_full.mp4"
    config = TransferConfig(max_seconds=frames / 30.0 if frames else None)
    transfer(project, data / "studio/source0/video.mp4", rendered, config, model=personal)
    return write_video(work / "cross_personal.mp4", read_fitted(rendered, size, frames))


def table(rows: dict[str, dict], columns: list[tuple[str, str, str]]) -> str:
    lines = ["| method | " + " | ".join(label for _, label, _ in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name, row in rows.items():
        cells = [format(row[key], spec) if row.get(key) is not None else "-"
                 for key, _, spec in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--model", type=Path, default=Path("samples/animator.pt"))
    parser.add_argument("--ablation", action="append", default=[],
                        help="NAME=CHECKPOINT, reconstruction only (repeatable)")
    parser.add_argument("--frames", type=int, default=300, help="frames per clip (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--personal", type=Path, default=None,
                        help="also the personal model samples/model.pt (extracts poses: slow)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="animation_quality_"))
    work.mkdir(parents=True, exist_ok=True)
    frames = args.frames or None
    began = time.perf_counter()
    summary = load_animator(args.model).summary()
    print(f"model {args.model}: {json.dumps(summary)}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}, torch threads {args.threads}")

    cross, size = cross_identity(args.model, args.data, work, frames)
    if args.personal:
        truth = args.data / "studio/gt/target0_source0/video.mp4"
        cross["personal model (samples/model.pt), downscaled"] = scores(
            personal_model(args.personal, args.data, work, size, frames), truth, frames)
    print(f"\n## Cross-identity: target0's first held-out frame animated by source0 "
          f"({frames} frames), against the ground truth\n")
    print(table(cross, [("ssim", "SSIM", ".3f"), ("psnr", "PSNR dB", ".2f"),
                        ("lpips_alex", "LPIPS", ".3f"), ("tcm", "TCM", ".3f"),
                        ("akd_body", "AKD px", ".2f"), ("mkr_body", "MKR", ".3f")]))

    recon = {"bundled": reconstruction("bundled", args.model, args.data, work, frames)}
    for item in args.ablation:
        name, _, path = item.partition("=")
        recon[name] = reconstruction(name, Path(path), args.data, work, frames)
    print(f"\n## Reconstruction from the first frame: target0 and target1 held-out clips "
          f"({frames} frames each), mean of the two\n")
    print(table(recon, [("l1", "L1", ".4f"), ("lpips_alex", "LPIPS", ".3f"),
                        ("akd_body", "AKD px", ".2f"), ("mkr_body", "MKR", ".3f")]))
    print(f"\n{time.perf_counter() - began:.0f} s; videos in {work}")
    if args.json:
        args.json.write_text(json.dumps({"cross_identity": cross, "reconstruction": recon,
                                         "model": summary}, indent=1))


if __name__ == "__main__":
    main()
