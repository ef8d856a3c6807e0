"""The Typer app, global options, output helpers and the one error mapping."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from typer.core import TyperGroup

from motionxfer import __version__
from motionxfer.errors import BadInput, MotionXferError
from motionxfer.progress import ProgressCallback, ProgressLines

PROGRESS_INTERVAL_VARIABLE = "MOTIONXFER_PROGRESS_INTERVAL"
PROGRESS_INTERVAL_SECONDS = 5.0  # progress lines in logs (stderr not a terminal)


class HelpGroup(TyperGroup):
    """A command group whose help lists each command with its whole first sentence, wrapped
    (click's plain help cuts it to the width that is left, ending in '...')."""

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=10_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


app = typer.Typer(
    name="motionxfer",
    cls=HelpGroup,
    help=(
        "Human video motion transfer. Film yourself, train your personal model, then perform "
        "anyone's moves.\n\n"
        "Try it first on the bundled samples: motionxfer demo\n\n"
        "Typical session:\n\n"
        "  motionxfer init ./me --target me.mp4     (a few minutes of you, whole body in view)\n\n"
        "  motionxfer extract-poses ./me\n\n"
        "  motionxfer preview ./me --source dancer.mp4 -o check.mp4\n\n"
        "  motionxfer train-target ./me     (hours on a GPU; Ctrl-C saves, --resume continues)\n\n"
        "  motionxfer transfer ./me dancer.mp4 -o me_dancing.mp4\n\n"
        "  motionxfer evaluate ./me --holdout"
    ),
    no_args_is_help=True,
    add_completion=False,
    # Click's plain help: option names whole and flags without a value at any width (Typer's
    # rich tables cut long names at 80 columns and show on/off flags as `<bool>`); help strings
    # are plain text, so "[train]" needs no escaping.
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class CliState:
    quiet: bool = False
    debug: bool = False
    json: bool = False


state = CliState()
stderr = Console(stderr=True, highlight=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"motionxfer {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or logs on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback on errors.")] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print results as JSON on stdout (for scripts).")
    ] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Download nothing (as MOTIONXFER_OFFLINE=1): a "
                           "missing model file is an error that names the fix.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    state.quiet, state.debug, state.json = quiet, debug, json_output
    if offline:
        os.environ["MOTIONXFER_OFFLINE"] = "1"  # read by motionxfer.model_cache


F = TypeVar("F", bound=Callable[..., Any])


class _WarningLines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        log(f"warning: {record.getMessage()}")


@contextlib.contextmanager
def library_warnings() -> Iterator[None]:
    """The library's logged warnings (a provider that fell back to the CPU, an export rebuilt, a
    truncated video) as `warning: ...` lines on stderr while a command runs (off with --quiet)."""
    handler = _WarningLines(logging.WARNING)
    library = logging.getLogger("motionxfer")
    library.addHandler(handler)
    try:
        yield
    finally:
        library.removeHandler(handler)


def handle_errors(function: F) -> F:
    """Map domain errors to one message, a hint and the error's exit code; show the library's
    warnings while the command runs."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with library_warnings():
                return function(*args, **kwargs)
        except MotionXferError as error:
            if state.debug:
                raise
            # The message and hint are plain text: "[normalize]" is a table name, not markup.
            stderr.print(Text.assemble(("error:", "bold red"), " ", error.message), soft_wrap=True)
            if error.hint:
                stderr.print(Text.assemble(("fix:", "bold"), " ", error.hint), soft_wrap=True)
            raise typer.Exit(error.exit_code) from None

    return wrapper  # type: ignore[return-value]


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    """`@app.command` with the error mapping applied."""

    def register(function: F) -> F:
        app.command(*args, **kwargs)(handle_errors(function))
        return function

    return register


def show_progress() -> bool:
    """Progress on stderr at all (a bar on a terminal, lines in a log): not with --quiet."""
    return not state.quiet


def log(message: str) -> None:
    """A line on stderr, unless --quiet; never wrapped (a log keeps it on one line)."""
    if not state.quiet:
        stderr.print(message, markup=False, highlight=False, soft_wrap=True)


def progress_interval() -> float:
    """Seconds between progress lines in a log: $MOTIONXFER_PROGRESS_INTERVAL, else 5."""
    value = os.environ.get(PROGRESS_INTERVAL_VARIABLE, "").strip()
    if not value:
        return PROGRESS_INTERVAL_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0.0:  # also NaN
        raise BadInput(f"{PROGRESS_INTERVAL_VARIABLE}={value!r} is not a number of seconds",
                       hint="set it to a number such as 5, or unset it")
    return seconds


def emit(result: dict[str, Any], text: str) -> None:
    """The command's result on stdout: JSON with --json, else `text`."""
    if state.json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
    elif text:
        sys.stdout.write(text + "\n")


@contextlib.contextmanager
def progress_bar() -> Iterator[ProgressCallback | None]:
    """Progress on stderr as a library `ProgressCallback`: a rich bar on a terminal, else a plain
    line every few seconds (nohup, CI logs); None with --quiet."""
    if not show_progress():
        yield None
        return
    if not stderr.is_terminal:
        yield ProgressLines(log, interval=progress_interval())
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
    ) as progress:
        tasks: dict[str, Any] = {}

        def update(description: str, done: int, total: int | None, rate: str = "") -> None:
            if description not in tasks:
                tasks[description] = progress.add_task(description, total=total, rate=rate)
            progress.update(tasks[description], completed=done, total=total, rate=rate)

        yield update
