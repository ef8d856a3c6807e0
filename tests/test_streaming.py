"""The overlapped pipeline gives exactly the frames of the sequential one (torch), batches
several videos without mixing their recurrences, stops cleanly on an error, and cuts a video
into parts for parallel pose extraction without losing or repeating a frame."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from motionxfer.checkpoint import Checkpoint
from motionxfer.inference.backends import open_backend
from motionxfer.inference.bench import random_checkpoint
from motionxfer.inference.frame_generator import BackendConfig
from motionxfer.inference.streaming import StreamConfig, VideoJob, generate_videos
from motionxfer.inference.transfer import (
    PersonalModel,
    TransferConfig,
    video_job,
    write_sequentially,
)
from motionxfer.io.images import working_size
from motionxfer.networks.face_refiner import face_boxes
from motionxfer.pipeline import import_keypoints, init_project, normalize_source, source_record
from motionxfer.pose.parallel_extract import chunk_bounds, prefetch
from motionxfer.presets import load_preset

FIXTURES = Path(__file__).parent / "fixtures"
FRAMES = 20


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A project on the fixture clips (ground-truth keypoints, no MediaPipe) with a tiny model of
    random weights, and the normalized poses of two sources."""
    folder = tmp_path_factory.mktemp("streaming")
    project = init_project(folder / "me", FIXTURES / "target_clip.mp4")
    import_keypoints(project, project.target, FIXTURES / "target_clip_keypoints.npz")
    normalized = []
    for name, keypoints in (("source_clip.mp4", "source_clip_keypoints.npz"),
                            ("gt_target0_source0_clip.mp4", "gt_target0_source0_clip_keypoints.npz")):
        video = folder / f"dancer_{name}"
        shutil.copyfile(FIXTURES / name, video)
        record = source_record(project, video)
        import_keypoints(project, record, FIXTURES / keypoints)
        normalized.append((record, normalize_source(project, record)[0]))
    preset = load_preset("tiny")
    size = working_size((256, 256), preset.size, preset.generator.size_multiple)
    checkpoint = random_checkpoint(folder / "model.pt", preset, size,
                                   project_id=project.target.info.sha256)
    return project, checkpoint, normalized


class Collector:
    """A sink that keeps the frames."""

    def __init__(self) -> None:
        self.frames: list[np.ndarray] = []

    def write(self, rgb: np.ndarray) -> None:
        self.frames.append(rgb.copy())


def collected_job(model: PersonalModel, record, poses, side_by_side: bool = False,
                  ) -> tuple[VideoJob, Collector]:
    sink = Collector()
    config = TransferConfig(side_by_side=side_by_side, max_seconds=FRAMES / poses.fps)
    job = video_job(model, record, poses, Path("unused.mp4"), config)
    return VideoJob(job.name, job.poses, job.frame_count, job.face_boxes,
                    lambda: contextlib.nullcontext(sink), job.source_frames), sink


def test_streamed_frames_equal_the_sequential_ones_exactly(setup) -> None:
    project, checkpoint, normalized = setup
    model = PersonalModel(checkpoint, device="cpu", project_id=project.target.info.sha256)
    assert model.backend.has_face_refiner
    record, poses = normalized[0]
    job, sequential = collected_job(model, record, poses, side_by_side=True)
    write_sequentially(model, job)
    job, streamed = collected_job(model, record, poses, side_by_side=True)
    stats = generate_videos(model.backend, [job], StreamConfig(queue_size=3))
    assert len(streamed.frames) == len(sequential.frames) == FRAMES == stats.frames
    assert streamed.frames[0].shape == (128, 3 * 128, 3)
    for index, (one, other) in enumerate(zip(sequential.frames, streamed.frames, strict=True)):
        assert np.array_equal(one, other), f"frame {index} differs"
    # the face refiner ran: some frames have a face box
    assert np.isfinite(job.face_boxes).all(axis=1).any()
    assert set(stats.busy) == {"render", "generate", "refine", "encode"}


