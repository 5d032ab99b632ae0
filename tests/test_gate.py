import math

import pytest
import torch

from dsic.ops import GATE_MODES, Gate, bias_for, gate_activation, global_pool


def test_softmax_mode_sums_to_one_over_paths():
    eps = torch.randn(2, 4, 8, 1, 1)  # [B, paths, C, 1, 1]
    act = gate_activation(eps, "softmax", dim=1)
    torch.testing.assert_close(act.sum(1), torch.ones(2, 8, 1, 1))
    assert (act > 0).all()


def test_tanh_can_be_negative_and_sigmoid_cannot():
    eps = torch.linspace(-3, 3, 13)
    assert (gate_activation(eps, "tanh") < 0).any()
    assert (gate_activation(eps, "sigmoid") > 0).all()
    relu_tanh = gate_activation(eps, "relu_tanh")
    assert (relu_tanh >= 0).all() and (relu_tanh < 1).all()
    torch.testing.assert_close(relu_tanh, torch.tanh(eps).clamp_min(0))


def test_gate_module_is_act_times_transform():
    conv = torch.nn.Conv2d(3, 3, 1)
    g = Gate("tanh", conv)
    eps, x = torch.randn(2, 3, 1, 1), torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(g(eps, x), torch.tanh(eps) * conv(x))
    # a pixel-wise signal broadcasts over channels
    eps_pix = torch.randn(2, 1, 5, 5)
    torch.testing.assert_close(Gate("sigmoid")(eps_pix, x), torch.sigmoid(eps_pix) * x)


def test_tanh_gate_can_close_enhance_and_invert_a_path():
    x = torch.ones(1, 1, 2, 2)
    g = Gate("tanh")
    assert g(torch.zeros(1, 1, 1, 1), x).abs().max() == 0  # closed
    assert g(torch.full((1, 1, 1, 1), -5.0), x).max() < -0.99  # inverted / suppressed


@pytest.mark.parametrize("mode", ["sigmoid", "tanh", "relu_tanh"])
def test_bias_for_inverts_the_activation(mode):
    for target in (0.25, 0.5, 0.8):
        assert math.isclose(gate_activation(torch.tensor(bias_for(mode, target)), mode).item(), target, rel_tol=1e-5)
    assert bias_for("softmax", 0.25) == 0.0


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="unknown gate mode 'relu'"):
        gate_activation(torch.zeros(1), "relu")
    with pytest.raises(ValueError, match="softmax"):
        Gate("nope")
    assert set(GATE_MODES) >= {"softmax", "sigmoid", "tanh"}


def test_global_pool_is_gap_plus_gmp():
    x = torch.arange(8.0).view(1, 2, 2, 2)
    torch.testing.assert_close(global_pool(x).flatten(), torch.tensor([1.5 + 3, 5.5 + 7]))
