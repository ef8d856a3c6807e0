"""Training speed of the presets: iterations/s and images/s, in one process or several (torchrun).

    python benchmarks/train_speed.py [--presets tiny 256 512] [--batch-size 1] [--steps 5]
                                     [--device auto|cpu|cuda] [--perceptual/--no-perceptual]
                                     [--amp/--no-amp] [--threads N] [--nproc-per-node N]
                                     [--data-workers 2] [--max-step-seconds 30] [--data-only]

For each preset, on square frames at the preset's size, after one warm-up step of each kind:

- generator: iterations/s of `trainer.Trainer.generator_step` (both frames of the pair, the spatial and
  temporal discriminators, their updates) on a batch already in memory; images/s = iterations/s
  x batch size x processes, i.e. the frame pairs trained on per second;
- face refiner: iterations/s of `Trainer.face_refiner_step`;
- batch preparation: milliseconds to make one batch as training does (`train.batch_maker`: for
  each pair the stick figures of frames t-1 and t drawn from all 543 MediaPipe Holistic joints,
  body, hands and face mesh, and the two frames read from a uint8 frame array; on the CPU made
  into float32 tensors, for a GPU only stacked as uint8 and pinned, the conversion happening on
  the GPU). On a CPU-only machine the
  uint8 variant (without pinning) is timed too: the CPU work a GPU process would have;
- the loop: iterations/s of the generator steps fed by `BatchQueue` with `--data-workers` threads,
  as `train-target` runs them. Below the step's own rate, batch preparation is holding training
  back (on a CPU the threads also take cores from the step).

With --nproc-per-node N (N > 1) the script runs itself under torchrun: N processes, each on its own
device (cuda:LOCAL_RANK, or the CPU with gloo) training its own batch through
DistributedDataParallel, as `torchrun -m motionxfer train-target` does; rank 0 prints.
A preset whose warm-up step takes longer than --max-step-seconds has its steps reported as
skipped (the 512 preset takes over 70 s a step on one CPU core); --data-only times only the batch
preparation. With --perceptual the VGG16 weights must be in the
model cache (motionxfer models fetch vgg16). Peak memory: the process's maximum resident size, and
on CUDA the GPU memory torch allocated at most.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from motionxfer.conditioning import Conditioning
from motionxfer.io.frame_cache import FrameCache
from motionxfer.pose.sequence import PoseSequence
from motionxfer.pose.skeleton import MEDIAPIPE_HOLISTIC
from motionxfer.presets import load_preset
from motionxfer.training.batches import (
    GENERATOR_STAGE,
    BatchQueue,
    batch_indices,
    batch_maker,
    on_device,
)
from motionxfer.training.dataset import (
    PairBatch,
    PairImages,
    TrainingSamples,
    conditioning_drawer,
)
from motionxfer.training.distributed import (
    Processes,
    any_across,
    barrier,
    process_device,
    process_group,
    processes_from_environment,
)
from motionxfer.training.losses import PerceptualLoss
from motionxfer.training.trainer import Trainer

BODY = {  # fractions of the frame: a standing person
    "nose": (0.5, 0.15), "left_eye": (0.52, 0.13), "right_eye": (0.48, 0.13),
    "left_ear": (0.54, 0.14), "right_ear": (0.46, 0.14), "mouth_left": (0.51, 0.17),
    "mouth_right": (0.49, 0.17), "left_shoulder": (0.58, 0.28), "right_shoulder": (0.42, 0.28),
    "left_elbow": (0.62, 0.42), "right_elbow": (0.38, 0.42), "left_wrist": (0.64, 0.55),
    "right_wrist": (0.36, 0.55), "left_hip": (0.55, 0.55), "right_hip": (0.45, 0.55),
    "left_knee": (0.56, 0.72), "right_knee": (0.44, 0.72), "left_ankle": (0.56, 0.9),
    "right_ankle": (0.44, 0.9), "left_heel": (0.55, 0.92), "right_heel": (0.45, 0.92),
    "left_foot_index": (0.58, 0.93), "right_foot_index": (0.42, 0.93),
}


def holistic_poses(frames: int, size: int) -> PoseSequence:
    """Every one of the 543 joints seen, moving a little: body, both hands and the face mesh (the
    most a stick figure draws, as after `extract-poses` with hands and face)."""
    skeleton = MEDIAPIPE_HOLISTIC
    keypoints = np.zeros((frames, skeleton.num_joints, 3), np.float32)
    keypoints[..., 2] = 1.0
    generator = np.random.default_rng(0)
    names = skeleton.joint_names
    for joint, name in enumerate(names[:33]):  # the body; joints not listed sit at the nose
        x, y = BODY.get(name, BODY["nose"])
        keypoints[:, joint, :2] = (x * size, y * size)
    for group, wrist in (("left_hand", "left_wrist"), ("right_hand", "right_wrist")):
        part = skeleton.group(group)
        count = part.stop - part.start
        angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
        centre = np.array(BODY[wrist]) * size
        keypoints[:, part, 0] = centre[0] + 0.03 * size * np.cos(angles)
        keypoints[:, part, 1] = centre[1] + 0.03 * size * np.sin(angles)
    face = skeleton.group("face")
    count = face.stop - face.start
    angles = generator.uniform(0, 2 * np.pi, count)
    radii = np.sqrt(generator.uniform(0, 1, count))
    keypoints[:, face, 0] = BODY["nose"][0] * size + 0.035 * size * radii * np.cos(angles)
    keypoints[:, face, 1] = BODY["nose"][1] * size + 0.045 * size * radii * np.sin(angles)
    sway = 0.02 * size * np.sin(np.arange(frames) / 10)
    keypoints[:, :, 0] += sway[:, None]
    return PoseSequence(keypoints, skeleton, 30.0, (size, size), np.ones(frames, bool),
                        np.arange(frames) / 30.0)


def training_samples(size: int, frames: int = 64) -> TrainingSamples:
    """Random frames (as the memory-mapped cache holds them) and moving holistic poses."""
    pixels = np.random.default_rng(1).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    poses = holistic_poses(frames, size)
    return TrainingSamples(FrameCache(Path("memory"), pixels), poses, conditioning_drawer(Conditioning(), poses))


def random_batch(batch_size: int, size: int) -> PairBatch:
    tensors = [torch.rand(batch_size, 3, size, size) * 2 - 1 for _ in range(4)]
    return PairBatch(torch.arange(1, batch_size + 1).numpy(), *tensors)


def rate(step: Callable[[], object], count: int, synchronize: Callable[[], None]) -> float:
    """Calls per second of `step` over `count` calls (after the warm-up, done by the caller)."""
    synchronize()
    started = time.perf_counter()
    for _ in range(count):
        step()
    synchronize()
    return count / (time.perf_counter() - started)


def timed_once(step: Callable[[], object], synchronize: Callable[[], None]) -> float:
    synchronize()
    started = time.perf_counter()
    step()
    synchronize()
    return time.perf_counter() - started


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} ({device})"
    model = platform.processor() or "CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores"


def benchmark_preset(name: str, arguments: argparse.Namespace, device: torch.device,
                     processes: Processes) -> str:
    preset = load_preset(name)
    size, batch_size = preset.size, arguments.batch_size
    config = replace(preset.train, batch_size=batch_size, face_batch_size=batch_size,
                     amp=arguments.amp, device=str(device), perceptual=arguments.perceptual,
                     num_workers=arguments.data_workers)
    cuda = device.type == "cuda"
    samples = training_samples(size)
    candidates = np.arange(1, len(samples.frames))
    make = batch_maker(samples, candidates, batch_size, 0, GENERATOR_STAGE, processes, device)

    def milliseconds(function: Callable[[int], object]) -> float:
        function(0)  # warm-up: the drawing plan of the skeleton is built once
        count = max(10, arguments.steps)
        started = time.perf_counter()
        for step in range(count):
            function(step)
        return (time.perf_counter() - started) / count * 1000

    heading = f"preset {name:>5} ({size}x{size}): batch preparation {milliseconds(make):.1f} ms"
    if cuda:
        heading += " (uint8, pinned)"
    else:  # what a process training on a GPU does on this CPU: uint8 images, no floats

        def uint8_images(step: int) -> PairImages:
            return samples.pair_images(
                batch_indices(candidates, batch_size, 0, GENERATOR_STAGE, step))

        heading += f" (float32); as uint8 for a GPU {milliseconds(uint8_images):.1f} ms"
    if arguments.data_only:
        return heading

    def synchronize() -> None:
        if cuda:
            torch.cuda.synchronize(device)
        barrier(processes)

    perceptual = None
    if arguments.perceptual:
        from motionxfer.networks.vgg import VGG16Features

        perceptual = PerceptualLoss(VGG16Features.from_cache(), preset.losses.perceptual_layers)
    torch.manual_seed(0)
    trainer = Trainer(preset, config, device, perceptual, use_face_refiner=True,
                      distributed=processes.distributed)
    torch.manual_seed(processes.rank)  # each process its own (random) batch
    batch = random_batch(batch_size, size)
    if cuda:
        batch = batch.pin_memory()
    warm_up = timed_once(lambda: trainer.generator_step(batch), synchronize)
    (too_slow,) = any_across([warm_up > arguments.max_step_seconds], processes, device)
    if too_slow:
        return (f"{heading}; steps skipped: the warm-up generator step took {warm_up:.1f} s "
                f"(over --max-step-seconds {arguments.max_step_seconds:g})")
    generator_rate = rate(lambda: trainer.generator_step(batch), arguments.steps, synchronize)

    half = size / 2
    boxes = torch.tensor([[half - half / 4, half / 8, half + half / 4, half / 8 + half / 2]]
                         * batch_size)
    timed_once(lambda: trainer.face_refiner_step(batch, boxes), synchronize)
    face_rate = rate(lambda: trainer.face_refiner_step(batch, boxes), arguments.steps,
                     synchronize)

    queue = BatchQueue(make, 0, arguments.steps + 1, arguments.data_workers)
    try:
        trainer.generator_step(on_device(queue.get(), device))
        loop_rate = rate(lambda: trainer.generator_step(on_device(queue.get(), device)),
                         arguments.steps, synchronize)
    finally:
        queue.close()

    parameters = sum(p.numel() for p in trainer.generator.parameters())
    images = generator_rate * batch_size * processes.world_size
    memory = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.1f} GB resident"
    if cuda:
        memory += f", {torch.cuda.max_memory_allocated(device) / 1024**3:.1f} GB on the GPU"
    return (
        f"{heading}; generator ({parameters / 1e6:.2f} M parameters) {generator_rate:.2f} it/s "
        f"= {images:.2f} images/s ({1000 / generator_rate:.0f} ms a step); face refiner "
        f"{face_rate:.2f} it/s; loop with {arguments.data_workers} data workers "
        f"{loop_rate:.2f} it/s; peak {memory} (process 0)"
    )


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "256"])
    parser.add_argument("--batch-size", type=int, default=1, help="per process")
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each kind")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--perceptual", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads per process (0: torch's default)")
    parser.add_argument("--nproc-per-node", type=int, default=1,
                        help="processes (run under torchrun when more than 1)")
    parser.add_argument("--data-workers", type=int, default=2,
                        help="threads preparing batches in the loop (num_workers)")
    parser.add_argument("--max-step-seconds", type=float, default=30.0,
                        help="skip a preset's steps when its warm-up step takes longer")
    parser.add_argument("--data-only", action="store_true",
                        help="only time the batch preparation (no networks)")
    return parser.parse_args()


def launch_under_torchrun(arguments: argparse.Namespace) -> int:
    environment = dict(os.environ)
    if arguments.threads:
        environment["OMP_NUM_THREADS"] = str(arguments.threads)
    return subprocess.call(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
         str(arguments.nproc_per_node), str(Path(__file__).resolve()), *sys.argv[1:]],
        env=environment,
    )


def main() -> None:
    arguments = parse_arguments()
    processes = processes_from_environment()
    if arguments.nproc_per_node > 1 and not processes.distributed:
        sys.exit(launch_under_torchrun(arguments))
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    device = process_device(arguments.device, processes)
    with process_group(processes, device):
        if processes.is_main:
            load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
            backend = (f", DistributedDataParallel ({'nccl' if device.type == 'cuda' else 'gloo'})"
                       if processes.distributed else "")
            print(f"device {device_name(device)}; {processes.world_size} process(es){backend}; "
                  f"torch {torch.__version__}, {torch.get_num_threads()} threads per process; "
                  f"batch {arguments.batch_size} per process; perceptual {arguments.perceptual}; "
                  f"amp {arguments.amp and device.type == 'cuda'}; load average {load}",
                  flush=True)
        for name in arguments.presets:
            line = benchmark_preset(name, arguments, device, processes)
            if processes.is_main:
                print(line, flush=True)


if __name__ == "__main__":
    main()
