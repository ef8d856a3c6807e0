"""init, info and the target video: impossible trims, running init twice, a target file that
changed after init, and info's result on stdout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from motionxfer.cli import (
    app,
    commands,  # noqa: F401
    hoist_global_flags,
)
from motionxfer.errors import ProjectError
from motionxfer.pipeline import extract_poses, import_keypoints, init_project
from motionxfer.project import Project
from motionxfer.training.train import prepare_frames

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, hoist_global_flags([str(a) for a in args]))


def said(result) -> str:
    """stderr without the line breaks that rich puts into long messages."""
    return "".join(result.stderr.splitlines())


@pytest.mark.parametrize("trim, words", [
    (["--start", "3", "--end", "2"], "is not after --start"),
    (["--start", "2", "--end", "2"], "is not after --start"),
    (["--start", "9"], "past the end"),  # the clip is 4 s long
    (["--end", "9"], "past the end"),
    (["--start", "-1"], "negative"),
    (["--end", "-1"], "not after the beginning"),
])
def test_init_refuses_impossible_trims(tmp_path: Path, trim: list[str], words: str) -> None:
    result = invoke("init", tmp_path / "p", "--target", FIXTURES / "target_clip.mp4", *trim)
    assert result.exit_code == 2, result.output
    assert words in said(result) and "fix:" in said(result)
    assert not (tmp_path / "p").exists()  # nothing made


def test_init_twice_is_a_no_op_and_another_target_an_error(tmp_path: Path) -> None:
    root = tmp_path / "p"
    first = invoke("init", root, "--target", FIXTURES / "target_clip.mp4", "--start", "1",
                   "--json")
    assert first.exit_code == 0 and json.loads(first.stdout)["created"] is True
    manifest = (root / "motionxfer.json").read_bytes()
    again = invoke("init", root, "--target", FIXTURES / "target_clip.mp4", "--start", "1",
                   "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["created"] is False and "nothing to do" in said(again)
    assert (root / "motionxfer.json").read_bytes() == manifest
    other = invoke("init", root, "--target", FIXTURES / "source_clip.mp4")
    assert other.exit_code == ProjectError.exit_code, other.output
    assert "another target video" in said(other) and "another folder" in said(other)
    retrimmed = invoke("init", root, "--target", FIXTURES / "target_clip.mp4")
    assert retrimmed.exit_code == ProjectError.exit_code
    assert "trimmed to 1 s to the end" in said(retrimmed)
    assert (root / "motionxfer.json").read_bytes() == manifest


def test_a_changed_target_video_is_noticed(tmp_path: Path) -> None:
    """The target replaced after init (here: by the source clip): info says so on stdout (and
    in its JSON), extraction and training refuse to read it."""
    target = tmp_path / "me.mp4"
    shutil.copyfile(FIXTURES / "target_clip.mp4", target)
    project = init_project(tmp_path / "me", target)
    import_keypoints(project, project.target, FIXTURES / "target_clip_keypoints.npz")
    result = invoke("info", project.root, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["videos"][project.target.video_id]["status"] == "ok"

    shutil.copyfile(FIXTURES / "source_clip.mp4", target)
    result = invoke("info", project.root)
    assert result.exit_code == 0
    assert "target" in result.stdout and "CHANGED" in result.stdout
    assert "sha256 no longer matches" in said(result)
    data = json.loads(invoke("info", project.root, "--json").stdout)
    assert data["videos"][project.target.video_id]["status"] == "changed"
    with pytest.raises(ProjectError, match="has changed since"):
        prepare_frames(project, (128, 128), None)
    with pytest.raises(ProjectError, match="has changed since"):
        extract_poses(project, project.target, force=True)
    assert not list(project.paths.videos.rglob("frames_*"))
    target.unlink()
    result = invoke("info", project.root, "--json")
    assert json.loads(result.stdout)["videos"][project.target.video_id]["status"] == "missing"


def test_info_prints_its_result_on_stdout(tmp_path: Path) -> None:
    project = init_project(tmp_path / "me", FIXTURES / "target_clip.mp4", 0.5, 3.5)
    import_keypoints(project, project.target, FIXTURES / "target_clip_keypoints.npz")
    result = invoke("info", project.root)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"project {project.root}"
    assert project.target.video_id in lines[1] and "from 0.5 s to 3.5 s" in lines[1]
    assert any(line.startswith("cached  poses/") for line in lines)
    assert result.stderr == ""
    quiet = invoke("info", project.root, "--quiet")
    assert quiet.stdout == result.stdout  # a result, not a log: --quiet keeps it
    data = json.loads(invoke("info", project.root, "--json").stdout)
    assert data["target"] == project.target.video_id
    assert Project.open(project.root).target.start == 0.5
