"""Training on several processes: who this process is, its device, the process group, collectives.

    torchrun --nproc-per-node 8 -m motionxfer train-target ./me

torchrun starts one process per GPU and tells each who it is through environment variables:
WORLD_SIZE (processes in all), RANK (this one, 0..WORLD_SIZE-1) and LOCAL_RANK (its number on this
machine, which picks its GPU: cuda:LOCAL_RANK), plus MASTER_ADDR and MASTER_PORT for the
rendezvous. Without them (or with WORLD_SIZE=1) training is one ordinary process and nothing here
does anything.

With several processes the backend is NCCL when the processes train on CUDA and gloo on the CPU.
Every collective below is called by every process at the same point of the same code path; one
that only rank 0 reaches would hang the others. Only the gloo path is tested (two CPU processes);
the NCCL path follows PyTorch's documented use but has not been run on GPUs.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from motionxfer.device import resolve_device
from motionxfer.errors import BadInput, MissingDependency

# Collectives wait this long before failing; rank 0 may spend minutes decoding the frame cache
# while the others wait at a barrier.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)
ENVIRONMENT = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and reports progress."""
        return self.rank == 0


SINGLE_PROCESS = Processes()


def processes_from_environment(environ: Mapping[str, str] | None = None) -> Processes:
    """The Processes that torchrun's variables describe (one process when they are absent)."""
    environ = os.environ if environ is None else environ
    present = [name for name in ENVIRONMENT if name in environ]
    if not present:
        return SINGLE_PROCESS
    if len(present) != len(ENVIRONMENT):
        missing = ", ".join(name for name in ENVIRONMENT if name not in environ)
        raise BadInput(f"distributed training needs WORLD_SIZE, RANK and LOCAL_RANK; {missing} "
                       "is not set", hint="start several processes with torchrun, which sets "
                       "them all: torchrun --nproc-per-node N -m motionxfer train-target PROJECT")
    try:
        world_size, rank, local_rank = (int(environ[name]) for name in ENVIRONMENT)
    except ValueError:
        raise BadInput(
            "WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers ("
            + ", ".join(f"{name}={environ[name]!r}" for name in ENVIRONMENT) + ")",
            hint="start several processes with torchrun, which sets them",
        ) from None
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise BadInput(f"inconsistent WORLD_SIZE={world_size}, RANK={rank}, "
                       f"LOCAL_RANK={local_rank}", hint="start the processes with torchrun")
    return Processes(rank=rank, local_rank=local_rank, world_size=world_size)


def process_device(name: str, processes: Processes) -> torch.device:
    """The device of this process for the device setting `name` ("auto", "cpu", "cuda", "cuda:N").

    One process: `name` as given ("auto" takes the first GPU when torch sees one). Several: each
    takes the GPU of its LOCAL_RANK ("auto" and "cuda"), or the CPU ("cpu", or "auto" without a
    GPU); naming one GPU ("cuda:N") is refused because every process would take the same one.
    """
    single = resolve_device(name)  # checks the name, and that a GPU asked for exists
    if not processes.distributed:
        return single
    if name.startswith("cuda:"):
        raise BadInput(
            f"--device {name} names one GPU, but {processes.world_size} processes would all use it",
            hint="pass --device cuda (or auto): each process takes the GPU of its LOCAL_RANK",
        )
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    if processes.local_rank >= torch.cuda.device_count():
        raise BadInput(
            f"process {processes.rank} has LOCAL_RANK {processes.local_rank}, but torch sees "
            f"only {torch.cuda.device_count()} GPUs on this machine",
            hint="start at most one process per GPU: torchrun --nproc-per-node "
            f"{torch.cuda.device_count()}",
        )
    return torch.device("cuda", processes.local_rank)


def backend_for(device: torch.device) -> str:
    """NCCL for processes on GPUs, gloo for processes on the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(processes: Processes, device: torch.device) -> Iterator[None]:
    """The default process group for the run: joined here and left at the end, or one that the
    caller's program already started (then used as it is and left to the caller)."""
    if not processes.distributed:
        yield
        return
    if not dist.is_available():
        raise MissingDependency("this build of torch has no torch.distributed",
                                hint="install the torch wheel from pytorch.org")
    if dist.is_initialized():
        if dist.get_world_size() != processes.world_size or dist.get_rank() != processes.rank:
            raise BadInput(
                f"the running process group (rank {dist.get_rank()} of {dist.get_world_size()}) "
                f"does not match RANK={processes.rank}, WORLD_SIZE={processes.world_size}",
                hint="start the processes with torchrun and let train_target join the group",
            )
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL's collectives and barriers use the current device
    dist.init_process_group(backend=backend_for(device), timeout=COLLECTIVE_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def barrier(processes: Processes) -> None:
    """Wait until every process is here."""
    if not processes.distributed:
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def any_across(flags: Sequence[bool], processes: Processes,
               device: torch.device) -> list[bool]:
    """For each flag: is it set in at least one process? (Every process gets the same answer.)"""
    if not processes.distributed:
        return list(flags)
    values = torch.tensor([float(flag) for flag in flags], device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(value) for value in values.tolist()]


def mean_across(values: Mapping[str, float], processes: Processes,
                device: torch.device) -> dict[str, float]:
    """The mean over the processes of each value (every process has the same keys)."""
    if not processes.distributed:
        return dict(values)
    names = sorted(values)
    total = torch.tensor([values[name] for name in names], dtype=torch.float64, device=device)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return {name: value / processes.world_size for name, value in zip(names, total.tolist())}


def gather_text(text: str, processes: Processes) -> list[str]:
    """`text` of every process, in rank order."""
    if not processes.distributed:
        return [text]
    gathered: list[object] = [None] * processes.world_size
    dist.all_gather_object(gathered, text)
    return [str(item) for item in gathered]


def process_seed(seed: int, rank: int) -> int:
    """The seed of rank `rank`'s global random generators: `seed` itself for rank 0 (so one process
    runs exactly as before), a different one for every other rank."""
    if rank == 0:
        return seed
    return (seed * 1_000_003 + rank * 999_983) % 2**63

