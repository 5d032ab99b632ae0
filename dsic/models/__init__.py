"""Detector builders and gate-state readers."""

from .backbone import DetectorBackbone
from .builder import ARCHS, build_detector, load_detector_weights
from .states import gate_states, unwrap

__all__ = ["ARCHS", "DetectorBackbone", "build_detector", "gate_states", "load_detector_weights", "unwrap"]
