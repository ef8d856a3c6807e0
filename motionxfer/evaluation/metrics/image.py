"""Per-frame image fidelity: SSIM, PSNR and their person-only (masked) forms.

All functions take (H, W, 3) uint8 RGB frames (reference first, generated second) and return
Python floats. Definitions (docs/metrics.md has the sources):

SSIM (Wang et al. 2004), as scikit-image computes it with the settings the pose-transfer papers
use (`structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)`): for each colour channel, local means, variances
and covariance under a Gaussian window (sigma 1.5, truncated at 3.5 sigma: 11x11, borders
reflected), the SSIM map ((2 mu_x mu_y + C1)(2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2
+ C2)) with C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, averaged over the frame without a 5-pixel
border; then the mean over the three channels.

PSNR = 10 log10(255^2 / MSE), MSE over all pixels and channels; identical frames give +inf.

Mask-SSIM / Mask-PSNR (Ma et al. 2017, PG2; computed the same way by Siarohin et al. 2018 and
their successors): both frames are multiplied by the person mask (background set to black), then
SSIM / PSNR of the whole frames as above. The background then counts as a perfect match, so the
values rise when the person is small; they compare methods on the same frames, not frames with
each other.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 255.0
SSIM_WINDOW = 2 * int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5) + 1  # 11
SSIM_BORDER = (SSIM_WINDOW - 1) // 2  # 5


def _check_pair(reference: np.ndarray, generated: np.ndarray) -> None:
    if reference.shape != generated.shape or reference.ndim != 3 or reference.shape[2] != 3:
        raise ValueError(f"expected two (H, W, 3) frames of one size, got {reference.shape} "
                         f"and {generated.shape}")


def ssim_map(reference: np.ndarray, generated: np.ndarray) -> np.ndarray:  # (H, W, 3) float64
    """The local SSIM of every pixel and channel (before the border is cut and averaged)."""
    _check_pair(reference, generated)
    x = reference.astype(np.float64)
    y = generated.astype(np.float64)

    def local_mean(image: np.ndarray) -> np.ndarray:
        return gaussian_filter(image, sigma=(SSIM_SIGMA, SSIM_SIGMA, 0.0),
                               truncate=SSIM_TRUNCATE, mode="reflect")

    mean_x, mean_y = local_mean(x), local_mean(y)
    variance_x = local_mean(x * x) - mean_x * mean_x
    variance_y = local_mean(y * y) - mean_y * mean_y
    covariance = local_mean(x * y) - mean_x * mean_y
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    numerator = (2 * mean_x * mean_y + c1) * (2 * covariance + c2)
    denominator = (mean_x**2 + mean_y**2 + c1) * (variance_x + variance_y + c2)
    return numerator / denominator


def ssim(reference: np.ndarray, generated: np.ndarray) -> float:
    """SSIM of two RGB frames, in [-1, 1]; 1 for identical frames."""
    local = ssim_map(reference, generated)
    height, width = local.shape[:2]
    if height <= 2 * SSIM_BORDER or width <= 2 * SSIM_BORDER:
        raise ValueError(f"SSIM needs frames larger than {SSIM_WINDOW}x{SSIM_WINDOW}")
    inner = local[SSIM_BORDER:height - SSIM_BORDER, SSIM_BORDER:width - SSIM_BORDER]
    return float(np.mean([inner[..., channel].mean() for channel in range(3)]))


def mean_squared_error(reference: np.ndarray, generated: np.ndarray) -> float:
    _check_pair(reference, generated)
    difference = reference.astype(np.float64) - generated.astype(np.float64)
    return float(np.mean(difference * difference))


def psnr(reference: np.ndarray, generated: np.ndarray) -> float:
    """PSNR in dB; +inf for identical frames."""
    error = mean_squared_error(reference, generated)
    if error == 0.0:
        return math.inf
    return float(10.0 * math.log10(DATA_RANGE**2 / error))


def apply_mask(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:  # (H, W, 3) uint8
    """The frame with everything outside `mask` ((H, W) bool) set to black."""
    if mask.shape != frame.shape[:2] or mask.dtype != np.bool_:
        raise ValueError(f"expected an (H, W) bool mask for a {frame.shape} frame, got "
                         f"{mask.shape} {mask.dtype}")
    return frame * mask[..., None].astype(frame.dtype)


def mask_ssim(reference: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> float:
    return ssim(apply_mask(reference, mask), apply_mask(generated, mask))


def mask_psnr(reference: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> float:
    return psnr(apply_mask(reference, mask), apply_mask(generated, mask))


def finite_mean(values: np.ndarray) -> tuple[float | None, int]:
    """The mean of the finite values (None when there are none) and the count of +inf values.

    PSNR is +inf for identical frames; averaging it would make the whole mean infinite, so the
    summaries report the mean over the other frames and say how many were identical.
    NaN (metric undefined for that frame) is left out and not counted.
    """
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    infinite = int(np.count_nonzero(np.isposinf(values)))
    return (float(finite.mean()) if finite.size else None), infinite


def worst_fraction_mean(values: np.ndarray, fraction: float = 0.1,
                        higher_is_better: bool = False) -> float | None:
    """The mean of the worst `fraction` of the finite values (at least one value; the largest
    when lower is better), None when none is finite. With 0.1: the worst decile, which shows the
    frames a mean over all of them hides (replay aims at exactly those)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    values = np.asarray(values, np.float64)
    finite = np.sort(values[np.isfinite(values)])  # ascending
    if finite.size == 0:
        return None
    count = max(1, math.ceil(fraction * finite.size - 1e-9))
    worst = finite[:count] if higher_is_better else finite[-count:]
    return float(worst.mean())
