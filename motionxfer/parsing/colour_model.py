"""Per-person refinement of the geometric parse with the target's own colours.

A person's clothes do not change over their video, so the colours of each class can be learnt
from the video itself:

1. Seeds. On many frames, take the pixels the geometry is sure of: deep inside the mask and far
   from any other segment (a large nearest/second-nearest margin), in segments whose class does
   not depend on clothing lengths (head, torso -> top, hands and neck -> skin, feet -> shoes,
   the top of the thighs -> bottom).
2. Colour models. One Gaussian mixture per class in CIE Lab, fitted with OpenCV's EM
   (`cv2.ml.EM`, full covariances), evaluated here in numpy.
3. Clothing lengths. Along the arms and legs (pixels from many frames), the colour models say
   where the sleeve and the trouser leg stop: the cut along the chain that best separates
   "looks like the top/bottom" from "looks like skin" is the person's sleeve / bottom length.
4. Relabelling. Per frame, each mask pixel's class maximises prior_weight x log(geometric prior
   with the estimated lengths) + colour_weight x log(colour likelihood); the per-class
   posteriors are smoothed with a small Gaussian before the choice.

Frames are RGB (H, W, 3) uint8.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from motionxfer.errors import BadInput
from motionxfer.parsing.geometry import (
    ARM_SEGMENTS,
    LEG_SEGMENTS,
    BodyField,
    GeometryConfig,
    JointLayout,
    body_field,
    class_prior,
)
from motionxfer.parsing.labels import BACKGROUND, BOTTOM, HEAD, NUM_CLASSES, SHOES, SKIN, TOP

# Segments (see geometry.SEGMENT_NAMES) whose pixels seed each class.
_SEED_SEGMENTS = {HEAD: (0,), TOP: (2,), SKIN: (1, 5, 8), SHOES: (11, 14), BOTTOM: (9, 12)}


@dataclass(frozen=True)
class ParserConfig:
    """Knobs of the colour refinement (and the geometry it starts from)."""

    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    components: int = 3                # Gaussians per class colour model
    samples_per_class: int = 20000     # seed pixels kept per class, over all fitting frames
    min_samples: int = 200             # fewer seeds than this: the class keeps no colour model
    seed_margin: float = 0.6           # nearest/second-nearest normalized distance margin
    seed_depth: float = 1.5            # seeds lie at least this many pixels inside the mask
    seed_thigh_length: float = 0.2     # thigh pixels above this part of the leg seed the bottom
    estimate_lengths: bool = True      # learn sleeve and bottom lengths from the colours
    length_bins: int = 20
    prior_weight: float = 1.0
    colour_weight: float = 1.0
    colour_floor: float = -12.0        # log-likelihoods below the best class by more are clipped
    covariance_floor: float = 4.0      # added to each covariance diagonal, Lab units squared
    smoothing_sigma: float = 1.0       # pixels; 0 switches the smoothing off
    random_seed: int = 0

    def __post_init__(self) -> None:
        if self.components < 1 or self.samples_per_class < self.min_samples:
            raise BadInput("components must be >= 1 and samples_per_class >= min_samples",
                           hint="use the defaults of ParserConfig")


@dataclass(frozen=True)
class ColourModel:
    """Per-class Gaussian mixtures in Lab and the clothing lengths learnt from one person.

    means: (6, K, 3); covariances: (6, K, 3, 3); weights: (6, K); fitted: (6,) bool (classes with
    enough seeds; background is never fitted); seed_counts: (6,) int; frames_used: frames that
    had a mask and the torso joints (the others were skipped).
    """

    means: np.ndarray
    covariances: np.ndarray
    weights: np.ndarray
    fitted: np.ndarray
    seed_counts: np.ndarray
    sleeve_length: float
    bottom_length: float
    frames_used: int = 0

    def log_likelihood(self, lab: np.ndarray) -> np.ndarray:
        """Colour log-likelihood of pixels (N, 3) Lab under each class: (N, 6) float32.

        Unfitted classes get the mean of the fitted ones (no colour evidence either way)."""
        lab = np.asarray(lab, dtype=np.float64)
        out = np.zeros((lab.shape[0], NUM_CLASSES))
        for cls in range(NUM_CLASSES):
            if not self.fitted[cls]:
                continue
            per_component = []
            for mean, covariance, weight in zip(self.means[cls], self.covariances[cls],
                                                self.weights[cls]):
                if weight <= 0:
                    continue
                cholesky = np.linalg.cholesky(covariance)
                solved = np.linalg.solve(cholesky, (lab - mean).T)  # (3, N)
                log_det = 2.0 * np.log(np.diag(cholesky)).sum()
                per_component.append(np.log(weight) - 0.5 * (solved ** 2).sum(axis=0)
                                     - 0.5 * log_det - 1.5 * np.log(2 * np.pi))
            stacked = np.array(per_component)
            peak = stacked.max(axis=0)
            out[:, cls] = peak + np.log(np.exp(stacked - peak).sum(axis=0))
        if self.fitted.any():
            fallback = out[:, self.fitted].mean(axis=1)
            out[:, ~self.fitted] = fallback[:, None]
        return out.astype(np.float32)


def to_lab(frame: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) uint8 -> CIE Lab (H, W, 3) float32 (L 0..100, a and b about -127..127)."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise BadInput(f"expected an RGB (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}",
                       hint="decode videos to rgb24")
    return cv2.cvtColor(frame.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def _box_lab(frame: np.ndarray, geometry: BodyField) -> np.ndarray:
    top, left = geometry.box
    height, width = geometry.mask.shape
    if frame.shape[:2] != geometry.frame_shape:
        raise BadInput(f"frame is {frame.shape[:2]} but the mask is {geometry.frame_shape}",
                       hint="pass masks of the video's own resolution")
    return to_lab(np.ascontiguousarray(frame[top:top + height, left:left + width]))


def _seed_pixels(geometry: BodyField, config: ParserConfig) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Confident seed positions per class (flat box indices) and the confident limb pixels."""
    nearest, margin = geometry.nearest()
    depth = cv2.distanceTransform(geometry.mask.astype(np.uint8), cv2.DIST_L2, 3)
    confident = (margin > config.seed_margin) & (depth >= config.seed_depth)
    seeds = {}
    for cls, segments in _SEED_SEGMENTS.items():
        chosen = confident & np.isin(nearest, segments)
        if cls == BOTTOM:
            along = np.take_along_axis(geometry.along, np.maximum(nearest, 0)[None], axis=0)[0]
            chosen &= np.nan_to_num(along, nan=1.0) < config.seed_thigh_length
        seeds[cls] = np.flatnonzero(chosen)
    limbs = confident & np.isin(nearest, ARM_SEGMENTS + LEG_SEGMENTS)
    return seeds, limbs


