"""The routing study's control unit (routing.control) and its ``dsic_routing`` neck: each option
computes what its docstring says, and the weights saved before the study left the library load."""

import pytest
import torch

from dsic.necks import build_neck
from dsic.necks.csg import ControlUnit
from routing.control import LEAKY_SLOPE, RoutingControlUnit, RunningStandardize, scale_statistics
from tests.test_necks import SPEC, blocks_for


def test_csg_control_norm_layer_makes_channel_signals_scale_free():
    torch.manual_seed(0)

    unit = RoutingControlUnit(num_inputs=3, channels=8, control_norm="layer")
    pooled = [torch.randn(2, 8, 1, 1) + 2 for _ in range(3)]
    mags = [torch.rand(2, 1, 4, 4) for _ in range(3)]
    w = unit(pooled, mags)[0]
    w10 = unit([10 * p for p in pooled], mags)[0]
    torch.testing.assert_close(w10, w, atol=1e-5, rtol=1e-4)  # only the descriptor's pattern counts
    plain = RoutingControlUnit(num_inputs=3, channels=8, control_norm="none")
    plain.load_state_dict(unit.state_dict())
    assert (plain([10 * p for p in pooled], mags)[0] - plain(pooled, mags)[0]).abs().max() > 1e-3
    neck = build_neck("dsic_routing", SPEC, 16, "pool", csg_control_norm="layer")
    sum((v ** 2).mean() for v in neck(blocks_for(SPEC)).values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in neck.parameters())
    with pytest.raises(ValueError, match="CSG control_norm"):
        build_neck("dsic_routing", SPEC, csg_control_norm="batch")


def test_running_standardize_uses_running_statistics_in_train_and_eval():

    norm = RunningStandardize(3, momentum=0.5, eps=0.0)
    first = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 5.0]]).view(2, 3, 1, 1)
    out = norm(first)  # the first batch initialises the statistics
    torch.testing.assert_close(norm.running_mean, torch.tensor([2.0, 2.0, 4.0]))
    torch.testing.assert_close(norm.running_var, torch.tensor([1.0, 0.0, 1.0]))
    torch.testing.assert_close(out[:, 0].flatten(), torch.tensor([-1.0, 1.0]))
    second = torch.tensor([[4.0, 2.0, 4.0], [4.0, 2.0, 4.0]]).view(2, 3, 1, 1)
    norm(second)
    torch.testing.assert_close(norm.running_mean, torch.tensor([3.0, 2.0, 4.0]))  # lerp by momentum
    torch.testing.assert_close(norm.running_var, torch.tensor([0.5, 0.0, 0.5]))
    norm.eval()
    x = torch.randn(5, 3, 1, 1, requires_grad=True)
    y = norm(x)
    torch.testing.assert_close(norm(x[:1]), y[:1])  # batch-size independent
    torch.testing.assert_close(norm.running_mean, torch.tensor([3.0, 2.0, 4.0]))  # frozen in eval
    y.sum().backward()
    assert x.grad is not None and not norm.running_mean.requires_grad


def test_csg_running_control_norm_signals_depend_on_the_image():
    assert all(u.control_norm == "none" and u.norm is None
               for u in build_neck("dsic_routing", SPEC, 16, "pool").modules() if isinstance(u, ControlUnit))
    neck = build_neck("dsic_routing", SPEC, 16, "pool", csg_control_norm="running")
    units = [m for m in neck.modules() if isinstance(m, ControlUnit)]
    assert units and all(u.control_norm == "running" and u.norm is not None for u in units)
    neck.train()
    neck(blocks_for(SPEC, batch=4))
    neck.eval()
    neck(blocks_for(SPEC, batch=2))
    w = neck.gate_states()["csg"]["w"]
    assert not torch.allclose(w[0], w[1])


