"""Which way the generated person is read to face: body AKD, AKD with the flips undone, and the
share of flipped frames (docs/metrics.md, "Facing"), for the videos `quality.py` wrote.

    python benchmarks/facing.py --data ../shared/data --workdir /tmp/quality \
        --targets 0 1 --rows retrieval composite sequence

MediaPipe's body joints are detected once on each reference clip (resized to the generated
videos' size) and once on each `<workdir>/target<T>/<row>/<clip>.mp4` that exists; the first
`--seconds` are compared, as `quality.py --eval-seconds` does. Several `--workdir`s may be given
(rows of other step counts live in other work folders); a row is labelled `<workdir>/<row>`.
A flipped frame is one where the detector fits the generated frame better with its left and
right swapped: the joints may be in the right place while the person is read as facing the
other way. Prints a markdown table; `--json` writes every number.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import numpy as np

from motionxfer.evaluation.metrics.keypoints import pose_accuracy
from motionxfer.io.images import resize_frame
from motionxfer.io.video import probe, read_frames
from motionxfer.pose.extract import ExtractConfig, extract_from_frames
from motionxfer.pose.sequence import PoseSequence

CLIPS = ("self", "source0", "source1")


def reference_video(data: Path, target: int, clip: str) -> Path:
    if clip == "self":
        return data / "studio" / f"target{target}" / "heldout" / "video.mp4"
    return data / "studio" / "gt" / f"target{target}_{clip}" / "video.mp4"


def body_poses(path: Path, frames: int, size: tuple[int, int]) -> PoseSequence:
    """MediaPipe's body joints on the first `frames` frames of a video, resized to `size`."""
    fps = probe(path).fps
    images: Iterator[np.ndarray] = (resize_frame(frame.rgb, size)
                                    for frame in islice(read_frames(path), frames))
    config = ExtractConfig(hands=False, face=False, segmentation=False)
    return extract_from_frames(images, fps, config, total=frames).poses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, nargs="+", required=True)
    parser.add_argument("--targets", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rows", nargs="+", required=True, help="row folders, e.g. composite")
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), choices=CLIPS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    print(f"python benchmarks/facing.py {' '.join(sys.argv[1:])}")
    print(f"load before {os.getloadavg()[0]:.1f}; synthetic studio data\n", flush=True)
    results = []
    for target in args.targets:
        for clip in args.clips:
            videos = {f"{workdir.name}/{row}": workdir / f"target{target}" / row / f"{clip}.mp4"
                      for workdir in args.workdir for row in args.rows}
            videos = {label: path for label, path in videos.items() if path.is_file()}
            if not videos:
                continue
            first = probe(next(iter(videos.values())))
            frames = round(args.seconds * first.fps)
            reference = body_poses(reference_video(args.data, target, clip), frames,
                                   (first.width, first.height))
            for label, path in videos.items():
                summary = pose_accuracy(reference, body_poses(path, frames,
                                                              (first.width, first.height)),
                                        "body").summary()
                results.append({"target": target, "clip": clip, "row": label,
                                "akd_body": summary["akd"], "mkr_body": summary["mkr"],
                                "akd_body_unflipped": summary["akd_unflipped"],
                                "flip_body": summary["flip"]})
                print(f"  target{target} {clip} {label}: " + ", ".join(
                    f"{key} {value:.3f}" for key, value in results[-1].items()
                    if isinstance(value, float)), flush=True)

    print(f"\nload after {os.getloadavg()[0]:.1f}\n")
    columns = ["akd_body", "akd_body_unflipped", "flip_body", "mkr_body"]
    print("| target | clip | row | " + " | ".join(columns) + " |")
    print("|" + "---|" * (3 + len(columns)))
    for entry in results:
        print(f"| target{entry['target']} | {entry['clip']} | {entry['row']} | " + " | ".join(
            "-" if entry[name] is None else f"{entry[name]:.3f}" for name in columns) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
