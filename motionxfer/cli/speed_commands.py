"""export and bench."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from motionxfer.cli.app import command, emit, log, progress_bar
from motionxfer.cli.transfer_commands import library_warnings


@command("export")
def export(
    project_dir: Annotated[Path, typer.Argument(help="The project with a trained model.")],
    fp16: Annotated[
        Optional[bool], typer.Option("--fp16/--no-fp16",
                                     help="Also write the half-precision variant (for CUDA).")
    ] = None,
    checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", help="Default: the project's model.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Export again even when a valid export is there.")
    ] = False,
) -> None:
    """Export the generator and the face refiner to ONNX (fp32, and fp16 unless --no-fp16).

    Each file is checked against PyTorch (the largest difference is printed) and stored in the
    project's exports/ folder under the checkpoint's fingerprint, so a retrained model is never
    run with an old export. `transfer --backend onnx` exports by itself when needed.

      motionxfer export ./me
    """
    from motionxfer.export import ExportConfig, export_project
    from motionxfer.project import Project, config_from_project

    project = Project.open(project_dir)
    config = config_from_project(ExportConfig, project, "export", fp16=fp16)
    with library_warnings(), progress_bar() as progress:
        result = export_project(project, config, checkpoint, force, progress)
    for model in result.models:
        log(f"{model.network} {model.precision}: max |ONNX - PyTorch| = "
            f"{model.max_abs_difference:.2g} (tolerance {model.tolerance:g})"
            f"{', already there' if model.reused else ''} -> {model.path}")
    for path in result.removed:
        log(f"removed the stale {path.name}")
    emit(result.to_dict(), "\n".join(str(model.path) for model in result.models))