def _fit_mixture(samples: np.ndarray, config: ParserConfig):
    """(means (K, 3), covariances (K, 3, 3), weights (K,)) of a Gaussian mixture fitted by EM."""
    components = min(config.components, max(1, len(samples) // 50))
    model = cv2.ml.EM_create()
    model.setClustersNumber(components)
    model.setCovarianceMatrixType(cv2.ml.EM_COV_MAT_GENERIC)
    model.setTermCriteria((cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-3))
    cv2.setRNGSeed(config.random_seed)
    ok, _, _, _ = model.trainEM(samples.astype(np.float64))
    if not ok:
        raise BadInput("the colour model did not converge", hint="fit on more frames")
    means = np.zeros((config.components, 3))
    covariances = np.tile(np.eye(3), (config.components, 1, 1))
    weights = np.zeros(config.components)
    means[:components] = model.getMeans()
    covariances[:components] = np.array(model.getCovs()) + config.covariance_floor * np.eye(3)
    weights[:components] = model.getWeights().ravel()
    return means, covariances, weights


def _best_cut(along: np.ndarray, covered_score: np.ndarray, bins: int) -> float:
    """The chain position that best splits 'covered' (score > 0, before it) from skin (after)."""
    if along.size == 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(along, edges) - 1, 0, bins - 1)
    covered = np.bincount(index, weights=(covered_score > 0), minlength=bins)
    bare = np.bincount(index, weights=(covered_score <= 0), minlength=bins)
    # agreement(cut k) = covered pixels in bins < k + bare pixels in bins >= k
    agreement = (np.concatenate([[0.0], np.cumsum(covered)])
                 + np.concatenate([np.cumsum(bare[::-1])[::-1], [0.0]]))
    return float(edges[int(np.argmax(agreement))])


def fit_colour_model(
    frames: Iterable[np.ndarray],
    masks: Iterable[np.ndarray],
    keypoints: Iterable[np.ndarray],
    layout: JointLayout,
    config: ParserConfig = ParserConfig(),
    present: Iterable[np.ndarray] | None = None,
) -> ColourModel:
    """Fit one person's colour model over many frames of their own video.

    frames: iterable of RGB (H, W, 3) uint8; masks: of (H, W) bool; keypoints: of (J, 2);
    present: of (J,) bool or None. They are consumed together, one frame at a time (pass a
    subsample: a few hundred frames spread over the video are plenty). Frames whose torso
    joints are missing or whose mask is empty are skipped. Raises BadInput when no frame could
    be used.
    """
    rng = np.random.default_rng(config.random_seed)
    present_iter = iter(present) if present is not None else None
    pools: dict[int, list[np.ndarray]] = {cls: [] for cls in _SEED_SEGMENTS}
    limb_samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (along, is_arm, lab)
    used = 0
    for frame, mask, points in zip(frames, masks, keypoints):
        frame_present = next(present_iter) if present_iter is not None else None
        try:
            geometry = body_field(mask, points, layout, config.geometry, frame_present)
        except BadInput:
            continue
        used += 1
        lab = _box_lab(np.asarray(frame), geometry).reshape(-1, 3)
        seeds, limbs = _seed_pixels(geometry, config)
        for cls, positions in seeds.items():
            if positions.size > 2000:
                positions = rng.choice(positions, 2000, replace=False)
            pools[cls].append(lab[positions])
        if config.estimate_lengths and limbs.any():
            distances = geometry.distances.reshape(len(geometry.distances), -1)
            positions = np.flatnonzero(limbs)
            if positions.size > 2000:
                positions = rng.choice(positions, 2000, replace=False)
            nearest = distances[:, positions].argmin(axis=0)
            along = geometry.along.reshape(len(geometry.along), -1)[nearest, positions]
            limb_samples.append((along, np.isin(nearest, ARM_SEGMENTS), lab[positions]))
    if used == 0:
        raise BadInput("no frame had a person mask and the shoulders and hips",
                       hint="check the masks and keypoints belong to this video")

    means = np.zeros((NUM_CLASSES, config.components, 3))
    covariances = np.tile(np.eye(3), (NUM_CLASSES, config.components, 1, 1))
    weights = np.zeros((NUM_CLASSES, config.components))
    fitted = np.zeros(NUM_CLASSES, bool)
    counts = np.zeros(NUM_CLASSES, int)
    for cls, pool in pools.items():
        samples = np.concatenate(pool) if pool else np.zeros((0, 3), np.float32)
        counts[cls] = len(samples)
        if len(samples) < config.min_samples:
            continue
        if len(samples) > config.samples_per_class:
            samples = samples[rng.choice(len(samples), config.samples_per_class, replace=False)]
        means[cls], covariances[cls], weights[cls] = _fit_mixture(samples, config)
        fitted[cls] = True

    model = ColourModel(means, covariances, weights, fitted, counts,
                        config.geometry.sleeve_length, config.geometry.bottom_length, used)
    if not (config.estimate_lengths and limb_samples):
        return model
    along = np.concatenate([s[0] for s in limb_samples])
    is_arm = np.concatenate([s[1] for s in limb_samples])
    likelihood = model.log_likelihood(np.concatenate([s[2] for s in limb_samples]))
    sleeve, bottom = model.sleeve_length, model.bottom_length
    if fitted[TOP] and fitted[SKIN] and is_arm.sum() >= config.min_samples:
        score = likelihood[is_arm, TOP] - likelihood[is_arm, SKIN]
        sleeve = _best_cut(along[is_arm], score, config.length_bins)
    if fitted[BOTTOM] and fitted[SKIN] and (~is_arm).sum() >= config.min_samples:
        score = likelihood[~is_arm, BOTTOM] - likelihood[~is_arm, SKIN]
        bottom = _best_cut(along[~is_arm], score, config.length_bins)
    return ColourModel(means, covariances, weights, fitted, counts, sleeve, bottom, used)


def refine_parse(
    frame: np.ndarray,
    mask: np.ndarray,
    keypoints: np.ndarray,
    layout: JointLayout,
    model: ColourModel,
    config: ParserConfig = ParserConfig(),
    present: np.ndarray | None = None,
) -> np.ndarray:
    """Six-class parse (H, W) uint8 of one frame: geometric prior x the person's colour model.

    frame: RGB (H, W, 3) uint8; mask: (H, W) bool; keypoints: (J, 2); present: (J,) bool.
    """
    geometry = body_field(mask, keypoints, layout, config.geometry, present)
    prior = class_prior(geometry, model.sleeve_length, model.bottom_length, config.geometry)
    height, width = geometry.mask.shape
    likelihood = model.log_likelihood(_box_lab(np.asarray(frame), geometry).reshape(-1, 3))
    likelihood = likelihood.reshape(height, width, NUM_CLASSES)
    likelihood = np.maximum(likelihood - likelihood[..., 1:].max(axis=-1, keepdims=True),
                            config.colour_floor)
    score = (config.prior_weight * np.log(np.maximum(prior, 1e-6))
             + config.colour_weight * likelihood)
    score[..., BACKGROUND] = -np.inf
    score -= score.max(axis=-1, keepdims=True)
    posterior = np.exp(score)
    posterior /= posterior.sum(axis=-1, keepdims=True)
    if config.smoothing_sigma > 0:
        posterior = cv2.GaussianBlur(posterior, (0, 0), config.smoothing_sigma)
    labels = np.where(geometry.mask, posterior[..., 1:].argmax(axis=-1) + 1, BACKGROUND)
    return geometry.to_frame(labels.astype(np.uint8), BACKGROUND)
