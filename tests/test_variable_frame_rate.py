"""A variable-frame-rate video keeps its timing: every stage reads it at one constant rate.

The clip is written with PyAV with irregular presentation times (a phone that slowed to 15 fps in
low light for 50 frames); each frame carries its own number in 8 black/white blocks, so a test
can tell which source frame a stage saw for each of its frames. The drift is the gap between when
a frame was shown in the source and when the pipeline places it (`k / fps`): the poses, the frame
cache and the output (with the source's audio) all count frame k at that time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_test_video

from motionxfer.io import video
from motionxfer.io.files import fingerprint
from motionxfer.io.frame_cache import sidecar_path
from motionxfer.pose import extract
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC
from motionxfer.project import Project
from motionxfer.settings import config_template
from motionxfer.training.distributed import SINGLE_PROCESS
from motionxfer.training.train import prepare_frames

INTERVALS = [1 / 30] * 50 + [1 / 15] * 50 + [1 / 30] * 50  # seconds between frames
SHOWN_AT = np.concatenate([[0.0], np.cumsum(INTERVALS)[:-1]])  # (150,) when each frame is shown


def numbered(index: int) -> np.ndarray:
    """A 64 x 64 frame with `index` (0..255) in 8 blocks, bit b white when set."""
    frame = np.zeros((64, 64, 3), np.uint8)
    for bit in range(8):
        if index >> bit & 1:
            row, column = divmod(bit, 4)
            frame[row * 32:(row + 1) * 32, column * 16:(column + 1) * 16] = 255
    return frame


def number_of(rgb: np.ndarray) -> int:
    height, width = rgb.shape[:2]
    return sum(1 << bit for bit in range(8)
               if rgb[(bit // 4) * height // 2 + height // 4,
                      (bit % 4) * width // 4 + width // 8].mean() > 128)


@pytest.fixture
def vfr_clip(tmp_path: Path) -> Path:
    return write_test_video(tmp_path / "vfr.mp4", frames=[numbered(i) for i in range(150)],
                            timestamps=list(SHOWN_AT))


def drift(frames: list[np.ndarray], fps: float) -> np.ndarray:
    """(T,) seconds between when frame k's content was shown and k / fps."""
    return np.abs(SHOWN_AT[[number_of(rgb) for rgb in frames]] - np.arange(len(frames)) / fps)


def test_the_clip_is_variable_and_read_as_stored_drifts(vfr_clip: Path) -> None:
    info = video.probe(vfr_clip)
    assert info.variable_frame_rate
    as_stored = [frame.rgb for frame in video.read_frames(vfr_clip)]
    assert drift(as_stored, info.fps)[100] > 0.5  # what the stages did before: 0.56 s off


def test_pose_extraction_sees_the_frame_shown_at_each_tick(vfr_clip: Path, monkeypatch) -> None:
    seen: list[tuple[float, np.ndarray]] = []

    def fake_detector(frames, fps, config, progress, total):  # keeps what MediaPipe would get
        seen.extend(frames)
        count = len(seen)
        poses = PoseSequence.empty(MEDIAPIPE_HOLISTIC, count, fps, (64, 64))
        return extract.Extraction(
            PoseSequence(poses.keypoints, poses.skeleton, fps, (64, 64), poses.person_present,
                         np.array([time for time, _ in seen])), None)

    monkeypatch.setattr(extract, "_extract_timed", fake_detector)
    info = video.probe(vfr_clip)
    poses = extract.extract_video(vfr_clip)
    ticks = np.arange(poses.num_frames) / info.fps
    assert poses.fps == pytest.approx(info.fps)
    assert poses.timestamps == pytest.approx(ticks, abs=1e-6)  # pose k belongs to k / fps
    assert poses.num_frames == pytest.approx(info.duration * info.fps, abs=1)
    worst = float(drift([rgb for _, rgb in seen], info.fps).max())
    assert worst < 1 / info.fps  # nearest frame: at most half the longest source interval


def test_frame_cache_holds_the_frame_shown_at_each_tick(vfr_clip: Path, tmp_path: Path) -> None:
    project = Project.create(tmp_path / "project", config_template())
    info = video.probe(vfr_clip)
    record = project.add_video(info, "target")
    cache = prepare_frames(project, (64, 64), None, SINGLE_PROCESS)
    assert len(cache) == pytest.approx(info.duration * info.fps, abs=1)
    worst = float(drift(list(cache.frames), info.fps).max())
    assert worst < 1 / info.fps
    # A cache of the frames as stored (what older versions built for this video) is not reused.
    old_key = fingerprint("frames", info.sha256, record.start, record.end)
    assert json.loads(sidecar_path(cache.path).read_text())["source_sha256"] != old_key
