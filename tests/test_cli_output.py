"""What the command line prints: error lines as plain, unwrapped text; hints and help that name
only commands, options and config tables that exist; help readable at 80 columns; progress lines
in logs; a corrupt checkpoint's message without torch's unsafe advice.
"""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from motionxfer.cli import app, hoist_global_flags
import motionxfer
from motionxfer.cli.app import handle_errors
from motionxfer.errors import BadInput

runner = CliRunner()
LIBRARY = Path(motionxfer.__file__).parent


def invoke(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, hoist_global_flags(list(args)), env=env)


def failing_app(message: str, hint: str) -> typer.Typer:
    """A one-command app whose command raises BadInput(message, hint) through handle_errors."""
    tiny = typer.Typer()

    @tiny.command()
    @handle_errors
    def fail() -> None:
        raise BadInput(message, hint=hint)

    return tiny


# --- error lines --------------------------------------------------------------------------------

def test_error_text_in_square_brackets_is_printed_as_it_is() -> None:
    result = runner.invoke(failing_app(
        "min_visibility = 2 in [normalize] of config.toml must be in [0, 1]",
        "fix them in [normalize] of config.toml; [bold]not markup[/bold]"))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: min_visibility = 2 in [normalize] of config.toml must be in [0, 1]",
        "fix: fix them in [normalize] of config.toml; [bold]not markup[/bold]",
    ]


def test_a_long_error_stays_one_line_when_redirected() -> None:
    message = "the video " + "/very/long/folder" * 12 + "/clip.mp4 cannot be decoded"
    hint = "re-encode it: ffmpeg -i " + "x" * 150 + ".mp4 -c:v libx264 fixed.mp4"
    result = runner.invoke(failing_app(message, hint), env={"COLUMNS": "80"})
    assert result.stderr.splitlines() == [f"error: {message}", f"fix: {hint}"]
