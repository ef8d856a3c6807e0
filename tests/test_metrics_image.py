"""SSIM, PSNR and their masked forms on small frames of the test clip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from motionxfer.evaluation.metrics import image

FIXTURE = Path(__file__).parent / "fixtures" / "metrics_clip.npz"


@pytest.fixture(scope="module")
def clip() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {key: data[key] for key in ("frames", "masks", "lpips_x0", "lpips_x1")}


def _skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=255))


def test_ssim_equals_scikit_image(clip):
    pairs = list(zip(clip["lpips_x0"], clip["lpips_x1"]))
    generator = np.random.default_rng(1)
    pairs.append(tuple(generator.integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)))  # odd size
    values = []
    for reference, generated in pairs:
        ours = image.ssim(reference, generated)
        assert abs(ours - _skimage_ssim(reference, generated)) < 1e-6
        values.append(ours)
    assert len(set(np.round(values, 3))) == len(values)  # the pairs really differ


def test_mask_ssim_is_ssim_of_masked_frames(clip):
    reference, generated, mask = clip["frames"][0], clip["frames"][6], clip["masks"][0]
    expected = _skimage_ssim(reference * mask[..., None], generated * mask[..., None])
    assert abs(image.mask_ssim(reference, generated, mask) - expected) < 1e-6
    # only the person counts: changing the background changes SSIM, not Mask-SSIM
    changed = generated.copy()
    changed[~mask] = 255 - changed[~mask]
    assert image.mask_ssim(reference, changed, mask) == pytest.approx(
        image.mask_ssim(reference, generated, mask), abs=1e-12)
    assert image.ssim(reference, changed) < image.ssim(reference, generated) - 0.1


def test_ssim_of_identical_frames_is_one(clip):
    assert image.ssim(clip["frames"][3], clip["frames"][3]) == pytest.approx(1.0, abs=1e-12)


def test_psnr_known_value_and_identical_frames():
    reference = np.full((16, 16, 3), 100, np.uint8)
    generated = reference.copy()
    assert image.psnr(reference, generated) == math.inf
    generated[...] = 110  # MSE 100
    assert image.psnr(reference, generated) == pytest.approx(10 * math.log10(255**2 / 100))


def test_mask_psnr_ignores_the_background(clip):
    reference, mask = clip["frames"][2], clip["masks"][2]
    generated = reference.copy()
    generated[~mask] = 0
    assert image.mask_psnr(reference, generated, mask) == math.inf
    assert math.isfinite(image.psnr(reference, generated))


def test_finite_mean_leaves_out_identical_frames_and_counts_them():
    mean, infinite = image.finite_mean(np.array([30.0, math.inf, 40.0, math.nan, math.inf]))
    assert mean == pytest.approx(35.0)
    assert infinite == 2
    assert image.finite_mean(np.array([math.inf])) == (None, 1)


def test_mismatched_frames_are_refused(clip):
    with pytest.raises(ValueError):
        image.ssim(clip["frames"][0], clip["frames"][0][:32])
    with pytest.raises(ValueError):
        image.apply_mask(clip["frames"][0], clip["masks"][0].astype(np.uint8))
