"""How close normalized source poses come to the ground truth of the transfer.

    python benchmarks/normalization_accuracy.py

Uses the ground-truth joints in tests/fixtures/norm_*.npz (synthetic bodies, exact 2D joints,
256x256): the gallery's two bodies doing the same motion (each is the other's ground truth), and
the studio's source0 normalized with the statistics of target0's training video, compared with
target0 performing source0's motion. Prints, per setting: the mean joint distance to the ground
truth (px), the same after removing each frame's mean offset (pose and size only), and the median
and 5-95 % range of the size ratio (normalized / ground truth, RMS spread of the joints).

The ground truth places the target at the source's root trajectory scaled by leg length; EDN's
normalization maps the source's depth range onto the target's own range instead, so a few pixels
of difference are by design, not error.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from motionxfer.pose.normalization import (
    NormalizeConfig,
    ankle_statistics,
    apply_normalization,
    fit_normalization,
)
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import Skeleton

FIXTURES = Path(__file__).parents[1] / "tests" / "fixtures"
CASES = (  # label, source, target video for statistics, ground truth
    ("gallery id0 -> id3", "norm_gallery_id0", "norm_gallery_id3", "norm_gallery_id3"),
    ("gallery id3 -> id0", "norm_gallery_id3", "norm_gallery_id0", "norm_gallery_id0"),
    ("studio source0 -> target0", "norm_studio_source0", "norm_studio_target0",
     "norm_studio_target0_source0"),
)
SETTINGS = {
    "default": {},
    "scale_model=edn": {"scale_model": "edn"},
    "far_quantile=0.25 (EDN-like far)": {"far_quantile": 0.25},
    "close_quantile=1 (EDN's max)": {"close_quantile": 1.0},
    "no jump detection": {"airborne_threshold": 100.0},
    "no smoothing": {"smoothing": 0.0},
}


def load(name: str) -> PoseSequence:
    with np.load(FIXTURES / f"{name}.npz") as data:
        names = tuple(str(n) for n in data["names"])
        keypoints = np.concatenate(
            [data["kp2d"].astype(np.float32), data["visible"][..., None].astype(np.float32)],
            axis=-1)
        fps = float(data["fps"])
        image_size = (int(data["image_size"][0]), int(data["image_size"][1]))
    frames = keypoints.shape[0]
    return PoseSequence(keypoints, Skeleton("ground_truth_30", names, ()), fps, image_size,
                        np.ones(frames, bool), np.arange(frames) / fps)


def spread(xy: np.ndarray) -> np.ndarray:  # (T, J, 2) -> (T,)
    centred = xy - xy.mean(axis=1, keepdims=True)
    return np.sqrt((centred ** 2).sum(axis=-1).mean(axis=1))


def report(label: str, moved_xy: np.ndarray, truth_xy: np.ndarray) -> None:
    error = np.linalg.norm(moved_xy - truth_xy, axis=-1).mean()
    centred = (moved_xy - moved_xy.mean(axis=1, keepdims=True)) - (
        truth_xy - truth_xy.mean(axis=1, keepdims=True))
    shape_error = np.linalg.norm(centred, axis=-1).mean()
    ratio = spread(moved_xy) / spread(truth_xy)
    print(f"  {label:34s} {error:6.2f} px   centred {shape_error:5.2f} px   size ratio "
          f"{np.median(ratio):.3f} ({np.quantile(ratio, 0.05):.3f}-{np.quantile(ratio, 0.95):.3f})")


def main() -> None:
    for case, source_name, target_name, truth_name in CASES:
        source, target, truth = load(source_name), load(target_name), load(truth_name)
        print(case)
        report("no normalization", source.xy.astype(np.float64), truth.xy.astype(np.float64))
        for label, changes in SETTINGS.items():
            config = dataclasses.replace(NormalizeConfig(), **changes)
            normalization = fit_normalization(source, ankle_statistics(source, config),
                                              ankle_statistics(target, config), config)
            moved = apply_normalization(source, normalization, target.image_size)
            report(label, moved.xy.astype(np.float64), truth.xy.astype(np.float64))


if __name__ == "__main__":
    main()
