"""A project: one working directory per target person.

    me/
      motionxfer.json        manifest: schema and tool versions, the videos, stage fingerprints
      config.toml            the user's overrides, one table per stage
      .motionxfer.lock       held while a process writes (or, shared, reads) the project
      .motionxfer.manifest.lock  held for the moment of a manifest update
      .motionxfer.locks/     <video id>.lock while one process prepares that video (beside
                             others reading the project; another waits); removed afterwards
      videos/<video id>/     per-video cache: poses.npz, parsing.npz, normalized.npz,
                             frames cache, ...
      checkpoints/           the personal model
      exports/               ONNX files
      logs/                  training logs and sample grids

`ProjectPaths` is the one place that knows these paths. `Project` reads and writes the manifest,
always atomically and under the lock: the project's exclusive lock, or its shared lock and the
lock of the source video whose stages are written (`Project.video_locked`), so that batch jobs
can prepare new sources while other transfers generate. Each update re-reads the manifest under
the manifest lock, so that one process's update never loses another's.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import fcntl
import json
import logging
import os
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, Any

from motionxfer import __version__
from motionxfer.config import from_dict, override, read_toml
from motionxfer.errors import BadInput, CheckpointError, ProjectError, ProjectLocked
from motionxfer.io.files import write_json, write_text
from motionxfer.io.video import VideoInfo

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST_NAME = "motionxfer.json"

@dataclass(frozen=True)
class ProjectPaths:
    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def lock(self) -> Path:
        return self.root / ".motionxfer.lock"

    @property
    def manifest_lock(self) -> Path:
        return self.root / ".motionxfer.manifest.lock"

    @property
    def videos(self) -> Path:
        return self.root / "videos"

    def video_dir(self, video_id: str) -> Path:
        return self.videos / video_id

    def video_lock(self, video_id: str) -> Path:
        """Held (exclusive) while one process prepares a source video (`Project.video_locked`)."""
        return self.root / ".motionxfer.locks" / f"{video_id}.lock"

    def poses(self, video_id: str) -> Path:
        return self.video_dir(video_id) / "poses.npz"

    def person_masks(self, video_id: str) -> Path:
        """MediaPipe's person masks (`extract.PersonMasks`), written when segmentation is on."""
        return self.video_dir(video_id) / "person_masks.npz"

    def normalized_poses(self, video_id: str) -> Path:
        return self.video_dir(video_id) / "normalized.npz"

    def parsing(self, video_id: str) -> Path:
        """The six-class parsing of every frame (`parsing.io.ParsingSequence`): from
        extract-parsing (the built-in parser) or import-parsing (an external parser's maps)."""
        return self.video_dir(video_id) / "parsing.npz"

    def plate(self, video_id: str) -> Path:
        """The video's background plate at its own size (`pipeline.target_plate`)."""
        return self.video_dir(video_id) / "plate.npz"

    def frames_cache(self, video_id: str, size: int) -> Path:
        return self.video_dir(video_id) / f"frames_{size}.u8"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def checkpoint(self) -> Path:
        """The personal model that train-target writes and transfer reads."""
        return self.checkpoints / "model.pt"

    @property
    def exports(self) -> Path:
        """ONNX exports of the personal model, named after the checkpoint's sha256."""
        return self.root / "exports"

    @property
    def tensorrt_cache(self) -> Path:
        """TensorRT engines built by ONNX Runtime's TensorRT provider (built once per GPU)."""
        return self.exports / "tensorrt"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def train_log(self) -> Path:
        """One JSON line per logged training step and per validation."""
        return self.logs / "train.jsonl"

    @property
    def training_samples(self) -> Path:
        """PNG grids (stick figure | generated | real) written during training."""
        return self.logs / "samples"


