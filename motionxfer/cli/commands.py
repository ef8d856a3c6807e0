"""Imports every command module so that its commands register on the app."""
# ruff: noqa: F401, I001  (one line per command module)

from motionxfer.cli import project_commands
from motionxfer.cli import train_commands
from motionxfer.cli import transfer_commands
from motionxfer.cli import model_commands
from motionxfer.cli import evaluate_commands
from motionxfer.cli import speed_commands
