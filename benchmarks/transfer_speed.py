"""Transfer speed per stage and end to end, per preset and backend, on this machine.

    python benchmarks/transfer_speed.py                           # tiny and 256, both backends
    python benchmarks/transfer_speed.py --preset 512 --seconds 1 --backend onnx \
        --providers tensorrt,cuda,cpu --precision fp16           # on a GPU
    python benchmarks/transfer_speed.py --threads 1 --threads 2  # thread settings compared
    python benchmarks/transfer_speed.py --generator-only 60 --threads 1 --threads 2

For each preset a model with random weights is built (speed does not depend on the weights'
values) and `motionxfer.inference.bench.run_benchmark` times decoding, MediaPipe (one process and
`--workers` processes), normalization, stick figures, the generator (one video, and
`--video-batch` videos per call), the face refiner, encoding, the overlapped pipeline on cached
poses, and the whole job from the video. The video is tests/fixtures/source_clip.mp4 (256x256,
30 fps) unless --video is given. Prints the machine, its load average before and after (other
programs slow every number down), and one Markdown table per preset and thread setting.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

from motionxfer.inference.bench import (
    BenchConfig,
    device_description,
    generator_speed,
    random_checkpoint,
    run_benchmark,
)
from motionxfer.inference.frame_generator import BackendConfig, parse_providers

VIDEO = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "source_clip.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=VIDEO)
    parser.add_argument("--preset", action="append", help="tiny, 256, 512, 1024 (repeatable)")
    parser.add_argument("--backend", action="append", help="torch, onnx (repeatable)")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--video-batch", type=int, default=2)
    parser.add_argument("--threads", type=int, action="append",
                        help="CPU threads of the networks (repeatable; default: the libraries')")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--providers", default=None)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--json", type=Path, help="also write the reports to this file")
    parser.add_argument("--generator-only", type=int, metavar="FRAMES",
                        help="only the generator, FRAMES frames per backend and thread setting")
    arguments = parser.parse_args()
    if arguments.generator_only:
        generator_table(arguments)
        return

    reports = []
    for preset in arguments.preset or ["tiny", "256"]:
        for threads in arguments.threads or [None]:
            if threads is not None:
                torch.set_num_threads(threads)
            config = BenchConfig(
                backends=tuple(arguments.backend or ("torch", "onnx")),
                seconds=arguments.seconds, preset=preset, workers=arguments.workers,
                video_batch=arguments.video_batch, device=arguments.device,
                providers=parse_providers(arguments.providers), precision=arguments.precision,
                threads=threads,
            )
            with tempfile.TemporaryDirectory(prefix="transfer-speed-") as folder:
                report = run_benchmark(arguments.video, folder, config)
            reports.append(report)
            print(f"\n## preset {preset}, threads: {threads or 'default'} "
                  f"(torch {report.versions.get('torch_threads')})\n")
            print(report.table(), flush=True)
    if arguments.json:
        arguments.json.write_text(json.dumps([report.to_dict() for report in reports], indent=2))


def generator_table(arguments: argparse.Namespace) -> None:
    """The generator alone, each backend and thread setting in turn (the same minute)."""
    print(f"{device_description()}\n")
    print("| preset | threads | backend | frames/s | load average |")
    print("|---|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="generator-speed-") as folder:
        for preset in arguments.preset or ["tiny", "256"]:
            checkpoint = random_checkpoint(Path(folder) / f"{preset}.pt", preset)
            for threads in arguments.threads or [None]:
                for name in arguments.backend or ["torch", "onnx"]:
                    config = BackendConfig(backend=name, device=arguments.device,
                                           providers=parse_providers(arguments.providers),
                                           precision=arguments.precision, threads=threads)
                    load = os.getloadavg()[0]
                    speed = generator_speed(checkpoint, config, arguments.generator_only,
                                            Path(folder) / "exports")
                    print(f"| {preset} | {threads or 'default'} | {name} | {speed:.1f} | "
                          f"{load:.2f} |", flush=True)


if __name__ == "__main__":
    main()
