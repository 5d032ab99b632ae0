"""An exponential moving average (EMA) of a model's weights, for evaluation.

As in YOLOX, RT-DETR and the YOLO family: after every optimizer step the EMA copy moves towards the
trained weights, ``ema = d * ema + (1 - d) * model``, with a decay that ramps up from 0,
``d = decay * (1 - exp(-updates / tau))``, so the first updates follow the model closely while the
random start is forgotten. Buffers that are not floating point (counters) are copied.

Why it is in the benchmark protocol: evaluating the last SGD iterate of a short from-scratch run
samples one noisy point of the trajectory; the average over the last few hundred updates is a
smoother estimate of where training went (BENCHMARKS.md, protocol v2). ``train.ema: true`` turns
it on; evaluation, ``final.pth`` and the gate probes then use the EMA weights, and ``last.pth``
keeps both.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class ModelEMA:
    """EMA of ``model``'s state (parameters and floating-point buffers)."""

    def __init__(self, model: nn.Module, decay: float = 0.999, tau: float = 2000.0):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.decay, self.tau = float(decay), float(tau)
        self.updates = 0

    def current_decay(self) -> float:
        if self.tau <= 0:
            return self.decay
        return self.decay * (1.0 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        ema_floats, model_floats = [], []
        for e, m in zip(self.module.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                ema_floats.append(e)
                model_floats.append(m.detach())
            else:
                e.copy_(m)
        torch._foreach_lerp_(ema_floats, model_floats, 1.0 - d)  # ema += (1 - d) * (model - ema)

    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.updates = int(state["updates"])
