"""Data parallelism with PyTorch's own DDP under `torchrun` (NCCL on GPUs, gloo on CPU)."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from .errors import ConfigError


def rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return rank_world()[0] == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> None:
    """Join the process group torchrun describes; no-op for a single process."""
    if not launched_by_torchrun() or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        # NCCL's barrier and all_gather_object use the *current* device: make it this rank's GPU,
        # or every rank would talk through cuda:0
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_into(t: torch.Tensor, op: str, device: torch.device) -> torch.Tensor:
    """`t` reduced over the ranks with "sum", "max" or "min", computed on `device` (NCCL wants this rank's GPU,
    gloo the CPU) and returned where `t` was; `t` itself with one process."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return t
    work = t.to(device, copy=True)
    dist.all_reduce(work, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op])
    return work.to(t.device)


def all_gather_lists(items: list) -> list:
    """Every rank's list, concatenated in rank order (`items` with one process)."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return list(items)
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, list(items))
    return [x for part in parts for x in part]


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device(requested: str) -> torch.device:
    """auto → cuda:LOCAL_RANK when CUDA is available, else cpu."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device", "cpu or auto on a machine without CUDA", "cuda")
        return torch.device("cuda", local_rank)
    return torch.device(requested)
