"""Where the normalized source lands, against the transfer ground truth, for every placement choice.

    python benchmarks/placement.py --data ../shared/data

On the studio data (synthetic bodies, exact 2D joints, 256x256): each target's training video
gives the target's statistics, each source (new moves, never in training) is normalized onto it,
and the result is compared with `gt/targetI_sourceJ`, the target really performing the source's
motion. Per choice of `NormalizeConfig.horizontal` and `scale_model`: the mean joint distance
(px), the mean horizontal and vertical offset of the figure's centre (signed, px), and the size
ratio (normalized / ground truth, RMS spread of the joints). The ground-truth joints are the
input, so the table measures the normalization alone, not pose detection.

Two rows are REMOT's global alignment (`NormalizeConfig.method = "layout"`, source_position
placement): its heights measured on the joints' extent, and on the data set's ground-truth
parsing maps (`masks.npz`; what a project's parsing cache holds). `--pair I J` runs one
target <- source pair only.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import numpy as np

from motionxfer.parsing.global_alignment import LayoutExtent, layout_extent
from motionxfer.pose.normalization import (
    NormalizeConfig,
    ankle_statistics,
    apply_normalization,
    fit_normalization,
    normalize_poses,
)
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import Skeleton

CHOICES = {
    "target_median, heights": {"horizontal": "target_median", "scale_model": "heights"},
    "source_position, heights": {"horizontal": "source_position", "scale_model": "heights"},
    "target_median, edn": {"horizontal": "target_median", "scale_model": "edn"},
    "source_position, edn": {"horizontal": "source_position", "scale_model": "edn"},
}
LAYOUT_CHOICES = ("layout (REMOT), joints", "layout (REMOT), parsing maps")


def parsing_extent(folder: Path) -> LayoutExtent:
    with np.load(folder / "masks.npz") as data:
        return layout_extent(data["parsing"])


def load(folder: Path, fps: float = 30.0) -> PoseSequence:
    with np.load(folder / "keypoints.npz") as data:
        names = tuple(str(name) for name in data["names"])
        keypoints = np.concatenate([data["kp2d"].astype(np.float32),
                                    data["in_frame"][..., None].astype(np.float32)], axis=-1)
    frames = keypoints.shape[0]
    return PoseSequence(keypoints, Skeleton("ground_truth_30", names, ()), fps, (256, 256),
                        np.ones(frames, bool), np.arange(frames) / fps)


def spread(xy: np.ndarray) -> np.ndarray:  # (T, J, 2) -> (T,)
    centred = xy - xy.mean(axis=1, keepdims=True)
    return np.sqrt((centred ** 2).sum(axis=-1).mean(axis=1))


def scores(moved: np.ndarray, truth: np.ndarray) -> tuple[float, float, float, float]:
    error = float(np.linalg.norm(moved - truth, axis=-1).mean())
    offset = (moved.mean(axis=1) - truth.mean(axis=1)).mean(axis=0)  # (2,)
    ratio = float(np.median(spread(moved) / spread(truth)))
    return error, float(offset[0]), float(offset[1]), ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--pair", type=int, nargs=2, metavar=("TARGET", "SOURCE"),
                        help="only this target <- source pair (e.g. 0 0)")
    args = parser.parse_args()
    pairs = [tuple(args.pair)] if args.pair else [(0, 0), (0, 1), (1, 0), (1, 1)]
    studio = args.data / "studio"
    print(f"python benchmarks/placement.py --data {args.data}   (nproc {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f}; ground-truth joints in, synthetic studio data)\n")
    print("| target <- source | placement, scale model | joint error px | centre dx px | "
          "centre dy px | size ratio |")
    print("|---|---|---:|---:|---:|---:|")
    totals: dict[str, list[float]] = {label: [] for label in (*CHOICES, *LAYOUT_CHOICES)}
    for target, source in pairs:
        target_poses = load(studio / f"target{target}" / "train")
        source_poses = load(studio / f"source{source}")
        truth = load(studio / "gt" / f"target{target}_source{source}").xy.astype(np.float64)
        raw = scores(source_poses.xy.astype(np.float64), truth)
        print(f"| target{target} <- source{source} | no normalization | {raw[0]:.2f} | "
              f"{raw[1]:+.2f} | {raw[2]:+.2f} | {raw[3]:.3f} |")
        for label, changes in CHOICES.items():
            config = dataclasses.replace(NormalizeConfig(), **changes)
            normalization = fit_normalization(
                source_poses, ankle_statistics(source_poses, config),
                ankle_statistics(target_poses, config), config)
            moved = apply_normalization(source_poses, normalization, target_poses.image_size)
            error, dx, dy, ratio = scores(moved.xy.astype(np.float64), truth)
            totals[label].append(error)
            print(f"| target{target} <- source{source} | {label} | {error:.2f} | {dx:+.2f} | "
                  f"{dy:+.2f} | {ratio:.3f} |")
        config = NormalizeConfig(method="layout")
        extents = {"layout (REMOT), joints": (None, None),
                   "layout (REMOT), parsing maps": (
                       parsing_extent(studio / f"source{source}"),
                       parsing_extent(studio / f"target{target}" / "train"))}
        for label, (source_extent, target_extent) in extents.items():
            moved, _ = normalize_poses(source_poses, target_poses, config, source_extent,
                                       target_extent)
            error, dx, dy, ratio = scores(moved.xy.astype(np.float64), truth)
            totals[label].append(error)
            print(f"| target{target} <- source{source} | {label} | {error:.2f} | {dx:+.2f} | "
                  f"{dy:+.2f} | {ratio:.3f} |")
    print(f"\n| placement, scale model | mean joint error over the {len(pairs)} pair(s), px |")
    print("|---|---:|")
    for label, errors in totals.items():
        print(f"| {label} | {np.mean(errors):.2f} |")


if __name__ == "__main__":
    main()
