"""Operators: the gate G(eps, X) = act(eps) * F(X)."""

from .gate import GATE_MODES, Gate, bias_for, check_mode, gate, gate_activation, global_pool

__all__ = ["GATE_MODES", "Gate", "bias_for", "check_mode", "gate", "gate_activation", "global_pool"]
