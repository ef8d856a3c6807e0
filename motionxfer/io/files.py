"""Atomic file writes and content hashes.

Every file motionxfer writes goes through `atomic_write` (or `atomic_path`): the data lands in a
temporary file in the same folder, `.<name>.<pid>.<random>.tmp`, is flushed to disk, then renamed
over the destination. A crash or a full disk leaves either the old file or the new one, never half
of one (a full disk raises `DiskFull`, which says where to free space); the temporary a killed
process leaves behind is removed the next time that path is written.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import re
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from motionxfer.errors import BadInput, DiskFull

TEMPORARY_SUFFIX = ".tmp"


def temporary_name_prefix(path: Path) -> str:
    """How the temporaries of `path` start: `.model.pt.` for model.pt, then `<pid>.<random>.tmp`
    (and the extension some writers look at) follows."""
    return f".{path.name}."


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (another user's counts; unsure: alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    return True


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporaries of `path` left by processes that died while writing it (a kill -9
    during a checkpoint write leaves one as large as the checkpoint); returns what went.

    A temporary is `.<name>.<pid>.<random>.tmp[<ext>]` next to `path`; one whose process is still
    alive (another writer, or this process) is kept. Pids are of this machine: on a folder that
    several machines share, another machine's live writer could be taken for a dead one (training
    on several machines writes from rank 0 alone).
    """
    path = Path(path)
    prefix = temporary_name_prefix(path)
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.[A-Za-z0-9_]+" + re.escape(TEMPORARY_SUFFIX)
                         + r"(\.[A-Za-z0-9]+)?")
    removed: list[Path] = []
    try:
        candidates = list(path.parent.glob(f"{glob.escape(prefix)}*{TEMPORARY_SUFFIX}*"))
    except OSError:
        return removed
    for candidate in candidates:
        match = pattern.fullmatch(candidate.name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
            removed.append(candidate)
    return removed


NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def _no_space_error(error: BaseException) -> OSError | None:
    """The ENOSPC / EDQUOT OSError that `error` is, or was raised from (torch and PyAV wrap it)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OSError) and cause.errno in NO_SPACE_ERRNOS:
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` (or what it was raised from) says the disk or the quota is full."""
    return _no_space_error(error) is not None


def disk_full_error(path: Path, error: BaseException) -> DiskFull:
    """The DiskFull for a failed write of `path` (whose previous version, if any, is intact)."""
    kept = f"the previous {path.name} is intact" if path.exists() else "no partial file was left"
    cause = _no_space_error(error)
    reason = cause.strerror if cause is not None and cause.strerror else "no space left"
    return DiskFull(f"could not write {path}: {reason}",
                    hint=f"free space in {path.parent} ({kept}), then run the command again")


_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux's
    /proc/self/status); elsewhere set and put back at once, under a lock."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _make_temporary(path: Path, extension: str = "") -> tuple[int, str]:
    """Create the temporary file for `path` (after removing dead writers' ones): (fd, name).

    mkstemp makes it 0600; it gets the mode any new file gets (0666 less the umask: 0644 under
    the usual 022), so the file that replaces `path` can be read by whom the user meant.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
        fd, name = tempfile.mkstemp(prefix=f"{temporary_name_prefix(path)}{os.getpid()}.",
                                    suffix=f"{TEMPORARY_SUFFIX}{extension}", dir=path.parent)
    except OSError as error:
        if is_disk_full(error):  # not even room for an empty file (or out of inodes)
            raise disk_full_error(path, error) from error
        raise
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    return fd, name


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to `path`; on success rename it to `path`."""
    path = Path(path)
    fd, tmp_name = _make_temporary(path)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as error:
        _discard(tmp_name, path, error)
        raise


def _discard(tmp_name: str, path: Path, error: BaseException) -> None:
    """After a failed write: the temporary file removed, a full disk said as such."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp_name)
    if is_disk_full(error) and not isinstance(error, DiskFull):
        raise disk_full_error(path, error) from error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """A temporary path next to `path` for writers that want a file name (encoders, np.savez).

    `suffix` keeps the extension that some writers look at (".mp4", ".npz").
    """
    path = Path(path)
    fd, tmp_name = _make_temporary(path, suffix or path.suffix)
    os.close(fd)
    try:
        yield Path(tmp_name)
        os.replace(tmp_name, path)
    except BaseException as error:
        _discard(tmp_name, path, error)
        raise


def save_npz(path: str | os.PathLike[str], version: int, **arrays: Any) -> None:
    """A compressed .npz with a `version` entry, written atomically."""
    import numpy as np

    with atomic_path(path, ".npz") as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, version=np.int32(version), **arrays)


def load_npz(path: str | os.PathLike[str], max_version: int, what: str,
             rebuild_hint: str) -> dict[str, Any]:
    """Every array of a file written by `save_npz`, refusing files of a newer version.

    Raises BadInput naming `what` ("pose file") with `rebuild_hint` for a missing or damaged file.
    """
    import numpy as np


    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        version = int(arrays.pop("version"))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise BadInput(f"cannot read the {what} {path}: {error}", hint=rebuild_hint) from error
    if version > max_version:
        raise BadInput(
            f"{path} was written by a newer motionxfer ({what} v{version})",
            hint=f"upgrade motionxfer, or: {rebuild_hint}",
        )
    return arrays


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-serialisable inputs and settings (a stage's cache key)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]
