"""Every loss term of the animator and its weight (FOMM, Sec. 3.4).

    perceptual             sum over pyramid scales and feature layers of weight * mean |F(x) - F(y)|
                           between the prediction and the driving frame (F: a frozen VGG16)
    equivariance_value     mean |kp(X) - T(kp(T-warped X))|: keypoints follow a random TPS T
    equivariance_jacobian  mean |I - J(X)^-1 (dT(kp_Y) J(Y))|, Y the T-warped X: Jacobians follow
                           T's local linearisation
    generator_gan          LSGAN: sum over scales of mean (1 - D(prediction))^2   (optional)
    feature_matching       sum over scales and layers of weight * mean |D_l(real) - D_l(fake)|
    discriminator_gan      LSGAN: mean (1 - D(real))^2 + D(fake)^2, for the discriminator's step

Every value a function returns is already multiplied by its weight; "total" is their sum.
A weight of 0 skips the term (and its network evaluations).

The discriminator, when given, is any module mapping an image (B, 3, H, W) to one list of layer
outputs per scale, the last of each list being the score map (motionxfer.networks.discriminator's
MultiScaleDiscriminator with input_channels = 3 fits). FOMM's discriminator also sees keypoint
heatmaps; that variant is for the integration step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from motionxfer.animation.dense_motion import DenseMotionNetwork
from motionxfer.animation.generator import OcclusionAwareGenerator
from motionxfer.animation.geometry import invert_2x2
from motionxfer.animation.hourglass import AntiAliasDownsample
from motionxfer.animation.keypoint_detector import KeypointDetector, Keypoints
from motionxfer.animation.transforms import RandomTransformConfig, ThinPlateSplineTransform
from motionxfer.networks.vgg import VGG16Features

# VGG16's first ReLU of each block: the counterpart of FOMM's VGG19 relu1_1 ... relu5_1.
PERCEPTUAL_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")

FeatureExtractor = Callable[[torch.Tensor], Sequence[torch.Tensor]]
Discriminator = Callable[[torch.Tensor], Sequence[Sequence[torch.Tensor]]]


@dataclass(frozen=True)
class AnimatorLossWeights:
    """The weights of every loss term (FOMM's defaults; GAN terms off)."""

    perceptual_scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)  # image pyramid, 1 / integer
    perceptual: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0, 10.0)  # one per feature layer
    equivariance_value: float = 10.0
    equivariance_jacobian: float = 10.0
    generator_gan: float = 0.0
    discriminator_gan: float = 1.0
    feature_matching: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0)  # one per discriminator layer

    def __post_init__(self) -> None:
        for scale in self.perceptual_scales:
            if not 0 < scale <= 1 or abs(round(1 / scale) * scale - 1) > 1e-6:
                raise ValueError(f"perceptual scales must be 1 / an integer, not {scale}")
        weights = (*self.perceptual, *self.feature_matching, self.equivariance_value,
                   self.equivariance_jacobian, self.generator_gan, self.discriminator_gan)
        if any(weight < 0 for weight in weights):
            raise ValueError("loss weights cannot be negative")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def perceptual_feature_extractor(from_cache: bool = True,
                                 layers: tuple[str, ...] = PERCEPTUAL_LAYERS) -> nn.Module:
    """A frozen VGG16 read at `layers`, taking images in [-1, 1]: with the cached ImageNet
    weights (`from_cache`), else randomly initialised (for tests)."""

    if from_cache:
        return VGG16Features.from_cache(layers=layers)
    network = VGG16Features(layers=layers)
    network.eval()
    network.requires_grad_(False)
    return network


def multiscale_perceptual_loss(prediction: torch.Tensor, target: torch.Tensor,
                               feature_extractor: FeatureExtractor, scales: Sequence[float],
                               layer_weights: Sequence[float]) -> torch.Tensor:
    """prediction, target (B, C, H, W) in [0, 1] -> the weighted scalar.

    Each scale downsamples both images (Gaussian anti-aliasing); the feature extractor sees them
    mapped to [-1, 1] (motionxfer's convention for ImageNet networks). The target's features are
    not differentiated."""
    total = prediction.new_zeros(())
    for scale in scales:
        downsample = AntiAliasDownsample(prediction.shape[1], scale).to(prediction.device)
        predicted = feature_extractor(downsample(prediction) * 2 - 1)
        with torch.no_grad():
            wanted = feature_extractor(downsample(target) * 2 - 1)
        if len(predicted) != len(layer_weights):
            raise ValueError(f"{len(layer_weights)} perceptual layer weights for "
                             f"{len(predicted)} feature maps")
        for weight, a, b in zip(layer_weights, predicted, wanted):
            if weight:
                total = total + weight * (a - b).abs().mean()
    return total