def test_csg_path_gate_adds_one_logit_per_path_shared_by_its_channels():

    torch.manual_seed(0)
    unit = RoutingControlUnit(num_inputs=3, channels=8, control_norm="none", path_gate=True)
    plain = RoutingControlUnit(num_inputs=3, channels=8, control_norm="none")
    plain.load_state_dict({k: v for k, v in unit.state_dict().items() if not k.startswith("path.")})
    pooled = [torch.randn(2, 8, 1, 1) for _ in range(3)]
    mags = [torch.rand(2, 1, 4, 4) for _ in range(3)]
    with torch.no_grad():
        unit.path.weight.zero_()
        unit.path.bias.copy_(torch.tensor([0.5, 0.0, -0.5]))
    w, _ = unit(pooled, mags)
    w_plain, _ = plain(pooled, mags)
    # act(z + p_i): the path's logit shifts every channel of that path, and only that path
    torch.testing.assert_close(w[:, 1], w_plain[:, 1])
    expected = torch.tanh(torch.atanh(w_plain[:, 0].clamp(-0.999, 0.999)) + 0.5)
    torch.testing.assert_close(w[:, 0], expected, atol=1e-4, rtol=1e-4)
    assert (w[:, 2] < w_plain[:, 2]).all()
    neck = build_neck("dsic_routing", SPEC, 16, "pool", csg_path_gate=True)
    sum((v ** 2).mean() for v in neck(blocks_for(SPEC)).values()).backward()
    grads = [p.grad for n, p in neck.named_parameters() if ".path." in n]
    assert len(grads) == 8 and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_csg_path_gate_descriptor_reads_the_logits_linearly_from_the_descriptor():

    torch.manual_seed(0)
    unit = RoutingControlUnit(num_inputs=3, channels=8, path_gate="descriptor")
    assert unit.path.in_channels == 24 and unit.path.out_channels == 3
    plain = ControlUnit(num_inputs=3, channels=8)
    plain.load_state_dict({k: v for k, v in unit.state_dict().items() if not k.startswith("path.")})
    pooled = [torch.randn(2, 8, 1, 1) for _ in range(3)]
    mags = [torch.rand(2, 1, 4, 4) for _ in range(3)]
    with torch.no_grad():  # path 0's logit = the first descriptor entry (path 0's first channel)
        unit.path.weight.zero_()
        unit.path.bias.zero_()
        unit.path.weight[0, 0] = 1.0
    w, _ = unit(pooled, mags)
    w_plain, _ = plain(pooled, mags)
    torch.testing.assert_close(w[:, 1:], w_plain[:, 1:])
    z = torch.atanh(w_plain[:, 0].clamp(-0.999, 0.999))
    torch.testing.assert_close(w[:, 0], torch.tanh(z + pooled[0][:, :1]), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="^CSG path_gate must be one of false, true, hidden, descriptor, standardized, statistics, scale; got 'both'$"):
        RoutingControlUnit(num_inputs=3, channels=8, path_gate="both")


def test_csg_path_gate_standardized_reads_the_standardised_descriptor():

    torch.manual_seed(0)
    unit = RoutingControlUnit(num_inputs=3, channels=8, path_gate="standardized")
    assert unit.path.in_channels == 24 and unit.norm is None and unit.path_norm is not None
    pooled = [torch.randn(4, 8, 1, 1) * 5 + 3 for _ in range(3)]
    mags = [torch.rand(4, 1, 4, 4) for _ in range(3)]
    unit.train()
    unit(pooled, mags)  # the first training batch sets the running statistics
    z = unit.path_norm(torch.cat(pooled, 1)).flatten(1)
    assert z.mean(0).abs().max() < 1e-5 and (z.std(0, unbiased=False) - 1).abs().max() < 1e-2
    sum(w.sum() for w in unit(pooled, mags)).backward()
    assert unit.path.weight.grad.abs().sum() > 0


