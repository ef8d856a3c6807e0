"""Training on several processes: torchrun's environment, devices, the sampler, and real runs of
`torchrun --nproc-per-node 2 -m motionxfer train-target` with the gloo backend on the CPU.

The runs use a tiny project made from tests/fixtures/target_clip.mp4 with its ground-truth
keypoints imported (no MediaPipe), the tiny preset at 128 px, batch 1 per process, no perceptual
loss, 8 generator steps and 2 face refiner steps. NCCL on GPUs is not exercised here (no GPU on the test machine); its
device and backend choice is checked with a pretend CUDA.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data.distributed import DistributedSampler

from motionxfer.checkpoint import Checkpoint, weights_digest
from motionxfer.errors import BadInput
from motionxfer.pipeline import import_keypoints, init_project
from motionxfer.project import Project
from motionxfer.training.batches import GENERATOR_STAGE, batch_indices, shard_batch_indices
from motionxfer.training.distributed import (
    SINGLE_PROCESS,
    Processes,
    backend_for,
    process_device,
    process_seed,
    processes_from_environment,
)

FIXTURES = Path(__file__).parent / "fixtures"
RUN_TIMEOUT = 240  # seconds; a run takes 10-20 s on the loaded 2-core test machine


# --- torchrun's environment and the device of each process ---------------------------------------

def test_processes_come_from_torchrun_variables() -> None:
    assert processes_from_environment({}) == SINGLE_PROCESS
    assert not SINGLE_PROCESS.distributed and SINGLE_PROCESS.is_main
    second = processes_from_environment({"WORLD_SIZE": "4", "RANK": "1", "LOCAL_RANK": "1"})
    assert second == Processes(rank=1, local_rank=1, world_size=4)
    assert second.distributed and not second.is_main
    # torchrun --nproc-per-node 1: one process, as without torchrun
    assert not processes_from_environment(
        {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}).distributed
    with pytest.raises(BadInput, match="LOCAL_RANK is not set") as partial:
        processes_from_environment({"WORLD_SIZE": "2", "RANK": "0"})
    assert "torchrun" in partial.value.hint
    with pytest.raises(BadInput, match="whole numbers"):
        processes_from_environment({"WORLD_SIZE": "two", "RANK": "0", "LOCAL_RANK": "0"})
    with pytest.raises(BadInput, match="inconsistent"):
        processes_from_environment({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"})


def test_each_process_takes_the_gpu_of_its_local_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    two = Processes(rank=3, local_rank=1, world_size=4)
    # no GPU here: every process on the CPU, with gloo
    if not torch.cuda.is_available():
        assert process_device("auto", two) == torch.device("cpu")
    assert process_device("cpu", two) == torch.device("cpu")
    assert backend_for(torch.device("cpu")) == "gloo"
    # a machine with two GPUs (pretended: only the choice is checked, nothing runs on them)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert process_device("auto", two) == torch.device("cuda", 1)
    assert process_device("cuda", two) == torch.device("cuda", 1)
    assert process_device("cpu", two) == torch.device("cpu")
    assert backend_for(torch.device("cuda", 1)) == "nccl"
    with pytest.raises(BadInput, match="names one GPU") as one_gpu:
        process_device("cuda:0", two)
    assert "LOCAL_RANK" in one_gpu.value.hint
    with pytest.raises(BadInput, match="only 2 GPUs") as too_many:
        process_device("auto", Processes(rank=2, local_rank=2, world_size=3))
    assert "--nproc-per-node 2" in too_many.value.hint
    assert process_device("cuda:1", SINGLE_PROCESS) == torch.device("cuda", 1)  # one process


def test_rank_zero_keeps_the_seed_and_the_others_get_their_own() -> None:
    assert process_seed(7, 0) == 7
    seeds = {process_seed(7, rank) for rank in range(8)}
    assert len(seeds) == 8


# --- the sampler ---------------------------------------------------------------------------------

def test_ranks_draw_disjoint_parts_of_each_epoch_in_distributed_sampler_order() -> None:
    candidates = np.arange(100, 110)  # 10 training frames, 2 processes: 5 each per epoch
    processes = [Processes(rank=rank, local_rank=rank, world_size=2) for rank in (0, 1)]

    def batches(rank: int, steps: int, batch_size: int = 2) -> np.ndarray:
        return np.concatenate([shard_batch_indices(candidates, batch_size, 3, GENERATOR_STAGE,
                                                   step, processes[rank])
                               for step in range(steps)])

    first, second = batches(0, 5), batches(1, 5)  # 5 steps of 2 = two epochs of 5 each
    for epoch in (0, 1):
        part = slice(5 * epoch, 5 * epoch + 5)
        assert set(first[part]).isdisjoint(second[part])
        assert sorted([*first[part], *second[part]]) == list(candidates)
        # exactly DistributedSampler's order for that epoch (a batch straddles epochs 0 and 1)
        sampler = DistributedSampler(range(10), num_replicas=2, rank=1, shuffle=True,
                                     seed=3 * 1_000_003, drop_last=False)
        sampler.set_epoch(epoch)
        assert list(second[part]) == [int(candidates[index]) for index in sampler]
    assert not np.array_equal(first[:5], first[5:])  # another order each epoch
    # a pure function of (seed, stage, step, rank, world size): resuming replays it
    assert np.array_equal(
        shard_batch_indices(candidates, 2, 3, GENERATOR_STAGE, 4, processes[0]), first[8:10])
    # one process keeps its own draw (as before distributed training existed)
    assert np.array_equal(batch_indices(candidates, 2, 3, GENERATOR_STAGE, 4),
                          batch_indices(candidates, 2, 3, GENERATOR_STAGE, 4))


def test_uneven_counts_pad_as_distributed_sampler_does() -> None:
    candidates = np.arange(7)  # 3 processes: 9 places, 2 frames appear twice per epoch
    parts = [shard_batch_indices(candidates, 3, 0, GENERATOR_STAGE, 0,
                                 Processes(rank=rank, local_rank=rank, world_size=3))
             for rank in range(3)]
    assert set(np.concatenate(parts)) == set(candidates)


def test_weights_digest_sees_a_single_bit() -> None:
    weights = {"generator": {"a": torch.arange(6, dtype=torch.float32).reshape(2, 3),
                             "scalar": torch.tensor(2.0)}}
    same = {"generator": {key: value.clone() for key, value in weights["generator"].items()}}
    assert weights_digest(weights) == weights_digest(same)
    flipped = same["generator"]["a"].view(torch.int32)
    flipped[1, 2] ^= 1  # the lowest bit of one float
    assert weights_digest(weights) != weights_digest(same)


# --- real runs under torchrun ---------------------------------------------------------------------

def make_project(root: Path) -> Project:
    """The tiny project: the fixture clip (120 frames, 256x256) with ground-truth keypoints."""
    project = init_project(root, FIXTURES / "target_clip.mp4")
    import_keypoints(project, project.target, FIXTURES / "target_clip_keypoints.npz")
    settings = project.paths.config.read_text()
    table = ('[train]\npreset = "tiny"\nvalidation_frames = 2\nlog_every = 1\n'
             "sample_every = 2\nvalidate_every = 1000\nnum_workers = 1\n"
             "face_refiner_steps = 2\nface_batch_size = 1\n")
    project.paths.config.write_text(settings.replace("[train]\n", table, 1))
    return project


def torchrun(project: Path, *flags: str) -> subprocess.Popen[str]:
    """`torchrun --standalone --nproc-per-node 2 -m motionxfer --json train-target PROJECT`, with
    one torch thread per process (2 cores), on the CPU (gloo)."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        environment.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "motionxfer", "--json", "train-target", str(project), "--no-perceptual",
         "--batch-size", "1", "--device", "cpu", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        stdout, stderr = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"torchrun did not finish in {RUN_TIMEOUT} s:\n{stderr[-3000:]}")
    return process.returncode, stdout, stderr


