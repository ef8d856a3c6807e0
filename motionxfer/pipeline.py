"""The project-level stages: each reads what earlier stages cached and caches its own result.

A stage holds the project's lock while it works, computes everything first and writes its
results (and the manifest) only at the end, so bad input leaves the project as it was. A stage
whose inputs and settings are unchanged (same fingerprint) is loaded from the cache instead of
recomputed, unless `force=True`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from motionxfer.background.cover import pose_covers
from motionxfer.background.plate import PlateConfig, difference_mask, estimate_plate
from motionxfer.checkpoint import Checkpoint
from motionxfer.errors import BadInput, NoPersonFound, ProjectError
from motionxfer.io.files import atomic_path, fingerprint, sha256_file
from motionxfer.io.frame_cache import FrameCache, build_frame_cache, open_frame_cache
from motionxfer.io.images import to_images
from motionxfer.io.video import VideoInfo, probe, read_frames, timeline_fps
from motionxfer.parsing.colour_model import ParserConfig
from motionxfer.parsing.geometry import JointLayout
from motionxfer.parsing.global_alignment import LayoutExtent, layout_extent
from motionxfer.parsing.io import ParsingSequence, read_label_folder
from motionxfer.parsing.labels import label_table
from motionxfer.parsing.video import parse_video
from motionxfer.pose.extract import ExtractConfig, PersonMasks, extract_video
from motionxfer.pose.keypoint_import import load_keypoints
from motionxfer.pose.normalization import NormalizeConfig, normalize_poses
from motionxfer.pose.parallel_extract import extract_video_parallel
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.smoothing import SmoothingConfig, smooth_poses
from motionxfer.progress import ProgressCallback, RateMeter
from motionxfer.project import MANIFEST_NAME, Project, VideoRecord, config_from_project
from motionxfer.settings import config_template
from motionxfer.texture.bank import TextureBank, body_joints, nearest_frames

T = TypeVar("T")

# Extraction fails for a target seen in fewer frames than this share (a source only needs one):
MIN_TARGET_PRESENCE = 0.5


@dataclass(frozen=True)
class StageResult:
    """What a stage produced: its output file, and whether it came from the cache."""

    path: Path
    reused: bool


def init_project(
    root: str | os.PathLike[str], target: str | os.PathLike[str],
    start: float | None = None, end: float | None = None,
) -> Project:
    """A new project for the person filmed in `target` (probed first: a bad video or trim creates
    nothing).

    Run again on a project made for the same target (same content, same trim) it changes
    nothing and returns that project; for another target, or another trim, it is an error.
    """
    info = probe(target)
    check_trim(info, start, end)
    folder = Path(root).expanduser().absolute()
    if (folder / MANIFEST_NAME).is_file():
        return _reopen_for(Project.open(folder), info, start, end)
    project = Project.create(folder, config_template())
    project.add_video(info, "target", start, end)
    return project


def _reopen_for(project: Project, info: VideoInfo, start: float | None,
                end: float | None) -> Project:
    """The existing project of `info` (init run twice), or an error naming its target."""
    if project.manifest_copy().get("target") is None:  # made, but its target never recorded
        project.add_video(info, "target", start, end)
        return project
    recorded = project.target
    if recorded.info.sha256 != info.sha256:
        raise ProjectError(
            f"{project.root} is already the project of another target video "
            f"({recorded.info.path.name}), not {info.path.name}",
            hint="one project is one target person: choose another folder for the new project",
        )
    if (recorded.start, recorded.end) != (start, end):
        raise ProjectError(
            f"{project.root} already uses {info.path.name} trimmed to "
            f"{_trim_text(recorded.start, recorded.end)}, not {_trim_text(start, end)}",
            hint="a project keeps the trim it was made with: repeat it, or choose another "
            "folder for a project with the new trim",
        )
    return project


def _trim_text(start: float | None, end: float | None) -> str:
    if start is None and end is None:
        return "the whole video"
    return f"{start or 0:g} s to {'the end' if end is None else f'{end:g} s'}"


def check_trim(info: VideoInfo, start: float | None, end: float | None) -> None:
    """`--start`/`--end` must name at least one frame inside the video: 0 <= start < end <=
    its duration (give or take a frame)."""
    name = info.path.name
    one_frame = 1.0 / info.fps if info.fps > 0 else 0.0
    if start is not None and start < 0:
        raise BadInput(f"--start {start:g} is negative",
                       hint=f"give seconds from the beginning of {name} (0 to {info.duration:.2f})")
    if end is not None and end <= 0:
        raise BadInput(f"--end {end:g} is not after the beginning of {name}",
                       hint=f"give seconds from the beginning of {name} (0 to {info.duration:.2f})")
    if start is not None and end is not None and end - start < one_frame:
        raise BadInput(f"--end {end:g} is not after --start {start:g} (by a frame at least)",
                       hint="--end is a time in the video (seconds), not a duration")
    if info.duration > 0:
        if start is not None and start > info.duration - one_frame:
            raise BadInput(f"--start {start:g} is past the end of {name} "
                           f"({info.duration:.2f} s long)",
                           hint=f"give a start between 0 and {info.duration:.2f}")
        if end is not None and end > info.duration + one_frame:
            raise BadInput(f"--end {end:g} is past the end of {name} ({info.duration:.2f} s long)",
                           hint="leave --end out to use the video up to its end")


def source_record(
    project: Project, video: str | os.PathLike[str],
    start: float | None = None, end: float | None = None,
) -> VideoRecord:
    """The record of a source video: the known one, or a new one (probed) when the video is new
    or changed. A new record enters the manifest once a stage has succeeded on it."""
    known = project.find_video(video)
    if known is not None and (known.start, known.end) == (start, end) and _unchanged(known):
        return known
    info = probe(video)
    check_trim(info, start, end)
    return project.new_record(info, "source", start, end)


def transfer_record(
    project: Project, video: str | os.PathLike[str],
    start: float | None = None, end: float | None = None,
) -> VideoRecord:
    """The source record for a transfer: with the trim given, else with the trim that
    extract-poses recorded for this video (`--start/--end` there), else the whole video."""
    if start is None and end is None:
        known = project.find_video(video)
        if known is not None:
            start, end = known.start, known.end
    return source_record(project, video, start, end)


def check_unchanged(record: VideoRecord) -> None:
    """The video's file still holds what the manifest recorded (the sha256 of its bytes): the
    poses, frames and model of the project were made from that content."""
    path = record.info.path
    status = video_status(record)
    if status == "missing":
        raise ProjectError(
            f"the {record.role} video {path} is missing",
            hint="put it back where it was (the project reads it from there), or make a new "
            "project for the video you have now",
        )
    if status == "changed":
        raise ProjectError(
            f"the {record.role} video {path} has changed since it was added to the project "
            "(its sha256 no longer matches the manifest)",
            hint="restore the original file, or make a new project for the new video: "
            f"motionxfer init NEW_FOLDER --target {path}",
        )


def video_status(record: VideoRecord) -> str:
    """"ok", "missing" or "changed" (the file's sha256 differs from the manifest's)."""
    path = record.info.path
    if not path.is_file():
        return "missing"
    return "ok" if sha256_file(path) == record.info.sha256 else "changed"


def _unchanged(record: VideoRecord) -> bool:
    path = record.info.path
    return path.is_file() and sha256_file(path) == record.info.sha256


def resolve_video(project: Project, video: str | os.PathLike[str] | None) -> VideoRecord:
    """The target when `video` is None, else the source at that path."""
    return project.target if video is None else source_record(project, video)


# --- poses ---------------------------------------------------------------------------------

def extract_poses(
    project: Project, record: VideoRecord, config: ExtractConfig | None = None, force: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[PoseSequence, StageResult]:
    """Detect the poses of one video of the project and cache them (`videos/<id>/poses.npz`)."""
    config = config or config_from_project(ExtractConfig, project, "extract")
    output = project.paths.poses(record.video_id)
    masks = project.paths.person_masks(record.video_id)
    settings = dataclasses.asdict(config)
    settings.pop("min_visibility")  # read by later stages, not by the detector
    resampled = timeline_fps(record.info)  # a variable frame rate is read at this rate
    key = fingerprint("poses", record.info.sha256, record.start, record.end, settings,
                      *(() if resampled is None else (resampled,)))
    stage = f"poses/{record.video_id}"
    with project.video_locked(record, "extract-poses"):
        outputs = (output, masks) if config.segmentation else (output,)
        if not force and project.is_fresh(stage, key, *outputs):
            return PoseSequence.load(output), StageResult(output, reused=True)
        check_unchanged(record)  # a target replaced since init would give other poses
        # Masks are written by the detector as it goes: to a partial file, kept on success.
        partial = masks.with_name(".person_masks.partial.npz") if config.segmentation else None
        try:
            if config.workers > 1:
                poses = extract_video_parallel(record.info.path, config, record.start,
                                               record.end, config.workers, progress)
            else:
                poses = extract_video(record.info.path, config, record.start, record.end,
                                      progress, masks_path=partial)
            check_presence(poses, record)
        except BaseException:
            if partial is not None:
                partial.unlink(missing_ok=True)
            raise
        if partial is not None:
            os.replace(partial, masks)
        poses.save(output)
        project.save_record(record)
        project.mark_done(stage, key)
    return poses, StageResult(output, reused=False)


def check_presence(poses: PoseSequence, record: VideoRecord) -> None:
    """A target must show its person in most frames; any video must show one somewhere."""
    found = int(poses.person_present.sum())
    name = record.info.path.name
    if found == 0:
        raise NoPersonFound(
            f"no person found in any of the {poses.num_frames} frames of {name}",
            hint="use a video that shows a whole person, or check --start/--end",
        )
    if record.role == "target" and found < MIN_TARGET_PRESENCE * poses.num_frames:
        raise NoPersonFound(
            f"the person is missing in {poses.num_frames - found} of {poses.num_frames} frames "
            f"of the target video {name}",
            hint="film yourself fully in view for the whole video, or trim it with --start/--end",
        )


def import_keypoints(
    project: Project, record: VideoRecord, keypoints: str | os.PathLike[str],
    layout: str = "auto", limbs: str | None = None,
) -> tuple[PoseSequence, StageResult]:
    """Use keypoints made by another tool as the poses of `record` (replaces extracted ones)."""
    keypoints = Path(keypoints)
    info = record.info
    with project.video_locked(record, "import-keypoints"):
        poses = load_keypoints(
            keypoints, layout=layout, fps=info.fps, image_size=(info.width, info.height),
            limbs=limbs,
            expected_frames=info.frame_count if info.frame_count_exact and record.start is None
            and record.end is None else None,
        )
        check_presence(poses, record)
        output = project.paths.poses(record.video_id)
        poses.save(output)
        project.save_record(record)
        source_hash = sha256_file(keypoints) if keypoints.is_file() else str(keypoints)
        project.mark_done(f"poses/{record.video_id}", fingerprint("imported", source_hash, layout))
    return poses, StageResult(output, reused=False)


def load_poses(project: Project, record: VideoRecord, smoothing: SmoothingConfig | None = None,
               ) -> PoseSequence:
    """The cached poses of a video, smoothed with the project's [smoothing] settings."""
    path = project.paths.poses(record.video_id)
    if not path.exists():
        which = "" if record.role == "target" else f" --source {record.info.path}"
        raise ProjectError(
            f"no poses yet for {record.info.path.name}",
            hint=f"run: motionxfer extract-poses {project.root}{which}",
        )
    smoothing = smoothing or config_from_project(SmoothingConfig, project, "smoothing")
    return smooth_poses(PoseSequence.load(path), smoothing)


