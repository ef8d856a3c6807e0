"""Transfer speed, stage by stage and end to end (`motionxfer bench`, benchmarks/transfer_speed.py).

Stages, each timed alone on the same frames (frames/s = frames / wall seconds):

    decode      PyAV decoding of the source video
    poses       MediaPipe pose extraction (one process, then `workers` processes)
    normalize   global pose normalization of the whole sequence (then per frame)
    render      stick figures at the working size
    generate    the generator, one video (batch 1), and `video_batch` videos at once
    refine      the face refiner (crop, network, paste) and the conversion to uint8
    encode      H.264 encoding (libx264, crf 18)

End to end: `streaming.generate_videos` (render, generate, refine and encode overlapped) on the
cached poses, and the whole job from the video file (poses extracted in `workers` processes,
normalization, then the overlapped part).

Without a trained model the benchmark builds one with random weights from a preset
(`random_checkpoint`): speed does not depend on the weights' values. Timings go to the caller;
nothing here asserts a speed.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from motionxfer.checkpoint import new_payload, save_checkpoint
from motionxfer.networks.face_refiner import FaceRefiner
from motionxfer.networks.generator import Generator
from motionxfer.presets import Preset, load_preset, preset_configs


def random_checkpoint(path: str | os.PathLike[str], preset: str | Preset,
                      working_size: tuple[int, int] | None = None,
                      project_id: str = "0" * 64, seed: int = 0,
                      previous_frame_gain: float = 1.0) -> Path:
    """A checkpoint with random weights for `preset` (generator and face refiner), for speed
    measurements and tests. The face refiner's last layer, zero at initialisation (an untrained
    refiner changes nothing), gets small random weights so that refining changes pixels.

    `previous_frame_gain` scales the generator's first-layer weights on the previous frame. At
    full scale a random generator's recurrence is chaotic: a difference of 1e-6 in one frame
    (another summation order) grows into another picture within about ten frames (measured on
    the tiny preset: 77 dB apart at the first frame, 15 dB at the twelfth; 0.3 still diverges,
    0.1 stays above 77 dB for 60 frames). Tests that compare two ways of running one model use
    0.1, as a trained generator, driven by the pose, does not amplify such differences."""
    preset = load_preset(preset) if isinstance(preset, str) else preset
    if working_size is None:
        working_size = (preset.size, preset.size)
    torch.manual_seed(seed)
    generator = Generator(preset.generator)
    config = preset.generator
    with torch.no_grad():
        for layer in generator.modules():  # the layers that read the generator's input
            if isinstance(layer, torch.nn.Conv2d) and layer.in_channels == config.input_channels:
                layer.weight[:, 2 * config.pose_channels:] *= previous_frame_gain
    refiner = FaceRefiner(preset.face_refiner)
    last = refiner.network.output[1]
    torch.nn.init.normal_(last.weight, std=0.02)
    torch.nn.init.normal_(last.bias, std=0.02)
    configs = preset_configs(preset)
    payload = new_payload(
        preset=preset.name, project_id=project_id, working_size=list(working_size),
        generator_step=1, face_refiner_step=1, configs=configs,
        models={"generator": generator.state_dict(), "face_refiner": refiner.state_dict()},
        note="random weights (motionxfer.bench.random_checkpoint)",
    )
    save_checkpoint(path, payload)
    return Path(path)
