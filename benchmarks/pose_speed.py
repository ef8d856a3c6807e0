"""Throughput of pose extraction at 1280x720: MediaPipe Pose (body only) and Holistic.

    python benchmarks/pose_speed.py                       # makes a 1280x720 clip from the data
    python benchmarks/pose_speed.py --video my_720p.mp4   # or times your own video
    python benchmarks/pose_speed.py --frames 300 --runs 5 --long-sides 640,0 --cv2-threads 0,1

Prints the machine, then frames per second (median of --runs runs) for:
- decoding alone (PyAV, to RGB);
- MediaPipe on frames already decoded, for body-only and holistic, for each processing long side
  (640: frames shrunk before MediaPipe, the default; 0: passed at full size), and each OpenCV
  thread count;
- `extract_video` end to end (decode + body-only MediaPipe), as `extract-poses` runs it.

When the clip is made from the synthetic data (the default), the mean error of the 12 limb joints
against the ground truth is printed too, in pixels of the 1280x720 frame, so a faster setting that
loses accuracy shows. Other processes on the machine slow everything down: the load average is
printed before and after.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

from motionxfer.pose.extract import ExtractConfig, extract_from_frames, extract_video
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC

DATA_CLIP = Path("/work/shared/data/studio/target0/train")
LIMB_JOINTS = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
WIDTH, HEIGHT = 1280, 720


def make_720p_clip(clip: Path, frames: int, output: Path) -> np.ndarray:
    """Upscale the data clip's 256x256 frames to 720x720, centre them on a 1280x720 canvas
    (edges replicated: the wall and floor run on) and encode H.264. Returns the ground truth
    (T, 30, 2) in pixels of the new frames."""
    scale = HEIGHT / 256
    left = (WIDTH - HEIGHT) // 2
    with av.open(str(clip / "video.mp4")) as source, av.open(str(output), "w") as target:
        stream = target.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for index, frame in enumerate(source.decode(video=0)):
            if index >= frames:
                break
            rgb = cv2.resize(frame.to_ndarray(format="rgb24"), (HEIGHT, HEIGHT),
                             interpolation=cv2.INTER_CUBIC)
            rgb = cv2.copyMakeBorder(rgb, 0, 0, left, WIDTH - HEIGHT - left, cv2.BORDER_REPLICATE)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                target.mux(packet)
        for packet in stream.encode():
            target.mux(packet)
    with np.load(clip / "keypoints.npz") as data:
        names = list(data["names"])
        truth = data["kp2d"][:frames, [names.index(name) for name in LIMB_JOINTS]]
    return truth * scale + np.array([left, 0.0])


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def timed(function, runs: int) -> tuple[float, object]:
    """Median seconds of `runs` calls, and the last result."""
    seconds, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def limb_error(keypoints: np.ndarray, truth: np.ndarray) -> float:
    found = keypoints[: len(truth), [MEDIAPIPE_HOLISTIC.index(n) for n in LIMB_JOINTS], :2]
    return float(np.nanmean(np.linalg.norm(found - truth[: len(found)], axis=-1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, help="a video to time (default: made from --clip)")
    parser.add_argument("--clip", type=Path, default=DATA_CLIP,
                        help="data clip folder to make the 1280x720 video from")
    parser.add_argument("--frames", type=int, default=150, help="frames of the made video")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--long-sides", default="640,0",
                        help="processing_long_side values to compare (0: full size)")
    parser.add_argument("--cv2-threads", default="default,1",
                        help="OpenCV thread counts to compare ('default' leaves OpenCV's)")
    parser.add_argument("--no-holistic", action="store_true", help="time body-only only")
    args = parser.parse_args()

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, python {platform.python_version()}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as folder:
        truth = None
        video = args.video
        if video is None:
            video = Path(folder) / "clip_1280x720.mp4"
            truth = make_720p_clip(args.clip, args.frames, video)
        seconds, frames = timed(lambda: decode(video), args.runs)
        height, width = frames[0].shape[:2]
        print(f"video: {video.name if args.video else 'made from ' + str(args.clip)}, "
              f"{len(frames)} frames of {width}x{height}")
        print(f"decode only (PyAV -> RGB): {len(frames) / seconds:.1f} frames/s")

        default_threads = cv2.getNumThreads()
        modes = [("body-only", False)] + ([] if args.no_holistic else [("holistic", True)])
        for threads in args.cv2_threads.split(","):
            cv2.setNumThreads(default_threads if threads == "default" else int(threads))
            for name, holistic in modes:
                for long_side in (int(value) for value in args.long_sides.split(",")):
                    config = ExtractConfig(hands=holistic, face=holistic,
                                           processing_long_side=long_side)
                    seconds, extraction = timed(
                        lambda config=config: extract_from_frames(frames, 30.0, config),
                        args.runs)
                    line = (f"{name:9} long side {long_side or 'full':>4}, cv2 threads "
                            f"{cv2.getNumThreads()}: {len(frames) / seconds:6.1f} frames/s")
                    if truth is not None:
                        error = limb_error(extraction.poses.keypoints, truth)
                        line += f", limb error {error:.2f} px"
                    print(line)
        cv2.setNumThreads(default_threads)

        seconds, poses = timed(lambda: extract_video(video, ExtractConfig(hands=False,
                                                                           face=False)), args.runs)
        print(f"extract_video body-only end to end (decode + pose, defaults): "
              f"{poses.num_frames / seconds:.1f} frames/s")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
