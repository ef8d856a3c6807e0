"""Shared test helpers: where the fixtures live, and a maker of tiny test videos.

Fixtures in tests/fixtures/ are cut from the shared data set by scripts/make_fixtures.py (see
tests/fixtures/README.md); tests only ever read those copies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches the network: a weight missing from the model cache is an error, not a
    download (tests of fetching unset MOTIONXFER_OFFLINE and serve the bytes themselves)."""
    monkeypatch.setenv("MOTIONXFER_OFFLINE", "1")


@pytest.fixture
def fixtures_dir() -> Path:
    """tests/fixtures (read-only: copy a file to tmp_path before changing it)."""
    return FIXTURES


def numbered_frame(index: int, width: int = 64, height: int = 64) -> np.ndarray:
    """An RGB test frame (H, W, 3) uint8 that says which frame it is and which way is up.

    The background is grey level `30 + 7 * index` (index 0..32; distinct after lossy coding); a
    white square marks the top-left corner.
    """
    if not 0 <= index <= 32:
        raise ValueError(f"numbered_frame draws frames 0..32, not {index}")
    frame = np.full((height, width, 3), 30 + 7 * index, np.uint8)
    marker = max(2, min(width, height) // 4)
    frame[:marker, :marker] = 255
    return frame


def frame_number(rgb: np.ndarray) -> int:
    """The index `numbered_frame` drew into a frame (read from the bottom-right quarter)."""
    height, width = rgb.shape[:2]
    level = float(rgb[height // 2:, width // 2:].mean())
    return round((level - 30) / 7)


def write_test_video(
    path: Path,
    frame_count: int = 5,
    width: int = 64,
    height: int = 64,
    fps: int = 30,
    timestamps: Sequence[float] | None = None,
    display_rotation_counterclockwise: int | None = None,
    rotate_tag: str | None = None,
    frames: Sequence[np.ndarray] | None = None,
    keyframe_interval: int | None = None,
) -> Path:
    """Encode a tiny lossless H.264 video with PyAV (no motionxfer code involved).

    `timestamps` (seconds) give a variable frame rate; `display_rotation_counterclockwise` writes a
    display matrix (MP4), `rotate_tag` a legacy `rotate` metadata tag (use a .mkv path: the MP4
    muxer drops it). `keyframe_interval` makes short GOPs, for seeking tests.
    """
    images = list(frames) if frames is not None else [
        numbered_frame(index, width, height) for index in range(frame_count)
    ]
    with av.open(str(path), "w") as container:
        options = {"qp": "0"}  # lossless
        if keyframe_interval is not None:
            options.update(g=str(keyframe_interval), keyint_min=str(keyframe_interval))
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.width, stream.height = images[0].shape[1], images[0].shape[0]
        stream.pix_fmt = "yuv420p"
        if timestamps is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if display_rotation_counterclockwise is not None:
            stream.set_display_rotation(display_rotation_counterclockwise)
        if rotate_tag is not None:
            stream.metadata["rotate"] = rotate_tag
        for index, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = round(timestamps[index] * 1000) if timestamps is not None else index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """`make_video(name="clip.mp4", **write_test_video options)`: a tiny video in tmp_path."""

    def make(name: str = "clip.mp4", **options: object) -> Path:
        return write_test_video(tmp_path / name, **options)  # type: ignore[arg-type]

    return make


def write_blank_video(path: Path, frames: int = 20, size: int = 128, audio: bool = False) -> Path:
    """A video of an empty wall: nobody in it."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(frames):
            image = np.full((size, size, 3), 180, np.uint8)
            image[size // 2:, :] = (120, 80, 40)  # a floor
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (two threads fight over a shared 2-core machine), then
    as it was."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def clips_project(folder: Path):
    """A project of the fixture target clip and a copy of the source clip (`dancer.mp4`), both
    with their ground-truth keypoints imported (no MediaPipe needed): (project, source path)."""
    import shutil

    from motionxfer.pipeline import import_keypoints, init_project, source_record

    source = folder / "dancer.mp4"
    shutil.copyfile(FIXTURES / "source_clip.mp4", source)
    project = init_project(folder / "me", FIXTURES / "target_clip.mp4")
    import_keypoints(project, project.target, FIXTURES / "target_clip_keypoints.npz")
    import_keypoints(project, source_record(project, source),
                     FIXTURES / "source_clip_keypoints.npz")
    return project, source


def fast_training_settings(project) -> None:
    """config.toml's [train] for a CLI training of a few steps in a test: the tiny preset, no
    perceptual loss (no weights needed), no threads, no face refiner, 2 validation frames."""
    project.paths.config.write_text(project.paths.config.read_text().replace(
        "[train]\n", '[train]\npreset = "tiny"\nperceptual = false\nnum_workers = 0\n'
        "face_refiner = false\nvalidation_frames = 2\n"))


def streamed_equals_sequential(project, source, folder: Path, **settings) -> Path:
    """Transfer the first 0.5 s of `source` streamed and sequentially with the same settings,
    check that every frame is the same, and return the streamed video."""
    from motionxfer.inference.transfer import TransferConfig, transfer
    from motionxfer.io.video import read_frames

    streamed, sequential = folder / "streamed.mp4", folder / "sequential.mp4"
    transfer(project, source, streamed, TransferConfig(max_seconds=0.5, **settings))
    transfer(project, source, sequential, TransferConfig(max_seconds=0.5, streaming=False,
                                                         **settings))
    pairs = zip(read_frames(streamed), read_frames(sequential), strict=True)
    assert all(np.array_equal(one.rgb, other.rgb) for one, other in pairs)
    return streamed
