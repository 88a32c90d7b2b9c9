"""Everything `torch.distributed` in one place.

Only this module reads RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun) and calls
init_process_group. Recipes ask it who they are and let rank 0 alone write and log.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Dist", "init"]

# The tensors this module hands to collectives, still referenced from Python for a while after.
# gloo's worker thread may drop a finished collective's last C++ reference late (a barrier keeps the
# works in flight when it was made, and its thread frees them after it). Where Python no longer holds
# such a tensor, that drop frees its Python object and needs the GIL; if the main thread is then
# destroying the process group (the DDP Reducer freed as `train()` returns joins gloo's threads with
# the GIL held), each waits for the other forever: a rank hung at the end of ~1 run in 30. Held
# here, the thread's drop only lowers a count. 64 collectives later a tensor is long released.
_HELD: deque[torch.Tensor] = deque(maxlen=64)


@dataclass(frozen=True)
class Dist:
    rank: int
    local_rank: int
    world_size: int
    local_world_size: int  # workers on this machine: they share its cores
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is true on any (e.g. a stop request seen by one worker)."""
        if not self.enabled:
            return flag
        t = _held(torch.tensor([1.0 if flag else 0.0], device=self._comm_device()))
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (in place on a copy)."""
        if not self.enabled:
            return values
        t = _held(values.detach().clone().to(self._comm_device()))
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.to(values.device)

    def share(self, value: int) -> int:
        """Rank 0's `value`, on every rank."""
        if not self.enabled:
            return value
        t = _held(torch.tensor([value], dtype=torch.long, device=self._comm_device()))
        dist.broadcast(t, src=0)
        return int(t.item())

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """DistributedDataParallel around `model` when there are several workers."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.local_rank] if self.device.type == "cuda" else None
        return DDP(model, device_ids=ids)

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def _held(tensor: torch.Tensor) -> torch.Tensor:
    _HELD.append(tensor)
    return tensor


def init(device: str = "auto") -> Dist:
    """Join the process group torchrun set up (gloo on CPU, nccl on GPU), or run alone."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        from llmos.errors import LlmosError

        raise LlmosError("resources.device is 'cuda' but no CUDA device is visible.",
                         hint="Set resources.device=cpu, or install a CUDA build of torch (see README).")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    return Dist(rank=rank, local_rank=local_rank, world_size=world, local_world_size=local_world, device=dev)
