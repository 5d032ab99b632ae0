"""routing.control_inputs: what CSG's control units see, per probe group."""

import numpy as np
import pytest
import torch
from study_helpers import tiny_detector

from dsic.analysis.probe import control_units, effect_sizes
from routing.control_inputs import control_inputs, unit_inputs


def _model():
    return tiny_detector().eval()


def test_unit_inputs_are_each_units_descriptor_and_hidden_layer():
    model = _model()
    images = [torch.rand(3, 64, 64) for _ in range(3)]
    seen = unit_inputs(model, images)
    units = control_units(model)
    assert len(seen) == len(units) == 4
    for unit, got in zip(units, seen):
        n, c = unit.n, unit.channels
        hidden = unit.channel[0].out_channels
        assert got["descriptor"].shape == (3, n * c) and got["hidden"].shape == (3, hidden)
        # the hidden layer is ReLU(conv(descriptor)), recorded after the in-place ReLU
        d = torch.from_numpy(got["descriptor"]).view(3, n * c, 1, 1)
        expect = torch.relu(unit.channel[0](d)).flatten(1).detach().numpy()
        np.testing.assert_allclose(got["hidden"], expect, rtol=1e-5, atol=1e-6)
        # GAP + GMP of the paths: the output level's own lateral path is among them
        assert got["descriptor"].std(0).max() > 0
        assert got["statistics"].shape == (3, 3 * n) and np.isfinite(got["statistics"]).all()


def test_effect_sizes_are_each_entrys_difference_over_the_pooled_std():
    small = np.array([[1.0, 0.0], [3.0, 0.0]])  # unit 0: mean 2, std 1; unit 1: constant
    large = np.array([[5.0, 0.0], [7.0, 0.0]])  # unit 0: mean 6, std 1
    assert effect_sizes(small, large).max() == pytest.approx(4.0, rel=1e-6)


def test_control_inputs_over_probe_groups(tmp_path):
    from dsic.data.synth import generate_probe

    generate_probe(tmp_path, count=5, image_size=64, seed=0)
    stats = control_inputs(_model(), tmp_path, limit=5)
    assert stats["images"] == {"small": 5, "large": 5}
    for key in ("descriptor_accuracy", "hidden_accuracy", "statistics_accuracy", "hidden_alive", "hidden_separation",
                "statistics_separation"):
        assert len(stats[key]) == 4, key
    assert all(0 <= v <= 1 for key in ("descriptor_accuracy", "hidden_accuracy", "statistics_accuracy", "hidden_alive")
               for v in stats[key])
    assert all(v >= 0 for key in ("hidden_separation", "statistics_separation") for v in stats[key])


def test_a_neck_without_control_units_is_named():
    fpn = tiny_detector("fpn")
    with pytest.raises(ValueError, match="^control_inputs: the model has no CSG control units$"):
        control_inputs(fpn, "unused")
