"""extract-parsing, import-parsing: the per-video human parsing cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from motionxfer.cli.app import command, emit, log, progress_bar
from motionxfer.cli.options import ForceOpt, ProjectArg

VideoOpt = Annotated[
    Path | None,
    typer.Option("--video", help="A source video of the project (default: the target video)."),
]


def _summary(parsing, result, record) -> dict:
    frames_with_person = parsing.frames_with_person
    log(f"{record.info.path.name}: parsing of {len(parsing.labels)} frames ({parsing.method}), "
        f"person in {frames_with_person}" + (" (cached)" if result.reused else ""))
    return {"video": str(record.info.path), "parsing": str(result.path),
            "method": parsing.method, "frames": len(parsing.labels),
            "frames_with_person": frames_with_person, "cached": result.reused,
            "pixels_per_class": parsing.pixels_per_class()}


@command("extract-parsing")
def extract_parsing(
    project_dir: ProjectArg,
    video: VideoOpt = None,
    force: ForceOpt = False,
) -> None:
    """Parse every frame into six classes (background, head, top, bottom, shoes, skin) with the
    built-in parser, and cache it in the project.

    The person's mask comes from MediaPipe (when extract-poses kept it: segmentation = true in
    [extract]) or from the frame's difference to the background plate (a still camera); the
    pose splits it into body parts, refined by the person's own clothing colours. The poses
    must be there first. Reused until the video or its poses change (--force recomputes).

    Examples:

        motionxfer extract-poses ./me && motionxfer extract-parsing ./me

        motionxfer extract-parsing ./me --video dance.mp4
    """
    from motionxfer.pipeline import extract_parsing as run_extract
    from motionxfer.pipeline import resolve_video
    from motionxfer.project import Project

    project = Project.open(project_dir)
    record = resolve_video(project, video)
    with progress_bar() as progress:
        parsing, result = run_extract(project, record, force=force, progress=progress)
    summary = _summary(parsing, result, record)
    emit(summary, summary["parsing"])


@command("import-parsing")
def import_parsing(
    project_dir: ProjectArg,
    folder: Annotated[
        Path, typer.Argument(help="The parser's output: one label-map PNG per frame, sorted "
                             "by name in frame order (palette or greyscale, label indices).")
    ],
    labels: Annotated[
        str, typer.Option("--labels", help="The parser's label convention: lip (20 labels, "
                          "e.g. Self-Correction-Human-Parsing's LIP model), atr (18), cihp "
                          "(20), or six (already background, head, top, bottom, shoes, skin).")
    ],
    video: VideoOpt = None,
) -> None:
    """Use an external human parser's label maps as a video's parsing.

    One PNG per frame of the video (of its poses' frames when trimmed), at the video's size
    (maps of the same aspect ratio are resized nearest-neighbour). The labels are mapped onto
    the six classes; a wrong count, size, label value or a folder with nobody in it is refused
    and the project is left as it was.

    Examples:

        motionxfer import-parsing ./me ./schp_out --labels lip

        motionxfer import-parsing ./me maps/ --video dance.mp4 --labels atr
    """
    from motionxfer.pipeline import import_parsing as run_import
    from motionxfer.pipeline import resolve_video
    from motionxfer.project import Project

    project = Project.open(project_dir)
    record = resolve_video(project, video)
    parsing, result = run_import(project, record, folder, labels)
    summary = _summary(parsing, result, record)
    emit(summary, summary["parsing"])
