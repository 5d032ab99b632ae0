"""Learning-rate policy: linear scaling by batch size, linear warmup, multi-step decay (per iteration).

The learning rate is a pure function of the iteration counter, so a resumed run only needs the
counter (no hidden scheduler state) and the schedule always follows the current config.
"""

from __future__ import annotations

import bisect
import math


def scaled_lr(base_lr: float, batch_per_process: int, world_size: int, base_batch_size: int) -> float:
    """The linear scaling rule (Goyal et al. 2017): lr = base_lr * total batch / base batch."""
    return base_lr * batch_per_process * world_size / base_batch_size


def step_iterations(step_epochs: list[float], iters_per_epoch: int) -> list[int]:
    """LR drops given in (possibly fractional) epochs -> iteration indices (rounded half up)."""
    return sorted(math.floor(e * iters_per_epoch + 0.5) for e in step_epochs)


def late_steps(step_epochs: list[float], iters_per_epoch: int, end: int) -> list[float]:
    """The lr drops (in epochs) whose iteration is at or past ``end``, the iteration training stops
    at: they never take effect."""
    return [e for e in step_epochs if step_iterations([e], iters_per_epoch)[0] >= end]


class WarmupMultiStep:
    """LR factor for the update at (0-based) iteration ``it``.

    ``warmup_factor`` -> 1 linearly over ``warmup_iters`` (factor = w + (1 - w) * it / warmup_iters),
    times ``gamma`` for every entry of ``step_iters`` that is <= ``it``.
    """

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


class IterationLR:
    """Sets every param group's lr to ``base_lr * policy(it)`` before the update at iteration ``it``.

    The group's base lr is kept in ``group["initial_lr"]`` (and a group's own ``lr_mult``, if
    any, multiplies it). ``state_dict`` records the iteration for inspection only.
    """

    def __init__(self, optimizer, policy: WarmupMultiStep):
        self.optimizer = optimizer
        self.policy = policy
        self.iteration = 0
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])

    def set(self, it: int) -> float:
        """Apply the lr for iteration ``it``; returns the lr of the first group."""
        self.iteration = it
        factor = self.policy(it)
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * group.get("lr_mult", 1.0) * factor
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"iteration": self.iteration, "step_iters": list(self.policy.step_iters),
                "gamma": self.policy.gamma, "warmup_iters": self.policy.warmup_iters,
                "warmup_factor": self.policy.warmup_factor}


def build_scheduler(optimizer, step_epochs: list[float], iters_per_epoch: int, gamma: float,
                    warmup_iters: int, warmup_factor: float) -> IterationLR:
    policy = WarmupMultiStep(step_iterations(step_epochs, iters_per_epoch), gamma, warmup_iters, warmup_factor)
    return IterationLR(optimizer, policy)
