"""Building frozen config dataclasses from TOML tables, strictly.

Each stage owns its config dataclass (`SmoothingConfig`, `NormalizeConfig`, `TrainConfig`, ...).
Values come from, in order: the dataclass defaults, a preset file, the project's `config.toml`,
then command-line flags. An unknown key is an error that names the known ones, never ignored.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import tomllib

from motionxfer.errors import BadInput

T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any], where: str) -> T:
    """`cls(**values)` with a clear error for unknown keys and wrong types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise BadInput(
            f"unknown setting(s) {', '.join(unknown)} in {where}",
            hint=f"the known settings are: {', '.join(sorted(fields))}",
        )
    hints = typing.get_type_hints(cls)
    converted = {}
    for key, value in values.items():
        converted[key] = _coerce(value, hints[key], f"{where}: {key}")
    return cls(**converted)


def override(config: T, **changes: Any) -> T:
    """`dataclasses.replace` that ignores changes left at None (flags the user did not give)."""
    given = {key: value for key, value in changes.items() if value is not None}
    return dataclasses.replace(config, **given) if given else config  # type: ignore[type-var]


def template(tables: list[tuple[str, type]], header: str) -> str:
    """A commented-out TOML file of every setting and its default, from the dataclasses."""
    import tomli_w

    lines = [header.rstrip(), ""]
    for table, cls in tables:
        lines.append(f"[{table}]")
        doc = inspect.cleandoc(cls.__doc__ or "").splitlines()
        lines += [f"# {line}".rstrip() for line in doc if line.strip()]
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            if field.default is dataclasses.MISSING:
                continue
            value = tomli_w.dumps({field.name: _plain(field.default)}, multiline_strings=False)
            lines.append("# " + " ".join(value.split()).replace("[ ", "[").replace(", ]", "]"))
        lines.append("")
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise BadInput(f"{path} is not valid TOML: {error}", hint=f"fix or delete {path}") from error


_TYPE_WORDS = {int: "an integer", str: "a string", bool: "true or false"}


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, options[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise BadInput(f"{where} must be a list, got {value!r}", hint="write it as [a, b]")
        args = typing.get_args(annotation)
        item = args[0] if args else Any
        return tuple(_coerce(v, item, where) for v in value)
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise BadInput(f"{where} must be a number, got {value!r}",
                       hint="fix the value in config.toml or the preset")
    wrong_bool = annotation is int and isinstance(value, bool)
    if annotation in _TYPE_WORDS and (not isinstance(value, annotation) or wrong_bool):
        raise BadInput(
            f"{where} must be {_TYPE_WORDS[annotation]}, got {value!r}",
            hint="fix the value in config.toml or the preset",
        )
    return value
