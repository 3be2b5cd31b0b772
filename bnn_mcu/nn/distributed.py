"""Data-parallel training with PyTorch's own engine (torch.distributed + DDP), for when a BNN
outgrows one process:

    torchrun --standalone --nproc-per-node 4 --no-python bnn-mcu train --preset binarynet-mlp ...

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; without them training is the plain one-process
loop. Every process holds the whole model and a disjoint shard of each epoch's batches (the
batch size is per process); DDP averages the gradients, so the processes take identical steps
and, with identical clipping, keep identical weights (checked at the end). Rank 0 alone
validates, writes checkpoints, the model and the metrics.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import BnnError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    device: torch.device = torch.device("cpu")  # where this process trains

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


DEVICES = ("auto", "cpu", "cuda", "cuda:N")


def pick_device(requested: str = "auto") -> torch.device:
    """The device a process trains on: `auto` is the CUDA GPU when PyTorch sees one, else the
    CPU. A bare `cuda` (or auto) under torchrun is the process's own GPU, LOCAL_RANK."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cpu":
        return torch.device("cpu")
    name, _, index = requested.partition(":")
    if name != "cuda" or (index and not index.isdigit()):
        raise BnnError(f"--device {requested}: unknown device; choose one of {', '.join(DEVICES)}")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise BnnError(f"--device {requested}: PyTorch sees no CUDA GPU here (torch "
                       f"{torch.__version__}, {build}); use --device cpu (or auto)")
    count = torch.cuda.device_count()
    gpu = int(index) if index else local_rank % count
    if gpu >= count:
        raise BnnError(f"--device {requested}: PyTorch sees {count} CUDA GPU"
                       f"{'s' if count > 1 else ''} (cuda:0 to cuda:{count - 1})")
    return torch.device("cuda", gpu)


def join(device: str = "auto") -> World:
    """The process group torchrun describes in the environment (joined once), or a world of
    one when the process was not started by torchrun; its processes train on `device`
    (pick_device), and on GPUs talk through NCCL, else gloo."""
    where = pick_device(device)
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(device=where)
    if not dist.is_initialized():
        backend = "nccl" if where.type == "cuda" else "gloo"
        if where.type == "cuda":
            torch.cuda.set_device(where)  # NCCL's collectives run on the current device
        try:
            dist.init_process_group(backend)
        except (RuntimeError, ValueError) as e:
            raise BnnError(f"cannot join the torchrun process group ({str(e).splitlines()[0]}): "
                           "start with `torchrun --standalone --nproc-per-node N --no-python "
                           "bnn-mcu train ...`") from None
    return World(dist.get_rank(), dist.get_world_size(), where)


def wrap(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """The module the training steps call: DDP over `model` (same parameters) when distributed."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel
    if world.device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[world.device.index])
    return DistributedDataParallel(model)


def shard(perm: torch.Tensor, world: World) -> torch.Tensor:
    """This process's part of an epoch's permutation: every size-th index from rank, cut to the
    same length on every process (a process with one step more would wait forever in DDP)."""
    n = len(perm) // world.size * world.size
    return perm[world.rank:n:world.size]


def sum_over_processes(world: World, *values: float) -> list:
    """Element-wise sums of a few numbers over the processes (the epoch's loss and accuracy)."""
    if not dist.is_initialized():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=world.device)  # NCCL: on the GPU
    dist.all_reduce(t)
    return t.tolist()


def check_in_step(model: torch.nn.Module, world: World) -> None:
    """Raise unless every process ends with the same weights (a broken all-reduce or an
    unsynchronised update would make them drift apart silently)."""
    if not world.distributed:
        return
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().numpy().tobytes())
    digests = [None] * world.size
    dist.all_gather_object(digests, h.hexdigest())
    if len(set(digests)) != 1:
        raise BnnError(f"the {world.size} training processes ended with different weights; "
                       "this is a bug in bnn-mcu, please report it")


def leave(world: World) -> None:
    """Leave together: the other ranks wait here while rank 0 evaluates and exports, so no
    process tears its gloo connections down under a peer still using them (a rank that left
    alone was seen to abort in C++, 'terminate called without an active exception')."""
    if world.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
