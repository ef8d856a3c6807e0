"""The project's config.toml: one table per stage, every setting listed with its default.

The one module that knows every stage's settings class; each stage owns its class (the
extractor's `ExtractConfig`, training's `TrainConfig`, ...). Adding a stage with settings adds
its table here.
"""

from __future__ import annotations

from motionxfer.config import template
from motionxfer.inference.export import ExportConfig
from motionxfer.pose.extract import ExtractConfig
from motionxfer.pose.normalization import NormalizeConfig
from motionxfer.pose.smoothing import SmoothingConfig
from motionxfer.training.config import TrainConfig

CONFIG_HEADER = """\
# motionxfer settings for this project: one table per stage. Every setting is listed with its
# default, commented out; uncomment a line to override it. `motionxfer <stage> --help` says more.
# (train-target also reads `preset = "512"` from [train]: tiny, 256, 512 or 1024.)
"""

STAGE_TABLES: tuple[tuple[str, type], ...] = (
    ("extract", ExtractConfig),
    ("smoothing", SmoothingConfig),
    ("normalize", NormalizeConfig),
    ("train", TrainConfig),
    ("export", ExportConfig),
)


def config_template() -> str:
    """A new project's config.toml."""
    return template(list(STAGE_TABLES), CONFIG_HEADER)
