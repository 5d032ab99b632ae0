"""torch.distributed helpers for runs launched by torchrun (gloo on CPU, NCCL on CUDA).

Every helper is a no-op in a plain single process, so the engine has one code path.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from .. import DsicWarning


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # this process initialised the group (and destroys it in cleanup)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def resolve_device(device: str | None, local_rank: int = 0) -> torch.device:
    """``None``/``auto``: CUDA when available, else CPU. ``cuda`` under torchrun: ``cuda:LOCAL_RANK``.
    A CUDA device this machine does not have is a user error (ValueError: one line from the CLI)."""
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu")
        index = int(device.split(":")[1]) if ":" in device else local_rank
        if index >= torch.cuda.device_count():
            raise ValueError(f"device cuda:{index} asked for (LOCAL_RANK={local_rank}), but only "
                             f"{torch.cuda.device_count()} GPU(s) are visible")
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device(device)


def init_distributed(device: str | None = None) -> DistInfo:
    """Initialise the process group from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR/PORT): NCCL when the device is CUDA, gloo otherwise. Without those variables (or
    with WORLD_SIZE=1) this is a plain single process. A group initialised by the caller is reused."""
    world = int(os.environ.get("WORLD_SIZE", "1")) if launched_by_torchrun() else 1
    rank = int(os.environ.get("RANK", "0")) if world > 1 else 0
    local = int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0
    dev = resolve_device(device, local)
    owns = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend, **kwargs)
        owns = True
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank, world, local, dev, owns)


def cleanup(info: DistInfo | None = None) -> None:
    """Destroy the process group if ``info`` says this process created it."""
    if info is not None and info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        if info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_gather_objects(obj, info: DistInfo) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, info: DistInfo, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of ``tensor`` over ranks (a copy; the input is untouched)."""
    out = tensor.detach().clone()
    if info.enabled:
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        out /= info.world_size
    return out


def wrap_model(model: torch.nn.Module, info: DistInfo, find_unused_parameters: bool = False,
               sync_bn: bool = False) -> torch.nn.Module:
    """``DistributedDataParallel`` in a distributed run (``sync_bn`` converts BatchNorm layers to
    SyncBatchNorm first, CUDA only; frozen BN and GroupNorm are untouched), the model itself otherwise."""
    if not info.enabled:
        return model
    if sync_bn and info.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif sync_bn:
        warnings.warn("train.sync_bn needs CUDA; keeping per-process BatchNorm on the CPU", DsicWarning, stacklevel=2)
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids,
                                                     find_unused_parameters=find_unused_parameters)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside a DDP (or DataParallel) wrapper."""
    return model.module if isinstance(model, (torch.nn.parallel.DistributedDataParallel,
                                              torch.nn.DataParallel)) else model
