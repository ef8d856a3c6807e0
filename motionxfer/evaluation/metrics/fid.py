"""FID: the Frechet distance between Inception pool3 feature distributions (Heusel et al. 2017).

    FID = ||mu_r - mu_g||^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))

mu, S: mean and covariance (normalised by N - 1) of the 2048-d pool3 features of the reference
and of the generated frames (networks/inception_fid.py). The matrix square root is
scipy.linalg.sqrtm; as in the reference implementations, a tiny multiple of the identity is
added to both covariances when the product is singular enough for sqrtm to fail, and an imaginary
part left by rounding is dropped (an error if it is not tiny).

With fewer frames than feature dimensions the trace term has an exact low-rank form, which
`fid_from_features` uses (it is faster, ~0.1 s instead of ~10 s, and does not suffer from sqrtm's
trouble with singular matrices): with S_r = A A^T, S_g = B B^T (A = centred features^T /
sqrt(N - 1)), the non-zero eigenvalues of S_r S_g are the squared singular values of A^T B, so
Tr((S_r S_g)^(1/2)) is the sum of the singular values of A^T B.

FID is a statistic of two *sets*: with N frames the covariance has rank at most N - 1, so below
about 2048 frames (the feature dimension) the estimate is strongly biased upwards (Chong & Forsyth
2020), and consecutive video frames are far from independent samples. Compare FIDs only between
runs on the same frames.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import linalg

RECOMMENDED_MIN_FRAMES = 2048
SQRTM_OFFSET = 1e-6
IMAGINARY_TOLERANCE = 1e-3


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) of features (N, D), N >= 2."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need at least two feature vectors (N, D), got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mean_a: np.ndarray, covariance_a: np.ndarray,
                     mean_b: np.ndarray, covariance_b: np.ndarray) -> float:
    """The Frechet distance between two Gaussians N(mean_a, cov_a) and N(mean_b, cov_b)."""
    difference = mean_a - mean_b
    with warnings.catch_warnings():
        # singular products are expected with few frames; the check below handles them
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(covariance_a @ covariance_b)
    if not np.all(np.isfinite(root)):
        offset = np.eye(covariance_a.shape[0]) * SQRTM_OFFSET
        root = linalg.sqrtm((covariance_a + offset) @ (covariance_b + offset))
    if np.iscomplexobj(root):
        largest = np.max(np.abs(np.diagonal(root).imag))
        if not np.allclose(np.diagonal(root).imag, 0, atol=IMAGINARY_TOLERANCE):
            raise ValueError(f"the covariance square root has an imaginary part of {largest}")
        root = root.real
    value = (difference @ difference + np.trace(covariance_a) + np.trace(covariance_b)
             - 2.0 * np.trace(root))
    return float(value)


def fid_from_features(reference_features: np.ndarray, generated_features: np.ndarray) -> float:
    """FID of two feature sets (N, D) and (M, D); the exact low-rank form when N, M <= D."""
    reference_features = np.asarray(reference_features, np.float64)
    generated_features = np.asarray(generated_features, np.float64)
    dimension = reference_features.shape[1]
    if max(len(reference_features), len(generated_features)) > dimension:
        return frechet_distance(*feature_statistics(reference_features),
                                *feature_statistics(generated_features))
    mean_a, covariance_a = feature_statistics(reference_features)
    mean_b, covariance_b = feature_statistics(generated_features)
    factor_a = (reference_features - mean_a) / np.sqrt(len(reference_features) - 1)  # (N, D)
    factor_b = (generated_features - mean_b) / np.sqrt(len(generated_features) - 1)  # (M, D)
    trace_root = np.linalg.svd(factor_a @ factor_b.T, compute_uv=False).sum()
    difference = mean_a - mean_b
    value = (difference @ difference + np.trace(covariance_a) + np.trace(covariance_b)
             - 2.0 * trace_root)
    return float(value)