def video_id_for(info: VideoInfo) -> str:
    """A readable, unique folder name: the file's stem (ASCII slug) and the start of its sha256."""
    stem = unicodedata.normalize("NFKD", info.path.stem).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", stem).strip("-").lower()[:40] or "video"
    return f"{slug}-{info.sha256[:10]}"


@dataclass(frozen=True)
class VideoRecord:
    video_id: str
    role: str  # "target" or "source"
    info: VideoInfo
    start: float | None = None  # seconds: the part of the video used (--start/--end)
    end: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "start": self.start, "end": self.end, **self.info.to_dict()}

    @staticmethod
    def from_dict(video_id: str, data: dict[str, Any]) -> VideoRecord:
        info = {k: v for k, v in data.items() if k not in ("role", "start", "end")}
        return VideoRecord(
            video_id, data["role"], VideoInfo.from_dict(info), data.get("start"), data.get("end")
        )


MANIFEST_KEYS = ("target", "videos", "stages")
VIDEO_KEYS = ("role", *(field.name for field in fields(VideoInfo)))  # start, end: optional


def check_manifest(path: Path, manifest: dict[str, Any]) -> None:
    """ProjectError naming the entry and the key when a manifest (edited by hand, or cut) lacks
    one that the stages read, instead of a KeyError deep inside one of them."""
    hint = (f"restore {path.name} from a backup (or put the key back), or make the project "
            "again with motionxfer init in a new folder")
    for key in MANIFEST_KEYS:
        if key not in manifest:
            raise ProjectError(f"{path} has no \"{key}\" entry", hint=hint)
    videos = manifest["videos"]
    if not isinstance(videos, dict) or not isinstance(manifest["stages"], dict):
        raise ProjectError(f"{path}: \"videos\" and \"stages\" must be objects", hint=hint)
    for video_id, entry in videos.items():
        if not isinstance(entry, dict):
            raise ProjectError(f"{path}: the video entry \"{video_id}\" is not an object",
                               hint=hint)
        for key in VIDEO_KEYS:
            if key not in entry:
                raise ProjectError(
                    f"{path}: the video entry \"{video_id}\" has no \"{key}\"", hint=hint)
    target = manifest["target"]
    if target is not None and target not in videos:
        raise ProjectError(f"{path}: the target \"{target}\" has no entry in \"videos\"",
                           hint=hint)


def read_manifest(paths: ProjectPaths) -> dict[str, Any]:
    """The manifest on disk, checked: ProjectError with the fix when it cannot be read, belongs
    to another tool or a newer motionxfer, or lacks a key the stages read."""
    try:
        manifest = json.loads(paths.manifest.read_text())
    except (OSError, ValueError) as error:
        raise ProjectError(
            f"cannot read {paths.manifest}: {error}",
            hint="restore the file from a backup, or start a new project",
        ) from error
    if not isinstance(manifest, dict) or manifest.get("tool") != "motionxfer":
        raise ProjectError(
            f"{paths.manifest} belongs to another tool",
            hint="choose a folder made by 'motionxfer init'",
        )
    if int(manifest.get("schema_version", 0)) > SCHEMA_VERSION:
        raise ProjectError(
            f"{paths.root} was made by a newer motionxfer "
            f"(schema {manifest['schema_version']}, this one reads {SCHEMA_VERSION})",
            hint="upgrade motionxfer: pip install -U motionxfer",
        )
    check_manifest(paths.manifest, manifest)
    return manifest


