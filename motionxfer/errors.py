"""Domain errors. Each carries a one-line message and a hint that says how to fix it.

The CLI maps every `MotionXferError` to `error: <message>` / `fix: <hint>` and the class's
`exit_code`; the library raises them and never prints.
"""

from __future__ import annotations


class MotionXferError(Exception):
    """Base class: a problem the user can fix. `hint` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.hint})" if self.hint else self.message


class BadInput(MotionXferError):
    """A file or argument given by the user cannot be used as it is."""

    exit_code = 2


class BadVideo(BadInput):
    """Not a video, truncated, empty, or in a form we cannot decode."""


class NoPersonFound(BadInput):
    """The pose detector found nobody (or too few frames with somebody)."""


class ProjectError(MotionXferError):
    """The working directory is missing, foreign, newer than this tool, or in use."""

    exit_code = 3


class ProjectLocked(ProjectError):
    """Another process holds the project's lock."""


class MissingDependency(MotionXferError):
    """An optional package or a model file is not installed."""

    exit_code = 4


class CheckpointError(MotionXferError):
    """A checkpoint is missing, corrupt, from another project or from a newer schema."""

    exit_code = 5


class DiskFull(MotionXferError):
    """A write ran out of disk space (or quota); the file it replaced, if any, is intact."""

    exit_code = 6
