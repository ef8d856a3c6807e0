"""The `motionxfer` command: a thin Typer layer over the library.

Commands parse flags, build a config, call one library function and print its result. Results go
to stdout (a path, or JSON with --json); progress and logs go to stderr and are off with --quiet
or when stderr is not a terminal. Every `MotionXferError` becomes one `error:` line, one `fix:`
line and the error's exit code; --debug shows the traceback instead.
"""

from __future__ import annotations

import sys

from motionxfer.cli.app import app, state


def main() -> None:
    from motionxfer.cli import commands  # noqa: F401  (registers the commands)

    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)


__all__ = ["app", "main", "state"]
