"""Generators by architecture name: the one place that builds a generator from its config.

A checkpoint records its architecture's name; `build_generator` turns the name and the config back
into the network. A new architecture (as the region generator was) is one more entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from motionxfer.errors import BadInput
from motionxfer.networks.compositing_generator import CompositingGenerator
from motionxfer.networks.generator import Generator, GeneratorConfig
from motionxfer.networks.region_generator import RegionGenerator
from motionxfer.networks.sequence_generator import SequenceGenerator
from motionxfer.networks.sequence_texture_generator import SequenceTextureGenerator
from motionxfer.networks.texture_generator import AttentiveTextureGenerator, TextureGenerator

DEFAULT_ARCHITECTURE = "pix2pixhd"
COMPOSITING_ARCHITECTURE = "pix2pixhd_composite"
TEXTURE_ARCHITECTURE = "pix2pixhd_texture"
ATTENTIVE_TEXTURE_ARCHITECTURE = "pix2pixhd_texture_attention"
SEQUENCE_ARCHITECTURE = "pix2pixhd_sequence"
SEQUENCE_TEXTURE_ARCHITECTURE = "pix2pixhd_sequence_texture"
REGION_ARCHITECTURE = "pix2pixhd_regions"


@dataclass(frozen=True)
class Architecture:
    name: str
    config: type  # the frozen dataclass of its arguments
    network: type[nn.Module]  # built as network(config)


ARCHITECTURES = {
    "pix2pixhd": Architecture("pix2pixhd", GeneratorConfig, Generator),
    # the person and a mask, composited over the target's background plate
    COMPOSITING_ARCHITECTURE: Architecture(COMPOSITING_ARCHITECTURE, GeneratorConfig,
                                           CompositingGenerator),
    # the target's re-posed texture blended in, over the plate when there is one
    TEXTURE_ARCHITECTURE: Architecture(TEXTURE_ARCHITECTURE, GeneratorConfig, TextureGenerator),
    # ... and REMOT's texture alignment module (attention over the texture) at the bottleneck
    ATTENTIVE_TEXTURE_ARCHITECTURE: Architecture(ATTENTIVE_TEXTURE_ARCHITECTURE, GeneratorConfig,
                                                 AttentiveTextureGenerator),
    # REMOT's regions: each body region painted from its layout mask and texture, the coarse
    # person they make refined by the texture generator into the whole (needs layout and texture)
    REGION_ARCHITECTURE: Architecture(REGION_ARCHITECTURE, GeneratorConfig, RegionGenerator),
    # windows of N frames made jointly (TrainConfig.sequence), over the plate when there is one
    SEQUENCE_ARCHITECTURE: Architecture(SEQUENCE_ARCHITECTURE, GeneratorConfig,
                                        SequenceGenerator),
    # ... with the target's re-posed texture blended into each frame, as pix2pixhd_texture
    SEQUENCE_TEXTURE_ARCHITECTURE: Architecture(SEQUENCE_TEXTURE_ARCHITECTURE, GeneratorConfig,
                                                SequenceTextureGenerator),
}
# the generators that make windows of frames (TrainConfig.sequence), not one frame after another
SEQUENCE_ARCHITECTURES = frozenset({SEQUENCE_ARCHITECTURE, SEQUENCE_TEXTURE_ARCHITECTURE})
# Their painted mask composites with a contrast (`mask_gain`, `compositing_generator.sharpen_mask`);
# the texture generators make their mask from the texture's alpha instead.
MASK_GAIN_ARCHITECTURES = frozenset({COMPOSITING_ARCHITECTURE, SEQUENCE_ARCHITECTURE})


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise BadInput(f"unknown generator architecture {name!r}",
                       hint=f"this motionxfer knows: {', '.join(sorted(ARCHITECTURES))}; "
                       "upgrade motionxfer if the model was made by a newer one")
    return ARCHITECTURES[name]


def build_generator(config: Any, name: str = DEFAULT_ARCHITECTURE) -> nn.Module:
    """The generator of architecture `name` from its config (randomly initialised)."""
    chosen = architecture(name)
    if not isinstance(config, chosen.config):
        raise TypeError(f"{name} takes a {chosen.config.__name__}, not {type(config).__name__}")
    return chosen.network(config)
