"""Is what routing costs paid at inference? The same trained model with its routing switched off.

A CSG control unit with path logits (``csg_path_gate``) adds p_ik = path(x) to every channel logit
of path i; the path layer is linear, so with its weights set to zero every p_ik is its bias. For
``csg_path_gate: statistics`` that bias is exactly the logit of an image whose standardised scale
statistics are 0, i.e. equal to the training images' running mean: W then no longer follows the
image through the path logits, while the channel units, the features and the heads are untouched.
Evaluating a model before and after :func:`freeze_path_logits` separates what routing does at
inference from what training with routing did to the rest of the network
(``projects/routing/static_routing.py``; docs/design.md, "Is the AP cost in the routing or in the training?").
"""

from __future__ import annotations

import torch
from torch import nn

from dsic.analysis.probe import control_units


@torch.no_grad()
def freeze_path_logits(model: nn.Module) -> int:
    """Set the weights of every control unit's path layer to zero (in place), so that each path
    logit is its bias for every image; returns the number of units changed."""
    units = [u for u in control_units(model) if u.path is not None]
    if not units:
        raise ValueError("static_routing: the model has no CSG path logits (csg_path_gate is off)")
    for unit in units:
        unit.path.weight.zero_()
    return len(units)
