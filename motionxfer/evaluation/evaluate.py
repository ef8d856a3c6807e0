"""Evaluate a generated video against a reference video with the metrics of the literature.

    result = evaluate_videos(Path("generated.mp4"), Path("real.mp4"), EvaluateConfig())
    result.metric("lpips_alex").value, result.metric("ssim").per_frame  # (T,)

Frames are compared by index: frame i of the generated video with frame
`reference_first_frame + i` of the reference, over the shorter of the two. Every metric can be
switched off in `EvaluateConfig`; a metric that cannot run (weights not in the model cache,
mediapipe not installed, too few frames) is skipped and the reason is in `result.skipped`, never
silently. docs/metrics.md defines each metric and gives its source.

Protocols (the ones the motion-transfer papers report):
- `self_reconstruction`: the model re-renders the held-out last part of its own target video
  from that part's poses (EDN, iPER, most papers); compared with the real held-out frames.
- `cross_identity`: the model renders the target doing a source's motion; compared with a
  ground-truth video of the target doing that motion (the shared studio data has such videos).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from motionxfer.errors import BadInput, MissingDependency
from motionxfer.evaluation.metrics import image, temporal
from motionxfer.evaluation.metrics.fid import RECOMMENDED_MIN_FRAMES, fid_from_features
from motionxfer.evaluation.metrics.keypoints import (
    KeypointAccuracy,
    keypoint_accuracy,
    pose_accuracy,
)
from motionxfer.evaluation.metrics.perceptual import inception_features, lpips_distances
from motionxfer.io import video
from motionxfer.networks.inception_fid import FIDInception
from motionxfer.networks.lpips import LPIPS
from motionxfer.pose.extract import ExtractConfig, extract_from_frames
from motionxfer.pose.sequence import PoseSequence
from motionxfer.progress import ProgressCallback, RateMeter
from motionxfer.training.part_crops import PART_GROUPS, crop_parts, part_joints
from motionxfer.training.part_gan import part_tracks

LPIPS_BACKBONES = ("alex", "vgg")
PART_CROP_SIZE = 64  # pixels: the size of the patches LPIPS was calibrated on
KEYPOINT_PARTS = ("hands", "feet")  # the part groups with AKD/MKR (a face has its own metrics)
FPS_TOLERANCE = 0.01  # relative


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of `evaluate` (TOML table `[evaluate]`).

    ssim, psnr, masked (Mask-SSIM/Mask-PSNR), lpips, fid, temporal (TCM and warping error),
    pose (AKD/MKR of body joints), face (AKD/MKR of face landmarks), parts (LPIPS on crops of
    the hands, feet and face, and AKD/MKR of hand and foot keypoints; only where the evaluation
    has keypoints: pose or face on, or poses given): switch each metric on/off.
    lpips_backbones: "alex" (the LPIPS authors' choice as a metric; the default) and/or "vgg"
        (about 10x slower: ~2 s per 256x256 frame pair on a busy 2-core CPU).
    flow: optical flow for the temporal metrics, "dis" or "farneback".
    mask_threshold: a mask pixel (mask video or MediaPipe's soft mask) is person above this.
    min_visibility: a detected keypoint counts as found at this visibility or more.
    reference_first_frame: skip this many reference frames (the held-out part starts there).
    max_frames: compare at most this many frames (0: all).
    resize_reference: resize reference frames (and masks) to the generated size instead of
        refusing videos of different sizes.
    batch_size, device: for LPIPS and the FID network.
    """

    ssim: bool = True
    psnr: bool = True
    masked: bool = True
    lpips: bool = True
    lpips_backbones: tuple[str, ...] = ("alex",)
    fid: bool = True
    temporal: bool = True
    pose: bool = True
    face: bool = True
    parts: bool = True
    flow: str = "dis"
    mask_threshold: float = 0.5
    min_visibility: float = 0.5
    reference_first_frame: int = 0
    max_frames: int = 0
    resize_reference: bool = False
    batch_size: int = 8
    device: str = "cpu"

    def __post_init__(self) -> None:
        unknown = [name for name in self.lpips_backbones if name not in LPIPS_BACKBONES]
        if unknown or not self.lpips_backbones:
            raise BadInput(f"unknown LPIPS backbone(s) {unknown or '(none given)'}",
                           hint=f"use {' and/or '.join(LPIPS_BACKBONES)}")
        if self.flow not in temporal.FLOW_METHODS:
            raise BadInput(f"unknown optical flow method {self.flow!r}",
                           hint=f"use one of {', '.join(temporal.FLOW_METHODS)}")
        for name in ("mask_threshold", "min_visibility"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise BadInput(f"{name} must be between 0 and 1, got {getattr(self, name)}",
                               hint=f"set {name} to e.g. 0.5")
        if self.reference_first_frame < 0 or self.max_frames < 0 or self.batch_size < 1:
            raise BadInput("reference_first_frame and max_frames must be 0 or more, batch_size 1 "
                           "or more", hint="fix the value")


@dataclass(frozen=True)
class MetricResult:
    """One metric: its summary value and, for per-frame metrics, the value of every frame.

    per_frame: (T,) float64, NaN where the metric is undefined for that frame (the first frame of
        the temporal metrics, frames without a person in the mask, ...); None for FID.
    value: the summary (see docs/metrics.md for how each one is aggregated); None when no frame
        had a defined value.
    higher_is_better: None for values shown for context only.
    """

    name: str
    label: str
    value: float | None
    per_frame: np.ndarray | None
    higher_is_better: bool | None
    unit: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "label": self.label, "unit": self.unit,
                "higher_is_better": self.higher_is_better, "note": self.note}


