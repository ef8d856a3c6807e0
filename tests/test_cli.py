"""The command line through Typer's CliRunner: the foundation's commands end to end on a clip, and
every kind of bad input ending in one clear error, a non-zero exit code and an untouched project.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import write_blank_video
from typer.testing import CliRunner

from motionxfer.cli import (
    app,
    commands,  # noqa: F401  (registers the commands)
    hoist_global_flags,
)
from motionxfer.io.video import probe
from motionxfer.pose.sequence import PoseSequence

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, hoist_global_flags([str(a) for a in args]))


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its content hash (the lock file's content excepted)."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ".motionxfer.lock"
    }


def assert_one_clear_error(result, exit_code: int | None = None) -> None:
    assert result.exit_code != 0, result.output
    if exit_code is not None:
        assert result.exit_code == exit_code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert sum(line.startswith("error:") for line in lines) == 1, result.stderr
    assert any(line.startswith("fix:") for line in lines), result.stderr
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def project_with_poses(tmp_path_factory) -> Path:
    """A project on the target clip with body poses of the target and the source clip."""
    root = tmp_path_factory.mktemp("cli") / "me project ü"
    assert invoke("init", root, "--target", FIXTURES / "target_clip.mp4").exit_code == 0
    shutil.copyfile(FIXTURES / "source_clip.mp4", root.parent / "dancer clip é.mp4")
    result = invoke("extract-poses", root, "--no-hands", "--no-face", "--json")
    assert result.exit_code == 0, result.output
    result = invoke("extract-poses", root, "--source", root.parent / "dancer clip é.mp4",
                    "--no-hands", "--no-face")
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def project(project_with_poses: Path, tmp_path: Path) -> Path:
    copy = tmp_path / project_with_poses.name
    shutil.copytree(project_with_poses, copy)
    shutil.copyfile(project_with_poses.parent / "dancer clip é.mp4", tmp_path / "dancer clip é.mp4")
    manifest = json.loads((copy / "motionxfer.json").read_text())
    for record in manifest["videos"].values():  # the source now lives next to the copy
        if record["role"] == "source":
            record["path"] = str(tmp_path / "dancer clip é.mp4")
    (copy / "motionxfer.json").write_text(json.dumps(manifest))
    return copy


def test_help_teaches_the_workflow() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("init", "extract-poses", "normalize", "preview", "train-target", "transfer"):
        assert name in result.output
    assert "motionxfer init ./me --target me.mp4" in result.output


@pytest.mark.parametrize("command, table", [("extract-poses", "[extract]"),
                                            ("normalize", "[smoothing]"),
                                            ("train-target", "[train]")])
def test_help_names_the_config_table(command: str, table: str) -> None:
    """Rich markup must not swallow '[extract]' and the like from the help text."""
    result = invoke(command, "--help")
    assert result.exit_code == 0 and table in result.output


def test_init_reports_the_target(tmp_path: Path, monkeypatch) -> None:
    shutil.copyfile(FIXTURES / "target_clip.mp4", tmp_path / "me.mp4")
    monkeypatch.chdir(tmp_path)
    result = invoke("init", "p", "--target", "me.mp4", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["target"]["frame_count"] == 120 and data["target"]["fps"] == 30.0
    assert data["target"]["path"] == str(tmp_path / "me.mp4")  # absolute: usable from anywhere
    assert (tmp_path / "p" / "motionxfer.json").is_file()


def test_extract_poses_caches_and_finds_the_person(project_with_poses: Path) -> None:
    result = invoke("extract-poses", project_with_poses, "--no-hands", "--no-face", "--json")
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)["results"]
    assert entry["cached"] is True  # same video, same settings: not recomputed
    assert entry["frames"] == 120 and entry["frames_with_person"] >= 115
    poses = PoseSequence.load(entry["poses"])
    assert poses.image_size == (256, 256) and poses.fps == 30.0


def test_normalize_and_preview(project: Path, tmp_path: Path) -> None:
    source = tmp_path / "dancer clip é.mp4"
    result = invoke("normalize", project, "--source", source, "--json")
    assert result.exit_code == 0, result.output
    normalized = PoseSequence.load(json.loads(result.stdout)["normalized"])
    assert normalized.num_frames == 120
    again = invoke("normalize", project, "--source", source, "--json")
    assert json.loads(again.stdout)["cached"] is True

    output = tmp_path / "check é.mp4"
    result = invoke("preview", project, "--source", source, "-o", output, "--height", "128")
    assert result.exit_code == 0, result.output
    info = probe(output)
    assert (info.width, info.height, info.frame_count) == (3 * 128, 128, 120)
    assert info.has_audio  # the source's audio is kept


def test_settings_change_recomputes(project: Path, tmp_path: Path) -> None:
    source = tmp_path / "dancer clip é.mp4"
    first = json.loads(invoke("normalize", project, "--source", source, "--json").stdout)
    again = json.loads(invoke("normalize", project, "--source", source, "--json").stdout)
    assert again["cached"] is True
    config = (project / "config.toml").read_text()
    assert "# raised_leg_threshold = " in config
    (project / "config.toml").write_text(
        config.replace("# raised_leg_threshold = ", "raised_leg_threshold = 0.2 #"))
    changed = json.loads(invoke("normalize", project, "--source", source, "--json").stdout)
    assert first["cached"] is False and changed["cached"] is False


def test_import_keypoints_npz(project: Path, tmp_path: Path) -> None:
    ground_truth = np.load(FIXTURES / "source_clip_keypoints.npz")
    keypoints = tmp_path / "gt.npz"
    np.savez(keypoints, kp2d=ground_truth["kp2d"], visible=ground_truth["visible"],
             names=ground_truth["names"])
    result = invoke("import-keypoints", project, keypoints, "--video",
                    tmp_path / "dancer clip é.mp4", "--json")
    assert result.exit_code == 0, result.output
    poses = PoseSequence.load(json.loads(result.stdout)["poses"])
    assert poses.skeleton.num_joints == 30 and poses.num_frames == 120


# --- bad input: one clear error, a non-zero exit code, the project as it was --------------------

def bad_videos(folder: Path) -> dict[str, Path]:
    text = folder / "notes.mp4"
    text.write_text("this is not a video")
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    data = (FIXTURES / "source_clip.mp4").read_bytes()
    truncated = folder / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 3])
    return {"text": text, "empty": empty, "truncated": truncated,
            "missing": folder / "does not exist.mp4", "folder": folder}


@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "missing", "folder"])
def test_bad_source_video_leaves_the_project_as_it_was(project: Path, tmp_path: Path,
                                                       kind: str) -> None:
    (tmp_path / "bad").mkdir()
    bad = bad_videos(tmp_path / "bad")
    before = snapshot(project)
    result = invoke("extract-poses", project, "--source", bad[kind])
    assert_one_clear_error(result, exit_code=2)
    assert snapshot(project) == before


@pytest.mark.parametrize("kind", ["text", "empty", "truncated", "missing"])
def test_bad_target_video_creates_nothing(tmp_path: Path, kind: str) -> None:
    (tmp_path / "bad").mkdir()
    bad = bad_videos(tmp_path / "bad")
    result = invoke("init", tmp_path / "new project", "--target", bad[kind])
    assert_one_clear_error(result, exit_code=2)
    assert not (tmp_path / "new project").exists()


def test_source_with_nobody_in_it(project: Path, tmp_path: Path) -> None:
    wall = write_blank_video(tmp_path / "wall.mp4")
    before = snapshot(project)
    result = invoke("extract-poses", project, "--source", wall, "--no-hands", "--no-face")
    assert_one_clear_error(result, exit_code=2)
    assert "no person" in result.stderr
    assert snapshot(project) == before


def test_target_with_nobody_in_it(tmp_path: Path) -> None:
    wall = write_blank_video(tmp_path / "wall.mp4")
    assert invoke("init", tmp_path / "p", "--target", wall).exit_code == 0
    before = snapshot(tmp_path / "p")
    result = invoke("extract-poses", tmp_path / "p", "--no-hands", "--no-face")
    assert_one_clear_error(result, exit_code=2)
    assert snapshot(tmp_path / "p") == before


def test_person_partly_in_view(project: Path, tmp_path: Path) -> None:
    """The upper half of the source clip: the person is found, feet are not; normalization then
    says what is missing (or succeeds), never crashes."""
    upper = tmp_path / "upper.mp4"
    with av.open(str(FIXTURES / "source_clip.mp4")) as source, av.open(str(upper), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 256, 128, "yuv420p"
        for frame in source.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")[:128]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb),
                                                                   format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    result = invoke("extract-poses", project, "--source", upper, "--no-hands", "--no-face")
    assert result.exit_code == 0, result.output
    before = snapshot(project)
    result = invoke("normalize", project, "--source", upper)
    if result.exit_code != 0:
        assert_one_clear_error(result, exit_code=2)
        assert snapshot(project) == before
    else:
        assert "normalized" in result.stdout


@pytest.mark.parametrize("setup", ["missing", "foreign"])
def test_project_folder_problems(tmp_path: Path, setup: str) -> None:
    folder = tmp_path / "p"
    if setup == "foreign":
        folder.mkdir()
        (folder / "motionxfer.json").write_text('{"tool": "other"}')
    result = invoke("extract-poses", folder)
    assert_one_clear_error(result, exit_code=3)


def test_init_into_a_foreign_folder_keeps_its_files(tmp_path: Path) -> None:
    folder = tmp_path / "holiday photos"
    folder.mkdir()
    (folder / "beach.jpg").write_bytes(b"jpeg")
    result = invoke("init", folder, "--target", FIXTURES / "target_clip.mp4")
    assert_one_clear_error(result, exit_code=3)
    assert [p.name for p in folder.iterdir()] == ["beach.jpg"]


def test_json_and_quiet_flags_anywhere(tmp_path: Path) -> None:
    result = invoke("init", tmp_path / "p", "--quiet", "--target", FIXTURES / "target_clip.mp4",
                    "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["project"].endswith("p")
    assert result.stderr == ""


def test_trimmed_target_with_person_masks(tmp_path: Path) -> None:
    """--start/--end trim the target; segmentation = true keeps MediaPipe's person masks."""
    from motionxfer.pose.extract import PersonMasks

    root = tmp_path / "p"
    result = invoke("init", root, "--target", FIXTURES / "target_clip.mp4", "--start", "1",
                    "--end", "2")
    assert result.exit_code == 0, result.output
    config = (root / "config.toml").read_text()
    (root / "config.toml").write_text(config.replace("# segmentation = false", "segmentation = true"))
    result = invoke("extract-poses", root, "--no-hands", "--no-face", "--json")
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)["results"]
    poses = PoseSequence.load(entry["poses"])
    assert poses.num_frames == 30
    assert poses.timestamps[0] == pytest.approx(0.0, abs=1e-3)
    masks = PersonMasks.load(Path(entry["poses"]).with_name("person_masks.npz"))
    assert len(masks.masks) == 30
    assert not list(root.rglob(".person_masks.partial.npz"))


def test_extraction_in_two_processes(tmp_path: Path) -> None:
    """[extract] workers = 2 splits the video in two parts; every frame is kept, in order."""
    root = tmp_path / "p"
    assert invoke("init", root, "--target", FIXTURES / "target_clip.mp4").exit_code == 0
    config = (root / "config.toml").read_text()
    (root / "config.toml").write_text(config.replace("# workers = 1", "workers = 2"))
    result = invoke("extract-poses", root, "--no-hands", "--no-face", "--json")
    assert result.exit_code == 0, result.output
    poses = PoseSequence.load(json.loads(result.stdout)["results"][0]["poses"])
    assert poses.num_frames == 120 and poses.person_present.sum() >= 115
    assert np.all(np.diff(poses.timestamps) > 0)
