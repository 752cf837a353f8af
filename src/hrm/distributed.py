"""The data-parallel layer around an unchanged model: process groups from `torchrun`, gradient and
metric reduction, and keeping replicas identical.

Under `torchrun --nproc_per_node N`, each process takes `global_batch_size / N` rows of every global
batch; gradients are summed across processes with one all-reduce per step (the loss is divided by the
global batch size, so the sum is the gradient of the global batch, exactly as in one process).
NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from hrm.errors import ConfigError

            raise ConfigError("device=cuda was asked for, but no CUDA device is available")
        return torch.device("cuda", local_rank)
    if preference == "mps" or (preference == "auto" and torch.backends.mps.is_available()):
        return torch.device("mps")
    return torch.device("cpu")


def setup(preference: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), else run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(preference, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def teardown(info: DistInfo, finished: bool = False) -> None:
    """Leave the process group. `finished`: every process got to its end, so they first wait for one
    another; a process that leaves while another still talks to it can abort in gloo's destructor."""
    if info.enabled and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def broadcast_module(module: torch.nn.Module, info: DistInfo) -> None:
    """Make every replica start from rank 0's parameters and buffers."""
    if not info.enabled:
        return
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def all_reduce_grads(params: list[torch.nn.Parameter], info: DistInfo) -> None:
    """Sum gradients over ranks with a single flat all-reduce."""
    if not info.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (every rank gets the result)."""
    if info.enabled:
        values = values.clone()
        dist.all_reduce(values)
    return values


def gather_to_main(obj: Any, info: DistInfo) -> list[Any] | None:
    """Every rank's `obj` (picklable), in rank order, on the main process; None on the others. A
    collective: every process must call it. One process: `[obj]`, nothing copied."""
    if not info.enabled:
        return [obj]
    gathered: list[Any] | None = [None] * info.world_size if info.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
