"""Copy a 2-second slice of the shared test data into tests/fixtures/ for the extraction tests.

    python scripts/make_extract_fixture.py [--data /work/shared/data] [--start 1200] [--frames 60]

Writes tests/fixtures/extract_clip.mp4 (H.264, 256x256, 30 fps) and
tests/fixtures/extract_clip_keypoints.npz (`kp2d` (T, 30, 2), `visible` (T, 30), `in_frame`
(T, 30), `names` (30,), `first_frame`, `source`). Tests read only these copies, never the shared
data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--clip", default="studio/target0/train")
    parser.add_argument("--start", type=int, default=600, help="first frame copied")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "fixtures")
    args = parser.parse_args()

    clip = args.data / args.clip
    stop = args.start + args.frames
    frames = []
    with av.open(str(clip / "video.mp4")) as container:
        stream = container.streams.video[0]
        fps = stream.average_rate
        for index, frame in enumerate(container.decode(stream)):
            if index >= stop:
                break
            if index >= args.start:
                frames.append(frame.to_ndarray(format="rgb24"))
    if len(frames) != args.frames:
        raise SystemExit(f"{clip} has only {args.start + len(frames)} frames")

    args.out.mkdir(parents=True, exist_ok=True)
    video_path = args.out / "extract_clip.mp4"
    with av.open(str(video_path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "20", "preset": "medium"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)

    with np.load(clip / "keypoints.npz") as data:
        np.savez_compressed(
            args.out / "extract_clip_keypoints.npz",
            kp2d=data["kp2d"][args.start:stop].astype(np.float32),
            visible=data["visible"][args.start:stop],
            in_frame=data["in_frame"][args.start:stop],
            names=data["names"],
            first_frame=np.int32(args.start),
            source=np.array(args.clip),
        )
    print(video_path, video_path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
