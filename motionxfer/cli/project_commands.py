"""init, extract-poses, import-keypoints, normalize, preview, info."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from motionxfer.cli.app import command, emit, log, progress_bar
from motionxfer.cli.options import EndOpt, ForceOpt, ProjectArg, SecondsOpt, SourceOpt, StartOpt


def _open(project_dir: Path):

    from motionxfer.project import Project

    return Project.open(project_dir)


@command("init")
def init(
    project_dir: Annotated[Path, typer.Argument(help="A new or empty folder for the project.")],
    target: Annotated[
        Path, typer.Option("--target", "-t", help="The video of the person to render (you).")
    ],
    start: StartOpt = None,
    end: EndOpt = None,
) -> None:
    """Create a project for one target person.

    Film a few minutes of yourself moving, whole body in view, in front of a still camera;
    then: motionxfer init ./me --target me.mp4

    Run again with the same target (and trim) it changes nothing; another target needs another
    folder.
    """
    from motionxfer.pipeline import init_project
    from motionxfer.project import MANIFEST_NAME

    existed = (project_dir / MANIFEST_NAME).is_file()
    project = init_project(project_dir, target, start, end)
    record = project.target
    if existed:
        log(f"project {project.root} already exists for {record.info.path.name}: nothing to do")
    else:
        log(f"project {project.root}: target {record.info.path.name}, {record.info.frame_count} "
            f"frames, {record.info.width}x{record.info.height} at {record.info.fps:.2f} fps")
    emit({"project": str(project.root), "target": record.to_dict(), "created": not existed},
         str(project.root))


@command("extract-poses")
def extract_poses(
    project_dir: ProjectArg,
    source: Annotated[
        list[Path] | None,
        typer.Option("--source", "-s", help="A source video (repeat for several). "
                     "Without it, the target's poses are extracted."),
    ] = None,
    hands: Annotated[
        bool | None, typer.Option("--hands/--no-hands", help="Detect both hands.")
    ] = None,
    face: Annotated[
        bool | None, typer.Option("--face/--no-face", help="Detect the face mesh.")
    ] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    force: ForceOpt = False,
) -> None:
    """Detect body, hands and face in every frame (MediaPipe) and cache them in the project.

    Frames with nobody in them are kept and marked. Results are reused until the video or the
    settings change (--force recomputes). Settings: the [extract] table of config.toml.
    """
    from motionxfer.pipeline import extract_poses as run_extract
    from motionxfer.pipeline import source_record
    from motionxfer.pose.extract import ExtractConfig
    from motionxfer.project import config_from_project


    project = _open(project_dir)
    config = config_from_project(ExtractConfig, project, "extract", hands=hands, face=face)
    if source:
        records = [source_record(project, path, start, end) for path in source]
    else:
        if start is not None or end is not None:
            log("note: --start/--end apply to sources; the target's trim is set by 'init'")
        records = [project.target]
    results = []
    with progress_bar() as progress:
        for record in records:
            poses, result = run_extract(project, record, config, force=force, progress=progress)
            found = int(poses.person_present.sum())
            log(f"{record.info.path.name}: person in {found}/{poses.num_frames} frames"
                + (" (cached)" if result.reused else ""))
            results.append({"video": str(record.info.path), "poses": str(result.path),
                            "frames": poses.num_frames, "frames_with_person": found,
                            "cached": result.reused})
    emit({"results": results}, "\n".join(r["poses"] for r in results))


@command("import-keypoints")
def import_keypoints(
    project_dir: ProjectArg,
    keypoints: Annotated[
        Path, typer.Argument(help="OpenPose JSON folder, CSV (plain or DeepLabCut) or NPZ file.")
    ],
    video: Annotated[
        Path | None,
        typer.Option("--video", help="The source video these keypoints belong to "
                     "(default: the target video)."),
    ] = None,
    layout: Annotated[
        str, typer.Option("--layout", help="auto, openpose, csv, deeplabcut or npz.")
    ] = "auto",
    limbs: Annotated[
        str | None,
        typer.Option("--limbs", help="Limbs to draw for an unknown layout: 'a-b,b-c,...'."),
    ] = None,
) -> None:
    """Use keypoints made by another pose estimator instead of extracting them.

    See docs/keypoints.md for the layouts and the joint names that normalization looks for.
    """
    from motionxfer.pipeline import import_keypoints as run_import
    from motionxfer.pipeline import resolve_video


    project = _open(project_dir)
    record = resolve_video(project, video)
    poses, result = run_import(project, record, keypoints, layout, limbs)
    log(f"{record.info.path.name}: {poses.num_frames} frames of {poses.skeleton.num_joints} "
        f"joints ({poses.skeleton.name})")
    emit({"poses": str(result.path), "frames": poses.num_frames,
          "layout": poses.skeleton.name}, str(result.path))


@command("normalize")
def normalize(
    project_dir: ProjectArg,
    source: SourceOpt,
    force: ForceOpt = False,
) -> None:
    """Map a source's poses onto the target: scale and position from where the feet stand.

    Everybody Dance Now's global pose normalization: the source's nearest and farthest ankle
    positions and body heights are mapped onto the target's, interpolating in between.
    Settings: the [normalize] and [smoothing] tables of config.toml.
    """
    from motionxfer.pipeline import normalize_source, source_record


    project = _open(project_dir)
    record = source_record(project, source)
    with progress_bar() as progress:
        normalized, result = normalize_source(project, record, force=force, progress=progress)
    log(f"{record.info.path.name}: {normalized.num_frames} frames normalized onto the target"
        + (" (cached)" if result.reused else ""))
    emit({"normalized": str(result.path), "frames": normalized.num_frames,
          "cached": result.reused}, str(result.path))


@command("preview")
def preview(
    project_dir: ProjectArg,
    source: SourceOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="The preview video to write.")],
    seconds: SecondsOpt = None,
    height: Annotated[int, typer.Option("--height", help="Height of each panel in pixels.")] = 360,
) -> None:
    """Write source | normalized stick figure | a target frame of similar pose, side by side.

    A quick look before training: the stick figure should stand where the target stands, at
    the target's size, and the third panel should show the target in a similar pose.
    """
    from motionxfer.inference.preview import make_preview
    from motionxfer.pipeline import source_record


    project = _open(project_dir)
    record = source_record(project, source)
    with progress_bar() as progress:
        path = make_preview(project, record, output, height, seconds, progress)
    emit({"preview": str(path)}, str(path))


@command("info")
def info(project_dir: ProjectArg) -> None:
    """Show the project's videos (and whether each file is still the one recorded) and which
    stages are cached, on stdout (JSON with --json)."""
    from motionxfer.pipeline import video_status

    project = _open(project_dir)
    manifest = project.manifest_copy()
    lines = [f"project {project.root}"]
    for record in project.videos.values():
        status = video_status(record)
        manifest["videos"][record.video_id]["status"] = status
        trim = ("" if record.start is None and record.end is None else
                f" from {record.start or 0:g} s to "
                f"{'the end' if record.end is None else f'{record.end:g} s'}")
        lines.append(f"{record.role:6} {record.video_id}  {record.info.path}  "
                     f"{record.info.frame_count} frames {record.info.width}x{record.info.height} "
                     f"{record.info.fps:.2f} fps{trim}"
                     + ("" if status == "ok" else f"  ({status.upper()} since it was added)"))
        if status != "ok":
            log(f"warning: the {record.role} video {record.info.path} is {status}"
                + (" (its sha256 no longer matches the manifest)" if status == "changed" else ""))
    lines += [f"cached  {stage}" for stage in sorted(manifest["stages"])]
    emit(manifest, "\n".join(lines))
