"""The detector's ``backbone`` module: a staged backbone (``body``) followed by a neck (``neck``).

torchvision detectors accept any module with ``out_channels`` that returns an ``OrderedDict`` of
maps. Keys of torchvision's ``BackboneWithFPN`` checkpoints (``body.*``, ``fpn.*``) load
unchanged: ``body`` keeps torchvision's names and a load hook moves ``fpn.*`` to where the neck
keeps its FPN (``neck.fpn.*``, extra levels ``neck.extra_blocks.*``).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..backbones.staged import StagedBackbone
from ..necks.base import Neck


class DetectorBackbone(nn.Module):
    def __init__(self, body: StagedBackbone, neck: Neck):
        super().__init__()
        self.body = body
        self.neck = neck
        self.out_channels = neck.out_channels
        body.keep_blocks = neck.needs_blocks
        self._register_load_state_dict_pre_hook(self._rename_torchvision_fpn)

    def _rename_torchvision_fpn(self, state_dict, prefix, *args) -> None:
        target = self.neck.torchvision_fpn_prefix
        old = prefix + "fpn."
        if target is None or any(k.startswith(prefix + "neck.") for k in state_dict):
            return
        for key in [k for k in state_dict if k.startswith(old)]:
            rest = key[len(old):]
            new = prefix + "neck." + (rest if rest.startswith("extra_blocks.") else target + rest)
            state_dict[new] = state_dict.pop(key)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return self.neck(self.body(x))