def result_line(stdout: str) -> dict[str, object]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, f"one process prints the result, not {len(lines)}:\n{stdout}"
    return json.loads(lines[0])


def logged_steps(project: Project) -> list[int]:
    lines = [json.loads(line) for line in project.paths.train_log.read_text().splitlines()]
    return [line["step"] for line in lines if "validation" not in line]


def checkpoint_digest(project: Project) -> str:
    return weights_digest(Checkpoint.load(project.paths.checkpoint).models)


def test_two_gloo_processes_train_identical_weights_stop_together_and_resume_exactly(
        tmp_path: Path) -> None:
    """Three torchrun runs of two processes each: (1) 8 generator and 2 face refiner steps
    straight; (2) the same stopped by a SIGINT to torchrun after the first step; (3) run 2 resumed
    to the end. Every run ends with the same weights in both processes; 3 ends with the weights of
    1, bit for bit."""
    straight = make_project(tmp_path / "straight")
    shutil.copytree(straight.root, tmp_path / "interrupted")
    interrupted = Project.open(tmp_path / "interrupted")

    # (2) first, while (1) runs: the machine's two cores are shared by the four processes
    stopped = torchrun(interrupted.root, "--steps", "8")
    whole = torchrun(straight.root, "--steps", "8")
    deadline = time.monotonic() + RUN_TIMEOUT
    while not (interrupted.paths.train_log.exists() and logged_steps(interrupted)):
        assert stopped.poll() is None, stopped.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no step logged"
        time.sleep(0.05)
    stopped.send_signal(signal.SIGINT)  # as Ctrl-C in torchrun's terminal
    code, stdout, stderr = finish(stopped)
    assert code != 0 and not stdout.strip()
    assert "interrupted" in stderr and "--resume" in stderr
    saved = Checkpoint.load(interrupted.paths.checkpoint).generator_step
    assert 1 <= saved < 8, saved  # stopped after a finished step, not at the end
    assert logged_steps(interrupted) == list(range(1, saved + 1))

    code, stdout, stderr = finish(whole)
    assert code == 0, stderr[-3000:]
    result = result_line(stdout)
    assert result["processes"] == 2
    assert (result["generator_steps"], result["face_refiner_steps"]) == (8, 2)
    digests = result["weights_sha256"]
    assert isinstance(digests, list) and len(digests) == 2
    assert digests[0] == digests[1] == checkpoint_digest(straight)  # both processes, bitwise
    # rank 0 alone wrote: one log line per step, one grid per sample step, one result
    assert logged_steps(straight) == [*range(1, 9), 1, 2]
    grids = sorted(path.name for path in straight.paths.training_samples.iterdir())
    assert grids == ["face_step_0000002.png", *(f"step_{step:07d}.png" for step in (2, 4, 6, 8))]
    assert stderr.count("training preset tiny") == 1
    assert "batch 1 per process x 2 processes = 2" in stderr
    assert straight.paths.lock.read_text() == ""  # the lock was taken and given back

    code, stdout, stderr = finish(torchrun(interrupted.root, "--resume"))
    assert code == 0, stderr[-3000:]
    resumed = result_line(stdout)
    assert resumed["generator_steps"] == 8 and resumed["steps_this_run"] == 8 - saved + 2
    assert resumed["weights_sha256"] == digests  # the same weights as the run never stopped
    assert checkpoint_digest(interrupted) == checkpoint_digest(straight)
    assert logged_steps(interrupted) == [*range(1, 9), 1, 2]
