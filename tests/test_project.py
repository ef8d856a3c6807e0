"""The working directory: manifest, atomic writes, the lock, fingerprints, config overrides."""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from motionxfer.cli import app, commands  # noqa: F401
from motionxfer.config import from_dict, override
from motionxfer.errors import BadInput, ProjectError, ProjectLocked
from motionxfer.io.files import atomic_write, fingerprint, write_json
from motionxfer.io.video import VideoInfo
from motionxfer.project import Project, video_id_for
from motionxfer.settings import config_template


def fake_info(path: Path, sha: str = "ab" * 32) -> VideoInfo:
    return VideoInfo(
        path=path, sha256=sha, fps=30.0, frame_count=90, frame_count_exact=True, width=256,
        height=256, rotation=0, duration=3.0, variable_frame_rate=False, has_audio=False,
        codec="h264",
    )


def test_create_writes_manifest_and_config(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "me", config_template())
    manifest = json.loads(project.paths.manifest.read_text())
    assert manifest["tool"] == "motionxfer"
    assert manifest["schema_version"] == 1
    assert manifest["videos"] == {} and manifest["target"] is None
    assert project.paths.config.read_text().startswith("# motionxfer settings")


def test_add_video_round_trips_through_the_manifest(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "me")
    record = project.add_video(fake_info(tmp_path / "tänz video.mp4"), "target", 1.0, 2.5)
    reopened = Project.open(tmp_path / "me")
    assert reopened.target == record
    assert reopened.target.start == 1.0 and reopened.target.end == 2.5
    assert record.video_id == video_id_for(record.info)
    assert record.video_id.isascii() and " " not in record.video_id


def test_second_target_is_refused(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "me")
    project.add_video(fake_info(tmp_path / "a.mp4", "aa" * 32), "target")
    with pytest.raises(BadInput, match="already has a target"):
        project.add_video(fake_info(tmp_path / "b.mp4", "bb" * 32), "target")


@pytest.mark.parametrize("setup", ["missing", "foreign_file", "foreign_manifest", "newer"])
def test_open_refuses_what_is_not_ours(tmp_path: Path, setup: str) -> None:
    root = tmp_path / "p"
    if setup == "foreign_file":
        root.mkdir()
        (root / "notes.txt").write_text("hello")
    elif setup == "foreign_manifest":
        root.mkdir()
        (root / "motionxfer.json").write_text(json.dumps({"tool": "something-else"}))
    elif setup == "newer":
        Project.create(root)
        data = json.loads((root / "motionxfer.json").read_text())
        data["schema_version"] = 99
        (root / "motionxfer.json").write_text(json.dumps(data))
    with pytest.raises(ProjectError) as error:
        Project.open(root)
    assert error.value.hint


@pytest.mark.parametrize("dropped", ["sha256", "role", "fps"])
def test_a_video_entry_missing_a_key_is_named_with_the_fix(tmp_path: Path, dropped: str) -> None:
    """motionxfer.json edited by hand: one clear error (CLI: exit 3), not a KeyError later."""
    project = Project.create(tmp_path / "me")
    record = project.add_video(fake_info(tmp_path / "me.mp4"), "target")
    data = json.loads(project.paths.manifest.read_text())
    del data["videos"][record.video_id][dropped]
    project.paths.manifest.write_text(json.dumps(data))
    with pytest.raises(ProjectError) as error:
        Project.open(project.root)
    assert record.video_id in error.value.message and f'"{dropped}"' in error.value.message
    assert "restore motionxfer.json" in error.value.hint and "motionxfer init" in error.value.hint
    result = CliRunner().invoke(app, ["extract-poses", str(project.root)])
    assert result.exit_code == 3
    assert "error:" in result.output and "Traceback" not in result.output
    assert f'has no "{dropped}"' in result.output


def test_a_target_without_its_entry_is_named(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "me")
    data = json.loads(project.paths.manifest.read_text())
    data["target"] = "me-0123456789"
    project.paths.manifest.write_text(json.dumps(data))
    with pytest.raises(ProjectError, match="me-0123456789"):
        Project.open(project.root)


def test_create_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "keep.txt").write_text("mine")
    with pytest.raises(ProjectError, match="not an empty folder"):
        Project.create(tmp_path / "p")
    assert sorted(os.listdir(tmp_path / "p")) == ["keep.txt"]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    write_json(path, {"good": 1})
    with pytest.raises(RuntimeError), atomic_write(path, "w") as handle:
        handle.write('{"half": ')
        raise RuntimeError("disk full")
    assert json.loads(path.read_text()) == {"good": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]  # no temp file left


@contextlib.contextmanager
def lock_held_by_a_child(hold, root: Path) -> Iterator[None]:
    """Another process holds the project's lock (`hold` runs in it) while the block runs."""
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    child = context.Process(target=hold, args=(str(root), ready, release))
    child.start()
    try:
        assert ready.wait(30)
        yield
    finally:
        release.set()
        child.join(30)


def _hold_lock(root: str, ready, release) -> None:  # runs in a child process
    project = Project.open(root)
    with project.locked("test holder"):
        ready.set()
        release.wait(10)


