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

`--extracted POSES` scores the detector on the real videos instead: the poses that
`quality.py --poses POSES` cached (`target<T>_train.npz`, `target<T>_self.npz`,
`source<J>.npz`), as extracted and as training and transfer read them (after the project's
smoothing), against the data's exact joints (those with a MediaPipe namesake). The generated
frames' flips can then be told from the ones already in the stick figures the model learns from
and is driven by.
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

from motionxfer.evaluation.metrics.keypoints import (
    keypoint_accuracy,
    mirror_permutation,
    pose_accuracy,
)
from motionxfer.io.images import resize_frame
from motionxfer.io.video import probe, read_frames
from motionxfer.pose.extract import ExtractConfig, extract_from_frames
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.smoothing import smooth_poses

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


def exact_joints_flips(data: Path, poses_dir: Path, targets: list[int]) -> list[dict]:
    """Flips and AKD of the cached MediaPipe poses against the data's exact joints."""
    videos = {}
    for target in targets:
        videos[f"target{target}_train"] = data / "studio" / f"target{target}" / "train"
        videos[f"target{target}_self"] = data / "studio" / f"target{target}" / "heldout"
    for source in (0, 1):
        videos[f"source{source}"] = data / "studio" / f"source{source}"
    results = []
    for name, folder in videos.items():
        if not (poses_dir / f"{name}.npz").is_file():
            continue
        truth = np.load(folder / "keypoints.npz")
        names = [str(joint) for joint in truth["names"]]
        raw = PoseSequence.load(poses_dir / f"{name}.npz")
        detected = list(raw.skeleton.joint_names)
        common = [joint for joint in names if joint in detected]
        exact = np.concatenate([truth["kp2d"][:, [names.index(j) for j in common]],
                                np.ones((len(truth["kp2d"]), len(common), 1))], axis=-1)
        frames = min(len(exact), raw.num_frames)
        for stage, poses in (("extracted", raw), ("smoothed", smooth_poses(raw))):
            found = poses.keypoints[:frames, [detected.index(j) for j in common]]
            summary = keypoint_accuracy(exact[:frames], found,
                                        mirror=mirror_permutation(common)).summary()
            results.append({"video": name, "poses": stage, "akd_body": summary["akd"],
                            "akd_body_unflipped": summary["akd_unflipped"],
                            "flip_body": summary["flip"], "mkr_body": summary["mkr"]})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, nargs="+", default=[])
    parser.add_argument("--targets", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--rows", nargs="+", default=[], help="row folders, e.g. composite")
    parser.add_argument("--extracted", type=Path, default=None, metavar="POSES",
                        help="also score the cached poses of the real videos (see above)")
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

    print(f"\nload after {os.getloadavg()[0]:.1f}")
    columns = ["akd_body", "akd_body_unflipped", "flip_body", "mkr_body"]
    if results:
        print("\n| target | clip | row | " + " | ".join(columns) + " |")
        print("|" + "---|" * (3 + len(columns)))
        for entry in results:
            print(f"| target{entry['target']} | {entry['clip']} | {entry['row']} | " + " | ".join(
                "-" if entry[name] is None else f"{entry[name]:.3f}" for name in columns) + " |")
    if args.extracted:
        detector = exact_joints_flips(args.data, args.extracted, args.targets)
        print("\nMediaPipe on the real videos, against the exact joints:\n")
        print("| video | poses | " + " | ".join(columns) + " |")
        print("|" + "---|" * (2 + len(columns)))
        for entry in detector:
            print(f"| {entry['video']} | {entry['poses']} | " + " | ".join(
                f"{entry[name]:.3f}" for name in columns) + " |")
        results += detector
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))

if __name__ == "__main__":
    main()
