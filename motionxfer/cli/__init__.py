"""The `motionxfer` command: a thin Typer layer over the library.

Commands parse flags, build a config, call one library function and print its result. Results go
to stdout (a path, or JSON with --json); progress and logs go to stderr and are off with --quiet
or when stderr is not a terminal. Every `MotionXferError` becomes one `error:` line, one `fix:`
line and the error's exit code; --debug shows the traceback instead.
"""

from __future__ import annotations

import sys

from motionxfer.cli import commands  # noqa: F401 registers the commands
from motionxfer.cli.app import app, state

GLOBAL_FLAGS = ("--json", "--quiet", "-q", "--debug", "--offline")


def hoist_global_flags(args: list[str]) -> list[str]:
    """Let global flags stand anywhere (`motionxfer init ./me --json`): Typer wants them first."""
    if "--" in args:
        cut = args.index("--")
        head, tail = args[:cut], args[cut:]
    else:
        head, tail = args, []
    flags = [arg for arg in head if arg in GLOBAL_FLAGS]
    return flags + [arg for arg in head if arg not in GLOBAL_FLAGS] + tail


def main(args: list[str] | None = None) -> None:

    try:
        app(args=hoist_global_flags(sys.argv[1:] if args is None else args), prog_name="motionxfer")
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


__all__ = ["app", "hoist_global_flags", "main", "state"]