def test_several_videos_in_one_batch_keep_their_own_recurrence(setup) -> None:
    project, checkpoint, normalized = setup
    model = PersonalModel(checkpoint, device="cpu", project_id=project.target.info.sha256)
    alone = []
    for record, poses in normalized:
        job, sink = collected_job(model, record, poses)
        generate_videos(model.backend, [job])
        alone.append(sink.frames)
    # the second video is shorter: the batch shrinks when the first one goes on alone
    jobs, sinks = [], []
    for (record, poses), frames in zip(normalized, (FRAMES, FRAMES // 2), strict=True):
        job, sink = collected_job(model, record, poses)
        jobs.append(VideoJob(job.name, job.poses, frames, job.face_boxes, job.open_sink))
        sinks.append(sink)
    stats = generate_videos(model.backend, jobs, StreamConfig(video_batch=2))
    assert stats.frames == FRAMES + FRAMES // 2
    for sink, reference, frames in zip(sinks, alone, (FRAMES, FRAMES // 2), strict=True):
        assert len(sink.frames) == frames
        for one, other in zip(sink.frames, reference, strict=False):
            # a batch of 2 may sum the convolutions in another order than a batch of 1
            assert np.abs(one.astype(int) - other).max() <= 1
    # and the two videos differ, so nothing was shared between them
    assert not np.array_equal(sinks[0].frames[5], sinks[1].frames[5])


def test_an_error_in_a_stage_stops_the_pipeline_and_is_raised(setup) -> None:
    project, checkpoint, normalized = setup
    backend = open_backend(Checkpoint.load(checkpoint, project.target.info.sha256),
                           BackendConfig(device="cpu"))
    _, poses = normalized[0]
    closed = []

    class FailingSink:
        def __init__(self) -> None:
            self.count = 0

        def write(self, rgb: np.ndarray) -> None:
            self.count += 1
            if self.count == 3:
                raise OSError("disk full")

    @contextlib.contextmanager
    def open_sink() -> Iterator[FailingSink]:
        try:
            yield FailingSink()
        finally:
            closed.append(True)

    boxes = face_boxes(poses, backend.size)
    job = VideoJob("x", poses, 60, boxes, open_sink)
    with pytest.raises(OSError, match="disk full"):
        generate_videos(backend, [job], StreamConfig(queue_size=2))
    assert closed == [True]


def test_chunk_bounds_put_every_frame_in_exactly_one_part() -> None:
    fps = 30.0
    times = np.arange(95) / fps + 0.01 * np.sin(np.arange(95))  # jittered timestamps
    bounds = chunk_bounds(0.0, 95, fps, 4)
    assert len(bounds) == 4 and bounds[-1][1] is None
    owners = [[k for k, (start, end) in enumerate(bounds)
               if time >= start - 1e-4 and (end is None or time < end - 1e-4)] for time in times]
    assert all(len(owner) == 1 for owner in owners)
    sizes = np.bincount([owner[0] for owner in owners])
    assert sizes.max() - sizes.min() <= 1  # nearly equal parts, in order
    assert [owner[0] for owner in owners] == sorted(owner[0] for owner in owners)
    assert chunk_bounds(0.0, 3, fps, 8) == chunk_bounds(0.0, 3, fps, 3)  # never an empty part


def test_prefetch_keeps_order_and_passes_errors_on() -> None:
    assert list(prefetch(iter(range(50)), size=3)) == list(range(50))

    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("bad frame")

    with pytest.raises(ValueError, match="bad frame"):
        list(prefetch(broken()))


@pytest.mark.slow
def test_parallel_pose_extraction_has_every_frame_once_and_the_same_first_part() -> None:
    pytest.importorskip("mediapipe")
    from motionxfer.pose.extract import ExtractConfig, extract_video
    from motionxfer.pose.parallel_extract import extract_video_parallel

    config = ExtractConfig(hands=False, face=False)  # MediaPipe Pose: the faster model
    video = FIXTURES / "extract_clip.mp4"  # 60 frames: two parts of 30
    alone = extract_video(video, config)
    parallel = extract_video_parallel(video, config, workers=2)
    assert parallel.num_frames == alone.num_frames == 60
    assert np.array_equal(parallel.timestamps, alone.timestamps)
    assert parallel.fps == alone.fps and parallel.image_size == alone.image_size
    # the first part is the same frames through the same fresh MediaPipe: identical
    np.testing.assert_array_equal(parallel.keypoints[:30], alone.keypoints[:30])
    # the second part starts a new track: close to the single process's, not equal to it
    body = slice(0, 33)
    gap = np.nanmax(np.abs(parallel.keypoints[30:, body, :2] - alone.keypoints[30:, body, :2]))
    assert gap < 0.1 * max(alone.image_size)


def test_transfer_many_generates_several_sources_in_one_batch(setup, tmp_path: Path) -> None:
    from motionxfer.inference.transfer import transfer_many
    from motionxfer.io.video import probe, read_frames

    project, checkpoint, normalized = setup
    sources = [record.info.path for record, _ in normalized]
    config = TransferConfig(BackendConfig(device="cpu"), max_seconds=0.5)
    together = transfer_many(project, sources, tmp_path / "together",
                             TransferConfig(BackendConfig(device="cpu"), max_seconds=0.5, video_batch=2),
                             checkpoint)
    alone = transfer_many(project, sources, tmp_path / "alone", config, checkpoint)
    for batched, single in zip(together, alone, strict=True):
        assert batched.frames == 15 and probe(batched.output).frame_count == 15
        assert batched.output.parent.name == "together" and "torch" in batched.backend
        one = np.stack([frame.rgb for frame in read_frames(batched.output)]).astype(int)
        other = np.stack([frame.rgb for frame in read_frames(single.output)])
        assert np.abs(one - other).mean() < 1.0  # the same frames, up to summation order
