"""How close the built-in human parsers and the background plate come to the studio's ground truth.

    python benchmarks/parsing_accuracy.py [--data ../shared/data] [--frames 300]

Input: the GROUND-TRUTH person masks and keypoints (the 30 studio points, all in-frame points
used) of studio/target0/train and studio/target1/train, on `--frames` frames spread evenly over
each 3-minute video (synthetic bodies, 256x256: real footage with a real pose detector and
segmenter is harder). Prints the intersection over union per class (over all pixels of all
evaluated frames) and their mean of:
  (a) the geometric parser (defaults: t-shirt sleeves, long trousers),
  (b) geometry + the person's colour model, fitted without labels on the same frames of the
      same video (what the tool does with a target's own training video), and
  (c) the model of (b) applied to the person's held-out video (600 frames, never fitted on).
Then the background plate of each training video (48 frames sampled from all 5,400): there is
no clean plate in the data, so its mean absolute error (grey levels, 0-255, RGB averaged) is
measured on pixels both seen by the plate and background in a frame (outside the dilated
person mask), over the evaluated frames; its coverage (share of pixels seen); its
camera-motion score (global shift between samples, pixels); and the score of the same video
panned sideways by 0.01 and 0.05 pixels per frame (moving cameras, which must be flagged).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np

from motionxfer.background.plate import PlateConfig, dilate_mask, estimate_plate
from motionxfer.parsing.colour_model import ParserConfig, fit_colour_model, refine_parse
from motionxfer.parsing.geometry import JointLayout, parse_geometry
from motionxfer.parsing.labels import CLASS_NAMES

CLIPS = ("target0", "target1")
PAN_SPEEDS = (0.01, 0.05)  # simulated camera pans, pixels per frame (1.1 and 5.6 px per sample)


def decode(path: Path, indices: set[int] | None = None):
    """Yield RGB frames (H, W, 3) uint8 of a video (only `indices` when given)."""
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if indices is None or index in indices:
                yield frame.to_ndarray(format="rgb24")


def iou_table(predictions: list[np.ndarray], truths: np.ndarray) -> np.ndarray:
    """Per-class IoU (5,) over classes 1..5, pooled over frames."""
    intersection, union = np.zeros(6), np.zeros(6)
    for predicted, truth in zip(predictions, truths):
        for cls in range(1, 6):
            intersection[cls] += ((predicted == cls) & (truth == cls)).sum()
            union[cls] += ((predicted == cls) | (truth == cls)).sum()
    return intersection[1:] / np.maximum(union[1:], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--frames", type=int, default=300)
    arguments = parser.parse_args()
    cv2.setNumThreads(1)
    studio = arguments.data / "studio"
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"machine: nproc={os.cpu_count()}, load average {os.getloadavg()[0]:.2f} "
          f"{os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print("input: ground-truth person masks and keypoints (not a detector's)")
    config = ParserConfig()
    header = " ".join(f"{name:>7}" for name in CLASS_NAMES[1:])
    rows, plates = [], []
    for clip in CLIPS:
        for split in ("train", "heldout"):
            folder = studio / clip / split
            keypoints = np.load(folder / "keypoints.npz")
            layout = JointLayout.from_names([str(n) for n in keypoints["names"]])
            masks_file = np.load(folder / "masks.npz")
            count = len(keypoints["kp2d"])
            chosen = (np.unique(np.linspace(0, count - 1, arguments.frames).round().astype(int))
                      if split == "train" else np.arange(count))
            points, present = keypoints["kp2d"][chosen], keypoints["in_frame"][chosen]
            masks_all = masks_file["mask"]
            masks, truths = masks_all[chosen], masks_file["parsing"][chosen]
            frames = list(decode(folder / "video.mp4", set(chosen.tolist())))
            started = time.perf_counter()
            if split == "train":
                geometric = [parse_geometry(m, p, layout, config.geometry, v).labels
                             for m, p, v in zip(masks, points, present)]
                geometry_seconds = time.perf_counter() - started
                rows.append((f"{clip}/train (a) geometry", iou_table(geometric, truths),
                             geometry_seconds / len(frames)))
                started = time.perf_counter()
                model = fit_colour_model(frames, masks, points, layout, config, present)
                fit_seconds = time.perf_counter() - started
                print(f"{clip}: colour model fitted on {len(frames)} frames in {fit_seconds:.1f} s;"
                      f" sleeve length {model.sleeve_length:.2f}, bottom length "
                      f"{model.bottom_length:.2f} (of the limb)")
                started = time.perf_counter()
            refined = [refine_parse(f, m, p, layout, model, config, v)
                       for f, m, p, v in zip(frames, masks, points, present)]
            label = "(b) + colour model" if split == "train" else "(c) colour model, held-out"
            rows.append((f"{clip}/{split} {label}", iou_table(refined, truths),
                         (time.perf_counter() - started) / len(frames)))
            if split == "train":
                plates.append(plate_figures(clip, folder, masks_all, chosen, frames, masks))
    print()
    print(f"{'parser':48} {header}    mean  ms/frame")
    for name, iou, seconds in rows:
        cells = " ".join(f"{value:7.3f}" for value in iou)
        print(f"{name:48} {cells} {iou.mean():7.3f} {seconds * 1000:8.1f}")
    print()
    pans = " ".join(f"{f'pan {speed} px/f':>15}" for speed in PAN_SPEEDS)
    print(f"{'plate':16} {'MAE seen bg':>12} {'coverage':>9} {'motion px':>10} {'moving':>7} {pans}")
    for clip, error, coverage, score, moving, panned_scores in plates:
        cells = " ".join(f"{f'{value:.2f} {flagged}':>15}" for value, flagged in panned_scores)
        print(f"{clip:16} {error:12.2f} {coverage:9.3f} {score:10.2f} {moving!s:>7} {cells}")

def plate_figures(clip, folder, masks_all, chosen, frames, masks):
    config = PlateConfig()
    result = estimate_plate(decode(folder / "video.mp4"), iter(masks_all), len(masks_all), config)
    errors = []
    for frame, mask in zip(frames, masks):
        background = result.seen & ~dilate_mask(mask, config.mask_dilation)
        difference = np.abs(frame.astype(np.float32) - result.plate.astype(np.float32)).mean(axis=2)
        errors.append(difference[background].mean())
    panned_scores = []
    for speed in PAN_SPEEDS:  # pixels per frame
        def pan(image: np.ndarray, index: int, speed: float = speed) -> np.ndarray:
            shift = np.float32([[1, 0, speed * index], [0, 1, 0]])
            return cv2.warpAffine(image, shift, image.shape[1::-1], flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        panned = estimate_plate(
            (pan(frame, index) for index, frame in enumerate(decode(folder / "video.mp4"))),
            (pan(mask.astype(np.uint8), index) > 0 for index, mask in enumerate(masks_all)),
            len(masks_all), config,
        )
        panned_scores.append((panned.camera_motion_score, panned.moving_camera))
    return (clip, float(np.mean(errors)), float(result.seen.mean()), result.camera_motion_score,
            result.moving_camera, panned_scores)


if __name__ == "__main__":
    main()
