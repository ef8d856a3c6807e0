"""Which torch device a command runs on ("auto", "cpu", "cuda" or "cuda:N")."""

from __future__ import annotations

import torch

from motionxfer.errors import BadInput, MissingDependency

DEVICES = ("auto", "cpu", "cuda")


def check_device_name(name: str) -> None:
    if not (name in DEVICES or name.startswith("cuda:")):
        raise BadInput(f"unknown device {name!r}", hint="use auto, cpu, cuda or cuda:N")


def resolve_device(name: str) -> torch.device:
    """The device of one process ("auto": the first GPU when torch sees one, else the CPU)."""
    check_device_name(name)
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MissingDependency(
            "CUDA was asked for but torch sees no CUDA GPU",
            hint="run on the CPU (--device cpu), or install a CUDA build of torch",
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
