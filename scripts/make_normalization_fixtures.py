"""Copy small slices of the shared ground-truth keypoints into tests/fixtures/norm_*.npz.

The tests of pose normalization need real body motion with exact joints, but must never read the
shared data folder, so this script (run once by a developer) copies what they need: the 2D joints,
their visibility flags and names, as float16 (0.01 px steps at 256 px, far below what the tests
resolve).

    python scripts/make_normalization_fixtures.py --data /work/shared/data

Fixtures written (each a few tens of kB):
  norm_gallery_id0.npz, norm_gallery_id3.npz  two bodies of different heights, same 228-frame motion
  norm_studio_target0.npz  every 6th frame of target0/train (the target's training video)
  norm_studio_source0.npz  source0 (600 frames): another body dancing in another room
  norm_studio_target0_source0.npz  ground truth: target0 performing source0's motion
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from motionxfer.io.files import atomic_path

FIXTURES = {
    # name: (clip folder relative to the data root, frame step)
    "norm_gallery_id0": ("gallery/id0", 1),
    "norm_gallery_id3": ("gallery/id3", 1),
    "norm_studio_target0": ("studio/target0/train", 6),
    "norm_studio_source0": ("studio/source0", 1),
    "norm_studio_target0_source0": ("studio/gt/target0_source0", 1),
}


def copy_fixture(data_root: Path, clip: str, step: int, destination: Path) -> None:
    with np.load(data_root / clip / "keypoints.npz") as keypoints:
        kp2d = keypoints["kp2d"][::step].astype(np.float16)  # (T, 30, 2)
        visible = keypoints["visible"][::step].astype(bool)  # (T, 30)
        names = keypoints["names"].astype(str)  # (30,)
    meta = json.loads((data_root / clip / "meta.json").read_text())
    with atomic_path(destination, ".npz") as temporary:
        with open(temporary, "wb") as handle:
            np.savez_compressed(
                handle,
                kp2d=kp2d,
                visible=visible,
                names=names,
                fps=np.float64(meta["fps"] / step),
                image_size=np.array([meta["width"], meta["height"]], np.int32),
                leg_length_m=np.float64(meta["leg_length_m"]),
                source=np.array(f"{clip} every {step} frame(s)"),
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parents[1] / "tests" / "fixtures")
    arguments = parser.parse_args()
    arguments.out.mkdir(parents=True, exist_ok=True)
    for name, (clip, step) in FIXTURES.items():
        destination = arguments.out / f"{name}.npz"
        copy_fixture(arguments.data, clip, step, destination)
        print(f"{destination}  {destination.stat().st_size / 1024:.0f} kB  <- {clip} (step {step})")


if __name__ == "__main__":
    main()