# --- parsing -------------------------------------------------------------------------------

# The built-in parser fits the person's colour model on this many frames spread over the video.
PARSING_FIT_FRAMES = 60
# A pixel belongs to the person where it differs from the background plate by more than this.
PARSING_PLATE_THRESHOLD = 30.0
# Parsings are made and cached at most this tall (the largest preset's generator reads the
# labels resized; 3 minutes of 1080p at full size would take 11 GB of memory).
PARSING_MAX_HEIGHT = 512


def parsing_inputs(project: Project, record: VideoRecord) -> str | None:
    """The fingerprint of what a video's parsing depends on: the video's content and trim and
    its poses (extracted or imported). None while the video has no poses."""
    if not _poses_recorded(project, record):
        return None
    return fingerprint("parsing-inputs", record.info.sha256, record.start, record.end,
                       project.stage_fingerprint(f"poses/{record.video_id}"))


def load_parsing(project: Project, record: VideoRecord) -> ParsingSequence | None:
    """The cached parsing of a video when it is current (made for the video's content and
    poses as they are now), else None: none made yet, or stale since the poses or the video
    changed."""
    path = project.paths.parsing(record.video_id)
    inputs = parsing_inputs(project, record)
    if inputs is None or not path.is_file() or project.stage_fingerprint(
            f"parsing/{record.video_id}") is None:
        return None
    parsing = ParsingSequence.load(path)
    return parsing if parsing.inputs == inputs else None


