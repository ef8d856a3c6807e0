"""Copy a small slice of the shared test data into tests/fixtures/metrics_clip.npz.

    python scripts/make_metrics_fixture.py [--data /work/shared/data] [--start 300] [--frames 16]

The metric tests read only this copy, never the shared data. It holds, at 64x64:
  frames   (T, 64, 64, 3) uint8   frames of studio/target0/heldout, shrunk with INTER_AREA
  masks    (T, 64, 64) bool       the ground-truth person masks, shrunk (area > 0.5)
  kp2d     (T, 30, 2) float32     ground-truth joints in pixels of the 64x64 frames
  visible  (T, 30) bool
  names    (30,)                  joint names
  lpips_x0, lpips_x1 (P, 64, 64, 3) uint8: image pairs the LPIPS reference values are computed
           on (scripts/lpips_reference_values.py): neighbouring frames, distant frames, a blurred
           copy, a noisy copy and a colour-shifted copy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
SIZE = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--clip", default="studio/target0/heldout")
    parser.add_argument("--start", type=int, default=300)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures" / "metrics_clip.npz")
    args = parser.parse_args()
    clip = args.data / args.clip
    stop = args.start + args.frames
    frames = []
    with av.open(str(clip / "video.mp4")) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= stop:
                break
            if index >= args.start:
                rgb = frame.to_ndarray(format="rgb24")
                frames.append(cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA))
    frames_array = np.stack(frames)
    full_size = 256
    with np.load(clip / "masks.npz") as data:
        full_masks = data["mask"][args.start:stop].astype(np.float32)
    masks = np.stack([cv2.resize(m, (SIZE, SIZE), interpolation=cv2.INTER_AREA) > 0.5
                      for m in full_masks])
    with np.load(clip / "keypoints.npz") as data:
        kp2d = data["kp2d"][args.start:stop].astype(np.float32) * (SIZE / full_size)
        visible = data["visible"][args.start:stop]
        names = data["names"]

    generator = np.random.default_rng(4)
    x0 = [frames_array[0], frames_array[0], frames_array[5], frames_array[9], frames_array[12]]
    blurred = cv2.GaussianBlur(frames_array[5], (5, 5), 1.2)
    noisy = np.clip(frames_array[9].astype(np.int16)
                    + generator.integers(-25, 26, frames_array[9].shape), 0, 255).astype(np.uint8)
    shifted = np.clip(frames_array[12].astype(np.int16) + np.array([30, -10, 5]), 0, 255)
    x1 = [frames_array[1], frames_array[15], blurred, noisy, shifted.astype(np.uint8)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, frames=frames_array, masks=masks, kp2d=kp2d, visible=visible, names=names,
        lpips_x0=np.stack(x0), lpips_x1=np.stack(x1),
        source=np.array(f"{args.clip} frames {args.start}..{stop - 1}, shrunk to {SIZE}x{SIZE}"),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
