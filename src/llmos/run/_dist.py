"""Everything `torch.distributed` in one place.

Only this module reads RANK / WORLD_SIZE / LOCAL_RANK (set by torchrun) and calls
init_process_group. Recipes ask it who they are and let rank 0 alone write and log.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["Dist", "init"]

# How a worker that joined a process group ends: never by freeing it. The DDP Reducer holds the gloo
# backend; freed (as `train()` returns, or at interpreter exit), it joins gloo's worker threads with
# the GIL held, and a worker thread may at that moment be dropping a finished collective's last
# reference to a tensor Python made (a barrier's work keeps the works in flight when it was made; DDP
# and llmos hand gloo such tensors), which needs the GIL: each waits for the other forever. py-spy
# of a rank hung at the end (~1 gang in 30 on a busy 2-core machine):
#   main thread:  pybind11_object_dealloc -> ~Reducer -> ~ProcessGroupGloo -> std::thread::join
#   gloo thread:  runLoop -> ~AsyncBarrierWork -> ~AsyncAllreduceWork -> decref_pyobject -> GIL wait
# (pytorch/pytorch#56297: destructors that block under the GIL). So every DDP model made here stays
# referenced, and a process that joined a group ends by os._exit once its work, atexit handlers and
# output are done (llmos._exit.run_main): nothing is freed, and the threads end with the process.
_KEPT: list[torch.nn.Module] = []


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
        t = torch.tensor([1.0 if flag else 0.0], device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over ranks (in place on a copy)."""
        if not self.enabled:
            return values
        t = values.detach().clone().to(self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.to(values.device)

    def share(self, value: int) -> int:
        """Rank 0's `value`, on every rank."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.long, device=self._comm_device())
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
        wrapped = DDP(model, device_ids=ids)
        _KEPT.append(wrapped)  # freed, it could hang the process (see the top of this file)
        return wrapped

    def close(self) -> None:
        """No more collectives: the group's clean-up (a DDP model's Reducer keeps gloo's backend,
        which ends with the process: see the top of this file)."""
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


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
        from llmos._exit import end_without_teardown

        end_without_teardown()  # see the top of this file
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world)
    return Dist(rank=rank, local_rank=local_rank, world_size=world, local_world_size=local_world, device=dev)

