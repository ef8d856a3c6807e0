"""Pose extraction in several processes: pass 1 of a transfer, made parallel.

`extract_video_parallel`: the video is cut into `workers` contiguous parts, each decoded and run
through its own MediaPipe in its own process (MediaPipe is CPU bound, and the GIL would serialise
threads). Contiguous parts, not every n-th frame: MediaPipe's tracking mode finds the person from
the previous frame's landmarks, so each worker must see consecutive frames; only the first frame
of each part is a fresh detection. Static mode (a detection on every frame) would allow any split
but is slower and jitters; see docs/speed.md for the measured cost of both.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import cv2
import numpy as np

from motionxfer.errors import BadInput, MotionXferError
from motionxfer.io.video import probe, read_frames
from motionxfer.pose.extract import ExtractConfig, extract_from_frames, extract_video
from motionxfer.pose.sequence import PoseSequence
from motionxfer.progress import ProgressCallback, RateMeter

MIN_FRAMES_PER_WORKER = 30  # shorter parts cost more in process start-up than they save
_END = object()  # the end of a prefetched stream


def prefetch(items: Iterable[Any], size: int = 8) -> Iterator[Any]:
    """`items`, produced in a thread up to `size` ahead (decoding overlaps the consumer)."""
    channel: queue.Queue[Any] = queue.Queue(size)
    stop = threading.Event()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        channel.put(item, timeout=0.05)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
            failure.append(error)
        finally:
            with contextlib.suppress(queue.Full):
                channel.put(_END, timeout=1.0)

    thread = threading.Thread(target=produce, name="motionxfer-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = channel.get()
            if item is _END:
                break
            yield item
        if failure:
            raise failure[0]
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                channel.get_nowait()
        thread.join()


def chunk_bounds(first_time: float, frame_count: int, fps: float,
                 parts: int) -> list[tuple[float, float | None]]:
    """[start, end) seconds that cut `frame_count` frames at `fps` from `first_time` into
    `parts` contiguous runs of nearly equal length. Each cut lies halfway between two frames;
    as `read_frames` keeps a frame when start <= time < end, consecutive runs share their cut
    and every frame lands in exactly one run. The last run is open-ended."""
    parts = max(1, min(parts, frame_count))
    starts = [round(part * frame_count / parts) for part in range(1, parts)]
    cuts = [first_time + (index - 0.5) / fps for index in starts]
    return list(zip([first_time, *cuts], [*cuts, None], strict=True))


def extract_video_parallel(
    path: str | os.PathLike[str], config: Any = None, start: float | None = None,
    end: float | None = None, workers: int = 2, progress: ProgressCallback | None = None,
) -> PoseSequence:
    """`extract.extract_video` in `workers` processes, each on a contiguous part of the video.
    Same frames and timestamps as one process; MediaPipe starts a fresh track at the first frame
    of each part (the only difference). A video with a variable frame rate, or too short to
    share, runs in one process."""
    config = config or ExtractConfig()
    if config.segmentation:
        raise BadInput("extraction in several processes does not keep person masks",
                       hint="extract with one worker when segmentation = true")
    info = probe(path)
    origin = 0.0 if start is None else float(start)
    stop = info.duration if end is None else min(float(end), info.duration)
    frame_count = max(1, round((stop - origin) * info.fps))
    workers = max(1, min(int(workers), frame_count // MIN_FRAMES_PER_WORKER))
    if workers == 1 or info.variable_frame_rate:
        return extract_video(path, config, start, end, progress)
    bounds = chunk_bounds(origin, frame_count, info.fps, workers)
    meter = RateMeter(progress, "poses", frame_count, unit="frames")
    parts: list[PoseSequence] = []
    try:
        with ProcessPoolExecutor(len(bounds), mp_context=_process_context()) as pool:
            futures = [pool.submit(_extract_part, str(path), config, part_start,
                                   end if part_end is None else part_end, origin)
                       for part_start, part_end in bounds]
            for future in futures:
                parts.append(future.result())
                meter.advance(parts[-1].num_frames)
    except BrokenProcessPool as error:
        raise MotionXferError(
            f"a pose extraction process stopped abruptly ({error})",
            hint="out of memory? use fewer workers (workers = 1 extracts in this process); "
                 "a script that calls this must do so under `if __name__ == '__main__':`",
        ) from error
    meter.finish()
    return PoseSequence(
        keypoints=np.concatenate([part.keypoints for part in parts]),
        skeleton=parts[0].skeleton, fps=parts[0].fps, image_size=parts[0].image_size,
        person_present=np.concatenate([part.person_present for part in parts]),
        timestamps=np.concatenate([part.timestamps for part in parts]),
    )


def _extract_part(path: str, config: Any, start: float, end: float | None,
                  origin: float) -> PoseSequence:
    """One worker's part: its frames decoded (in a thread, ahead of MediaPipe) and extracted,
    with timestamps counted from `origin` as one process would count them."""
    cv2.setNumThreads(1)
    fps = probe(path).fps
    frames, times = itertools.tee(prefetch(read_frames(path, start or None, end)))
    extraction = extract_from_frames((frame.rgb for frame in frames), fps, config,
                                     timestamps=(frame.time - origin for frame in times))
    return extraction.poses


def _process_context() -> Any:
    """"spawn": a forked child of a process that already runs PyTorch or MediaPipe threads can
    deadlock on locks those threads held."""
    return multiprocessing.get_context("spawn")


def default_workers() -> int:
    """Processes for pose extraction: one per core, at most 8 (MediaPipe uses a few threads)."""
    return max(1, min(8, os.cpu_count() or 1))