def _poses_for_parsing(project: Project, record: VideoRecord, command: str) -> PoseSequence:
    if not _poses_recorded(project, record):
        which = "" if record.role == "target" else f" --source {record.info.path}"
        raise ProjectError(
            f"{command} needs the poses of {record.info.path.name}, and there are none yet",
            hint=f"run: motionxfer extract-poses {project.root}{which} (or import-keypoints)",
        )
    return PoseSequence.load(project.paths.poses(record.video_id))


def check_parsing_presence(labels: np.ndarray, record: VideoRecord, origin: str) -> None:
    """A parsing with no person in any frame is refused (wrong convention, another video)."""
    if not labels.any():
        raise NoPersonFound(
            f"{origin} shows no person in any of the {len(labels)} frames of "
            f"{record.info.path.name}",
            hint="check that the maps belong to this video and that --labels names the "
            "parser's convention (lip, atr, cihp, six)",
        )


def _counted(items: Iterable[T], meter: RateMeter) -> Iterator[T]:
    """`items`, advancing `meter` by one for each."""
    for item in items:
        meter.advance()
        yield item


def _folder_digest(folder: Path) -> str:
    return fingerprint([(path.name, sha256_file(path)) for path in sorted(folder.glob("*.png"))])


def import_parsing(
    project: Project, record: VideoRecord, folder: str | os.PathLike[str], convention: str,
) -> tuple[ParsingSequence, StageResult]:
    """Use an external parser's label maps (one PNG per frame) as the parsing of `record`.

    The maps are checked against the video's poses (one map per pose frame, the video's size:
    maps of the same aspect ratio are resized nearest-neighbour) and mapped from `convention`
    (lip, atr, cihp, six) onto the six classes. Nothing is written unless all of it is right.
    """
    folder = Path(folder)
    label_table(convention)  # an unknown convention is refused before anything is read
    stage = f"parsing/{record.video_id}"
    output = project.paths.parsing(record.video_id)
    with project.video_locked(record, "import-parsing"):
        poses = _poses_for_parsing(project, record, "import-parsing")
        check_unchanged(record)
        width, height = poses.image_size
        labels = read_label_folder(folder, poses.num_frames, (height, width), convention,
                                   PARSING_MAX_HEIGHT)
        check_parsing_presence(labels, record, f"the label maps in {folder}")
        inputs = parsing_inputs(project, record)
        assert inputs is not None  # the poses are recorded
        parsing = ParsingSequence(labels, f"import:{convention.lower()}", poses.fps, inputs,
                                  poses.image_size)
        parsing.save(output)
        project.mark_done(stage, fingerprint("parsing", inputs, "import", convention.lower(),
                                             _folder_digest(folder), PARSING_MAX_HEIGHT))
    return parsing, StageResult(output, reused=False)


