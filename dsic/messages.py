"""Helpers for one-line messages, used by every layer: the choice a typo meant, a list of ids."""

from __future__ import annotations

import difflib


def closest(word: str, choices) -> str | None:
    """The choice a mistyped ``word`` most likely meant, or None.

    difflib's closest matches, a transposition first among them ('fnp' means 'fpn', not 'fpt'); failing
    those, the first choice that has ``word`` as one of its '_'-separated parts ('lr' -> 'base_lr').
    """
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(word, choices, n=max(1, len(choices)), cutoff=0.6)
    same_letters = [c for c in close if sorted(c) == sorted(word)]
    if close:
        return (same_letters or close)[0]
    return next((c for c in choices if word in c.split("_")), None)



def id_list(ids) -> str:
    """Category ids for a message, sorted, runs of three or more as ``a..b``: ``[0..9]``, ``[5, 9, 42]``."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    parts = [f"{a}..{b}" if b - a >= 2 else ", ".join(map(str, range(a, b + 1))) for a, b in runs]
    return f"[{', '.join(parts) if len(parts) <= 12 else ', '.join(parts[:10]) + ', ... ' + parts[-1]}]"
