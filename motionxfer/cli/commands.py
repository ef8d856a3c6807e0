"""Imports every command module so that its commands register on the app."""

from motionxfer.cli import (
    model_commands,  # noqa: F401
    project_commands,  # noqa: F401
    train_commands,  # noqa: F401
    transfer_commands,  # noqa: F401
)