def extract_parsing(
    project: Project, record: VideoRecord, config: ParserConfig | None = None,
    force: bool = False, progress: ProgressCallback | None = None,
) -> tuple[ParsingSequence, StageResult]:
    """Parse every frame of one video with the built-in parser and cache it
    (`videos/<id>/parsing.npz`).

    The person mask of each frame is MediaPipe's (when extract-poses kept it: `segmentation`
    in [extract]) or, otherwise, the frame's difference to the video's background plate inside
    the pose's cover, which needs a still camera; then the geometric parse from mask and pose,
    refined by the person's colour model fitted over the video (`parsing.video.parse_video`).
    """
    config = config or ParserConfig()
    stage = f"parsing/{record.video_id}"
    output = project.paths.parsing(record.video_id)
    with project.video_locked(record, "extract-parsing"):
        poses = _poses_for_parsing(project, record, "extract-parsing")
        masks_path = project.paths.person_masks(record.video_id)
        person_masks = PersonMasks.load(masks_path) if masks_path.is_file() else None
        if person_masks is not None and person_masks.num_frames != poses.num_frames:
            person_masks = None  # from other poses than these: use the background plate
        inputs = parsing_inputs(project, record)
        key = fingerprint("parsing", inputs, "builtin", dataclasses.asdict(config),
                          PARSING_FIT_FRAMES, PARSING_PLATE_THRESHOLD, PARSING_MAX_HEIGHT,
                          "mediapipe" if person_masks is not None else "plate")
        if not force and project.is_fresh(stage, key, output):
            cached = load_parsing(project, record)
            if cached is not None:
                return cached, StageResult(output, reused=True)
        check_unchanged(record)
        info = record.info

        def frames():
            return (frame.rgb for frame in read_frames(info.path, record.start, record.end,
                                                       timeline_fps(info)))

        size = poses.image_size  # (width, height)
        if person_masks is not None:
            masks_of = person_masks

            def masks():
                return (masks_of.full_size(index) > 0.5 for index in range(poses.num_frames))
        else:
            meter = RateMeter(progress, "parsing: background plate", poses.num_frames)
            plate = estimate_plate(_counted(frames(), meter), pose_covers(poses, size),
                                   poses.num_frames)
            meter.finish()
            if plate.moving_camera:
                raise BadInput(
                    f"the camera moves in {info.path.name} (motion score "
                    f"{plate.camera_motion_score:.2f} px): the built-in parser finds the "
                    "person against a still background",
                    hint="keep MediaPipe's masks (segmentation = true in [extract], then "
                    "extract-poses --force), or run an external parser and import-parsing",
                )

            def masks():
                return (difference_mask(frame, plate.plate, cover, PARSING_PLATE_THRESHOLD)
                        for frame, cover in zip(frames(), pose_covers(poses, size)))

        seen = (poses.visibility >= 0.5) & np.isfinite(poses.xy).all(axis=-1)
        seen &= poses.person_present[:, None]
        result = parse_video(frames, masks, poses.xy.astype(np.float64), seen,
                             JointLayout.from_names(poses.skeleton.joint_names), config,
                             PARSING_FIT_FRAMES, progress, PARSING_MAX_HEIGHT)
        check_parsing_presence(result.labels, record, "the built-in parser")
        parsing = ParsingSequence(result.labels, "colour_model", poses.fps, inputs or "",
                                  poses.image_size)
        parsing.save(output)
        project.mark_done(stage, key)
    return parsing, StageResult(output, reused=False)