def test_lock_stops_a_second_process(tmp_path: Path) -> None:
    Project.create(tmp_path / "me")
    with lock_held_by_a_child(_hold_lock, tmp_path / "me"):
        with pytest.raises(ProjectLocked) as error, Project.open(tmp_path / "me").locked():
            pass
        assert "test holder" in error.value.message and error.value.hint
    with Project.open(tmp_path / "me").locked():  # free again once the holder is gone
        pass


def _hold_shared_lock(root: str, ready, release) -> None:  # runs in a child process
    project = Project.open(root)
    with project.locked("transfer", shared=True):
        ready.set()
        release.wait(10)


def test_readers_share_the_lock_and_shut_out_a_writer(tmp_path: Path) -> None:
    """While a transfer holds the lock shared, another reader gets it too, a writer (train-target)
    is refused with a ProjectLocked naming the reader; a writer shuts readers out in turn."""
    Project.create(tmp_path / "me")
    with lock_held_by_a_child(_hold_shared_lock, tmp_path / "me"):
        with Project.open(tmp_path / "me").locked("second reader", shared=True):
            pass
        with pytest.raises(ProjectLocked) as error, Project.open(tmp_path / "me").locked(
                "train-target"):
            pass
        assert "transfer" in error.value.message and error.value.hint
    writer = Project.open(tmp_path / "me")
    with writer.locked("train-target"):
        with pytest.raises(ProjectLocked, match="train-target"), Project.open(
                tmp_path / "me").locked("transfer", shared=True):
            pass
        with writer.locked("read inside the write lock", shared=True):  # re-entrant
            writer.mark_done("stage", "abc")
    reader = Project.open(tmp_path / "me")
    with reader.locked("transfer", shared=True):
        with pytest.raises(RuntimeError, match="inside its shared lock"), reader.locked("w"):
            pass
        with pytest.raises(RuntimeError, match="inside its shared lock"):
            reader.mark_done("stage", "def")  # writing needs the exclusive lock
    assert (tmp_path / "me" / ".motionxfer.lock").read_text() == ""


def test_train_target_is_refused_while_a_transfer_reads(tmp_path: Path) -> None:
    """The command line: train-target exits with ProjectLocked's code and one clear error."""
    from typer.testing import CliRunner

    from motionxfer.cli import app
    from motionxfer.pipeline import import_keypoints, init_project

    fixtures = Path(__file__).parent / "fixtures"
    project = init_project(tmp_path / "me", fixtures / "target_clip.mp4")
    import_keypoints(project, project.target, fixtures / "target_clip_keypoints.npz")
    with lock_held_by_a_child(_hold_shared_lock, tmp_path / "me"):
        result = CliRunner().invoke(app, ["train-target", str(tmp_path / "me"), "--steps", "1",
                                          "--preset", "tiny", "--no-perceptual"])
    assert result.exit_code == ProjectLocked.exit_code, result.output
    stderr = "".join(result.stderr.splitlines())
    assert stderr.count("error:") == 1 and "in use by" in stderr and "transfer" in stderr


def test_lock_is_reentrant_within_one_project(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "me")
    with project.locked("outer"), project.locked("inner"):
        project.mark_done("stage", "abc")
    assert Project.open(tmp_path / "me").is_fresh("stage", "abc")


def test_fingerprints_decide_freshness(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "me")
    output = tmp_path / "me" / "out.npz"
    key = fingerprint("poses", "sha", {"hands": True})
    assert key == fingerprint("poses", "sha", {"hands": True})
    assert key != fingerprint("poses", "sha", {"hands": False})
    project.mark_done("poses/x", key)
    assert not project.is_fresh("poses/x", key, output)  # output missing
    output.write_bytes(b"x")
    assert project.is_fresh("poses/x", key, output)
    assert not project.is_fresh("poses/x", fingerprint("other"), output)


@dataclass(frozen=True)
class Example:
    strength: float = 1.0
    max_gap: int = 5
    name: str = "a"


def test_config_from_dict_is_strict() -> None:
    assert from_dict(Example, {"strength": 2}, "t").strength == 2.0
    with pytest.raises(BadInput, match="unknown setting"):
        from_dict(Example, {"strenght": 2}, "t")
    with pytest.raises(BadInput, match="must be an integer"):
        from_dict(Example, {"max_gap": "five"}, "t")
    with pytest.raises(BadInput, match="must be a number"):
        from_dict(Example, {"strength": "a"}, "t")
    assert override(Example(), strength=None, max_gap=3) == Example(max_gap=3)


def test_project_settings_come_from_config_toml(tmp_path: Path) -> None:
    project = Project.create(tmp_path / "me")
    project.paths.config.write_text("[smoothing]\nstrength = 0.5\n")
    assert project.settings("smoothing") == {"strength": 0.5}
    assert project.settings("train") == {}
    project.paths.config.write_text("[smoothing\n")
    with pytest.raises(BadInput, match="not valid TOML"):
        project.settings("smoothing")


