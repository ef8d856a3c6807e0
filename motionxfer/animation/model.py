"""The animator: its whole configuration, its presets, and the module holding its three networks.

`AnimatorConfig` is what a checkpoint stores (`to_dict` / `from_dict`, strict). Presets are data
files, models/animator_<name>.toml, read as strictly: `preset("tiny")`
is 64x64 with few channels, to train in seconds on a laptop CPU and in tests; `preset("256")` is
the paper's VoxCeleb / TaiChi configuration at 256x256.

`Animator.reconstruct(source, driving)` is the training forward pass (keypoints of both frames,
dense motion, generation); `Animator.animate(source_image, driving_keypoints)` renders the source
moved to given keypoints (from `motion.relative_motion` or `motion.absolute_motion`), and
`Animator.transfer` does both for a whole driving video.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import tomllib
import torch
from torch import nn

from motionxfer.animation.dense_motion import DenseMotionConfig, DenseMotionNetwork
from motionxfer.animation.generator import OcclusionAwareGenerator, OcclusionAwareGeneratorConfig
from motionxfer.animation.keypoint_detector import (
    KeypointDetector,
    KeypointDetectorConfig,
    Keypoints,
)
from motionxfer.animation.losses import AnimatorLossWeights
from motionxfer.animation.motion import absolute_motion, relative_motion
from motionxfer.animation.transforms import RandomTransformConfig
from motionxfer.errors import BadInput


@dataclass(frozen=True)
class AnimatorConfig:
    """Everything that defines an animator: architecture, loss weights, equivariance transforms.

    The ablations of the paper are `ablation(config, use_occlusion=False)` and
    `ablation(config, estimate_jacobian=False)`."""

    image_size: int = 256  # height and width of the (square) frames
    keypoint_detector: KeypointDetectorConfig = field(default_factory=KeypointDetectorConfig)
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)
    generator: OcclusionAwareGeneratorConfig = field(
        default_factory=OcclusionAwareGeneratorConfig)
    loss_weights: AnimatorLossWeights = field(default_factory=AnimatorLossWeights)
    transform: RandomTransformConfig = field(default_factory=RandomTransformConfig)

    def __post_init__(self) -> None:
        detector, motion, generator = self.keypoint_detector, self.dense_motion, self.generator
        if motion.num_keypoints != detector.num_keypoints:
            raise ValueError(f"dense_motion.num_keypoints ({motion.num_keypoints}) differs from "
                             f"keypoint_detector.num_keypoints ({detector.num_keypoints})")
        if not detector.channels == motion.channels == generator.channels:
            raise ValueError("keypoint_detector, dense_motion and generator channels differ")
        if self.image_size % generator.size_multiple:
            raise ValueError(f"image_size {self.image_size} is not a multiple of the generator's "
                             f"{generator.size_multiple}")
        for name, sub in (("keypoint_detector", detector), ("dense_motion", motion)):
            step = round(1 / sub.scale_factor)
            multiple = 2 ** sub.num_blocks
            if self.image_size % step or (self.image_size // step) % multiple:
                raise ValueError(f"image_size {self.image_size} at {name}.scale_factor "
                                 f"{sub.scale_factor} is not a multiple of 2 ** num_blocks = "
                                 f"{multiple}")

    @property
    def num_keypoints(self) -> int:
        return self.keypoint_detector.num_keypoints

    @property
    def estimate_jacobian(self) -> bool:
        return self.keypoint_detector.estimate_jacobian

    @property
    def use_occlusion(self) -> bool:
        return self.dense_motion.use_occlusion

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AnimatorConfig:
        """The inverse of to_dict, strict: an unknown or missing table or key is BadInput."""
        parts = {name: values_class for name, values_class in _PARTS}
        top = {f.name for f in dataclasses.fields(cls)}
        _check_keys(values, top, "the animator config", required=top)
        if not _is_number(values["image_size"]) or int(values["image_size"]) != values["image_size"]:
            raise BadInput(f"image_size = {values['image_size']!r} in the animator config",
                           hint="give a whole number of pixels")
        built: dict[str, Any] = {"image_size": int(values["image_size"])}
        for name, part_class in parts.items():
            built[name] = _build(part_class, values[name], f"the animator config's [{name}]")
        try:
            return cls(**built)
        except ValueError as error:
            raise BadInput(f"the animator config: {error}", hint="fix that setting") from error


_PARTS = (("keypoint_detector", KeypointDetectorConfig), ("dense_motion", DenseMotionConfig),
          ("generator", OcclusionAwareGeneratorConfig), ("loss_weights", AnimatorLossWeights),
          ("transform", RandomTransformConfig))


def _check_keys(values: Any, known: set[str], where: str,
                required: Collection[str] = ()) -> None:
    if not isinstance(values, dict):
        raise BadInput(f"{where} is not a table", hint="write it as a table of settings")
    unknown, missing = sorted(set(values) - known), sorted(set(required) - set(values))
    if unknown or missing:
        problem = f"unknown {', '.join(unknown)}" if unknown else f"missing {', '.join(missing)}"
        raise BadInput(f"{problem} in {where}", hint=f"the settings are: {', '.join(sorted(known))}")


def _build(cls: type, values: Any, where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(values, set(fields), where, required=set(fields))
    converted = {}
    for name, value in values.items():
        default = fields[name].default
        if isinstance(default, tuple) and isinstance(value, (list, tuple)):
            converted[name] = tuple(float(item) for item in value)
        elif isinstance(default, bool) and isinstance(value, bool):
            converted[name] = value
        elif (not isinstance(default, bool) and _is_number(value)
              and (isinstance(default, float) or isinstance(value, int))):
            converted[name] = type(default)(value)  # an int where a float goes, never the reverse
        else:
            raise BadInput(f"{where}: {name} = {value!r} is not like {default!r}",
                           hint="give a value of the default's type")
    try:
        return cls(**converted)
    except ValueError as error:
        raise BadInput(f"{where}: {error}", hint="fix that setting") from error


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def ablation(config: AnimatorConfig, use_occlusion: bool | None = None,
             estimate_jacobian: bool | None = None) -> AnimatorConfig:
    """The config with the occlusion map and / or the Jacobians switched (None: unchanged)."""
    if use_occlusion is not None:
        config = dataclasses.replace(config, dense_motion=dataclasses.replace(
            config.dense_motion, use_occlusion=use_occlusion))
    if estimate_jacobian is not None:
        config = dataclasses.replace(config, keypoint_detector=dataclasses.replace(
            config.keypoint_detector, estimate_jacobian=estimate_jacobian))
    return config


PRESET_PACKAGE = "motionxfer.model_files"  # models/, shipped with the package


def preset_names() -> list[str]:
    """The animator presets shipped in models/animator_<name>.toml."""
    files = importlib.resources.files(PRESET_PACKAGE)
    return sorted(entry.name[len("animator_"):-len(".toml")] for entry in files.iterdir()
                  if entry.name.startswith("animator_") and entry.name.endswith(".toml"))


def preset(name: str) -> AnimatorConfig:
    """The named preset's config, read strictly from models/animator_<name>.toml: "tiny" (64x64,
    CPU) or "256" (the paper's)."""
    resource = importlib.resources.files(PRESET_PACKAGE) / f"animator_{name}.toml"
    if not resource.is_file():
        raise BadInput(f"no animator preset {name!r}",
                       hint=f"the presets are: {', '.join(preset_names())}")
    try:
        values = tomllib.loads(resource.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise BadInput(f"animator_{name}.toml is not valid TOML: {error}",
                       hint="reinstall motionxfer") from error
    return AnimatorConfig.from_dict(values)


class Animator(nn.Module):
    """The keypoint detector, the dense motion network and the generator of one animator.

    Images are (B, C, S, S) RGB in [0, 1], S = config.image_size."""

    def __init__(self, config: AnimatorConfig) -> None:
        super().__init__()
        self.config = config
        self.keypoint_detector = KeypointDetector(config.keypoint_detector)
        self.dense_motion = DenseMotionNetwork(config.dense_motion)
        self.generator = OcclusionAwareGenerator(config.generator)

    def _check_image(self, image: torch.Tensor, name: str) -> None:
        size, channels = self.config.image_size, self.config.generator.channels
        if image.dim() != 4 or tuple(image.shape[1:]) != (channels, size, size):
            raise BadInput(f"{name} is {tuple(image.shape)}, the animator takes "
                           f"(B, {channels}, {size}, {size})",
                           hint=f"resize the frames to {size}x{size}")

    def detect(self, image: torch.Tensor) -> Keypoints:
        """image (B, C, S, S) -> its keypoints and Jacobians."""
        self._check_image(image, "the image")
        return self.keypoint_detector(image)

    def animate(self, source_image: torch.Tensor, driving_keypoints: Keypoints,
                source_keypoints: Keypoints | None = None) -> dict[str, torch.Tensor]:
        """The source image (B, C, S, S) moved to `driving_keypoints` (B, K, 2): the generator's
        output dict (see OcclusionAwareGenerator). Source keypoints are detected unless given."""
        self._check_image(source_image, "the source image")
        if source_keypoints is None:
            source_keypoints = self.keypoint_detector(source_image)
        motion = self.dense_motion(source_image, source_keypoints, driving_keypoints)
        return self.generator(source_image, motion)

    def reconstruct(self, source: torch.Tensor, driving: torch.Tensor) -> dict[str, torch.Tensor]:
        """The training forward pass: `driving` (B, C, S, S) rendered from `source`."""
        self._check_image(driving, "the driving image")
        return self.animate(source, self.keypoint_detector(driving))

    forward = reconstruct

    @torch.no_grad()
    def transfer(self, source_image: torch.Tensor, driving_frames: torch.Tensor,
                 relative: bool = True, adapt_movement_scale: bool = True,
                 batch_size: int = 8) -> torch.Tensor:
        """Animate one source image (1, C, S, S) by a driving video (T, C, S, S) -> (T, C, S, S).

        relative: FOMM's relative transfer against the video's first frame (else absolute)."""
        self._check_image(source_image, "the source image")
        self._check_image(driving_frames, "the driving frames")
        if source_image.shape[0] != 1:
            raise BadInput(f"{source_image.shape[0]} source images", hint="give exactly one")
        if batch_size < 1:
            raise BadInput(f"batch_size {batch_size}", hint="give a batch size of at least 1")
        source_keypoints = self.keypoint_detector(source_image)
        initial = self.keypoint_detector(driving_frames[:1])
        frames = []
        for start in range(0, driving_frames.shape[0], batch_size):
            chunk = driving_frames[start:start + batch_size]
            driving = self.keypoint_detector(chunk)
            count = chunk.shape[0]
            source_batch = Keypoints(source_keypoints.value.expand(count, -1, -1),
                                     None if source_keypoints.jacobian is None else
                                     source_keypoints.jacobian.expand(count, -1, -1, -1))
            if relative:
                wanted = relative_motion(source_keypoints, driving, initial,
                                         adapt_movement_scale=adapt_movement_scale)
            else:
                wanted = absolute_motion(driving)
            images = source_image.expand(count, -1, -1, -1)
            frames.append(self.animate(images, wanted, source_batch)["prediction"])
        return torch.cat(frames)