# --- normalization -------------------------------------------------------------------------

def normalize_source(
    project: Project, source: VideoRecord, config: NormalizeConfig | None = None,
    smoothing: SmoothingConfig | None = None, force: bool = False,
    progress: ProgressCallback | None = None,
) -> tuple[PoseSequence, StageResult]:
    """Map a source's poses onto the target (EDN global pose normalization) and cache them.

    With `method = "layout"` in [normalize] it is REMOT's global alignment instead, measured on
    the parsing maps when the target and the source both have a current parsing cache
    (extract-parsing / import-parsing), else on the joints. Poses that are not extracted yet
    are extracted first with the project's settings.
    """
    config = config or config_from_project(NormalizeConfig, project, "normalize")
    smoothing = smoothing or config_from_project(SmoothingConfig, project, "smoothing")
    target = project.target
    output = project.paths.normalized_poses(source.video_id)
    stage = f"normalized/{source.video_id}"
    if not force:  # cached: read under the shared lock, beside transfers that are generating
        with project.locked("normalize", shared=True):
            key = _normalized_key(project, source, config, smoothing)
            if key is not None and project.is_fresh(stage, key, output):
                return PoseSequence.load(output), StageResult(output, reused=True)
    # Poses already extracted are used with whatever settings made them; a video that is new
    # to the project, or whose trim changed, is extracted first (the target's under the
    # exclusive lock, a source's under its own: beside other transfers).
    if not _poses_recorded(project, target):
        extract_poses(project, target, progress=progress)
    with project.video_locked(source, "normalize"):
        if not _poses_recorded(project, source):
            extract_poses(project, source, progress=progress)
        key = _normalized_key(project, source, config, smoothing)
        if not force and project.is_fresh(stage, key, output):
            return PoseSequence.load(output), StageResult(output, reused=True)
        source_poses = load_poses(project, source, smoothing)
        target_poses = load_poses(project, target, smoothing)
        source_layout, target_layout = _layout_extents(project, source, config)
        normalized, _ = normalize_poses(source_poses, target_poses, config, source_layout,
                                        target_layout)
        normalized.save(output)
        project.mark_done(stage, key)
    return normalized, StageResult(output, reused=False)


