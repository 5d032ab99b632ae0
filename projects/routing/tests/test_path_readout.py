"""routing.path_readout: W's small-vs-large difference split into path and channel logits."""

import numpy as np
import pytest
import torch

from dsic.analysis.probe import collect_states, control_units
from routing.models import build_detector
from routing.path_readout import _slope, _state, path_readout, unit_logits


def _model(path_gate=True):
    torch.manual_seed(0)
    model = build_detector("faster_rcnn", "resnet_tiny", "dsic_routing", num_classes=3, min_size=64, max_size=64,
                           out_channels=16, neck_cfg={"csg_path_gate": path_gate}).eval()
    for unit in control_units(model):  # path logits that follow the image enough to measure
        if unit.path is not None:
            torch.nn.init.normal_(unit.path.weight, std=0.5)
    return model


def test_logits_rebuild_the_probes_state_matrix():
    model = _model()
    images = [torch.rand(3, 64, 64) for _ in range(3)]
    logits = unit_logits(model, images)
    units = control_units(model)
    assert len(logits) == len(units) == 4
    W = collect_states(model, images)["W"]  # [N, n_in, n_out]
    for k, (unit, got) in enumerate(zip(units, logits)):
        assert got["z"].shape == (3, unit.n, unit.channels) and got["p"].shape == (3, unit.n)
        assert np.ptp(got["p"]) > 0
        np.testing.assert_allclose(_state(got["z"], got["p"], unit.mode), W[:, :, k], rtol=1e-4, atol=1e-6)


def test_slope_is_the_activations_derivative():
    z, p = np.array([[[0.0, 1.0]]], np.float32), np.array([[0.5]], np.float32)
    expect = np.mean(1 - np.tanh(np.array([0.5, 1.5])) ** 2)
    assert _slope(z, p, "tanh")[0] == pytest.approx(expect, rel=1e-5)
    sig = 1 / (1 + np.exp(-np.array([0.5, 1.5])))
    assert _slope(z, p, "sigmoid")[0] == pytest.approx(np.mean(sig * (1 - sig)), rel=1e-5)


def test_path_readout_over_probe_groups(tmp_path):
    from dsic.data.synth import generate_probe

    generate_probe(tmp_path, count=4, image_size=64, seed=0)
    stats = path_readout(_model(), tmp_path, limit=4)
    assert stats["images"] == {"small": 4, "large": 4}
    for key in ("p_diff", "p_effect", "W_diff", "W_diff_path_only", "W_diff_channels_only", "W_slope"):
        assert np.array(stats[key]).shape == (4, 4), key
    assert np.all(np.array(stats["W_slope"]) >= 0) and np.array(stats["W_slope"]).max() > 0 and np.all(np.array(stats["p_effect"]) >= 0)
    assert np.abs(stats["W_diff_path_only"]).max() > 0
    # without path logits the channel logits route everything and p is zero
    plain = path_readout(_model(path_gate=False), tmp_path, limit=4)
    assert np.all(np.array(plain["p_diff"]) == 0) and np.all(np.array(plain["W_diff_path_only"]) == 0)
    np.testing.assert_allclose(plain["W_diff_channels_only"], plain["W_diff"], atol=1e-5)


def test_a_neck_without_control_units_is_named():
    torch.manual_seed(0)
    fpn = build_detector("faster_rcnn", "resnet_tiny", "fpn", num_classes=3, min_size=64, max_size=64, out_channels=16)
    with pytest.raises(ValueError, match="^path_readout: the model has no CSG control units$"):
        path_readout(fpn, "unused")
