"""Atomic writes: temporaries a killed writer leaves behind are cleaned up; what is written
follows the umask, as any new file does."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from motionxfer.checkpoint import new_payload, save_checkpoint
from motionxfer.io.files import (
    atomic_path,
    atomic_write,
    current_umask,
    remove_stale_temporaries,
)
from motionxfer.io.video import VideoWriter
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC
from motionxfer.project import Project
from motionxfer.settings import config_template
from motionxfer.training.dataset import build_frame_cache, sidecar_path

REPOSITORY = Path(__file__).resolve().parent.parent


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
