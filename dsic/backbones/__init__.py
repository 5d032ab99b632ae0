"""Backbones that expose every block's output per stage (needed by ISG)."""

from .staged import BackboneSpec, StagedBackbone
from .zoo import NORMS, available_backbones, build_backbone, load_classification_weights, norm_layer

__all__ = [
           "NORMS",
           "BackboneSpec",
           "StagedBackbone",
           "available_backbones",
           "build_backbone",
           "load_classification_weights",
           "norm_layer",
]
