"""The per-video parsing cache: import-parsing's round trip and refusals, the built-in parser's
extract-parsing, the cache going stale with the poses, and both commands through the CLI.

Data: the first 30 frames of tests/fixtures/target_clip.mp4 with their ground-truth joints and
six-class parsing (tests/fixtures/target_clip_parsing.npz)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import FIXTURES, write_test_video
from PIL import Image
from typer.testing import CliRunner

from motionxfer.cli import app, commands, hoist_global_flags  # noqa: F401
from motionxfer.errors import BadInput, NoPersonFound, ProjectError
from motionxfer.parsing.global_alignment import layout_extent
from motionxfer.parsing.io import ParsingSequence
from motionxfer.parsing.labels import CLASS_NAMES
from motionxfer.pipeline import (
    extract_parsing,
    import_keypoints,
    import_parsing,
    init_project,
    load_parsing,
    load_poses,
    normalize_source,
    source_record,
)
from motionxfer.pose.normalization import NormalizeConfig, normalize_poses
from motionxfer.pose.sequence import PoseSequence
from motionxfer.project import Project

FRAMES = 30
# A six-class index -> a LIP label of that class (face, upper clothes, pants, left shoe, left arm).
SIX_TO_LIP = np.array([0, 13, 5, 9, 18, 14], np.uint8)
runner = CliRunner()


def invoke(*args: str | Path):
    return runner.invoke(app, hoist_global_flags([str(a) for a in args]))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict:
    """A 30-frame video, its keypoints file and its ground-truth parsing (T, H, W)."""
    folder = tmp_path_factory.mktemp("clip")
    with av.open(str(FIXTURES / "target_clip.mp4")) as container:
        frames = [frame.to_ndarray(format="rgb24")
                  for _, frame in zip(range(FRAMES), container.decode(video=0))]
    video = write_test_video(folder / "me.mp4", frames=frames)
    with np.load(FIXTURES / "target_clip_keypoints.npz") as data:
        arrays = {key: data[key] for key in data.files}
    for key in ("kp2d", "visible", "in_frame"):
        arrays[key] = arrays[key][:FRAMES]
    np.savez(folder / "keypoints.npz", **arrays)
    arrays["kp2d"] = arrays["kp2d"] + np.float32(3.0)  # other poses of the same video
    np.savez(folder / "moved_keypoints.npz", **arrays)
    with np.load(FIXTURES / "target_clip_parsing.npz") as data:
        truth = data["parsing"][:FRAMES]
    return {"video": video, "keypoints": folder / "keypoints.npz",
            "moved": folder / "moved_keypoints.npz", "truth": truth}


@pytest.fixture
def project(clip, tmp_path) -> Project:
    project = init_project(tmp_path / "me", clip["video"])
    import_keypoints(project, project.target, clip["keypoints"])
    return project


def write_maps(folder: Path, maps: np.ndarray, palette: bool = False) -> Path:
    folder.mkdir(parents=True)
    for index, labels in enumerate(maps):
        image = Image.fromarray(labels.astype(np.uint8), mode="P" if palette else "L")
        if palette:
            image.putpalette([(37 * k) % 256 for k in range(768)])
        image.save(folder / f"frame_{index:06d}.png")
    return folder


def project_state(project: Project) -> tuple[bytes, bytes | None]:
    parsing = project.paths.parsing(project.target.video_id)
    return (project.paths.manifest.read_bytes(),
            parsing.read_bytes() if parsing.exists() else None)


def test_import_round_trip_six_and_lip_palette(project, clip, tmp_path) -> None:
    truth = clip["truth"]
    parsing, result = import_parsing(project, project.target,
                                     write_maps(tmp_path / "six", truth), "six")
    assert result.path == project.paths.parsing(project.target.video_id)
    assert np.array_equal(load_parsing(project, project.target).labels, truth)
    assert parsing.method == "import:six" and parsing.frames_with_person == FRAMES
    # An external parser's palette PNGs in LIP labels give the same six classes.
    lip = write_maps(tmp_path / "lip", SIX_TO_LIP[truth], palette=True)
    parsing, _ = import_parsing(project, project.target, lip, "lip")
    assert parsing.method == "import:lip"
    assert np.array_equal(ParsingSequence.load(result.path).labels, truth)


def test_import_resizes_maps_of_the_same_aspect_ratio(project, clip, tmp_path) -> None:
    truth = clip["truth"]
    doubled = truth.repeat(2, axis=1).repeat(2, axis=2)  # 512x512, nearest-neighbour exact
    parsing, _ = import_parsing(project, project.target, write_maps(tmp_path / "big", doubled),
                                "six")
    assert np.array_equal(parsing.labels, truth)


def _bad_folder(kind: str, truth: np.ndarray, tmp_path: Path) -> Path:
    folder = tmp_path / kind
    if kind == "missing":
        return folder
    if kind == "frame count":
        write_maps(folder, truth)
        (folder / f"frame_{FRAMES - 1:06d}.png").unlink()
    elif kind == "aspect ratio":
        write_maps(folder, truth[:, :, :200])
    elif kind == "label values":
        write_maps(folder, np.where(truth == 2, 25, truth))
    elif kind == "no person":
        write_maps(folder, np.zeros_like(truth))
    return folder


@pytest.mark.parametrize("kind, error, words", [
    ("missing", BadInput, "no folder"),
    ("frame count", BadInput, f"{FRAMES - 1} label maps but the video has {FRAMES} frames"),
    ("aspect ratio", BadInput, "200x256 but the video is 256x256 (another aspect ratio"),
    ("label values", BadInput, "label values 25 are not in the LIP convention"),
    ("no person", NoPersonFound, "shows no person in any of the 30 frames"),
])
def test_bad_label_maps_are_refused_and_leave_the_project_as_it_was(
        project, clip, tmp_path, kind, error, words) -> None:
    import_parsing(project, project.target, write_maps(tmp_path / "good", clip["truth"]), "six")
    before = project_state(project)
    with pytest.raises(error, match=words.replace("(", r"\(")) as raised:
        import_parsing(project, project.target, _bad_folder(kind, clip["truth"], tmp_path),
                       "lip")
    assert raised.value.hint
    assert project_state(project) == before
    assert np.array_equal(load_parsing(Project.open(project.root), project.target).labels,
                          clip["truth"])


def test_import_needs_the_poses_first(clip, tmp_path) -> None:
    project = init_project(tmp_path / "bare", clip["video"])
    with pytest.raises(ProjectError, match="needs the poses") as raised:
        import_parsing(project, project.target, write_maps(tmp_path / "m", clip["truth"]), "six")
    assert "extract-poses" in raised.value.hint
    assert not project.paths.parsing(project.target.video_id).exists()


def test_the_cache_goes_stale_when_the_poses_change(project, clip, tmp_path) -> None:
    import_parsing(project, project.target, write_maps(tmp_path / "m", clip["truth"]), "six")
    assert load_parsing(project, project.target) is not None
    import_keypoints(project, project.target, clip["moved"])  # other poses: parse again
    assert project.paths.parsing(project.target.video_id).exists()
    assert load_parsing(project, project.target) is None
    import_keypoints(project, project.target, clip["keypoints"])  # the same poses as before
    assert load_parsing(project, project.target) is not None


def test_extract_parsing_through_the_cli_is_near_the_truth_and_cached(project, clip) -> None:
    result = invoke("extract-parsing", project.root, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["method"] == "colour_model" and summary["cached"] is False
    labels = ParsingSequence.load(summary["parsing"]).labels
    truth = clip["truth"]
    mask_iou = ((labels > 0) & (truth > 0)).sum() / ((labels > 0) | (truth > 0)).sum()
    agree = (labels[truth > 0] == truth[truth > 0]).mean()
    assert mask_iou > 0.6, mask_iou  # 0.73 measured on the 120 frames of the clip
    assert agree > 0.55, agree
    again = json.loads(invoke("extract-parsing", project.root, "--json").stdout)
    assert again["cached"] is True
    project = Project.open(project.root)  # the manifest as the commands left it
    assert np.array_equal(load_parsing(project, project.target).labels, labels)
    import_keypoints(project, project.target, clip["moved"])
    assert load_parsing(project, project.target) is None  # stale: the poses changed


def test_import_parsing_cli_prints_the_result_and_refuses_with_the_fix(project, clip,
                                                                       tmp_path) -> None:
    folder = write_maps(tmp_path / "lip", SIX_TO_LIP[clip["truth"]])
    result = invoke("import-parsing", project.root, folder, "--labels", "lip", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["frames"] == FRAMES and summary["method"] == "import:lip"
    assert summary["pixels_per_class"]["top"] == int((clip["truth"] == 2).sum())
    before = project_state(project)
    result = invoke("import-parsing", project.root, folder, "--labels", "atr")  # 0..17 only
    assert result.exit_code == 2
    said = "".join(result.stderr.splitlines())
    assert "not in the ATR convention" in said and "fix:" in said
    assert project_state(project) == before
    shutil.rmtree(folder)
    result = invoke("import-parsing", project.root, folder, "--labels", "lip")
    assert result.exit_code == 2 and "no folder" in result.stderr


def test_layout_normalization_measures_on_the_parsing_when_both_videos_have_it(
        project, clip, tmp_path) -> None:
    dancer = tmp_path / "dancer.mp4"
    shutil.copy(clip["video"], dancer)
    source = source_record(project, dancer)
    import_keypoints(project, source, clip["keypoints"])
    config = NormalizeConfig(method="layout")
    _, joints = normalize_source(project, source, config)  # no parsing: the joints' extents
    import_parsing(project, project.target, write_maps(tmp_path / "t", clip["truth"]), "six")
    # The source's maps without the shoes: a shorter person, so a larger scale.
    no_shoes = np.where(clip["truth"] == 4, 0, clip["truth"])
    import_parsing(project, source, write_maps(tmp_path / "s", no_shoes), "six")
    normalized, result = normalize_source(project, source, config)
    assert result.reused is False  # the parsing entered the cache key
    poses = [load_poses(project, record) for record in (source, project.target)]  # smoothed
    expected, alignment = normalize_poses(*poses, config, layout_extent(no_shoes),
                                          layout_extent(clip["truth"]))
    assert alignment.scale[0] > 1.01
    np.testing.assert_allclose(normalized.xy, expected.xy, atol=1e-3)
    assert not np.allclose(PoseSequence.load(joints.path).xy, normalized.xy, atol=0.5)
    assert normalize_source(project, source, config)[1].reused is True


def test_an_unknown_convention_is_refused_before_the_folder_is_read(project, tmp_path) -> None:
    with pytest.raises(BadInput, match="unknown parsing convention 'pascal'") as raised:
        import_parsing(project, project.target, tmp_path / "nothing", "pascal")
    assert "atr, cihp, lip" in raised.value.hint


def test_extract_parsing_reports_progress_of_each_pass(project) -> None:
    reports: dict[str, tuple[int, int | None]] = {}

    def progress(description: str, done: int, total: int | None, rate: str) -> None:
        reports[description] = (done, total)

    parsing, result = extract_parsing(project, project.target, progress=progress)
    assert result.reused is False and parsing.labels.shape == (FRAMES, 256, 256)
    for task in ("parsing: background plate", "parsing: colour model", "parsing"):
        assert reports[task] == (FRAMES, FRAMES), (task, reports)


def test_parsings_of_tall_videos_are_made_and_cached_at_the_capped_height(
        project, clip, tmp_path, monkeypatch) -> None:
    """A 1080p video's parse of every frame would not fit in memory: the project keeps them at
    most PARSING_MAX_HEIGHT tall (here 128 for the 256 px clip), and measures in video pixels."""
    monkeypatch.setattr("motionxfer.pipeline.PARSING_MAX_HEIGHT", 128)
    truth = clip["truth"]
    parsing, _ = extract_parsing(project, project.target)
    assert parsing.labels.shape == (FRAMES, 128, 128)
    assert parsing.image_size == (256, 256) and parsing.video_scale == 2.0
    small_truth = truth[:, ::2, ::2]
    mask_iou = (((parsing.labels > 0) & (small_truth > 0)).sum()
                / ((parsing.labels > 0) | (small_truth > 0)).sum())
    assert mask_iou > 0.6, mask_iou
    # Imported maps are shrunk the same way, and the layout normalization measures the person
    # in the video's pixels: as from the full-size maps, to a pixel.
    imported, _ = import_parsing(project, project.target, write_maps(tmp_path / "t", truth),
                                 "six")
    assert np.array_equal(imported.labels, small_truth)
    loaded = load_parsing(project, project.target)
    assert loaded.image_size == (256, 256) and loaded.labels.shape == (FRAMES, 128, 128)
    dancer = tmp_path / "dancer.mp4"
    shutil.copy(clip["video"], dancer)
    source = source_record(project, dancer)
    import_keypoints(project, source, clip["keypoints"])
    no_shoes = np.where(truth == 4, 0, truth)
    import_parsing(project, source, write_maps(tmp_path / "s", no_shoes), "six")
    normalized, _ = normalize_source(project, source, NormalizeConfig(method="layout"))
    poses = [load_poses(project, record) for record in (source, project.target)]
    expected, _ = normalize_poses(*poses, NormalizeConfig(method="layout"),
                                  layout_extent(no_shoes), layout_extent(truth))
    np.testing.assert_allclose(normalized.xy, expected.xy, atol=1.5)


def test_a_parsing_file_of_the_first_schema_still_loads(tmp_path) -> None:
    labels = np.zeros((2, 8, 8), np.uint8)
    labels[:, 2:6, 3:5] = 2
    np.savez_compressed(tmp_path / "old.npz", labels=labels, method=np.array("import:six"),
                        fps=np.array(30.0), inputs=np.array("x"),
                        class_names=np.array(CLASS_NAMES), schema_version=np.array(1))
    parsing = ParsingSequence.load(tmp_path / "old.npz")
    assert parsing.image_size is None and parsing.video_scale == 1.0
    assert np.array_equal(parsing.labels, labels)