@dataclass(frozen=True)
class EvaluationResult:
    generated: Path
    reference: Path
    mask: Path | None
    frames: int
    frame_size: tuple[int, int]  # (width, height) compared
    fps: float
    metrics: tuple[MetricResult, ...]
    skipped: tuple[tuple[str, str], ...]  # (metric, why)
    warnings: tuple[str, ...]
    config: EvaluateConfig

    def metric(self, name: str) -> MetricResult:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"no metric {name!r} in this result (computed: "
                       f"{', '.join(m.name for m in self.metrics)})")

    def has(self, name: str) -> bool:
        return any(metric.name == name for metric in self.metrics)

    def summary(self) -> dict[str, float | None]:
        return {metric.name: metric.value for metric in self.metrics}

    def to_dict(self) -> dict[str, Any]:
        """The JSON summary (no per-frame values)."""
        return {
            "generated": str(self.generated),
            "reference": str(self.reference),
            "mask": str(self.mask) if self.mask else None,
            "frames": self.frames,
            "frame_size": list(self.frame_size),
            "fps": self.fps,
            "summary": self.summary(),
            "metrics": {metric.name: metric.to_dict() for metric in self.metrics},
            "skipped": dict(self.skipped),
            "warnings": list(self.warnings),
            "settings": dataclasses.asdict(self.config),
        }


# --- reading the two videos ------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    frames: int
    size: tuple[int, int]  # (width, height) of the compared frames
    fps: float
    reference_size: tuple[int, int]


def _plan(generated: Path, reference: Path, config: EvaluateConfig,
          warnings: list[str]) -> _Plan:

    generated_info = video.probe(generated)
    reference_info = video.probe(reference)
    if abs(generated_info.fps - reference_info.fps) > FPS_TOLERANCE * reference_info.fps:
        raise BadInput(
            f"{generated.name} runs at {generated_info.fps:.3f} fps and {reference.name} at "
            f"{reference_info.fps:.3f} fps: their frames do not correspond",
            hint="render the generated video at the reference's frame rate",
        )
    size = (generated_info.width, generated_info.height)
    reference_size = (reference_info.width, reference_info.height)
    if size != reference_size and not config.resize_reference:
        raise BadInput(
            f"{generated.name} is {size[0]}x{size[1]} but {reference.name} is "
            f"{reference_size[0]}x{reference_size[1]}",
            hint="pass --resize-reference to compare at the generated video's size",
        )
    if size != reference_size and size[0] * reference_size[1] != size[1] * reference_size[0]:
        warnings.append(f"the reference ({reference_size[0]}x{reference_size[1]}) is resized to "
                        f"{size[0]}x{size[1]}, which changes its aspect ratio")
    available = reference_info.frame_count - config.reference_first_frame
    if available <= 0:
        raise BadInput(
            f"{reference.name} has {reference_info.frame_count} frames, fewer than the "
            f"{config.reference_first_frame} to skip", hint="check the reference's first frame")
    frames = min(generated_info.frame_count, available)
    if config.max_frames:
        frames = min(frames, config.max_frames)
    if generated_info.frame_count != available and frames < max(generated_info.frame_count,
                                                                available):
        warnings.append(f"the generated video has {generated_info.frame_count} frames and the "
                        f"reference {available}: the first {frames} are compared")
    return _Plan(frames=frames, size=size, fps=generated_info.fps, reference_size=reference_size)