def _poses_recorded(project: Project, record: VideoRecord) -> bool:
    return (project.videos.get(record.video_id) == record
            and project.paths.poses(record.video_id).exists())


def _uses_parsing(project: Project, source: VideoRecord, config: NormalizeConfig) -> bool:
    """The "layout" normalization measures heights on the parsing maps when both the target
    and the source have a current parsing cache (else on the joints, both alike)."""
    if config.method != "layout":
        return False
    return all(load_parsing(project, record) is not None for record in (project.target, source))


def _layout_extents(project: Project, source: VideoRecord, config: NormalizeConfig,
                    ) -> tuple[LayoutExtent | None, LayoutExtent | None]:
    """The source's and the target's extents from their parsing maps, or (None, None)."""
    if config.method != "layout":
        return None, None
    parsings = [load_parsing(project, record) for record in (source, project.target)]
    if any(parsing is None for parsing in parsings):
        return None, None
    source, target = (layout_extent(parsing.labels).scaled(parsing.video_scale)  # video pixels
                      for parsing in parsings)
    return source, target


def _normalized_key(project: Project, source: VideoRecord, config: NormalizeConfig,
                    smoothing: SmoothingConfig) -> str | None:
    """The cache key of a source's normalization; None while a video's poses are missing."""
    target = project.target
    if not (_poses_recorded(project, target) and _poses_recorded(project, source)):
        return None
    parsing = ([project.stage_fingerprint(f"parsing/{record.video_id}")
                for record in (source, target)]
               if _uses_parsing(project, source, config) else None)
    return fingerprint(
        "normalized",
        project.stage_fingerprint(f"poses/{source.video_id}"),
        project.stage_fingerprint(f"poses/{target.video_id}"),
        dataclasses.asdict(config), dataclasses.asdict(smoothing),
        *(() if parsing is None else (parsing,)),
    )


def nearest_target_frames(normalized_source: PoseSequence, target: PoseSequence) -> np.ndarray:
    """For each source frame, the target frame whose body pose is closest. # (T_source,) int

    Both are in the target's image coordinates (the source is normalized), so the distance is
    the mean over body joints visible in both of the pixel distance (`texture.bank`).
    """
    body = body_joints(normalized_source)
    nearest = nearest_frames(
        normalized_source.xy[:, body], normalized_source.visibility[:, body] > 0.5,
        target.xy[:, body], (target.visibility[:, body] > 0.5) & target.person_present[:, None])
    return np.maximum(nearest, 0)


