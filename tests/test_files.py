"""Atomic writes: temporaries a killed writer leaves behind are cleaned up; what is written
follows the umask, as any new file does; a full disk (simulated: the write raises ENOSPC) is one
clear error that leaves the previous file and no partial one."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import pytest
from typer.testing import CliRunner

from motionxfer.checkpoint import new_payload, save_checkpoint
from motionxfer.cli import app, commands  # noqa: F401
from motionxfer.errors import DiskFull
from motionxfer.io import frame_cache as frame_cache_module
from motionxfer.io.files import (
    atomic_path,
    atomic_write,
    current_umask,
    remove_stale_temporaries,
)
from motionxfer.io.frame_cache import build_frame_cache, sidecar_path
from motionxfer.io.video import VideoWriter
from motionxfer.pipeline import init_project
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC
from motionxfer.project import Project
from motionxfer.settings import config_template

REPOSITORY = Path(__file__).resolve().parent.parent
FIXTURES = REPOSITORY / "tests" / "fixtures"


def killed_while_writing(path: Path) -> Path:
    """Start a process that writes `path` through atomic_write, kill -9 it mid-write; returns the
    temporary it left."""
    script = textwrap.dedent(f"""
        import sys, time
        from motionxfer.io.files import atomic_write
        with atomic_write({str(path)!r}) as handle:
            handle.write(b"x" * 100_000)
            handle.flush()
            print("writing", flush=True)
            time.sleep(60)
    """)
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPOSITORY)})
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "writing"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    left = [p for p in path.parent.iterdir() if p.name != path.name]
    assert len(left) == 1
    return left[0]


def test_a_temporary_left_by_a_killed_writer_goes_when_the_path_is_written_again(
        tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"the previous checkpoint")
    left = killed_while_writing(path)
    assert left.name.startswith(".model.pt.") and ".tmp" in left.name  # recognisable
    assert left.stat().st_size == 100_000
    assert path.read_bytes() == b"the previous checkpoint"  # untouched by the killed write
    with atomic_write(path) as handle:
        handle.write(b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert path.read_bytes() == b"new"


def test_temporaries_of_live_writers_and_other_files_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    with atomic_path(path) as ours:  # this process is alive: its temporary stays
        assert ours.name.startswith(f".out.mp4.{os.getpid()}.") and ours.suffix == ".mp4"
        assert remove_stale_temporaries(path) == []
        ours.write_bytes(b"video")
    other = tmp_path / ".other.mp4.999999999.abc.tmp.mp4"  # another file's temporary
    foreign = tmp_path / ".out.mp4.notes.txt"  # not a temporary
    other.write_bytes(b"")
    foreign.write_bytes(b"")
    dead = tmp_path / ".out.mp4.999999999.a1b2c3_d.tmp.mp4"  # no such process (pid_max < 2**22)
    dead.write_bytes(b"half")
    assert remove_stale_temporaries(path) == [dead]
    assert other.exists() and foreign.exists() and path.read_bytes() == b"video"


@pytest.fixture(params=[0o022, 0o077], ids=["umask 022", "umask 077"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_kind_of_file_follows_the_umask(umask: int, tmp_path: Path) -> None:
    expected = 0o666 & ~umask  # 0644 under 022, 0600 under 077
    assert current_umask() == umask
    project = Project.create(tmp_path / "me", config_template())  # manifest, config.toml
    poses = PoseSequence.empty(MEDIAPIPE_HOLISTIC, 3, 30.0, (64, 64))
    poses.save(project.paths.poses("clip"))
    cache = build_frame_cache([np.zeros((64, 64, 3), np.uint8)] * 3,
                              project.paths.frames_cache("clip", 64), (64, 64), "ab" * 32)
    save_checkpoint(project.paths.checkpoint, new_payload(generator_step=1))
    output = tmp_path / "out.mp4"
    with VideoWriter(output, fps=30, width=64, height=64) as writer:
        writer.write(np.zeros((64, 64, 3), np.uint8))
    written = {
        "manifest": project.paths.manifest, "config": project.paths.config,
        "poses": project.paths.poses("clip"), "frame cache": cache.path,
        "frame cache sidecar": sidecar_path(cache.path),
        "checkpoint": project.paths.checkpoint, "output video": output,
    }
    assert {kind: oct(mode(path)) for kind, path in written.items()} == \
        {kind: oct(expected) for kind in written}


def test_the_umask_is_read_without_being_changed() -> None:
    previous = os.umask(0o027)
    try:
        assert current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # still what it was
    finally:
        os.umask(previous)


# --- a full disk ---------------------------------------------------------------------------------

def no_space() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def only_the_file_is_left(folder: Path, name: str) -> bool:
    """`name` (or nothing) in `folder`: no temporary, no half-written file."""
    return [p.name for p in folder.iterdir()] in ([name], [])


def assert_clear_disk_full(error: DiskFull, path: Path, previous_kept: bool) -> None:
    assert str(path) in error.message and "No space left on device" in error.message
    assert f"free space in {path.parent}" in error.hint
    assert ("previous" in error.hint) == previous_kept


def test_a_full_disk_while_saving_poses_keeps_the_previous_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "poses.npz"
    PoseSequence.empty(MEDIAPIPE_HOLISTIC, 3, 30.0, (64, 64)).save(path)

    def fills_up(handle, **arrays) -> None:
        handle.write(b"PK half an archive")
        raise no_space()

    monkeypatch.setattr(np, "savez_compressed", fills_up)
    with pytest.raises(DiskFull) as error:
        PoseSequence.empty(MEDIAPIPE_HOLISTIC, 5, 30.0, (64, 64)).save(path)
    monkeypatch.undo()
    assert_clear_disk_full(error.value, path, previous_kept=True)
    assert PoseSequence.load(path).num_frames == 3 and only_the_file_is_left(tmp_path, path.name)


class _FillingFile:
    """A file that takes `room` bytes, then fails as a full disk does."""

    def __init__(self, handle: IO[bytes], room: int) -> None:
        self.handle, self.room = handle, room

    def write(self, data: bytes) -> int:
        if len(data) > self.room:
            raise no_space()
        self.room -= len(data)
        return self.handle.write(data)

    def __enter__(self) -> _FillingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def test_a_full_disk_while_caching_frames_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "frames_64.u8"
    frames = [np.zeros((64, 64, 3), np.uint8)] * 10
    monkeypatch.setattr(frame_cache_module, "open",
                        lambda name, mode: _FillingFile(open(name, mode), 5 * 64 * 64 * 3),
                        raising=False)
    with pytest.raises(DiskFull) as error:
        build_frame_cache(frames, path, (64, 64), "ab" * 32)
    assert_clear_disk_full(error.value, path, previous_kept=False)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_at_the_frame_cache_sidecar_removes_the_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "frames_64.u8"

    def sidecar_fills_up(sidecar: Path, data: object) -> None:
        with atomic_write(sidecar, "w") as handle:
            handle.write("{")
            raise no_space()

    monkeypatch.setattr(frame_cache_module, "write_json", sidecar_fills_up)
    with pytest.raises(DiskFull):
        build_frame_cache([np.zeros((64, 64, 3), np.uint8)] * 4, path, (64, 64), "ab" * 32)
    assert list(tmp_path.iterdir()) == []  # not 49 kB of frames that no sidecar vouches for


def test_a_full_disk_while_encoding_a_video_leaves_no_partial_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "out.mp4"
    real_mux = VideoWriter._mux_video
    muxed = []

    def fills_up(self: VideoWriter, packet: object) -> None:
        muxed.append(packet)
        if len(muxed) > 2:
            raise no_space()
        real_mux(self, packet)  # type: ignore[arg-type]

    monkeypatch.setattr(VideoWriter, "_mux_video", fills_up)
    with pytest.raises(DiskFull) as error:
        with VideoWriter(output, fps=30, width=64, height=64) as writer:
            for _ in range(30):
                writer.write(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    assert_clear_disk_full(error.value, output, previous_kept=False)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_ends_the_command_with_one_error_and_its_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = init_project(tmp_path / "me", FIXTURES / "target_clip.mp4")

    def fills_up(handle, **arrays) -> None:
        raise no_space()

    monkeypatch.setattr(np, "savez_compressed", fills_up)
    result = CliRunner().invoke(app, ["import-keypoints", str(project.root),
                                      str(FIXTURES / "target_clip_keypoints.npz")])
    assert result.exit_code == DiskFull.exit_code == 6
    text = " ".join(result.output.split())  # the console wraps long lines
    assert text.startswith("error: could not write ") and "No space left on device" in text
    assert text.count("error:") == 1 and text.count(" fix: free space in ") == 1
    assert "Traceback" not in result.output
    poses = project.paths.poses(project.target.video_id)
    assert only_the_file_is_left(poses.parent, "never written")  # no temporary left behind
