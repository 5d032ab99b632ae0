"""An image's scale group from its boxes, by the probe's rule: ``small`` when every object's
sqrt(area) is below 32 px, ``large`` when every one is at least 96 px, ``mixed`` otherwise (the
bounds of ``dsic data synth --probe``'s groups, :data:`dsic.data.synth.GROUPS`); and its scale
presence (the ``presence`` target of CSG's scale heads): whether any object is below 32 px, and
whether any is at least 96 px. The probe's groups answer it (1, 0), (0, 1) and (1, 1)."""

from __future__ import annotations

import math

from torch import Tensor

from dsic.data.synth import GROUPS

SMALL = GROUPS["small"][1][0][1]  # the probe's bounds on sqrt(area): 32 and 96 px
LARGE = GROUPS["large"][1][0][0]
SCALE_GROUP_NAMES = ("small", "large", "mixed")  # the order of one-hots and of the scale head's logits
PRESENCE_NAMES = ("small", "large")  # presence: "has a small object", "has a large object"
PROBE_PRESENCE = {"small": (1, 0), "large": (0, 1), "mixed": (1, 1)}


def scale_group(areas: Tensor | list[float], small: float = SMALL, large: float = LARGE) -> str | None:
    """The probe group of an image whose objects have these areas (None without objects)."""
    sizes = [math.sqrt(float(a)) for a in areas]
    if not sizes:
        return None
    return "small" if max(sizes) < small else "large" if min(sizes) >= large else "mixed"


def scale_presence(areas: Tensor | list[float], small: float = SMALL, large: float = LARGE) -> tuple[int, int] | None:
    """(any object's sqrt(area) below ``small``, any at least ``large``) as 0 / 1 (None without objects)."""
    sizes = [math.sqrt(float(a)) for a in areas]
    if not sizes:
        return None
    return int(min(sizes) < small), int(max(sizes) >= large)
