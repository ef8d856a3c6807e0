"""Imports every command module so that its commands register on the app."""
# ruff: noqa: F401  (imported for their side effect)

import motionxfer.cli.animation_commands
import motionxfer.cli.evaluate_commands
import motionxfer.cli.model_commands
import motionxfer.cli.parsing_commands
import motionxfer.cli.project_commands
import motionxfer.cli.speed_commands
import motionxfer.cli.train_commands
import motionxfer.cli.transfer_commands
