"""How tests/assets/neck_states_d412d78.pt was made, run on the code of commit d412d78 (before the
routing study moved to projects/routing): small necks (3 levels of 8 channels), each after one
training forward (running statistics set), weights rounded to half precision so that the file holds
them exactly, with their outputs in eval mode. The ``csg_*`` study options were then options of the
``dsic`` neck; they are now those of projects/routing's ``dsic_routing`` neck."""
import torch

from dsic.backbones.staged import BackboneSpec
from dsic.necks import build_neck

SPEC = BackboneSpec(stage_channels=(8, 8, 8), block_channels=((8,) * 2, (8,) * 3, (8,) * 2),
                    strides=(8, 16, 32), stage_ids=(2, 3, 4))
CASES = {
    "dsic": ("dsic", {}),
    "csg": ("csg", {}),
    "dsic_softmax": ("dsic", {"isg_mode": "softmax", "csg_mode": "softmax"}),
    "dsic_path_running": ("dsic", {"csg_path_gate": True, "csg_control_norm": "running"}),
    "dsic_control_layer": ("dsic", {"csg_control_norm": "layer"}),
    "dsic_pathdesc_leaky": ("dsic", {"csg_path_gate": "descriptor", "csg_control_act": "leaky_relu"}),
    "dsic_pathstd": ("dsic", {"csg_path_gate": "standardized", "csg_signal_std": 0}),
    "dsic_pathstats": ("dsic", {"csg_path_gate": "statistics"}),
    "dsic_pathcells": ("dsic", {"csg_path_gate": "scale", "csg_scale_target": "presence", "csg_scale_code": "cells",
                                 "csg_norm_momentum": 0}),
}
out = {}
for name, (neck, cfg) in CASES.items():
    torch.manual_seed(0)
    model = build_neck(neck, SPEC, 8, "pool", **cfg)
    g = torch.Generator().manual_seed(1)
    blocks = [[torch.randn(2, c, 128 // s, 128 // s, generator=g) for c in cs]
              for cs, s in zip(SPEC.block_channels, SPEC.strides)]
    model.train()
    model(blocks)  # a training forward: running statistics initialised as in training
    with torch.no_grad():  # weights and statistics a half-precision file holds exactly
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    model.eval()
    with torch.no_grad():
        outputs = list(model(blocks).values())
    out[name] = {"neck": neck, "neck_cfg": cfg,
                 "state": {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()},
                 "outputs": [o.half() for o in outputs]}
torch.save(out, "tests/assets/neck_states_d412d78.pt")
