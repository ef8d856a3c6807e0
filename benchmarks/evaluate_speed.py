"""How long each evaluation metric takes per frame pair.

    python benchmarks/evaluate_speed.py [--size 256] [--frames 16] [--device cpu]

Uses the frames of tests/fixtures/metrics_clip.npz enlarged to --size (content does not change
the cost) and prints milliseconds per frame pair for each metric; LPIPS and FID only when their
weights are in the model cache (motionxfer models fetch). MediaPipe (Mask-SSIM's segmentation,
AKD/MKR) is measured by benchmarks/pose_speed.py.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from motionxfer import model_cache
from motionxfer.evaluation.metrics import image, temporal
from motionxfer.evaluation.metrics.fid import fid_from_features

REPO = Path(__file__).resolve().parent.parent


def timed(label: str, count: int, work: Callable[[], object]) -> None:
    started = time.perf_counter()
    work()
    elapsed = time.perf_counter() - started
    print(f"{label:<32} {1000 * elapsed / count:9.1f} ms per frame pair")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    arguments = parser.parse_args()
    with np.load(REPO / "tests" / "fixtures" / "metrics_clip.npz") as data:
        small, small_masks = data["frames"], data["masks"]
    size = (arguments.size, arguments.size)
    count = min(arguments.frames, len(small))
    reference = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in small])
    generated = np.stack([cv2.GaussianBlur(f, (5, 5), 1.5) for f in reference])
    masks = np.stack([cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
                      for m in small_masks])
    reference, generated, masks = reference[:count], generated[:count], masks[:count]
    print(f"{count} frame pairs of {arguments.size}x{arguments.size}, device {arguments.device}, "
          f"torch threads {torch.get_num_threads()}")
    timed("SSIM", count, lambda: [image.ssim(r, g) for r, g in zip(reference, generated)])
    timed("PSNR", count, lambda: [image.psnr(r, g) for r, g in zip(reference, generated)])
    timed("Mask-SSIM + Mask-PSNR", count, lambda: [
        (image.mask_ssim(r, g, m), image.mask_psnr(r, g, m))
        for r, g, m in zip(reference, generated, masks)])
    for method in temporal.FLOW_METHODS:
        estimator = temporal.FlowEstimator(method)
        timed(f"TCM + warping error ({method})", count - 1, lambda: [
            temporal.frame_pair_consistency(reference[t - 1], reference[t], generated[t - 1],
                                            generated[t], estimator) for t in range(1, count)])
    from motionxfer.evaluation.metrics.perceptual import inception_features, lpips_distances
    from motionxfer.networks.inception_fid import FIDInception
    from motionxfer.networks.lpips import LPIPS, required_weights

    for backbone in ("alex", "vgg"):
        if not all(model_cache.is_cached(name) for name in required_weights(backbone)):
            print(f"LPIPS ({backbone}): weights not cached, skipped")
            continue
        model = LPIPS.from_cache(backbone).to(arguments.device)
        lpips_distances(model, reference[:1], generated[:1])  # warm-up
        timed(f"LPIPS ({backbone}), batch 8", count, lambda: [
            lpips_distances(model, reference[i:i + 8], generated[i:i + 8])
            for i in range(0, count, 8)])
    if model_cache.is_cached("fid_inception"):
        network = FIDInception.from_cache(arguments.device)
        inception_features(network, reference[:1], arguments.device)  # warm-up
        features: list[np.ndarray] = []
        timed("FID features (both), batch 8", count, lambda: [
            features.append(inception_features(network, frames[i:i + 8], arguments.device))
            for frames in (reference, generated) for i in range(0, count, 8)])
        generator = np.random.default_rng(0)
        many = generator.normal(size=(600, 2048))
        started = time.perf_counter()
        fid_from_features(many, many + 0.1)
        print(f"{'FID statistic, 600 frames':<32} {1000 * (time.perf_counter() - started):9.1f} "
              "ms in all")
    else:
        print("FID: weights not cached, skipped")


if __name__ == "__main__":
    main()
