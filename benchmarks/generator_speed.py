"""Generator forward speed per execution mode, against the floor its FLOPs set.

    python benchmarks/generator_speed.py --device cuda --sizes 256 512 --batches 1 8 32 \
        --modes fp32 bf16 fp16 compile cuda_graphs

For each preset size and batch: frames/s of the personal model's generator forward pass (random
weights, the preset of that size, square frames, three inputs as transfer feeds them; today's
default architecture, compositing over a plate, unless `--architecture` says another
frame-by-frame one), in

    fp32         eager float32
    bf16, fp16   eager under torch.autocast (fp16: CUDA only)
    compile      torch.compile(mode="max-autotune-no-cudagraphs") of the network, under
                 bf16 autocast on CUDA (the fast path), fp32 on the CPU
    cuda_graphs  the eager bf16 forward recorded once as a CUDA graph and replayed
    channels_last added to each CUDA mode (memory format of inputs and weights)

with the largest difference of any output pixel against fp32 (in [-1, 1] units) and the floor:
the forward's FLOPs counted by `torch.utils.flop_counter.FlopCounterMode`, divided by the matrix
rate measured here (a large bf16 matmul on CUDA, fp32 on the CPU), as frames/s; the ratio
measured / floor says how far from the hardware's limit each mode runs. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from motionxfer.networks.layout_generator import LAYOUT_CLASSES
from motionxfer.networks.registry import (
    ARCHITECTURES,
    ATTENTIVE_TEXTURE_ARCHITECTURE,
    COMPOSITING_ARCHITECTURE,
    REGION_ARCHITECTURE,
    SEQUENCE_ARCHITECTURES,
    TEXTURE_ARCHITECTURE,
    build_generator,
)
from motionxfer.networks.texture_generator import TEXTURE_CHANNELS
from motionxfer.presets import load_preset

PRESET_OF_SIZE = {128: "tiny", 256: "256", 512: "512", 1024: "1024"}
# input channels beyond the preset's stick figure: the texture's, and the layout's for regions
EXTRA_CHANNELS = {TEXTURE_ARCHITECTURE: TEXTURE_CHANNELS,
                  ATTENTIVE_TEXTURE_ARCHITECTURE: TEXTURE_CHANNELS,
                  REGION_ARCHITECTURE: TEXTURE_CHANNELS + LAYOUT_CLASSES}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device, seconds: float = 2.0) -> float:
    """Calls per second, after two warm-up calls, over about `seconds`."""
    for _ in range(2):
        run()
    synchronize(device)
    calls, started = 0, time.perf_counter()
    while True:
        run()
        calls += 1
        synchronize(device)
        elapsed = time.perf_counter() - started
        if elapsed > seconds and calls >= 3:
            return calls / elapsed


def matrix_rate(device: torch.device) -> float:
    """Measured FLOP/s of a large matmul (bf16 on CUDA, fp32 on the CPU)."""
    size = 8192 if device.type == "cuda" else 1024
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    return 2 * size**3 * timed(lambda: a @ b, device, 1.0)


def forward_flops(generator: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        generator(*inputs)
    return int(counter.get_total_flops())


def mode_runner(mode: str, generator: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
                device: torch.device) -> Callable[[], torch.Tensor]:
    cuda = device.type == "cuda"
    autocast: Callable[[], contextlib.AbstractContextManager[object]]
    if mode in ("bf16", "cuda_graphs") or (mode == "compile" and cuda):
        def autocast():
            return torch.autocast(device.type, dtype=torch.bfloat16)
    elif mode == "fp16":
        def autocast():
            return torch.autocast(device.type, dtype=torch.float16)
    else:
        autocast = contextlib.nullcontext
    network = generator
    if mode == "compile":
        network = torch.compile(generator, mode="max-autotune-no-cudagraphs" if cuda else None)

    def run() -> torch.Tensor:
        with torch.no_grad(), autocast():
            return network(*inputs)

    if mode != "cuda_graphs":
        return run
    static = [tensor.clone() for tensor in inputs]
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side), torch.no_grad(), autocast():
        for _ in range(3):
            generator(*static)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad(), autocast():
        output = generator(*static)

    def replay() -> torch.Tensor:
        for buffer, tensor in zip(static, inputs, strict=True):
            buffer.copy_(tensor)
        graph.replay()
        return output

    return replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--modes", nargs="+", default=["fp32", "bf16", "fp16", "compile",
                                                       "cuda_graphs"])
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per cell")
    parser.add_argument("--architecture", default=COMPOSITING_ARCHITECTURE,
                        choices=sorted(set(ARCHITECTURES) - SEQUENCE_ARCHITECTURES),
                        help="the generator to time (default: today's, compositing over a plate)")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} threads")
    rate = matrix_rate(device)
    print(f"python benchmarks/generator_speed.py {' '.join(sys.argv[1:])}")
    print(f"device: {name}; torch {torch.__version__}; {args.architecture}; measured matrix rate "
          f"{rate / 1e12:.1f} TFLOP/s; load {os.getloadavg()[0]:.1f}\n")
    print("| size | batch | mode | frames/s | max diff vs fp32 | GFLOP/frame | floor frames/s "
          "| measured / floor |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        preset = load_preset(PRESET_OF_SIZE.get(size, "256"))
        torch.manual_seed(0)
        config = dataclasses.replace(preset.generator, pose_channels=preset.generator.pose_channels
                                     + EXTRA_CHANNELS.get(args.architecture, 0))
        generator = build_generator(config, args.architecture)
        if hasattr(generator, "set_plate"):  # a background plate, as a target's
            generator.set_plate(torch.rand(3, size, size) * 2 - 1)
        generator = generator.to(device).eval()
        for batch in args.batches:
            shape = (batch, config.pose_channels, size, size)
            inputs = (torch.rand(shape, device=device) * 2 - 1,
                      torch.rand(shape, device=device) * 2 - 1,
                      torch.rand((batch, 3, size, size), device=device) * 2 - 1)
            flops = forward_flops(generator, inputs) / batch
            with torch.no_grad():
                reference = generator(*inputs).float()
            for mode in args.modes:
                if mode in ("fp16", "cuda_graphs") and device.type != "cuda":
                    continue
                network, tensors = generator, inputs
                if args.channels_last and device.type == "cuda":
                    network = generator.to(memory_format=torch.channels_last)
                    tensors = tuple(t.contiguous(memory_format=torch.channels_last)
                                    for t in inputs)
                try:
                    run = mode_runner(mode, network, tensors, device)
                    difference = float((run().float() - reference).abs().max())
                    speed = batch * timed(run, device, args.seconds)
                except (RuntimeError, torch.OutOfMemoryError) as error:
                    print(f"| {size} | {batch} | {mode} | failed: {str(error).splitlines()[0]} "
                          "| | | | |")
                    continue
                floor = rate / flops
                print(f"| {size} | {batch} | {mode} | {speed:.1f} | {difference:.2e} | "
                      f"{flops / 1e9:.1f} | {floor:.0f} | {speed / floor:.2f} |", flush=True)
            generator = generator.to(memory_format=torch.contiguous_format)


if __name__ == "__main__":
    main()