class Project:
    """An open project folder. Create with `Project.create`, open with `Project.open`."""

    def __init__(self, root: Path, manifest: dict[str, Any]) -> None:
        self.paths = ProjectPaths(root)
        self._manifest = manifest
        self._lock_mode: str | None = None  # "shared" or "exclusive" while held
        self._lock_depth = 0
        self._video_locks: dict[str, int] = {}  # video id -> depth, under the shared lock

    # --- opening ---------------------------------------------------------------------------
    @staticmethod
    def create(root: str | os.PathLike[str], config_text: str = "") -> Project:
        """A new project folder; `config_text` becomes its config.toml (`settings.config_template()`
        lists every stage's settings)."""
        root = Path(root).expanduser().absolute()
        paths = ProjectPaths(root)
        if paths.manifest.exists():
            raise ProjectError(
                f"{root} is already a motionxfer project",
                hint="use it as it is, or choose another folder for a new project",
            )
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise ProjectError(
                f"{root} exists and is not an empty folder",
                hint="choose a new or empty folder for the project",
            )
        root.mkdir(parents=True, exist_ok=True)
        manifest = {
            "tool": "motionxfer",
            "schema_version": SCHEMA_VERSION,
            "tool_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "target": None,
            "videos": {},
            "stages": {},
        }
        project = Project(root, manifest)
        with project.locked():
            write_text(paths.config, config_text)
            project._update(lambda manifest: None)
        return project

    @staticmethod
    def open(root: str | os.PathLike[str]) -> Project:
        root = Path(root).expanduser().absolute()
        paths = ProjectPaths(root)
        if not root.is_dir():
            raise ProjectError(
                f"no project folder at {root}",
                hint=f"create it with: motionxfer init {root} --target VIDEO",
            )
        if not paths.manifest.is_file():
            raise ProjectError(
                f"{root} is not a motionxfer project (no {MANIFEST_NAME})",
                hint=f"create one with: motionxfer init {root} --target VIDEO",
            )
        return Project(root, read_manifest(paths))

    # --- the locks -------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, purpose: str = "", shared: bool = False) -> Iterator[None]:
        """Hold the project's lock: exclusive (the default) to write the project, `shared` to
        read what must not change meanwhile (transfer reading and using the checkpoint).

        Many processes may share it; a writer needs it alone, so a writer is refused while
        anybody reads and a reader while somebody writes (`ProjectLocked`, never a wait).
        Re-entrant within one `Project` object: inside the exclusive lock a shared one is
        granted at once; inside a shared one the exclusive one is a programming error (flock
        cannot upgrade without letting go in between), so a command takes the exclusive lock
        for its writing steps first and the shared one afterwards, not around them. Under the
        shared lock a source video's stages are written with `video_locked`.
        """
        held = self._lock_mode
        if held is not None:
            if held == "shared" and not shared:
                raise RuntimeError(f"cannot take the project's write lock ({purpose}) inside "
                                   "its shared lock: take it before or after")
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self.paths.root.mkdir(parents=True, exist_ok=True)
        handle = _take_lock(self.paths.lock, shared, f"project {self.paths.root}")
        line = f"process {os.getpid()} ({purpose or 'motionxfer'}{', reading' if shared else ''})"
        if shared:  # other readers may be listed: add this one
            handle.seek(0, os.SEEK_END)
        else:
            handle.seek(0)
            handle.truncate()
        handle.write(line + "\n")
        handle.flush()
        self._lock_depth, self._lock_mode = 1, ("shared" if shared else "exclusive")
        try:
            yield
        finally:
            self._lock_depth, self._lock_mode = 0, None
            if shared:  # take this reader off the list, leave the others (best effort)
                handle.seek(0)
                others = [kept for kept in handle.read().splitlines() if kept != line]
                handle.seek(0)
                handle.truncate()
                handle.write("".join(f"{kept}\n" for kept in others))
            else:
                handle.truncate(0)
            _release(handle)

    @contextlib.contextmanager
    def video_locked(self, record: VideoRecord, purpose: str,
                     target_shared: bool = False) -> Iterator[None]:
        """Hold what writing one video's stages (poses, parsing, normalization) needs.

        For a source: the project's shared lock (train-target cannot start meanwhile, other
        transfers go on generating) and the video's own lock, which one process holds at a
        time: a second one waits for it (saying for whom), then finds the stage done. So batch
        jobs prepare new sources side by side. For the target, whose poses and parsing the
        model was trained from: the exclusive lock, unless `target_shared` (a cache made beside
        generating transfers, such as the background plate at the video's size). Inside the
        exclusive lock, nothing more. The manifest is read afresh once the video's lock is
        held: another process may have prepared this video since the project was opened.
        """
        video_id = record.video_id
        if (record.role == "target" and not target_shared) or self._lock_mode == "exclusive":
            with self.locked(purpose):
                yield
            return
        if video_id in self._video_locks:
            self._video_locks[video_id] += 1
            try:
                yield
            finally:
                self._video_locks[video_id] -= 1
            return
        with self.locked(purpose, shared=True):
            path = self.paths.video_lock(video_id)
            path.parent.mkdir(exist_ok=True)
            handle = _wait_for_lock(path, f"{record.info.path.name} in project {self.paths.root}")
            handle.seek(0)
            handle.truncate()
            handle.write(f"process {os.getpid()} ({purpose})\n")
            handle.flush()
            self._video_locks[video_id] = 1
            try:
                if self.paths.manifest.is_file():
                    self._manifest = read_manifest(self.paths)
                yield
            finally:
                del self._video_locks[video_id]
                path.unlink(missing_ok=True)  # while still held: see _take_lock
                _release(handle)

    @contextlib.contextmanager
    def _writing(self, video_id: str | None, purpose: str) -> Iterator[None]:
        """The lock a manifest write needs: the exclusive one (taken here when no lock is
        held), or the shared one with the lock of the video written about."""
        if self._lock_mode == "shared" and video_id not in self._video_locks:
            raise RuntimeError(f"cannot take the project's write lock ({purpose}) inside "
                               "its shared lock: take it before or after, or write a source "
                               "video's stages inside video_locked")
        with contextlib.nullcontext() if self._lock_mode else self.locked(purpose):
            yield

    def _update(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply `change` to the manifest as it is on disk now, and write it atomically; the
        manifest lock is held (waited for: a moment) between the read and the write, so that
        processes writing about different videos never lose each other's updates."""
        with open(self.paths.manifest_lock, "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                if self.paths.manifest.is_file():
                    self._manifest = read_manifest(self.paths)
                change(self._manifest)
                self._manifest["tool_version"] = __version__
                write_json(self.paths.manifest, self._manifest)
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # --- videos ----------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.paths.root

    @property
    def videos(self) -> dict[str, VideoRecord]:
        return {
            video_id: VideoRecord.from_dict(video_id, data)
            for video_id, data in self._manifest["videos"].items()
        }

    @property
    def target(self) -> VideoRecord:
        target_id = self._manifest.get("target")
        if not target_id:
            raise ProjectError(
                f"project {self.root} has no target video",
                hint=f"add one with: motionxfer init {self.root} --target VIDEO",
            )
        return self.videos[target_id]

    def add_video(
        self, info: VideoInfo, role: str, start: float | None = None, end: float | None = None
    ) -> VideoRecord:
        """Record a video (idempotent for the same content); returns its record."""
        record = self.new_record(info, role, start, end)
        self.save_record(record)
        return record

    def new_record(
        self, info: VideoInfo, role: str, start: float | None = None, end: float | None = None
    ) -> VideoRecord:
        """The record a video would get, without writing it (see `save_record`)."""
        if role not in ("target", "source"):
            raise ValueError(role)
        video_id = video_id_for(info)
        if self._manifest.get("target") == video_id:
            role = "target"  # the target can also drive itself (self-reconstruction)
        elif role == "target" and self._manifest.get("target"):
            raise BadInput(
                f"project {self.root} already has a target video "
                f"({self._manifest['videos'][self._manifest['target']]['path']})",
                hint="one project is one target person: make a new project for another",
            )
        return VideoRecord(video_id, role, info, start, end)

    def save_record(self, record: VideoRecord) -> None:
        def change(manifest: dict[str, Any]) -> None:
            if record.role == "target":
                manifest["target"] = record.video_id
            manifest["videos"][record.video_id] = record.to_dict()

        with self._writing(None if record.role == "target" else record.video_id, "add video"):
            self._update(change)

    def find_video(self, path: str | os.PathLike[str]) -> VideoRecord | None:
        """The record of a video already added, found by its path."""
        wanted = Path(path).expanduser().absolute()
        for record in self.videos.values():
            if record.info.path == wanted:
                return record
        return None

    # --- stage fingerprints ----------------------------------------------------------------
    def is_fresh(self, stage: str, fingerprint: str, *outputs: Path) -> bool:
        """True when `stage` last ran with this fingerprint and its outputs still exist."""
        return self._manifest["stages"].get(stage) == fingerprint and all(
            path.exists() for path in outputs
        )

    def stage_fingerprint(self, stage: str) -> str | None:
        return self._manifest["stages"].get(stage)

    def mark_done(self, stage: str, fingerprint: str) -> None:
        """Record `stage`'s fingerprint. A per-video stage is named `<kind>/<video id>`."""
        with self._writing(stage.rpartition("/")[2], stage):
            self._update(lambda manifest: manifest["stages"].__setitem__(stage, fingerprint))

    # --- settings --------------------------------------------------------------------------
    def settings(self, table: str) -> dict[str, Any]:
        """The user's overrides for one stage, from config.toml (empty when none)."""
        if not self.paths.config.exists():
            return {}
        values = read_toml(self.paths.config).get(table, {})
        if not isinstance(values, dict):
            raise BadInput(
                f"[{table}] in {self.paths.config} must be a table",
                hint=f"write it as a [{table}] section",
            )
        return values

    def find_checkpoint(self, checkpoint: str | os.PathLike[str] | None = None) -> Path:
        """`checkpoint`, or the project's own model; an error with the fix when it is missing."""
        path = Path(checkpoint) if checkpoint else self.paths.checkpoint
        if not path.is_file():
            raise CheckpointError(
                f"no trained model at {path}",
                hint=f"train one first: motionxfer train-target {self.root}",
            )
        return path

    def manifest_copy(self) -> dict[str, Any]:
        return copy.deepcopy(self._manifest)


def config_from_project(cls: type, project: Project | None, table: str, **flags: Any) -> Any:
    """Defaults, then the project's [table], then flags that were given (not None)."""
    values = project.settings(table) if project else {}
    return override(from_dict(cls, values, f"[{table}] of config.toml"), **flags)


def _take_lock(path: Path, shared: bool, what: str) -> IO[str]:
    """`path` opened and flocked (shared or exclusive, never waiting); ProjectLocked naming the
    holders written in it when another process has it. A lock file may be removed by its holder
    on release (the videos' are): one locked after its removal is not the path's any more, and
    is opened again."""
    while True:
        handle = open(path, "a+")  # noqa: SIM115 (closed by _release, or here when refused)
        try:
            fcntl.flock(handle.fileno(),
                        (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holders = [line.strip() for line in handle.read().splitlines() if line.strip()]
            handle.close()
            raise ProjectLocked(
                f"{what} is in use by {', '.join(holders) or 'another process'}",
                hint="wait for that command to finish (or stop it), then run this one again",
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                return handle
        except FileNotFoundError:
            pass
        _release(handle)  # removed meanwhile by the holder that let go: take the new one


def _wait_for_lock(path: Path, what: str, poll_seconds: float = 0.2) -> IO[str]:
    """`path` flocked exclusive, waiting while another process holds it (said once, with who)."""
    told = False
    while True:
        try:
            return _take_lock(path, False, what)
        except ProjectLocked as busy:
            if not told:
                logger.info("waiting: %s", busy.message)
                told = True
        time.sleep(poll_seconds)


def _release(handle: IO[str]) -> None:
    handle.flush()
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()
