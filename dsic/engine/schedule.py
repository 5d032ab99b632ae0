"""Learning-rate policy: linear scaling by batch size, linear warmup, multi-step decay (per iteration)."""

from __future__ import annotations

import bisect

import torch


def scaled_lr(base_lr: float, batch_per_process: int, world_size: int, base_batch_size: int) -> float:
    """The linear scaling rule (Goyal et al.): lr = base_lr * total batch / base batch."""
    return base_lr * batch_per_process * world_size / base_batch_size


class WarmupMultiStep:
    """lr factor at iteration ``it``: warmup_factor -> 1 linearly over ``warmup_iters``, then
    multiplied by ``gamma`` at every iteration of ``step_iters`` that has been reached."""

    def __init__(self, step_iters: list[int], gamma: float = 0.1, warmup_iters: int = 500,
                 warmup_factor: float = 0.001):
        self.step_iters = sorted(step_iters)
        self.gamma = gamma
        self.warmup_iters = warmup_iters
        self.warmup_factor = warmup_factor

    def __call__(self, it: int) -> float:
        factor = self.gamma ** bisect.bisect_right(self.step_iters, it)
        if it < self.warmup_iters:
            alpha = it / self.warmup_iters
            factor *= self.warmup_factor * (1 - alpha) + alpha
        return factor


def build_scheduler(optimizer, step_epochs: list[int], iters_per_epoch: int, gamma: float,
                    warmup_iters: int, warmup_factor: float) -> torch.optim.lr_scheduler.LambdaLR:
    policy = WarmupMultiStep([e * iters_per_epoch for e in step_epochs], gamma, warmup_iters, warmup_factor)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, policy)
