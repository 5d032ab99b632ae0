"""Read the gate states of the last forward, per image, for visualisation and analysis."""

from __future__ import annotations

from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The bare detector inside DDP / DataParallel wrappers."""
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def gate_states(model: nn.Module) -> dict:
    """Gate states of the last forward of a detector built by :func:`dsic.models.build_detector`.

    Returns ``{}`` for ungated necks, otherwise (B = images in the last batch):

    * ``isg``: ``a`` - per stage, Fine Selection signals [B, C]; ``b`` - per stage, activated
      coarse signals [B, n-1, C] (``None`` for single-block stages);
    * ``csg``: ``w`` - the state matrix [B, n_in, n_out], entry (i, k) = channel-mean act(w_ik);
      ``s`` - per output level k, the selection maps [B, n_in, H_k, W_k] (on the padded batch).
    """
    return unwrap(model).backbone.neck.gate_states()
