"""Every loss term of training and every weight, in one place.

The generator's objective (pix2pixHD + Everybody Dance Now):

    adversarial             fool the multi-scale spatial discriminator on each generated frame
    temporal_adversarial    fool the temporal discriminator on the generated pair (t-1, t)
    feature_matching        L1 between the discriminator's intermediate features on the real and
                            the generated frame, summed over layers and scales (pix2pixHD's
                            normalisation: 1/n_scales per scale, 4/(n_layers+1) per layer)
    temporal_feature_matching   the same through the temporal discriminator
    perceptual              L1 between VGG16 features of real and generated frames, layers
                            relu1_2..relu5_3 weighted 1/32, 1/16, 1/8, 1/4, 1 (pix2pixHD)
    l1                      plain L1 on pixels (off by default, as in pix2pixHD)
    gw                      with `TrainConfig.gw_loss`: the entropic Gromov-Wasserstein
                            discrepancy between the structures of the generated and the real
                            frame t: pairwise distances between the perceptual loss's VGG
                            features (relu3_3, `GW_FEATURE_LAYER`) sampled at the body joints
                            (`gromov_wasserstein.appearance_gw_loss`; no extra VGG pass)
    gw_pose                 with `gw_loss`, off by default: the paper's pose-to-appearance form,
                            the joints' pairwise distances against those of the generated
                            frame's features at them (`pose_appearance_gw_loss`); its minimum is
                            not 0 for the real frame, which is why `gw` compares with the real

The face refiner's objective has the same terms on the face crop, with their own weights.

With the part GANs (`TrainConfig.part_gan`, `training.part_gan`) the generator's objective adds,
per part group (hands, feet, face), the adversarial and feature-matching terms of that group's
patch discriminator on the crops of frame t (`part_objective`; weights `part_adversarial`,
`part_feature_matching`, and `part_l1` for a plain L1 on the crops, off by default).

The layout generator's objective (REMOT's layout GAN, `TrainConfig.layout`, `training.layout`):
the per-pixel cross-entropy of its class logits against the target's parsing cache
(`layout_cross_entropy`) and the adversarial term of a conditional patch discriminator on
(pose, class probabilities), real being the parsing's one-hot map (`layout_adversarial`;
`layout_objective`).

With the region generator (`TrainConfig.regions`, `networks.region_generator`) the generator's
objective adds `region`: each body region's colours against the real frame inside that region's
predicted layout probability (times the real person's pixels when compositing), an L1 per region
normalised by its area, averaged over the five regions and both frames of the pair
(`region_loss`), so that each region is supervised on its own pixels.

The adversarial loss is LSGAN's (pix2pixHD's choice: least squares towards 1 for real and 0 for
fake) or the hinge loss; `gan_mode` chooses. Each discriminator is trained on the mean of its real
and fake terms.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from motionxfer.networks.discriminator import ScaleOutputs
from motionxfer.training.config import GAN_MODES
from motionxfer.training.gromov_wasserstein import appearance_gw_loss, pose_appearance_gw_loss

GW_FEATURE_LAYER = 2  # of the perceptual loss's five maps: relu3_3, a quarter of the frame's size


@dataclass(frozen=True)
class LossWeights:
    """The weight of every loss term (0 switches a term off)."""

    adversarial: float = 1.0
    temporal_adversarial: float = 1.0
    feature_matching: float = 10.0
    temporal_feature_matching: float = 10.0
    perceptual: float = 10.0
    perceptual_layers: tuple[float, ...] = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
    l1: float = 0.0
    gw: float = 1.0  # gw_loss only: the GW structure term (see the module docstring)
    gw_pose: float = 0.0  # gw_loss only: the pose-to-appearance GW term (off)
    face_adversarial: float = 1.0
    face_feature_matching: float = 10.0
    face_perceptual: float = 10.0
    face_l1: float = 0.0
    part_adversarial: float = 1.0  # part GANs only: fool each part group's discriminator
    part_feature_matching: float = 10.0  # ... and match its features on the real crops
    part_l1: float = 0.0  # ... and L1 on the crops' pixels
    mask: float = 1.0  # compositing only: the painted person mask against the person's pixels
    region: float = 10.0  # regions only: each region's colours against the real frame inside it
    layout_cross_entropy: float = 1.0  # layout only: predicted parsing against the parsing cache
    layout_adversarial: float = 0.1  # ... and fool the layout's patch discriminator

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def adversarial_loss(outputs: list[ScaleOutputs], real: bool, mode: str,
                     for_discriminator: bool) -> torch.Tensor:
    """Sum over scales of the loss on each scale's score map (its last output)."""
    if mode not in GAN_MODES:
        raise ValueError(f"gan_mode must be one of {GAN_MODES}, not {mode!r}")
    total = outputs[0][-1].new_zeros(())
    for scale in outputs:
        scores = scale[-1].float()
        if mode == "lsgan":
            target = torch.ones_like(scores) if real else torch.zeros_like(scores)
            total = total + functional.mse_loss(scores, target)
        elif for_discriminator:
            margin = functional.relu(1 - scores) if real else functional.relu(1 + scores)
            total = total + margin.mean()
        else:
            total = total - scores.mean()
    return total


