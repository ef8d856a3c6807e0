"""Training speed of the presets: generator steps per second (and face refiner steps per second).

    python benchmarks/train_speed.py [--presets tiny 256] [--batch-size 1] [--steps 5]
                                     [--device cpu] [--perceptual/--no-perceptual] [--threads N]

Times `Trainer.generator_step` (both frames of the pair, spatial and temporal discriminators,
their updates) on square frames at each preset's size, after one warm-up step; the batch is
random stick figures and frames (speed does not depend on the content). With --perceptual the
VGG16 weights must be in the model cache (motionxfer models fetch vgg16). The peak memory is the
process's maximum resident size (CPU; on CUDA it does not count the GPU's memory).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from motionxfer.dataset import PairBatch
from motionxfer.losses import PerceptualLoss
from motionxfer.presets import load_preset
from motionxfer.train import Trainer, resolve_device


def random_batch(batch_size: int, size: int) -> PairBatch:
    tensors = [torch.rand(batch_size, 3, size, size) * 2 - 1 for _ in range(4)]
    return PairBatch(torch.arange(1, batch_size + 1).numpy(), *tensors)


def time_steps(step, count: int, synchronize) -> float:
    step()  # warm-up
    synchronize()
    started = time.perf_counter()
    for _ in range(count):
        step()
    synchronize()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "256"])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--perceptual", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    device = resolve_device(arguments.device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"batch {arguments.batch_size}, perceptual {arguments.perceptual}, "
          f"amp {arguments.amp and device.type == 'cuda'}")
    for name in arguments.presets:
        preset = load_preset(name)
        config = preset.train.__class__(**{
            **preset.train.to_dict(), "batch_size": arguments.batch_size,
            "face_batch_size": arguments.batch_size, "amp": arguments.amp,
            "device": str(device), "perceptual": arguments.perceptual,
        })
        perceptual = None
        if arguments.perceptual:
            from motionxfer.networks.vgg import VGG16Features

            perceptual = PerceptualLoss(VGG16Features.from_cache(), preset.losses.perceptual_layers)
        torch.manual_seed(0)
        trainer = Trainer(preset, config, device, perceptual, use_face_refiner=True)
        batch = random_batch(arguments.batch_size, preset.size)
        generator_rate = time_steps(
            lambda trainer=trainer, batch=batch: trainer.generator_step(batch), arguments.steps,
            synchronize)
        half = preset.size / 2
        boxes = torch.tensor([[half - half / 4, half / 8, half + half / 4, half / 8 + half / 2]]
                             * arguments.batch_size)
        face_rate = time_steps(
            lambda trainer=trainer, batch=batch, boxes=boxes: trainer.face_refiner_step(
                batch, boxes), arguments.steps, synchronize)
        parameters = sum(p.numel() for p in trainer.generator.parameters())
        print(f"preset {name:>5} ({preset.size}x{preset.size}, generator "
              f"{parameters / 1e6:.2f} M parameters): {generator_rate:.2f} generator steps/s, "
              f"{face_rate:.2f} face refiner steps/s; peak process memory so far "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.1f} GB")


if __name__ == "__main__":
    main()
