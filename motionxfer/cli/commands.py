"""Imports every command module so that its commands register on the app."""

from motionxfer.cli import project_commands  # noqa: F401
from motionxfer.cli import model_commands  # noqa: F401
from motionxfer.cli import train_commands  # noqa: F401