def test_scale_statistics_by_hand_scale_free_and_detached():

    torch.manual_seed(0)
    mags = [torch.rand(2, 1, 4, 5, requires_grad=True) for _ in range(3)]
    stats = scale_statistics(mags)
    assert stats.shape == (2, 9, 1, 1) and not stats.requires_grad
    m = torch.cat(mags, 1).detach().flatten(2)
    mean = m.mean(2)
    share = mean.log() - mean.log().mean(1, keepdim=True)
    peak = (m.max(2).values / mean).log()
    spread = (m.std(2, unbiased=False) / mean).log()
    torch.testing.assert_close(stats.flatten(1), torch.cat([share, peak, spread], 1))
    torch.testing.assert_close(scale_statistics([x * 37.0 for x in mags]), stats)  # features' scale drops out
    assert share.sum(1).abs().max() < 1e-5


def test_csg_path_gate_statistics_reads_the_logits_from_standardised_statistics():
    """csg_path_gate: statistics: path logits read linearly from the 3n standardised scale
    statistics of the magnitude maps; the statistics are detached, so w trains the path layer
    through them and not the features they are read from."""

    torch.manual_seed(0)
    unit = RoutingControlUnit(num_inputs=3, channels=8, path_gate="statistics")
    assert unit.path.in_channels == 9 and unit.path_norm is not None and unit.norm is None
    pooled = [torch.randn(4, 8, 1, 1) for _ in range(3)]
    mags = [torch.rand(4, 1, 4, 4) * (i + 1) for i in range(3)]
    unit.train()
    unit(pooled, mags)  # the first training batch sets the running statistics
    z = unit.path_norm(scale_statistics(mags)).flatten(1)
    assert z.mean(0).abs().max() < 1e-5 and (z.std(0, unbiased=False) - 1).abs().max() < 0.05
    plain = ControlUnit(num_inputs=3, channels=8)
    plain.load_state_dict({k: v for k, v in unit.state_dict().items()
                           if not k.startswith(("path.", "path_norm."))})
    unit.eval()
    with torch.no_grad():  # path 1's logit = its energy share, standardised
        unit.path.weight.zero_()
        unit.path.bias.zero_()
        unit.path.weight[1, 1] = 1.0
    w, _ = unit(pooled, mags)
    w_plain, _ = plain.eval()(pooled, mags)
    torch.testing.assert_close(w[:, [0, 2]], w_plain[:, [0, 2]])
    logit = torch.atanh(w_plain[:, 1].clamp(-0.999, 0.999)) + z[:, 1].view(-1, 1, 1, 1)
    torch.testing.assert_close(w[:, 1], torch.tanh(logit), atol=1e-4, rtol=1e-4)
    mags = [m.requires_grad_() for m in mags]
    w, _ = unit(pooled, mags)
    w.sum().backward()  # w reads the magnitude maps only through the detached statistics
    assert unit.path.weight.grad.abs().sum() > 0 and all(m.grad is None for m in mags)


def test_csg_control_act_leaky_keeps_a_unit_below_zero_learning():
    """csg_control_act: a hidden unit negative for every image gets no gradient under relu (it is
    dead) and a share (LEAKY_SLOPE) of it under leaky_relu; a unit above zero learns under both."""

    pooled = [torch.randn(2, 8, 1, 1) for _ in range(3)]
    mags = [torch.rand(2, 1, 4, 4) for _ in range(3)]
    grads = {}
    for act in ("relu", "leaky_relu"):
        torch.manual_seed(0)
        unit = RoutingControlUnit(num_inputs=3, channels=8, path_gate=True, control_act=act)
        with torch.no_grad():
            unit.channel[0].bias[0] = -1e3  # unit 0: below zero for every input
            unit.channel[0].bias[1] = 1e3  # unit 1: above zero for every input
        w, _ = unit(pooled, mags)
        (w ** 2).sum().backward()
        grads[act] = unit.channel[0].weight.grad[:2].clone()
    assert grads["relu"][0].abs().sum() == 0 and grads["leaky_relu"][0].abs().sum() > 0
    assert grads["relu"][1].abs().sum() > 0 and grads["leaky_relu"][1].abs().sum() > 0
    assert LEAKY_SLOPE == 0.1
    neck = build_neck("dsic_routing", SPEC, 16, "pool", csg_control_act="leaky_relu")
    assert all(isinstance(u.channel[1], torch.nn.LeakyReLU) and u.channel[1].negative_slope == 0.1
               for u in neck.csg.control)
    assert all(isinstance(u.channel[1], torch.nn.ReLU) for u in build_neck("csg", SPEC, 16, "pool").csg.control)
    with pytest.raises(ValueError, match="unknown CSG control_act 'gelu'; expected one of relu, leaky_relu"):
        RoutingControlUnit(num_inputs=3, channels=8, control_act="gelu")


