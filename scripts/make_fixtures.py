"""Cut the video test fixtures and the demo samples out of the shared synthetic data set.

The tests and the demo never read the shared data folder; this script (run by a developer, once)
copies the slices they need into the repository:

    python scripts/make_fixtures.py --data /work/shared/data            # both
    python scripts/make_fixtures.py --data /work/shared/data --only fixtures

Videos are re-encoded through `motionxfer.io.video` (read_frames -> VideoWriter, libx264, yuv420p),
so the exact frame range is kept whatever the source's keyframes. The data videos have no sound:
clips marked `audio` get a synthetic track (a sine sweep with a click on every second, AAC) muxed
in, so that the audio copy of the writer can be tested. Keypoint files hold the ground truth of
exactly the frames in the video: `kp2d` (T, 30, 2) float32 pixels, `visible` and `in_frame`
(T, 30) bool, `names` (30,), plus `fps`, `first_frame` and `clip` (where they come from).

x264 output is deterministic for a given x264 build and settings; another build may give other
bytes of the same frames.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from motionxfer.io.files import atomic_path
from motionxfer.io.video import VideoWriter, read_frames

REPOSITORY = Path(__file__).resolve().parents[1]
FPS = 30
AUDIO_SAMPLE_RATE = 48000


@dataclass(frozen=True)
class Cut:
    name: str  # output file stem
    clip: str  # clip folder relative to the data root
    first_frame: int
    frame_count: int
    audio: bool  # mux a synthetic audio track
    video: bool = True  # False: keypoints only
    crf: int = 18


# target0/train frames 400-519: the person walks toward and away from the camera (pelvis depth
# changes by 1.4 m, the largest change of the 4 s windows, every 10 frames, in the first minute).
# source0 frames 240-359: of the 4 s windows starting at whole seconds, the one with the most
# joint motion (sum of frame-to-frame joint moves).
# gallery id1 and id3: the shortest and the tallest of the six bodies (leg length 0.72 m, 0.92 m).
FIXTURES = [
    Cut("target_clip", "studio/target0/train", 400, 120, audio=True),
    Cut("source_clip", "studio/source0", 240, 120, audio=True),
    Cut("gt_target0_source0_clip", "studio/gt/target0_source0", 240, 120, audio=False),
    Cut("gallery_id1", "gallery/id1", 0, 228, audio=False, video=False),
    Cut("gallery_id3", "gallery/id3", 0, 228, audio=False, video=False),
]

# The demo trains on the first minute of target0/train and drives it with 10 s of source0 (the
# 10 s window starting at a whole second with the most motion), whose ground truth is the same
# frames of gt/target0_source0.
SAMPLES = [
    Cut("target", "studio/target0/train", 0, 1800, audio=False, crf=20),
    Cut("source", "studio/source0", 240, 300, audio=True, crf=20),
    Cut("ground_truth", "studio/gt/target0_source0", 240, 300, audio=False, crf=20),
    Cut("heldout", "studio/target0/heldout", 0, 150, audio=False, crf=20),
]


def synthetic_audio(path: Path, seconds: float, sample_rate: int = AUDIO_SAMPLE_RATE) -> None:
    """A mono AAC file: a 220-880 Hz sine sweep with a short click at every whole second."""
    samples = round(seconds * sample_rate)
    time = np.arange(samples) / sample_rate
    sweep_rate = (880.0 - 220.0) / max(seconds, 1e-6)
    signal = 0.2 * np.sin(2 * np.pi * (220.0 * time + 0.5 * sweep_rate * time**2))
    click_length = sample_rate // 100
    for begin in range(0, samples, sample_rate):
        click = signal[begin:begin + click_length]
        click += 0.6 * np.hanning(click_length)[: len(click)]
    signal = signal.astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        chunk = 1024
        for begin in range(0, samples, chunk):
            frame = av.AudioFrame.from_ndarray(signal[None, begin:begin + chunk], format="fltp",
                                               layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = begin
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def cut_video(data_root: Path, cut: Cut, destination: Path, scratch: Path) -> None:
    source = data_root / cut.clip / "video.mp4"
    start = cut.first_frame / FPS
    end = (cut.first_frame + cut.frame_count) / FPS
    audio_path = None
    if cut.audio:
        audio_path = scratch / f"{cut.name}.m4a"
        synthetic_audio(audio_path, cut.frame_count / FPS)
    frames = read_frames(source, start=start, end=end)
    first = next(frames)
    height, width = first.rgb.shape[:2]
    written = 0
    with VideoWriter(destination, FPS, width, height, crf=cut.crf, audio_from=audio_path,
                     audio_end=cut.frame_count / FPS if audio_path else None) as writer:
        writer.write(first.rgb)
        written = 1
        for frame in frames:
            writer.write(frame.rgb)
            written += 1
        if written != cut.frame_count:
            raise RuntimeError(f"{source}: expected {cut.frame_count} frames, got {written}")


def cut_keypoints(data_root: Path, cut: Cut, destination: Path) -> None:
    frames = slice(cut.first_frame, cut.first_frame + cut.frame_count)
    with np.load(data_root / cut.clip / "keypoints.npz") as keypoints:
        arrays = {
            "kp2d": keypoints["kp2d"][frames].astype(np.float32),  # (T, 30, 2)
            "visible": keypoints["visible"][frames].astype(bool),  # (T, 30)
            "in_frame": keypoints["in_frame"][frames].astype(bool),  # (T, 30)
            "names": keypoints["names"],  # (30,)
        }
    if len(arrays["kp2d"]) != cut.frame_count:
        raise RuntimeError(f"{cut.clip} has fewer than {cut.first_frame + cut.frame_count} frames")
    meta = json.loads((data_root / cut.clip / "meta.json").read_text())
    if float(meta["fps"]) != FPS:
        raise RuntimeError(f"{cut.clip} is {meta['fps']} fps, expected {FPS}")
    with atomic_path(destination) as temporary:
        np.savez_compressed(temporary, **arrays, fps=np.float32(FPS),
                            first_frame=np.int64(cut.first_frame), clip=np.str_(cut.clip))


def make(data_root: Path, cuts: list[Cut], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for cut in cuts:
            keypoints_name = f"{cut.name}_keypoints.npz" if cut.video else f"{cut.name}.npz"
            cut_keypoints(data_root, cut, folder / keypoints_name)
            if cut.video:
                cut_video(data_root, cut, folder / f"{cut.name}.mp4", Path(scratch))
            size = sum((folder / name).stat().st_size for name in
                       ([keypoints_name] + ([f"{cut.name}.mp4"] if cut.video else [])))
            print(f"{folder.name}/{cut.name}: {cut.clip} frames {cut.first_frame}-"
                  f"{cut.first_frame + cut.frame_count - 1}, {size / 1e3:.0f} kB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPOSITORY.parent / "shared" / "data",
                        help="the shared data folder (default: ../shared/data)")
    parser.add_argument("--only", choices=["fixtures", "samples"], help="make only one of the two")
    arguments = parser.parse_args()
    if arguments.only != "samples":
        make(arguments.data, FIXTURES, REPOSITORY / "tests" / "fixtures")
    if arguments.only != "fixtures":
        make(arguments.data, SAMPLES, REPOSITORY / "samples")


if __name__ == "__main__":
    main()