def feature_matching_loss(fake_outputs: list[ScaleOutputs],
                          real_outputs: list[ScaleOutputs]) -> torch.Tensor:
    """L1 between intermediate discriminator features (the real ones are constants)."""
    total = fake_outputs[0][-1].new_zeros((), dtype=torch.float32)
    scale_weight = 1.0 / len(fake_outputs)
    for fake_scale, real_scale in zip(fake_outputs, real_outputs):
        layers = len(fake_scale) - 1  # all but the score map
        layer_weight = 4.0 / max(layers, 1)
        for fake, real in zip(fake_scale[:-1], real_scale[:-1]):
            total = total + scale_weight * layer_weight * functional.l1_loss(
                fake.float(), real.detach().float()
            )
    return total


class PerceptualLoss(nn.Module):
    """Weighted L1 between VGG16 features; `features(x)` -> 5 maps, x RGB in [-1, 1]."""

    def __init__(self, features: nn.Module, layer_weights: tuple[float, ...]) -> None:
        super().__init__()
        self.features = features.eval()
        for parameter in self.features.parameters():
            parameter.requires_grad_(False)
        self.layer_weights = layer_weights

    def train(self, mode: bool = True) -> PerceptualLoss:  # the VGG stays in eval mode
        super().train(mode)
        self.features.eval()
        return self

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return self.per_sample(fake, real).mean()

    def per_sample(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """The loss of each image (N,) of fake and real (N, 3, H, W); their mean is `forward`."""
        return self.per_sample_and_features(fake, real)[0]

    def per_sample_and_features(self, fake: torch.Tensor, real: torch.Tensor,
                                ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """`per_sample`'s loss (N,) and the feature maps it compared: fake (with the graph) and
        real (without), each one (N, C, h, w) per layer."""
        fake_features = self.features(fake)
        with torch.no_grad():
            real_features = self.features(real)
        if len(fake_features) != len(self.layer_weights):
            raise ValueError(
                f"the perceptual loss has {len(self.layer_weights)} layer weights but the feature "
                f"network returned {len(fake_features)} maps"
            )
        total = fake.new_zeros(fake.shape[0], dtype=torch.float32)
        for weight, fake_map, real_map in zip(self.layer_weights, fake_features, real_features):
            total = total + weight * (fake_map.float() - real_map.float()).abs().mean((1, 2, 3))
        return total, list(fake_features), list(real_features)


@dataclass
class LossTerms:
    """The weighted terms of one objective; `total` is what is back-propagated. `sample_errors`:
    each sample's own error (B,), detached, where the objective gives one (see
    `generator_objective`), for the episodic memory."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    sample_errors: torch.Tensor | None = None

    def as_floats(self, prefix: str) -> dict[str, float]:
        values = {f"{prefix}{name}": float(value.detach()) for name, value in self.terms.items()}
        values[f"{prefix}total"] = float(self.total.detach())
        return values


def _weighted(terms: dict[str, tuple[float, torch.Tensor | None]]) -> LossTerms:
    kept = {name: weight * value.float() for name, (weight, value) in terms.items()
            if weight and value is not None}
    if not kept:
        raise ValueError("every loss weight is 0: there is nothing to train")
    return LossTerms(total=torch.stack(list(kept.values())).sum(), terms=kept)


def generator_objective(
    weights: LossWeights,
    gan_mode: str,
    fake_spatial: list[list[ScaleOutputs]],
    real_spatial: list[list[ScaleOutputs]],
    fake_temporal: list[ScaleOutputs] | None,
    real_temporal: list[ScaleOutputs] | None,
    fake_frames: list[torch.Tensor],
    real_frames: list[torch.Tensor],
    perceptual: PerceptualLoss | None,
    masks: list[torch.Tensor] | None = None,
    plate: torch.Tensor | None = None,
    joints: torch.Tensor | None = None,
    regions: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> LossTerms:
    """The generator's loss on one or more generated frames (each with its discriminator outputs)
    and, when given, on the temporal discriminator's view of the generated pair. Compositing:
    `masks` are the painted person masks of the frames, `plate` the background they were
    composited over. `joints` (B, J, 3), the last frame's joints in its pixels (x, y,
    visibility): the GW structure term on that frame (needs the perceptual loss; a window step
    passes its frames as one frame of B * N). `regions`:
    the region generator's (regions, their layout weights) of each frame, for `region_loss`."""
    count = len(fake_frames)
    adversarial = sum(
        adversarial_loss(fake, True, gan_mode, False) for fake in fake_spatial) / count
    matching = sum(
        feature_matching_loss(fake, real) for fake, real in zip(fake_spatial, real_spatial)
    ) / count
    terms: dict[str, tuple[float, torch.Tensor | None]] = {
        "adversarial": (weights.adversarial, adversarial),
        "feature_matching": (weights.feature_matching, matching),
    }
    if fake_temporal is not None and real_temporal is not None:
        terms["temporal_adversarial"] = (
            weights.temporal_adversarial, adversarial_loss(fake_temporal, True, gan_mode, False)
        )
        terms["temporal_feature_matching"] = (
            weights.temporal_feature_matching, feature_matching_loss(fake_temporal, real_temporal)
        )
    # The frames are the same size: one batch through VGG gives the mean over frames at once.
    all_fakes, all_reals = torch.cat(fake_frames), torch.cat(real_frames)  # (count * B, 3, H, W)
    wants_gw = joints is not None and bool(weights.gw or weights.gw_pose)
    if wants_gw and perceptual is None:
        raise ValueError("the GW loss reads the perceptual loss's features: train with it")
    if perceptual is not None and (weights.perceptual or wants_gw):
        per_image, fake_features, real_features = perceptual.per_sample_and_features(
            all_fakes, all_reals)  # (count * B,)
        if weights.perceptual:
            terms["perceptual"] = (weights.perceptual, per_image.mean())
        frame_size = (all_fakes.shape[-1], all_fakes.shape[-2])
        if wants_gw and joints is not None and weights.gw:
            terms["gw"] = (weights.gw, structure_loss(
                joints, fake_features[GW_FEATURE_LAYER], real_features[GW_FEATURE_LAYER],
                frame_size))
        if wants_gw and joints is not None and weights.gw_pose:
            terms["gw_pose"] = (weights.gw_pose, pose_structure_loss(
                joints, fake_features[GW_FEATURE_LAYER], frame_size))
    else:  # without the VGG: the pixels' L1, a cheap stand-in for the sample errors
        per_image = (all_fakes.detach().float() - all_reals.float()).abs().mean((1, 2, 3))
    if weights.l1:
        terms["l1"] = (weights.l1, functional.l1_loss(all_fakes.float(), all_reals.float()))
    if masks is not None and plate is not None and weights.mask:
        wanted = person_pixels(all_reals, plate)
        terms["mask"] = (weights.mask, functional.l1_loss(torch.cat(masks).float(), wanted))
    if regions is not None and weights.region:
        terms["region"] = (weights.region, sum(
            region_loss(colours, layout, real, person_pixels(real, plate) if plate is not None
                        else None)
            for (colours, layout), real in zip(regions, real_frames)) / len(regions))
    objective = _weighted(terms)
    # Each sample's error: the unweighted perceptual term (else the pixels' L1) averaged over its
    # frames (the pair t-1, t of EDN's step).
    objective.sample_errors = per_image.detach().float().reshape(count, -1).mean(0)  # (B,)
    return objective


def structure_loss(joints: torch.Tensor, fake_features: torch.Tensor,
                   real_features: torch.Tensor, frame_size: tuple[int, int]) -> torch.Tensor:
    """The GW structure term on the last frame of each pair: joints (B, J, 3) in pixels of a
    (width, height) frame, fake and real features (count * B, C, h, w), the last B of which
    belong to that frame. In float32 outside autocast (the solver's logsumexp needs it)."""
    batch = joints.shape[0]
    with torch.autocast(fake_features.device.type, enabled=False):
        return appearance_gw_loss(
            joints[..., :2].float(), fake_features[-batch:].float(),
            real_features[-batch:].float(), visibility=joints[..., 2].float(),
            image_size=frame_size)


def pose_structure_loss(joints: torch.Tensor, fake_features: torch.Tensor,
                        frame_size: tuple[int, int]) -> torch.Tensor:
    """The pose-to-appearance GW term on the last frame of each pair (as `structure_loss`)."""
    batch = joints.shape[0]
    with torch.autocast(fake_features.device.type, enabled=False):
        return pose_appearance_gw_loss(
            joints[..., :2].float(), fake_features[-batch:].float(),
            visibility=joints[..., 2].float(), image_size=frame_size)


def person_pixels(frames: torch.Tensor, plate: torch.Tensor, threshold: float = 0.06,
                  softness: float = 0.01) -> torch.Tensor:
    """Where real frames (B, 3, H, W) in [-1, 1] differ from the background plate (1, 3, H', W'):
    a soft person mask (B, 1, H, W) in [0, 1] from the largest channel difference (as a fraction
    of full scale: 0.06 is 15 grey levels), ramping from 0 to 1 around `threshold` over about
    `softness`. The target the painted mask learns from: the person's pixels, found against the
    person's own room."""
    plate = functional.interpolate(plate.float(), size=frames.shape[-2:], mode="bilinear",
                                   align_corners=False)
    difference = (frames.float() - plate).abs().amax(dim=1, keepdim=True) * 0.5
    return torch.sigmoid((difference - threshold) / softness)


def region_loss(regions: torch.Tensor, weights: torch.Tensor, real: torch.Tensor,
                person: torch.Tensor | None = None) -> torch.Tensor:
    """Regions (B, K, 3, H, W) against the real frame (B, 3, H, W), all in [-1, 1], inside their
    weights (B, K, 1, H, W) in [0, 1] (times `person` (B, 1, H, W), the real person's pixels,
    when given): each region's weighted L1 over its weight's sum (at least one pixel's), averaged
    over the K regions. A region absent from the batch adds 0."""
    weights = weights.float()
    if person is not None:
        weights = weights * person.float().unsqueeze(1)
    difference = (regions.float() - real.float().unsqueeze(1)).abs().mean(2, keepdim=True)
    area = weights.sum((0, 2, 3, 4)).clamp_min(1.0)  # (K,)
    return ((weights * difference).sum((0, 2, 3, 4)) / area).mean()


def discriminator_objective(gan_mode: str, real_outputs: list[ScaleOutputs],
                            fake_outputs: list[ScaleOutputs]) -> torch.Tensor:
    """The mean of the real and the fake terms (fake outputs from detached generator frames)."""
    return 0.5 * (
        adversarial_loss(real_outputs, True, gan_mode, True)
        + adversarial_loss(fake_outputs, False, gan_mode, True)
    )


def face_objective(
    weights: LossWeights,
    gan_mode: str,
    fake_outputs: list[ScaleOutputs],
    real_outputs: list[ScaleOutputs],
    refined_crops: torch.Tensor,
    real_crops: torch.Tensor,
    perceptual: PerceptualLoss | None,
) -> LossTerms:
    """The face refiner's loss on refined face crops."""
    terms: dict[str, tuple[float, torch.Tensor | None]] = {
        "adversarial": (weights.face_adversarial,
                        adversarial_loss(fake_outputs, True, gan_mode, False)),
        "feature_matching": (weights.face_feature_matching,
                             feature_matching_loss(fake_outputs, real_outputs)),
    }
    if perceptual is not None and weights.face_perceptual:
        terms["perceptual"] = (weights.face_perceptual, perceptual(refined_crops, real_crops))
    if weights.face_l1:
        terms["l1"] = (weights.face_l1,
                       functional.l1_loss(refined_crops.float(), real_crops.float()))
    return _weighted(terms)


def part_objective(
    weights: LossWeights,
    gan_mode: str,
    fake_outputs: list[ScaleOutputs],
    real_outputs: list[ScaleOutputs],
    fake_crops: torch.Tensor,
    real_crops: torch.Tensor,
) -> LossTerms:
    """The generator's loss on one part group's crops of generated frames (`part_gan`)."""
    terms: dict[str, tuple[float, torch.Tensor | None]] = {
        "adversarial": (weights.part_adversarial,
                        adversarial_loss(fake_outputs, True, gan_mode, False)),
        "feature_matching": (weights.part_feature_matching,
                             feature_matching_loss(fake_outputs, real_outputs)),
    }
    if weights.part_l1:
        terms["l1"] = (weights.part_l1, functional.l1_loss(fake_crops.float(), real_crops.float()))
    return _weighted(terms)


def layout_objective(weights: LossWeights, gan_mode: str, fake_outputs: list[ScaleOutputs],
                     logits: torch.Tensor, labels: torch.Tensor) -> LossTerms:
    """The layout generator's loss: cross-entropy of logits (B, classes, H, W) against labels
    (B, H, W) int64, and the adversarial term of the discriminator's outputs on the generated
    layout."""
    return _weighted({
        "cross_entropy": (weights.layout_cross_entropy,
                          functional.cross_entropy(logits.float(), labels)),
        "adversarial": (weights.layout_adversarial,
                        adversarial_loss(fake_outputs, True, gan_mode, for_discriminator=False)),
    })