def test_config_template_lists_every_setting_with_its_default() -> None:
    """Uncommenting every line of a new project's config.toml changes nothing."""
    import re

    import tomllib

    from motionxfer.inference.export import ExportConfig
    from motionxfer.pose.extract import ExtractConfig
    from motionxfer.pose.normalization import NormalizeConfig
    from motionxfer.pose.smoothing import SmoothingConfig
    from motionxfer.settings import config_template
    from motionxfer.training.config import TrainConfig

    uncommented = re.sub(r"^# ([a-z_]+ = .*)$", r"\1", config_template(), flags=re.MULTILINE)
    tables = tomllib.loads(uncommented)
    for table, cls in [("extract", ExtractConfig), ("smoothing", SmoothingConfig),
                       ("normalize", NormalizeConfig), ("train", TrainConfig),
                       ("export", ExportConfig)]:
        assert tables[table], table
        assert from_dict(cls, tables[table], table) == cls()


def test_public_api_names_resolve_without_loading_torch_first() -> None:
    import subprocess
    import sys

    code = ("import sys, motionxfer; assert 'torch' not in sys.modules; "
            "[getattr(motionxfer, name) for name in motionxfer.__all__]; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.strip() == "ok", result.stderr


def test_pose_files_round_trip_and_refuse_newer_or_damaged_ones(tmp_path: Path) -> None:
    import numpy as np

    from motionxfer.io.files import save_npz
    from motionxfer.pose.sequence import PoseSequence
    from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC

    poses = PoseSequence.empty(MEDIAPIPE_HOLISTIC, 4, 30.0, (64, 48))
    poses.keypoints[1, 0] = (10.0, 20.0, 0.9)
    poses.save(tmp_path / "p.npz")
    loaded = PoseSequence.load(tmp_path / "p.npz")
    assert loaded.skeleton is MEDIAPIPE_HOLISTIC and loaded.image_size == (64, 48)
    np.testing.assert_array_equal(loaded.keypoints, poses.keypoints)

    save_npz(tmp_path / "new.npz", 99, keypoints=poses.keypoints)
    with pytest.raises(BadInput, match="newer motionxfer"):
        PoseSequence.load(tmp_path / "new.npz")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "p.npz").read_bytes()[:100])
    with pytest.raises(BadInput, match="cannot read the pose file") as error:
        PoseSequence.load(tmp_path / "cut.npz")
    assert "--force" in error.value.hint


def test_new_sources_are_prepared_while_a_transfer_generates(tmp_path: Path, caplog) -> None:
    """Batch jobs: while one transfer generates (the project's shared lock), others prepare
    their own new sources side by side (each under its video's lock); the same source in two at
    once makes the second wait, then find it done; every update reaches the manifest;
    train-target is refused until they are all done."""
    from motionxfer.pipeline import import_keypoints, init_project, normalize_source, source_record

    fixtures = Path(__file__).parent / "fixtures"
    keypoints = fixtures / "target_clip_keypoints.npz"
    project = init_project(tmp_path / "me", fixtures / "target_clip.mp4")
    import_keypoints(project, project.target, keypoints)
    for name in ("a", "b"):
        shutil.copy(fixtures / "target_clip.mp4", tmp_path / f"{name}.mp4")
    # Each open Project is another open lock file: as another process would hold it.
    generating, first, second = (Project.open(project.root) for _ in range(3))
    waited: list[float] = []

    def the_same_source_meanwhile() -> None:
        third = Project.open(project.root)
        started = time.perf_counter()
        normalize_source(third, source_record(third, tmp_path / "a.mp4"))
        waited.append(time.perf_counter() - started)

    caplog.set_level(logging.INFO, logger="motionxfer.project")
    with generating.locked("transfer", shared=True):
        a = source_record(first, tmp_path / "a.mp4")
        b = source_record(second, tmp_path / "b.mp4")
        with first.video_locked(a, "extract-poses"):
            import_keypoints(first, a, keypoints)
            other = threading.Thread(target=the_same_source_meanwhile)
            other.start()
            import_keypoints(second, b, keypoints)  # another source meanwhile
            normalize_source(second, b)
            with pytest.raises(ProjectLocked), Project.open(project.root).locked("train-target"):
                pass
            time.sleep(0.5)
            assert not waited  # still waiting for a's lock
        other.join(30)
        assert waited and waited[0] >= 0.5
        assert "waiting: a.mp4" in caplog.text and "extract-poses" in caplog.text
        assert normalize_source(first, a)[1].reused  # the waiting one normalized it
    on_disk = Project.open(project.root)
    for record in (a, b):
        assert record.video_id in on_disk.videos
        for stage in ("poses", "normalized"):
            assert on_disk.stage_fingerprint(f"{stage}/{record.video_id}"), (stage, record)
    with on_disk.locked("train-target"):
        pass
    assert not list((project.root / ".motionxfer.locks").iterdir())  # removed once let go
    with pytest.raises(RuntimeError, match="inside its shared lock"), \
            first.locked("transfer", shared=True):
        first.mark_done(f"poses/{b.video_id}", "x")  # b's lock is not held here
