"""A non-human skeleton end to end: a five-part "mouse" tracked DeepLabCut-style is imported,
normalized by its bounding box (it has no ankles), trained without a face refiner (it has no
face) and transferred, through the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from motionxfer.checkpoint import Checkpoint
from motionxfer.cli import (
    app,
    commands,  # noqa: F401  (registers the commands)
    hoist_global_flags,
)
from motionxfer.io.video import probe
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC, OPENPOSE_BODY25, Skeleton

PARTS = ("nose", "left_ear", "right_ear", "body_centre", "tail_base", "tail_tip")
LIMBS = "nose-left_ear,nose-right_ear,nose-body_centre,body_centre-tail_base,tail_base-tail_tip"
FPS = 12
SCORER = "DLC_resnet50_mouseNov21shuffle1_100000"


def mouse_points(frames: int, size: int, scale: float) -> np.ndarray:  # (T, 6, 2) pixels
    """A mouse seen from above walking left to right, its body `scale` x 18 px long at 64 px."""
    t = np.arange(frames) / (frames - 1)
    centre = np.stack([size * (0.35 + 0.3 * t), size * (0.5 + 0.08 * np.sin(2 * np.pi * t))], -1)
    body = np.array([[10, 0], [6, -4], [6, 4], [0, 0], [-7, 0], [-13, 3]], np.float64)
    return centre[:, None] + body[None] * scale * size / 64


def write_clip(folder: Path, name: str, frames: int, size: int, scale: float) -> tuple[Path, Path]:
    """The mouse as coloured blobs on a plain floor (H.264), and its DeepLabCut CSV."""
    points = mouse_points(frames, size, scale)
    rows, columns = np.mgrid[0:size, 0:size]
    video = folder / f"{name}.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for frame in range(frames):
            image = np.full((size, size, 3), 200, np.uint8)
            for joint, (x, y) in enumerate(points[frame]):
                radius = (5 if joint == 3 else 2.5) * scale * size / 64
                image[(columns - x) ** 2 + (rows - y) ** 2 <= radius**2] = (
                    60 + 30 * joint, 50, 170 - 25 * joint)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    table = folder / f"{name}DLC_resnet50.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scorer"] + [SCORER] * 3 * len(PARTS))
        writer.writerow(["bodyparts"] + [part for part in PARTS for _ in range(3)])
        writer.writerow(["coords"] + ["x", "y", "likelihood"] * len(PARTS))
        for frame in range(frames):
            writer.writerow([frame] + [value for x, y in points[frame]
                                       for value in (f"{x:.3f}", f"{y:.3f}", "0.97")])
    return video, table


def invoke(*args: str | Path):
    result = CliRunner().invoke(app, hoist_global_flags([str(arg) for arg in args]))
    assert result.exit_code == 0, result.output
    return result


def box_diagonals(poses: PoseSequence) -> np.ndarray:  # (T,)
    extent = np.nanmax(poses.xy, axis=1) - np.nanmin(poses.xy, axis=1)
    return np.hypot(extent[:, 0], extent[:, 1])


def test_a_mouse_imports_normalizes_trains_and_transfers(tmp_path: Path) -> None:
    target_video, target_csv = write_clip(tmp_path, "mouse", frames=48, size=64, scale=1.0)
    source_video, source_csv = write_clip(tmp_path, "other_mouse", frames=36, size=96, scale=1.5)
    project = tmp_path / "mouse_project"
    invoke("init", project, "--target", target_video)
    imported = json.loads(invoke("import-keypoints", project, target_csv, "--limbs", LIMBS,
                                 "--json").stdout)
    target = PoseSequence.load(imported["poses"])
    assert target.skeleton.joint_names == PARTS and len(target.skeleton.limbs) == 5
    assert not target.skeleton.has_face
    invoke("import-keypoints", project, source_csv, "--video", source_video, "--limbs", LIMBS)

    normalized = PoseSequence.load(json.loads(
        invoke("normalize", project, "--source", source_video, "--json").stdout)["normalized"])
    # by the bounding box: the larger mouse of the 96 px clip is brought to the target's size,
    # its bottom-centre onto the target's
    assert normalized.image_size == (64, 64) and normalized.num_frames == 36
    assert np.median(box_diagonals(normalized)) == pytest.approx(
        np.median(box_diagonals(target)), rel=0.02)
    assert np.median(np.nanmax(normalized.xy[..., 1], axis=1)) == pytest.approx(
        np.median(np.nanmax(target.xy[..., 1], axis=1)), abs=0.5)

    # the components made for human bodies step aside: the texture, the part GANs
    trained = invoke("train-target", project, "--preset", "tiny", "--steps", "2",
                     "--no-perceptual", "--texture", "--part-gan", "--json")
    assert "training without the texture" in trained.output
    assert "training without the face refiner" in trained.output
    result = json.loads(trained.stdout.strip().splitlines()[-1])
    assert result["generator_steps"] == 2 and result["face_refiner_steps"] == 0
    checkpoint = Checkpoint.load(project / "checkpoints" / "model.pt")
    assert checkpoint.build_face_refiner() is None and not checkpoint.preset.train.face_refiner
    assert not checkpoint.conditioning.texture and not checkpoint.train.texture

    output = tmp_path / "mouse_dancing.mp4"
    invoke("transfer", project, source_video, "-o", output)
    info = probe(output)
    assert info.frame_count == 36  # every source frame
    assert (info.width, info.height) == (64, 64)  # the target video's size, the default


def test_which_layouts_have_a_face() -> None:
    assert MEDIAPIPE_HOLISTIC.has_face and OPENPOSE_BODY25.has_face  # a face group; eyes
    assert not Skeleton("mouse", PARTS, ()).has_face  # a snout and ears are no face
