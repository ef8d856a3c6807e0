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
    [losses]                        motionxfer.losses.LossWeights
    [train]                         motionxfer.train.TrainConfig
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import tomllib

from motionxfer.config import from_dict
from motionxfer.errors import BadInput, CheckpointError
from motionxfer.losses import LossWeights
from motionxfer.networks.discriminator import DiscriminatorConfig
from motionxfer.networks.face_refiner import FaceRefinerConfig
from motionxfer.networks.generator import GeneratorConfig

if TYPE_CHECKING:
    from motionxfer.train import TrainConfig

DEFAULT_PRESET = "512"
PRESET_PACKAGE = "motionxfer.model_files"
POSE_CHANNELS = 3  # the stick figure is drawn in RGB
IMAGE_CHANNELS = 3
DERIVED_KEYS = ("pose_channels", "image_channels", "input_channels")
TABLES = ("generator", "discriminator", "temporal_discriminator", "face_refiner", "losses", "train")


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

    def __post_init__(self) -> None:
        if self.size % self.generator.size_multiple:
            raise ValueError(
                f"preset size {self.size} is not a multiple of {self.generator.size_multiple}"
            )


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
    from motionxfer.train import TrainConfig

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
        return _build_preset(name, values, tables, where, TrainConfig)
    except ValueError as error:
        raise BadInput(f"{where}: {error}", hint="fix the preset's values") from error


def _build_preset(name: str, values: dict[str, Any], tables: dict[str, dict[str, Any]],
                  where: str, train_config: type) -> Preset:
    generator = from_dict(GeneratorConfig, tables["generator"], f"[generator] of {where}")
    generator = dataclasses.replace(
        generator, pose_channels=POSE_CHANNELS, image_channels=IMAGE_CHANNELS
    )
    pair_channels = generator.pose_channels + generator.image_channels
    discriminator = dataclasses.replace(
        from_dict(DiscriminatorConfig, tables["discriminator"], f"[discriminator] of {where}"),
        input_channels=pair_channels,
    )
    temporal = dataclasses.replace(
        from_dict(DiscriminatorConfig, tables["temporal_discriminator"],
                  f"[temporal_discriminator] of {where}"),
        input_channels=2 * pair_channels,
    )
    face_refiner = dataclasses.replace(
        from_dict(FaceRefinerConfig, tables["face_refiner"], f"[face_refiner] of {where}"),
        pose_channels=generator.pose_channels, image_channels=generator.image_channels,
    )
    return Preset(
        name=name,
        description=str(values.get("description", "")),
        size=values["size"],
        generator=generator,
        discriminator=discriminator,
        temporal_discriminator=temporal,
        face_refiner=face_refiner,
        losses=from_dict(LossWeights, tables["losses"], f"[losses] of {where}"),
        train=from_dict(train_config, tables["train"], f"[train] of {where}"),
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
    }


def preset_from_configs(name: str, size: int, configs: dict[str, Any], where: str) -> Preset:
    """The inverse of `preset_configs` (resuming takes the architecture from the checkpoint)."""
    from motionxfer.train import TrainConfig

    try:
        return Preset(
            name=name, description=f"from {where}", size=size,
            generator=from_dict(GeneratorConfig, configs["generator"], where),
            discriminator=from_dict(DiscriminatorConfig, configs["discriminator"], where),
            temporal_discriminator=from_dict(DiscriminatorConfig,
                                             configs["temporal_discriminator"], where),
            face_refiner=from_dict(FaceRefinerConfig, configs["face_refiner"], where),
            losses=from_dict(LossWeights, configs["losses"], where),
            train=from_dict(TrainConfig, configs["train"], where),
        )
    except (KeyError, ValueError, TypeError, BadInput) as error:
        raise CheckpointError(f"{where} has an unreadable configuration: {error}",
                              hint="delete it and train again") from error