def equivariance_losses(keypoint_detector: nn.Module, image: torch.Tensor, keypoints: Keypoints,
                        transform: ThinPlateSplineTransform) -> tuple[torch.Tensor,
                                                                       torch.Tensor | None]:
    """Unweighted (value loss, Jacobian loss or None without Jacobians).

    image (B, C, H, W) with its detected `keypoints`; the detector runs again on
    `transform.transform_frame(image)`. kp(image) should equal T(kp(transformed)), and
    J(image) should equal dT(kp(transformed)) J(transformed), measured as
    |I - J(image)^-1 dT J(transformed)| (FOMM's formulation)."""
    transformed_keypoints: Keypoints = keypoint_detector(transform.transform_frame(image))
    value_loss = (keypoints.value
                  - transform.warp_coordinates(transformed_keypoints.value)).abs().mean()
    if keypoints.jacobian is None or transformed_keypoints.jacobian is None:
        return value_loss, None
    carried = transform.jacobian(transformed_keypoints.value) @ transformed_keypoints.jacobian
    product = invert_2x2(keypoints.jacobian) @ carried  # (B, K, 2, 2), ideally I
    identity = torch.eye(2, dtype=product.dtype, device=product.device)
    return value_loss, (identity - product).abs().mean()


def _discriminator_scores(outputs: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
    return [scale[-1] for scale in outputs]


def generator_losses(keypoint_detector: KeypointDetector, dense_motion: DenseMotionNetwork,
                     generator: OcclusionAwareGenerator, source: torch.Tensor,
                     driving: torch.Tensor, weights: AnimatorLossWeights,
                     feature_extractor: FeatureExtractor,
                     transform_config: RandomTransformConfig | None = None,
                     discriminator: Discriminator | None = None,
                     random: torch.Generator | None = None,
                     ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One training step's losses: reconstruct `driving` (B, C, H, W) in [0, 1] from `source`.

    transform_config: the equivariance losses' random deformations (None: FOMM's defaults);
    random: the generator that draws them (None: torch's global one).

    Returns (losses, generated): losses maps each active term's name to its weighted scalar and
    "total" to their sum; generated is the generator's output dict plus "source_keypoints" and
    "driving_keypoints" values (B, K, 2), for logging and the discriminator's step."""
    source_keypoints = keypoint_detector(source)
    driving_keypoints = keypoint_detector(driving)
    motion = dense_motion(source, source_keypoints, driving_keypoints)
    generated = generator(source, motion)
    prediction = generated["prediction"]
    losses: dict[str, torch.Tensor] = {}

    if any(weights.perceptual):
        losses["perceptual"] = multiscale_perceptual_loss(
            prediction, driving, feature_extractor, weights.perceptual_scales, weights.perceptual)

    if weights.equivariance_value or weights.equivariance_jacobian:
        transform = ThinPlateSplineTransform.random(driving.shape[0],
                                                    transform_config or RandomTransformConfig(),
                                                    device=driving.device, generator=random)
        value_loss, jacobian_loss = equivariance_losses(keypoint_detector, driving,
                                                        driving_keypoints, transform)
        if weights.equivariance_value:
            losses["equivariance_value"] = weights.equivariance_value * value_loss
        if weights.equivariance_jacobian and jacobian_loss is not None:
            losses["equivariance_jacobian"] = weights.equivariance_jacobian * jacobian_loss

    if weights.generator_gan:
        if discriminator is None:
            raise ValueError("generator_gan is weighted but no discriminator was given")
        fake_outputs = discriminator(prediction)
        losses["generator_gan"] = weights.generator_gan * sum(
            ((1 - score) ** 2).mean() for score in _discriminator_scores(fake_outputs))
        if any(weights.feature_matching):
            with torch.no_grad():
                real_outputs = discriminator(driving)
            matching = prediction.new_zeros(())
            for real_scale, fake_scale in zip(real_outputs, fake_outputs):
                for weight, real, fake in zip(weights.feature_matching, real_scale[:-1],
                                              fake_scale[:-1]):
                    if weight:
                        matching = matching + weight * (real - fake).abs().mean()
            losses["feature_matching"] = matching

    losses["total"] = sum(losses.values(), prediction.new_zeros(()))
    generated["source_keypoints"] = source_keypoints.value
    generated["driving_keypoints"] = driving_keypoints.value
    return losses, generated


def discriminator_losses(discriminator: Discriminator, driving: torch.Tensor,
                         prediction: torch.Tensor,
                         weights: AnimatorLossWeights) -> dict[str, torch.Tensor]:
    """The discriminator's LSGAN loss on a real frame and a generated one (detached here)."""
    real = _discriminator_scores(discriminator(driving))
    fake = _discriminator_scores(discriminator(prediction.detach()))
    value = sum((((1 - r) ** 2).mean() + (f ** 2).mean() for r, f in zip(real, fake)),
                driving.new_zeros(()))
    return {"discriminator_gan": weights.discriminator_gan * value,
            "total": weights.discriminator_gan * value}
