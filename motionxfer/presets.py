"""Model presets: architecture and training defaults, read from `models/preset_<name>.toml`.

The models/ folder ships as the package `motionxfer.model_files`, so an installed wheel finds the
presets the way a checkout does. Loading is strict: an unknown key anywhere is an error naming the
known ones. The channel counts that follow from the data (stick figure and image channels, the
discriminators' input channels) are set here, never in a preset.

    size = 512                      frame height in pixels (the width keeps the video's aspect)
    [generator]                     motionxfer.networks.generator.GeneratorConfig
    [discriminator]                 DiscriminatorConfig of the multi-scale spatial discriminator
    [temporal_discriminator]        DiscriminatorConfig of the temporal discriminator
    [face_refiner]                  motionxfer.networks.face_refiner.FaceRefinerConfig
    [layout_generator]              motionxfer.networks.layout_generator.LayoutGeneratorConfig
                                    (used with `train.layout`; optional, the defaults otherwise)
    [losses]                        motionxfer.training.losses.LossWeights
    [train]                         motionxfer.training.config.TrainConfig
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from dataclasses import dataclass, field
from typing import Any

import tomllib

from motionxfer.conditioning import Conditioning
from motionxfer.config import from_dict
from motionxfer.errors import BadInput, CheckpointError
from motionxfer.networks.discriminator import DiscriminatorConfig
from motionxfer.networks.face_refiner import FaceRefinerConfig
from motionxfer.networks.generator import GeneratorConfig
from motionxfer.networks.layout_generator import LayoutGeneratorConfig
from motionxfer.training.config import TrainConfig
from motionxfer.training.losses import LossWeights

DEFAULT_PRESET = "512"
PRESET_PACKAGE = "motionxfer.model_files"
IMAGE_CHANNELS = 3
DERIVED_KEYS = ("pose_channels", "image_channels", "input_channels")
TABLES = ("generator", "discriminator", "temporal_discriminator", "face_refiner", "losses", "train",
          "layout_generator")


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    size: int  # working frame height in pixels
    generator: GeneratorConfig
    discriminator: DiscriminatorConfig
    temporal_discriminator: DiscriminatorConfig
    face_refiner: FaceRefinerConfig
    losses: LossWeights
    train: TrainConfig
    layout_generator: LayoutGeneratorConfig = field(default_factory=LayoutGeneratorConfig)

    def __post_init__(self) -> None:
        if self.size % self.generator.size_multiple:
            raise ValueError(
                f"preset size {self.size} is not a multiple of {self.generator.size_multiple}"
            )

    def conditioned(self, conditioning: Conditioning) -> Preset:
        """The preset with every network's pose input sized for `conditioning` (the layout
        generator reads the pose channels alone)."""
        return dataclasses.replace(self, **_channel_configs(
            self.generator, self.discriminator, self.temporal_discriminator, self.face_refiner,
            conditioning.channels), layout_generator=dataclasses.replace(
                self.layout_generator, pose_channels=conditioning.pose_channels))


def _channel_configs(generator: GeneratorConfig, discriminator: DiscriminatorConfig,
                     temporal: DiscriminatorConfig, face_refiner: FaceRefinerConfig,
                     pose_channels: int) -> dict[str, Any]:
    """The four network configs with the channel counts that follow from the pose input."""
    generator = dataclasses.replace(generator, pose_channels=pose_channels,
                                    image_channels=IMAGE_CHANNELS)
    pair_channels = pose_channels + IMAGE_CHANNELS
    return {
        "generator": generator,
        "discriminator": dataclasses.replace(discriminator, input_channels=pair_channels),
        "temporal_discriminator": dataclasses.replace(temporal, input_channels=2 * pair_channels),
        "face_refiner": dataclasses.replace(face_refiner, pose_channels=pose_channels,
                                            image_channels=IMAGE_CHANNELS),
    }


def preset_names() -> list[str]:
    """The presets shipped with motionxfer, smallest first."""
    files = importlib.resources.files(PRESET_PACKAGE)
    names = [
        entry.name[len("preset_"):-len(".toml")]
        for entry in files.iterdir()
        if entry.name.startswith("preset_") and entry.name.endswith(".toml")
    ]
    return sorted(names, key=lambda name: (name.isdigit(), int(name) if name.isdigit() else 0, name))


def load_preset(name: str) -> Preset:
    """The preset `name` ("tiny", "256", "512", "1024")."""
    resource = importlib.resources.files(PRESET_PACKAGE) / f"preset_{name}.toml"
    if not resource.is_file():
        raise BadInput(
            f"there is no preset named '{name}'",
            hint=f"choose one of: {', '.join(preset_names())}",
        )
    where = f"preset_{name}.toml"
    try:
        values = tomllib.loads(resource.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise BadInput(f"{where} is not valid TOML: {error}",
                       hint="reinstall motionxfer") from error
    return preset_from_dict(name, values, where)


def preset_from_dict(name: str, values: dict[str, Any], where: str) -> Preset:
    known = {"description", "size", *TABLES}
    unknown = sorted(set(values) - known)
    if unknown:
        raise BadInput(f"unknown key(s) {', '.join(unknown)} in {where}",
                       hint=f"the known keys are: {', '.join(sorted(known))}")
    if not isinstance(values.get("size"), int):
        raise BadInput(f"{where} needs an integer 'size' (the frame height in pixels)",
                       hint="add e.g. size = 256")
    tables = {}
    for table in TABLES:
        content = values.get(table, {})
        if not isinstance(content, dict):
            raise BadInput(f"[{table}] of {where} must be a table", hint=f"write it as [{table}]")
        derived = sorted(set(content) & set(DERIVED_KEYS))
        if derived:
            raise BadInput(
                f"{', '.join(derived)} in [{table}] of {where} cannot be set in a preset",
                hint="remove it: motionxfer sets the channel counts from the stick figure",
            )
        tables[table] = content

    try:
        return _build_preset(name, values, tables, where)
    except ValueError as error:
        raise BadInput(f"{where}: {error}", hint="fix the preset's values") from error


def _build_preset(name: str, values: dict[str, Any], tables: dict[str, dict[str, Any]],
                  where: str) -> Preset:
    networks = _channel_configs(
        from_dict(GeneratorConfig, tables["generator"], f"[generator] of {where}"),
        from_dict(DiscriminatorConfig, tables["discriminator"], f"[discriminator] of {where}"),
        from_dict(DiscriminatorConfig, tables["temporal_discriminator"],
                  f"[temporal_discriminator] of {where}"),
        from_dict(FaceRefinerConfig, tables["face_refiner"], f"[face_refiner] of {where}"),
        Conditioning().channels,  # the RGB stick figure until training chooses (`conditioned`)
    )
    return Preset(
        name=name,
        description=str(values.get("description", "")),
        size=values["size"],
        losses=from_dict(LossWeights, tables["losses"], f"[losses] of {where}"),
        train=from_dict(TrainConfig, tables["train"], f"[train] of {where}"),
        layout_generator=from_dict(LayoutGeneratorConfig, tables["layout_generator"],
                                   f"[layout_generator] of {where}"),
        **networks,
    )


def preset_configs(preset: Preset) -> dict[str, Any]:
    """Every config of the preset as plain dicts (what a checkpoint stores)."""
    return {
        "generator": preset.generator.to_dict(),
        "discriminator": preset.discriminator.to_dict(),
        "temporal_discriminator": preset.temporal_discriminator.to_dict(),
        "face_refiner": preset.face_refiner.to_dict(),
        "losses": preset.losses.to_dict(),
        "train": dataclasses.asdict(preset.train),
        "layout_generator": preset.layout_generator.to_dict(),
    }


def preset_from_configs(name: str, size: int, configs: dict[str, Any], where: str) -> Preset:
    """The inverse of `preset_configs` (resuming takes the architecture from the checkpoint)."""
    try:
        return Preset(
            name=name, description=f"from {where}", size=size,
            generator=from_dict(GeneratorConfig, configs["generator"], where),
            discriminator=from_dict(DiscriminatorConfig, configs["discriminator"], where),
            temporal_discriminator=from_dict(DiscriminatorConfig,
                                             configs["temporal_discriminator"], where),
            face_refiner=from_dict(FaceRefinerConfig, configs["face_refiner"] or {}, where),
            losses=from_dict(LossWeights, configs["losses"], where),
            train=from_dict(TrainConfig, configs["train"], where),
            # absent in checkpoints from before the layout generator: its defaults
            layout_generator=from_dict(LayoutGeneratorConfig,
                                       configs.get("layout_generator") or {}, where),
        )
    except (KeyError, ValueError, TypeError, BadInput) as error:
        raise CheckpointError(f"{where} has an unreadable configuration: {error}",
                              hint="delete it and train again") from error