def _read(path: Path, first: int, count: int, size: tuple[int, int] | None,
          interpolation: int = cv2.INTER_AREA) -> Iterator[np.ndarray]:
    """Up to `count` RGB frames (H, W, 3) uint8 from frame `first` on, resized to `size`."""

    with contextlib.closing(video.read_frames(path)) as frames:
        yielded = 0
        for frame in frames:
            if frame.index < first:
                continue
            if yielded >= count:
                break
            rgb = frame.rgb
            if size is not None and (rgb.shape[1], rgb.shape[0]) != size:
                rgb = cv2.resize(rgb, size, interpolation=interpolation)
            yield rgb
            yielded += 1


def read_frame_pairs(result: EvaluationResult, indices: list[int]
                     ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The (reference, generated) frames of the given compared indices, as the metrics saw them."""
    wanted = set(indices)
    pairs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    last = max(wanted) + 1 if wanted else 0
    references = _read(result.reference, result.config.reference_first_frame, last,
                       result.frame_size)
    generated = _read(result.generated, 0, last, result.frame_size)
    for index, (reference_rgb, generated_rgb) in enumerate(zip(references, generated)):
        if index in wanted:
            pairs[index] = (reference_rgb, generated_rgb)
    return pairs


def _mask_frames(path: Path, first: int, count: int, size: tuple[int, int],
                 threshold: float) -> Iterator[np.ndarray]:
    """(H, W) bool person masks from a mask video (bright = person)."""
    with contextlib.closing(_read(path, first, count, size, cv2.INTER_NEAREST)) as frames:
        for rgb in frames:
            yield rgb.max(axis=2) > threshold * 255


# --- the key parts: LPIPS on crops --------------------------------------------------------------

def part_crop_images(frame: np.ndarray, boxes: np.ndarray,
                     size: int = PART_CROP_SIZE) -> np.ndarray:
    """(P, size, size, 3) uint8 crops of an RGB frame (H, W, 3) uint8 at boxes (P, 4) (x0, y0,
    x1, y1 in its pixels; `training.part_crops.crop_parts`'s bilinear resampling)."""
    images = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
    crops = crop_parts(images.expand(len(boxes), -1, -1, -1),
                       torch.from_numpy(np.asarray(boxes, np.float32)), size)
    return crops.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


class PartScores:
    """LPIPS of the key parts (`training.part_crops.PART_GROUPS`) of each frame pair: the crops
    at the reference's part boxes (`boxes` (T, P, 4) of `parts`, NaN where unseen) of both frames,
    scored in batches by `distance(reference crops, generated crops) -> (N,)` per backbone. A
    frame's score for a group is the mean over the group's parts seen in it; NaN without any."""

    def __init__(self, parts: tuple[str, ...], boxes: np.ndarray,
                 distances: dict[str, Any], batch_size: int) -> None:
        self.boxes = boxes
        self.distances = distances  # backbone -> callable
        self.batch_size = batch_size
        self.columns = {group: [parts.index(part) for part in members if part in parts]
                        for group, members in PART_GROUPS.items()}
        self.columns = {group: columns for group, columns in self.columns.items() if columns}
        self.pending: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {
            group: [] for group in self.columns}
        self.scores: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {
            (group, backbone): [] for group in self.columns for backbone in distances}

    def add(self, index: int, reference: np.ndarray, generated: np.ndarray) -> None:
        """Frame pair `index` (H, W, 3) uint8 each."""
        if index >= len(self.boxes):
            return
        for group, columns in self.columns.items():
            boxes = self.boxes[index, columns]  # (p, 4)
            boxes = boxes[np.isfinite(boxes).all(-1)]
            if not len(boxes):
                continue
            for reference_crop, generated_crop in zip(part_crop_images(reference, boxes),
                                                      part_crop_images(generated, boxes)):
                self.pending[group].append((index, reference_crop, generated_crop))
            if len(self.pending[group]) >= self.batch_size:
                self._flush(group)

    def _flush(self, group: str) -> None:
        pending = self.pending[group]
        if not pending:
            return
        frames = np.array([entry[0] for entry in pending])
        references = np.stack([entry[1] for entry in pending])
        generated = np.stack([entry[2] for entry in pending])
        for backbone, distance in self.distances.items():
            self.scores[group, backbone].append((frames, np.asarray(distance(references,
                                                                             generated))))
        pending.clear()

    def per_frame(self, frames: int) -> dict[tuple[str, str], np.ndarray]:
        """(group, backbone) -> (frames,) float64 scores, for the groups seen at least once."""
        results = {}
        for group in self.columns:
            self._flush(group)
            for backbone in self.distances:
                entries = self.scores[group, backbone]
                if not entries:
                    continue
                indices = np.concatenate([entry[0] for entry in entries])
                values = np.concatenate([entry[1] for entry in entries]).astype(np.float64)
                sums = np.bincount(indices, values, minlength=frames)[:frames]
                counts = np.bincount(indices, minlength=frames)[:frames]
                with np.errstate(invalid="ignore", divide="ignore"):
                    results[group, backbone] = np.where(counts > 0, sums / counts, np.nan)
        return results


def _part_scorer(reference_poses: PoseSequence | None, models: _Models, plan: _Plan,
                 config: EvaluateConfig, skipped: dict[str, str]) -> PartScores | None:
    """The part LPIPS of this evaluation, or None (why, in `skipped`)."""
    if not (config.parts and config.lpips):
        return None
    if reference_poses is None:
        skipped["parts"] = ("no keypoints of the reference (turn on pose or face, or pass "
                            "reference_poses)")
        return None
    if not models.lpips:
        return None  # each backbone's reason is in `skipped` already
    tracks = part_tracks(reference_poses, plan.size, min_visibility=config.min_visibility)
    if not tracks.parts:
        skipped["parts"] = (f"the layout '{reference_poses.skeleton.name}' has no hands, feet or "
                            "face")
        return None
    distances = {backbone: (lambda references, generated, model=model:
                            lpips_distances(model, references, generated))
                 for backbone, model in models.lpips.items()}
    return PartScores(tracks.parts, tracks.boxes, distances, config.batch_size)


def _part_metrics(scorer: PartScores, frames: int,
                  skipped: dict[str, str]) -> list[MetricResult]:
    metrics = []
    scores = scorer.per_frame(frames)
    for group in PART_GROUPS:
        for backbone in scorer.distances:
            per_frame = scores.get((group, backbone))
            name = f"lpips_{backbone}_{group}"
            if per_frame is None:
                if group in scorer.columns:
                    skipped[name] = f"no {group} in the reference's keypoints"
                continue
            seen = int(np.isfinite(per_frame).sum())
            label = f"LPIPS ({'AlexNet' if backbone == 'alex' else 'VGG'}), {group}"
            metrics.append(MetricResult(
                name, label, float(np.nanmean(per_frame)), per_frame, False,
                note=f"{PART_CROP_SIZE} px crops at the reference's {group} boxes, in {seen} of "
                     f"{frames} frames"))
    return metrics


# --- the evaluation ----------------------------------------------------------------------------


def evaluate_videos(
    generated: Path,
    reference: Path,
    config: EvaluateConfig = EvaluateConfig(),
    progress: ProgressCallback | None = None,
    mask: Path | None = None,
    reference_poses: PoseSequence | None = None,
    generated_poses: PoseSequence | None = None,
) -> EvaluationResult:
    """Compare `generated` with `reference` frame by frame (see the module docstring).

    mask: a video of the person mask of the reference (white person on black); without it the
        masked metrics use MediaPipe's segmentation of the reference frames.
    reference_poses, generated_poses: poses already detected on the compared frames (frame i of
        each is compared frame i); without them the pose metrics run MediaPipe on both videos.
    """
    generated, reference = Path(generated), Path(reference)
    warnings: list[str] = []
    skipped: dict[str, str] = {}
    plan = _plan(generated, reference, config, warnings)
    if mask is not None:
        mask = Path(mask)

        mask_info = video.probe(mask)
        if mask_info.frame_count < plan.frames + config.reference_first_frame:
            warnings.append(f"the mask video has {mask_info.frame_count} frames; frames past its "
                            f"end have no Mask-SSIM/Mask-PSNR")

    # MediaPipe passes: poses of both videos, segmentation of the reference.
    need_segmentation = config.masked and mask is None
    need_poses = (config.pose or config.face) and (reference_poses is None or generated_poses is None)
    segmentation: Any = None
    if need_segmentation or need_poses:
        try:
            extracted_reference, segmentation = _run_mediapipe(
                reference, config.reference_first_frame, plan, config, need_segmentation,
                need_poses, progress, "poses (reference)")
            if need_poses:
                if reference_poses is None:
                    reference_poses = extracted_reference
                if generated_poses is None:
                    generated_poses, _ = _run_mediapipe(generated, 0, plan, config, False, True,
                                                        progress, "poses (generated)")
        except MissingDependency as error:
            reason = f"{error.message} (fix: {error.hint})"
            for name, wanted in (("masked", need_segmentation), ("pose", config.pose),
                                 ("face", config.face)):
                if wanted:
                    skipped[name] = reason
            segmentation = None
            if need_poses:
                reference_poses = generated_poses = None

    models = _load_models(config, skipped, progress)
    parts = _part_scorer(reference_poses, models, plan, config, skipped)
    values: dict[str, list[float]] = {name: [] for name in
                                      ("ssim", "psnr", "mask_ssim", "mask_psnr", "tcm",
                                       "warp_error", "warp_error_reference")}
    lpips_values: dict[str, list[np.ndarray]] = {name: [] for name in models.lpips}
    features: dict[str, list[np.ndarray]] = {"reference": [], "generated": []}
    batch: list[tuple[np.ndarray, np.ndarray]] = []
    estimator = temporal.FlowEstimator(config.flow) if config.temporal else None
    masks = (_mask_frames(mask, config.reference_first_frame, plan.frames, plan.size,
                          config.mask_threshold) if mask is not None and config.masked else None)

    def flush() -> None:
        if not batch:
            return
        reference_batch = np.stack([pair[0] for pair in batch])
        generated_batch = np.stack([pair[1] for pair in batch])

        for name, model in models.lpips.items():
            lpips_values[name].append(lpips_distances(model, reference_batch, generated_batch))
        if models.fid is not None:
            features["reference"].append(
                inception_features(models.fid, reference_batch, config.device))
            features["generated"].append(
                inception_features(models.fid, generated_batch, config.device))
        batch.clear()

    meter = RateMeter(progress, "evaluate", plan.frames)
    previous: tuple[np.ndarray, np.ndarray] | None = None
    frames_seen = 0
    reference_frames = _read(reference, config.reference_first_frame, plan.frames, plan.size)
    generated_frames = _read(generated, 0, plan.frames, plan.size)
    with contextlib.ExitStack() as open_streams:
        for stream in (reference_frames, generated_frames, masks):
            if stream is not None:
                open_streams.enter_context(contextlib.closing(stream))
        for index, (reference_rgb, generated_rgb) in enumerate(zip(reference_frames,
                                                                   generated_frames)):
            frames_seen += 1
            if config.ssim:
                values["ssim"].append(image.ssim(reference_rgb, generated_rgb))
            if config.psnr:
                values["psnr"].append(image.psnr(reference_rgb, generated_rgb))
            if config.masked and "masked" not in skipped:
                person = _person_mask(index, masks, segmentation, plan, config)
                if person is None or not person.any():
                    values["mask_ssim"].append(math.nan)
                    values["mask_psnr"].append(math.nan)
                else:
                    values["mask_ssim"].append(image.mask_ssim(reference_rgb, generated_rgb, person))
                    values["mask_psnr"].append(image.mask_psnr(reference_rgb, generated_rgb, person))
            if estimator is not None:
                if previous is None:
                    for name in ("tcm", "warp_error", "warp_error_reference"):
                        values[name].append(math.nan)
                else:
                    step = temporal.frame_pair_consistency(previous[0], reference_rgb, previous[1],
                                                           generated_rgb, estimator)
                    values["tcm"].append(step.tcm)
                    values["warp_error"].append(step.generated_warp_error)
                    values["warp_error_reference"].append(step.reference_warp_error)
                previous = (reference_rgb, generated_rgb)
            if parts is not None:
                parts.add(index, reference_rgb, generated_rgb)
            if models.lpips or models.fid is not None:
                batch.append((reference_rgb, generated_rgb))
                if len(batch) >= config.batch_size:
                    flush()
            meter.advance()
        flush()
    meter.finish()
    if frames_seen < plan.frames:
        warnings.append(f"only {frames_seen} of the expected {plan.frames} frames decoded")
    if frames_seen == 0:
        raise BadInput(f"no frames to compare in {generated.name} and {reference.name}",
                       hint="check both videos (motionxfer info) and the reference's first frame")

    metrics = _image_metrics(values, config, skipped)
    for backbone in models.lpips:
        per_frame = np.concatenate(lpips_values[backbone])
        label = f"LPIPS ({'AlexNet' if backbone == 'alex' else 'VGG'})"
        metrics.append(MetricResult(f"lpips_{backbone}", label, float(per_frame.mean()),
                                    per_frame, False))
        worst = max(1, math.ceil(0.1 * per_frame.size - 1e-9))
        metrics.append(MetricResult(  # the per-frame values are lpips_{backbone}'s
            f"lpips_{backbone}_worst_decile", f"{label}, worst 10% of frames",
            image.worst_fraction_mean(per_frame, 0.1), None, False,
            note=f"mean of the worst {worst} of {per_frame.size} frames"))
    if parts is not None:
        metrics.extend(_part_metrics(parts, frames_seen, skipped))
    if models.fid is not None:
        metrics.append(_fid_metric(features, frames_seen, warnings))
    if config.temporal:
        metrics.extend(_temporal_metrics(values))
    if reference_poses is not None and generated_poses is not None:
        metrics.extend(_pose_metrics(reference_poses, generated_poses, config, skipped))
    return EvaluationResult(
        generated=generated, reference=reference, mask=mask, frames=frames_seen,
        frame_size=plan.size, fps=plan.fps, metrics=tuple(metrics),
        skipped=tuple(skipped.items()), warnings=tuple(warnings), config=config,
    )


@dataclass
class _Models:
    lpips: dict[str, Any]
    fid: Any


def _load_models(config: EvaluateConfig, skipped: dict[str, str],
                 progress: ProgressCallback | None = None) -> _Models:
    """The learned metrics' networks (their weights fetched on first use); those whose weights
    cannot be had (offline, unreachable) are skipped."""
    models = _Models(lpips={}, fid=None)
    if config.lpips:

        for backbone in config.lpips_backbones:
            try:
                models.lpips[backbone] = LPIPS.from_cache(backbone, progress).to(config.device)
            except MissingDependency as error:
                skipped[f"lpips_{backbone}"] = f"{error.message} (fix: {error.hint})"
    if config.fid:

        try:
            models.fid = FIDInception.from_cache(config.device, progress)
        except MissingDependency as error:
            skipped["fid"] = f"{error.message} (fix: {error.hint})"
    return models


def _run_mediapipe(path: Path, first: int, plan: _Plan, config: EvaluateConfig,
                   segmentation: bool, poses: bool, progress: ProgressCallback | None,
                   description: str) -> tuple[PoseSequence, Any]:
    """MediaPipe on the compared frames of one video: poses, and person masks when asked."""

    extract_config = ExtractConfig(hands=False, face=config.face and poses,
                                   segmentation=segmentation, min_visibility=config.min_visibility)

    def report(_: str, done: int, total: int | None, rate: str) -> None:
        if progress is not None:
            progress(description, done, total, rate)

    frames = _read(path, first, plan.frames, plan.size)
    with contextlib.closing(frames):
        extraction = extract_from_frames(frames, plan.fps, extract_config, report, plan.frames)
    return extraction.poses, extraction.masks


def _person_mask(index: int, masks: Iterator[np.ndarray] | None, segmentation: Any,
                 plan: _Plan, config: EvaluateConfig) -> np.ndarray | None:
    if masks is not None:
        return next(masks, None)
    if segmentation is not None and index < segmentation.num_frames:
        return segmentation.full_size(index) > config.mask_threshold
    return None


def _image_metrics(values: dict[str, list[float]], config: EvaluateConfig,
                   skipped: dict[str, str]) -> list[MetricResult]:
    metrics = []
    if config.ssim:
        per_frame = np.array(values["ssim"])
        metrics.append(MetricResult("ssim", "SSIM", float(per_frame.mean()), per_frame, True))
    if config.psnr:
        metrics.append(_psnr_metric("psnr", "PSNR", np.array(values["psnr"])))
    if config.masked and "masked" not in skipped:
        per_frame = np.array(values["mask_ssim"])
        defined = per_frame[np.isfinite(per_frame)]
        empty = int(np.isnan(per_frame).sum())
        note = f"{empty} frame(s) without a person in the mask left out" if empty else ""
        metrics.append(MetricResult("mask_ssim", "Mask-SSIM",
                                    float(defined.mean()) if defined.size else None,
                                    per_frame, True, note=note))
        metrics.append(_psnr_metric("mask_psnr", "Mask-PSNR", np.array(values["mask_psnr"]), note))
    return metrics


def _psnr_metric(name: str, label: str, per_frame: np.ndarray, note: str = "") -> MetricResult:
    mean, infinite = image.finite_mean(per_frame)
    notes = [note] if note else []
    if infinite:
        notes.append(f"{infinite} identical frame(s) (infinite PSNR) left out of the mean")
    return MetricResult(name, label, mean, per_frame, True, "dB", "; ".join(notes))


def _fid_metric(features: dict[str, list[np.ndarray]], frames: int,
                warnings: list[str]) -> MetricResult:
    note = ""
    if frames < RECOMMENDED_MIN_FRAMES:
        note = (f"from {frames} frames, fewer than the {RECOMMENDED_MIN_FRAMES} FID needs to be "
                "unbiased: compare it only with FIDs over the same frames")
        warnings.append(f"FID {note}")
    if frames < 2:
        return MetricResult("fid", "FID", None, None, False, note="needs at least 2 frames")
    value = fid_from_features(np.concatenate(features["reference"]),
                              np.concatenate(features["generated"]))
    return MetricResult("fid", "FID", value, None, False, note=note)


def _temporal_metrics(values: dict[str, list[float]]) -> list[MetricResult]:
    def mean(name: str) -> float | None:
        array = np.array(values[name])
        defined = array[np.isfinite(array)]
        return float(defined.mean()) if defined.size else None

    return [
        MetricResult("tcm", "TCM", mean("tcm"), np.array(values["tcm"]), True),
        MetricResult("warp_error", "Warping error", mean("warp_error"),
                     np.array(values["warp_error"]), False),
        MetricResult("warp_error_reference", "Warping error of the reference",
                     mean("warp_error_reference"), np.array(values["warp_error_reference"]),
                     None, note="the floor set by the optical flow's own errors"),
    ]


def _pose_metrics(reference: PoseSequence, generated: PoseSequence, config: EvaluateConfig,
                  skipped: dict[str, str]) -> list[MetricResult]:
    metrics = []
    for group, enabled, label in (("body", config.pose, "body"), ("face", config.face, "face")):
        if not enabled:
            continue
        if not (reference.skeleton.has_group(group) and generated.skeleton.has_group(group)):
            skipped[group] = f"the poses have no '{group}' keypoints"
            continue
        accuracy: KeypointAccuracy = pose_accuracy(reference, generated, group,
                                                   config.min_visibility)
        summary = accuracy.summary()
        if int(accuracy.found_reference.sum()) == 0:
            skipped[group] = f"no {label} keypoints were found in the reference frames"
            continue
        metrics.extend([
            MetricResult(f"akd_{group}", f"AKD {label}", summary["akd"], accuracy.akd, False, "px"),
            MetricResult(f"akd_{group}_relative", f"AKD {label} / {label} size",
                         summary["akd_relative"], accuracy.akd_relative, False),
            MetricResult(f"akd_{group}_coordinate", f"AKD {label} (mean |dx|, |dy|)",
                         summary["akd_coordinate"], accuracy.akd_coordinate, False, "px",
                         note="the average FOMM's released script computes"),
            MetricResult(f"mkr_{group}", f"MKR {label}", summary["mkr"], accuracy.mkr, False),
        ])
        if accuracy.flipped is not None and accuracy.akd_unflipped is not None:
            metrics.extend([
                MetricResult(f"flip_{group}", f"flipped frames {label}", summary["flip"],
                             accuracy.flipped, False,
                             note="read as facing the other way: left and right swapped"),
                MetricResult(f"akd_{group}_unflipped", f"AKD {label}, flips undone",
                             summary["akd_unflipped"], accuracy.akd_unflipped, False, "px"),
            ])
    if config.parts:
        metrics.extend(_part_keypoint_metrics(reference, generated, config, skipped))
    return metrics


def _part_keypoint_metrics(reference: PoseSequence, generated: PoseSequence,
                           config: EvaluateConfig, skipped: dict[str, str]) -> list[MetricResult]:
    """AKD and MKR of the hand and foot keypoints (`training.part_crops.part_joints`: the hand
    points when detected, else the body's wrist, pinky, index and thumb; ankle, heel and toes)."""
    if reference.skeleton.name != generated.skeleton.name:
        skipped["akd_hands"] = skipped["akd_feet"] = "the two videos' poses have other layouts"
        return []
    joints = part_joints(reference.skeleton)
    frames = min(reference.num_frames, generated.num_frames)
    metrics = []
    for group in KEYPOINT_PARTS:
        chosen = sorted({joint for part in PART_GROUPS[group] for joint in joints.get(part, [])})
        if not chosen:
            skipped[f"akd_{group}"] = f"the poses have no {group} keypoints"
            continue
        accuracy = keypoint_accuracy(reference.keypoints[:frames, chosen],
                                     generated.keypoints[:frames, chosen], config.min_visibility,
                                     group)
        if int(accuracy.found_reference.sum()) == 0:
            skipped[f"akd_{group}"] = f"no {group} keypoints were found in the reference frames"
            continue
        summary = accuracy.summary()
        metrics.extend([
            MetricResult(f"akd_{group}", f"AKD {group}", summary["akd"], accuracy.akd, False,
                         "px"),
            MetricResult(f"mkr_{group}", f"MKR {group}", summary["mkr"], accuracy.mkr, False),
        ])
    return metrics


# --- protocols -----------------------------------------------------------------------------------


def self_reconstruction(
    generated: Path, target_video: Path, holdout_first_frame: int,
    config: EvaluateConfig = EvaluateConfig(), progress: ProgressCallback | None = None,
    mask: Path | None = None,
) -> EvaluationResult:
    """Self-reconstruction (EDN, iPER): `generated` is the model's rendering of the held-out
    part of its own target video, driven by that part's poses; it is compared with the real
    frames of `target_video` from `holdout_first_frame` on (the first frame training never saw).

    `mask`, when given, is a mask video of the whole target video (it is skipped to the same
    frame).
    """
    config = dataclasses.replace(config, reference_first_frame=holdout_first_frame)
    return evaluate_videos(generated, target_video, config, progress, mask)


def cross_identity(
    generated: Path, ground_truth: Path, config: EvaluateConfig = EvaluateConfig(),
    progress: ProgressCallback | None = None, mask: Path | None = None,
) -> EvaluationResult:
    """Cross-identity transfer against ground truth: `generated` shows the target performing a
    source's motion, `ground_truth` the same target really performing it (frame-aligned)."""
    return evaluate_videos(generated, ground_truth, config, progress, mask)
