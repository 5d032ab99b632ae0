"""Why a state dict does not fit a model, in one line a user can act on.

``load_state_dict`` lists every missing and unexpected key; a backbone weights file given where a
detector checkpoint is expected produces a few hundred of them. :func:`mismatch_summary` counts
them, shows the first few of each kind, and says when the file holds a backbone alone (as
``dsic data pretrain`` writes), which belongs in ``model.pretrained_backbone``.
"""

from __future__ import annotations

BODY = "backbone.body."


def first_keys(keys: list[str], shown: int = 3) -> str:
    """The first ``shown`` keys, comma-separated, and how many more there are."""
    more = f", ... ({len(keys) - shown} more)" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def mismatch_summary(own: dict, given: dict, shown: int = 3) -> str:
    """What separates ``given`` (a state dict) from ``own`` (the model's): counts with examples."""
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    reshaped = sorted(k for k in set(own) & set(given)
                      if hasattr(given[k], "shape") and tuple(given[k].shape) != tuple(own[k].shape))
    parts = []
    if missing:
        parts.append(f"{len(missing)} key(s) missing ({first_keys(missing, shown)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({first_keys(unexpected, shown)})")
    if reshaped:
        k = reshaped[0]
        parts.append(f"{len(reshaped)} of another shape ({k}: {tuple(given[k].shape)} in the file, "
                     f"{tuple(own[k].shape)} in the model)")
    text = "; ".join(parts) or "no difference in keys or shapes"
    if _backbone_alone(own, given):
        text += ". The file holds backbone weights alone: give it as model.pretrained_backbone"
    return text


def _backbone_alone(own: dict, given: dict) -> bool:
    """``given`` (or a state dict inside it, as ``{"state_dict": ..., "meta": ...}``) names the
    model's backbone body's parameters without the detector's prefix."""
    body = {k[len(BODY):] for k in own if k.startswith(BODY)}
    for state in [given, *(v for v in given.values() if isinstance(v, dict))]:
        if state and len(set(state) & body) >= 0.9 * len(state):
            return True
    return False