# --- the target's frames at the working size -----------------------------------------------------

def frame_cache_key(project: Project, size: tuple[int, int]) -> tuple[Path, tuple[int, int], str]:
    """(path, size, source key) of the target's frame cache at `size` (`io.frame_cache`)."""
    record = project.target
    rate = timeline_fps(record.info)  # a variable frame rate: resampled as the poses were
    source_key = fingerprint("frames", record.info.sha256, record.start, record.end,
                             *(() if rate is None else (("constant rate", rate),)))
    return project.paths.frames_cache(record.video_id, size[1]), size, source_key


def target_frames(project: Project, size: tuple[int, int],
                  progress: ProgressCallback | None = None) -> FrameCache:
    """The target's frames at `size` (width, height), decoded once into the frame cache and
    memory-mapped (reused while the video is unchanged): training's pairs and the texture bank."""
    path, size, source_key = frame_cache_key(project, size)
    cache = open_frame_cache(path, size, source_key)
    if cache is not None:
        return cache
    record = project.target
    check_unchanged(record)  # a target replaced since its poses were extracted
    frames = (frame.rgb for frame in read_frames(record.info.path, record.start, record.end,
                                                 fps=timeline_fps(record.info)))
    total = round(((record.end or record.info.duration) - (record.start or 0.0)) * record.info.fps)
    return build_frame_cache(frames, path, size, source_key, total=total, progress=progress)


def texture_bank(project: Project, checkpoint: Checkpoint,
                 progress: ProgressCallback | None = None,
                 before_frame: int | None = None) -> TextureBank:
    """The target's frames as the texture a model takes (`Conditioning.texture`): its frame
    cache at the model's working size, its poses and the model's background plate.
    `before_frame`: only frames before it may be picked (the held-out protocol must not show
    the model the very frames it is scored on)."""
    frames = target_frames(project, checkpoint.working_size, progress)
    plate = checkpoint.models.get("background", {}).get("plate")
    poses = load_poses(project, project.target)
    allowed = None
    if before_frame is not None:
        allowed = np.arange(poses.num_frames) < before_frame
    return TextureBank(frames.frames, poses,
                       None if plate is None else to_images(plate.reshape(1, *plate.shape[-3:]))[0],
                       allowed)


def target_plate(project: Project, progress: ProgressCallback | None = None) -> np.ndarray | None:
    """The target's background plate at the video's own size, (H, W, 3) uint8, cached in the
    project (made again when the video or its poses change); None when the camera moves. What
    a compositing model's frames are put over when the output is larger than the working size
    (`background.plate.composite_at_size`)."""
    record = project.target
    stage, path = f"plate/{record.video_id}", project.paths.plate(record.video_id)
    key = fingerprint("plate", parsing_inputs(project, record), dataclasses.asdict(PlateConfig()))
    # Beside other transfers: the first one to need it makes it, the others wait and read it.
    with project.video_locked(record, "background plate", target_shared=True):
        if project.is_fresh(stage, key, path):
            with np.load(path) as cached:
                return None if bool(cached["moving_camera"]) else cached["plate"]
        poses = load_poses(project, record)
        check_unchanged(record)
        meter = RateMeter(progress, "background plate", poses.num_frames)
        frames = (frame.rgb for frame in read_frames(record.info.path, record.start, record.end,
                                                     timeline_fps(record.info)))
        result = estimate_plate(_counted(frames, meter), pose_covers(poses, poses.image_size),
                                poses.num_frames)
        meter.finish()
        with atomic_path(path, ".npz") as temporary:
            np.savez_compressed(temporary, plate=result.plate,
                                moving_camera=np.array(result.moving_camera))
        project.mark_done(stage, key)
    return None if result.moving_camera else result.plate
