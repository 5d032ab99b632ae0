"""Weights saved before the routing study left the core (commit d412d78) load into the core necks
unchanged, and the necks compute what they computed then (tests/assets/make_neck_states.py)."""

from pathlib import Path

import pytest
import torch

from dsic.backbones.staged import BackboneSpec
from dsic.necks import build_neck

ASSET = Path(__file__).resolve().parent / "assets" / "neck_states_d412d78.pt"
SPEC = BackboneSpec(stage_channels=(8, 8, 8), block_channels=((8,) * 2, (8,) * 3, (8,) * 2),
                    strides=(8, 16, 32), stage_ids=(2, 3, 4))


def saved(name: str) -> dict:
    return torch.load(ASSET, weights_only=True)[name]


def check_saved_neck(name: str, neck: str, neck_cfg: dict) -> None:
    """Builds ``neck`` with ``neck_cfg`` and checks it against the saved case ``name``: the same
    state-dict keys and shapes, the same weights from the same seed, the same outputs."""
    case = saved(name)
    torch.manual_seed(0)
    model = build_neck(neck, SPEC, 8, "pool", **neck_cfg)
    own = model.state_dict()
    assert {k: v.shape for k, v in own.items()} == {k: v.shape for k, v in case["state"].items()}
    for key, value in own.items():  # initialised as then (buffers were moved by the saved forward)
        if key in dict(model.named_parameters()):
            torch.testing.assert_close(value.half(), case["state"][key], rtol=0, atol=0, msg=key)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in case["state"].items()})
    g = torch.Generator().manual_seed(1)
    blocks = [[torch.randn(2, c, 128 // s, 128 // s, generator=g) for c in cs]
              for cs, s in zip(SPEC.block_channels, SPEC.strides)]
    with torch.no_grad():
        outputs = list(model.eval()(blocks).values())
    for out, expected in zip(outputs, case["outputs"], strict=True):
        torch.testing.assert_close(out, expected.float(), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("name", ["dsic", "csg", "dsic_softmax"])
def test_core_neck_weights_from_before_the_split_load_and_compute_the_same(name):
    case = saved(name)
    check_saved_neck(name, case["neck"], case["neck_cfg"])