def test_csg_signal_std_sets_the_start_of_the_image_dependent_part():
    """csg_signal_std: the std of the channel signals' last-layer (and path-logit) initial weights;
    the bias, which opens every path at ~1/n, and the selection maps' init do not change."""

    torch.manual_seed(0)
    wide = RoutingControlUnit(num_inputs=4, channels=64, path_gate=True, signal_std=0.5)
    torch.manual_seed(0)
    default = RoutingControlUnit(num_inputs=4, channels=64, path_gate=True)
    assert abs(wide.channel[-1].weight.std().item() - 0.5) < 0.05
    assert abs(default.channel[-1].weight.std().item() - 0.01) < 0.001
    assert abs(wide.path.weight.std().item() - 0.5) < 0.1
    torch.testing.assert_close(wide.channel[-1].bias, default.channel[-1].bias)
    torch.testing.assert_close(wide.select[-1].weight, default.select[-1].weight)
    neck = build_neck("dsic_routing", SPEC, 16, "pool", csg_signal_std=0.2)
    assert abs(neck.csg.control[0].channel[-1].weight.std().item() - 0.2) < 0.05
    for bad in (-1, "0.1", float("nan")):
        with pytest.raises(ValueError, match=f"CSG signal_std must be a number >= 0, got {bad}"):
            RoutingControlUnit(num_inputs=4, channels=64, signal_std=bad)


@pytest.mark.parametrize("name", ["dsic_path_running", "dsic_control_layer", "dsic_pathdesc_leaky", "dsic_pathstd",
                                  "dsic_pathstats", "dsic_pathcells"])
def test_study_weights_from_before_the_split_load_into_the_routing_neck_and_compute_the_same(name):
    """Saved by the ``dsic`` neck of d412d78 with the study's options (tests/assets/make_neck_states.py):
    the same keys, the same weights from the same seed, the same outputs."""
    from tests.test_neck_states import check_saved_neck, saved

    check_saved_neck(name, "dsic_routing", saved(name)["neck_cfg"])


def test_every_study_row_builds_its_neck():
    """Every row of the study's tables is a valid config whose neck takes its options: the study's
    options on the routing neck, the core necks' rows without them."""
    from rows import STUDY_OPTIONS, TABLES

    from dsic.config import load_config
    from dsic.protocol import PROTOCOLS

    built = 0
    for protocol, proto in PROTOCOLS.items():
        for _, rows in TABLES.values():
            for name, overrides in rows(protocol).items():
                overrides = [o.replace("{seed}", "0").replace("{runs}", f"runs/{protocol}") for o in overrides]
                model = load_config(proto.base_config, overrides)["model"]
                study = any(option in model["neck_cfg"] for option in STUDY_OPTIONS)
                assert (model["neck"] == "dsic_routing") == study, (protocol, name)
                build_neck(model["neck"], SPEC, 16, "pool", **model["neck_cfg"])
                built += 1
    assert built == 3 + 5 + 12 + 9 + 6 + 2 + 18  # gates v1, v2, v3; scenes v4, v5, v6, v7
