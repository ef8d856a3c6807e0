"""Copy the ground-truth parsing of `tests/fixtures/target_clip.mp4`'s frames into tests/fixtures/.

    python scripts/make_parsing_fixture.py [--data /work/shared/data]

`target_clip.mp4` is frames 400-519 of `studio/target0/train` (see tests/fixtures/README.md).
Writes tests/fixtures/target_clip_parsing.npz: `parsing` (120, 256, 256) uint8 in REMOT's six
classes (0 background, 1 head, 2 top, 3 bottom, 4 shoes, 5 skin), `mask` (120, 256, 256) bool,
`first_frame`, `clip`. Tests read only this copy, never the shared data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures")
    args = parser.parse_args()
    with np.load(args.out / "target_clip_keypoints.npz") as keypoints:
        first, clip = int(keypoints["first_frame"]), str(keypoints["clip"])
        frames = keypoints["kp2d"].shape[0]
    with np.load(args.data / clip / "masks.npz") as data:
        parsing = data["parsing"][first:first + frames]
        mask = data["mask"][first:first + frames]
    if len(parsing) != frames:
        raise SystemExit(f"{clip} has fewer than {first + frames} parsing maps")
    np.savez_compressed(args.out / "target_clip_parsing.npz", parsing=parsing.astype(np.uint8),
                        mask=mask.astype(bool), first_frame=np.array(first), clip=np.array(clip))


if __name__ == "__main__":
    main()
