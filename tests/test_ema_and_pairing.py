"""EMA of weights, bf16 autocast option, and paired initialisation (benchmark protocol v2)."""

import math

import pytest
import torch
from torch import nn

from dsic.config import ConfigError, load_config
from dsic.engine.ema import ModelEMA
from dsic.models import build_detector


def test_ema_follows_the_ramped_decay_exactly():
    model = nn.Linear(3, 2)
    ema = ModelEMA(model, decay=0.9, tau=2.0)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1 / 2.0))
    assert ema.current_decay() == pytest.approx(d)
    expected = d * start["weight"] + (1 - d) * model.weight
    torch.testing.assert_close(ema.module.weight, expected)
    assert not any(p.requires_grad for p in ema.module.parameters())
    # state round trip
    other = ModelEMA(model, decay=0.9, tau=2.0)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    torch.testing.assert_close(other.module.weight, ema.module.weight)


def test_ema_without_ramp_and_integer_buffers_are_copied():
    model = nn.BatchNorm1d(2)
    ema = ModelEMA(model, decay=0.5, tau=0)
    with torch.no_grad():
        model.weight.fill_(3.0)
    model.num_batches_tracked.fill_(7)
    ema.update(model)
    torch.testing.assert_close(ema.module.weight, torch.full((2,), 2.0))  # 0.5 * 1 + 0.5 * 3
    assert int(ema.module.num_batches_tracked) == 7
    with pytest.raises(ValueError, match="EMA decay must be in"):
        ModelEMA(model, decay=1.0)


def test_training_with_ema_evaluates_and_saves_the_average(tiny_synth, tmp_path):
    from dsic.engine.train import train
    from tests.conftest import tiny_overrides

    cfg = load_config(None, tiny_overrides(tiny_synth, tmp_path / "run", "train.epochs=1", "train.max_iters=3",
                                           "train.ema=true", "train.ema_decay=0.5", "train.ema_tau=0"))
    result = train(cfg)
    final = torch.load(result["final"], weights_only=True)
    last = torch.load(result["checkpoint"], weights_only=False)
    assert final["ema"] is True and last["ema"]["updates"] == 3
    for key, value in final["model"].items():  # final.pth holds the EMA weights, not the last iterate
        torch.testing.assert_close(value, last["ema"]["module"][key])
    differs = [k for k, v in final["model"].items() if v.is_floating_point() and not torch.equal(v, last["model"][k])]
    assert differs, "the EMA weights should differ from the last iterate"


def test_amp_accepts_bf16_and_rejects_unknown_precisions():
    assert load_config(None, ["train.amp=bf16"])["train"]["amp"] == "bf16"
    assert load_config(None, ["train.amp=false"])["train"]["amp"] is False
    with pytest.raises(ConfigError, match=r"'train.amp' = 'fp8', expected one of bf16, fp16"):
        load_config(None, ["train.amp=fp8"])


def _parts(model, prefix):
    return {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}


@pytest.mark.parametrize("other", ["dsic", "fcfpn"])
def test_paired_initialisation_shares_backbone_and_heads_across_necks(other):
    kwargs = {"backbone": "resnet_tiny", "norm": "gn", "trainable_layers": 5, "out_channels": 32, "num_classes": 3,
                  "min_size": 64, "max_size": 64}
    torch.manual_seed(5)
    a = build_detector("faster_rcnn", neck="fpn", **kwargs)
    torch.manual_seed(5)
    b = build_detector("faster_rcnn", neck=other, **kwargs)
    torch.manual_seed(6)
    c = build_detector("faster_rcnn", neck="fpn", **kwargs)
    for prefix in ("backbone.body.", "rpn.", "roi_heads."):
        pa, pb, pc = _parts(a, prefix), _parts(b, prefix), _parts(c, prefix)
        assert pa and pa.keys() == pb.keys()
        assert all(torch.equal(pa[k], pb[k]) for k in pa), prefix  # same seed, other neck: identical
        assert not all(torch.equal(pa[k], pc[k]) for k in pa), prefix  # another seed: different
