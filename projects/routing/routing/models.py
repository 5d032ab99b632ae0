"""The study's model factory: :func:`dsic.models.build_detector`, with the boxes' loss of the ``scale``
path gates' heads attached (:mod:`routing.scale_supervision`) when the neck has them."""

from __future__ import annotations

from torch import nn

from dsic.models import build_detector as build_library_detector

from .scale_supervision import attach_scale_supervision


def build_detector(*args, **kwargs) -> nn.Module:
    """:func:`dsic.models.build_detector` with ``model.scale_supervision`` (None without ``scale`` path gates)."""
    model = build_library_detector(*args, **kwargs)
    model.scale_supervision = attach_scale_supervision(model)
    return model


def build_model(cfg: dict) -> nn.Module:
    """The detector of ``cfg["model"]``, as :func:`dsic.engine.builders.build_model` builds it, for
    :func:`dsic.engine.train.train`'s ``model_factory``."""
    return build_detector(**cfg["model"])
