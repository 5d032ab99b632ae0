from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from dsic.backbones import BackboneSpec
from dsic.necks import build_neck
from dsic.necks.csg import CSG
from dsic.necks.isg import StageSelectionGate

SPEC = BackboneSpec(stage_channels=(8, 16, 32, 64), block_channels=((8,) * 3, (16,) * 2, (32,) * 3, (64,) * 2),
                    strides=(4, 8, 16, 32), stage_ids=(1, 2, 3, 4))


def blocks_for(spec, batch=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(batch, c, size // s, size // s, generator=g) for c in cs]
            for cs, s in zip(spec.block_channels, spec.strides)]


@pytest.mark.parametrize("extra,tv_extra", [("pool", LastLevelMaxPool()), ("p6p7", "p6p7")])
def test_fpn_is_numerically_torchvision_fpn(extra, tv_extra):
    torch.manual_seed(0)
    ours = build_neck("fpn", SPEC, 16, extra)
    if tv_extra == "p6p7":
        tv_extra = LastLevelP6P7(16, 16)
    tv = FeaturePyramidNetwork(list(SPEC.stage_channels), 16, extra_blocks=tv_extra)
    state = {("extra_blocks." + k[len("extra_blocks."):] if k.startswith("extra_blocks") else "fpn." + k): v
             for k, v in tv.state_dict().items()}
    ours.load_state_dict(state, strict=True)
    blocks = blocks_for(SPEC)
    out = ours(blocks)
    ref = tv(OrderedDict((str(i), b[-1]) for i, b in enumerate(blocks)))
    assert list(out) == list(ref)
    for k in ref:
        torch.testing.assert_close(out[k], ref[k], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["fpn", "isg", "csg", "dsic"])
@pytest.mark.parametrize("extra,names", [("pool", ["0", "1", "2", "3", "pool"]), ("p6p7", ["0", "1", "2", "3", "p6", "p7"])])
def test_neck_output_levels(name, extra, names):
    neck = build_neck(name, SPEC, 16, extra)
    out = neck(blocks_for(SPEC, size=128))
    assert list(out) == names
    sizes = [128 // s for s in SPEC.strides] + [2, 1]
    for (k, v), size in zip(out.items(), sizes):
        assert v.shape == (2, 16, size, size), k


@pytest.mark.parametrize("name", ["fpn", "isg", "csg", "dsic", "fcfpn", "panet", "fpg", "fpt"])
def test_levels_that_do_not_halve_exactly_keep_their_sizes(name):
    # floor halving (as after patchify stems) while stride-2 convs give ceil: 25 -> 13, not 12
    sizes = [(50, 37), (25, 18), (12, 9), (6, 4)]
    g = torch.Generator().manual_seed(0)
    blocks = [[torch.randn(1, c, *hw, generator=g) for c in cs] for cs, hw in zip(SPEC.block_channels, sizes)]
    out = build_neck(name, SPEC, 16, "none")(blocks)
    assert [tuple(v.shape[-2:]) for v in out.values()] == sizes


@pytest.mark.parametrize("control", ["pooled", "conv"])
def test_isg_coarse_and_fine_selection_match_the_formula(control):
    torch.manual_seed(0)
    isg = StageSelectionGate(channels=4, num_blocks=3, mode="softmax", control=control)
    blocks = [torch.randn(2, 4, 5, 5) for _ in range(3)]
    out = isg(blocks)
    # recompute by hand from the module's parameters
    pool = lambda t: t.mean((2, 3), keepdim=True) + t.amax((2, 3), keepdim=True)
    if control == "conv":  # concat -> conv -> relu -> pool -> conv
        z = pool(torch.relu(torch.nn.functional.conv2d(torch.cat(blocks[:2], 1), isg.squeeze[0].weight)))
    else:  # pool -> concat -> conv -> relu -> conv
        z = torch.relu(isg.squeeze[0](torch.cat([pool(b) for b in blocks[:2]], 1)))
    b = isg.signals(z).view(2, 2, 4, 1, 1)
    b = torch.softmax(b, 1)
    cs = b[:, 0] * blocks[0] + b[:, 1] * blocks[1]
    a = torch.tanh(cs.mean((2, 3), keepdim=True) + cs.amax((2, 3), keepdim=True)).clamp_min(0)
    torch.testing.assert_close(out, a * cs + (1 - a) * blocks[2])
    torch.testing.assert_close(isg.states["b"].sum(1), torch.ones(2, 4))  # softmax competes over blocks
    assert isg.states["a"].shape == (2, 4) and (isg.states["a"] >= 0).all()


def test_isg_single_block_stage_passes_through():
    isg = StageSelectionGate(channels=4, num_blocks=1)
    x = torch.randn(1, 4, 3, 3)
    assert isg([x]) is x and not list(isg.parameters())


def test_csg_softmax_state_matrix_sums_to_one_over_inputs():
    csg = CSG([8, 16, 32, 64], 16, mode="softmax")
    csg([b[-1] for b in blocks_for(SPEC)])
    w = csg.gate_states()["w"]
    assert w.shape == (2, 4, 4)
    torch.testing.assert_close(w.sum(1), torch.ones(2, 4))
    assert [tuple(s.shape) for s in csg.gate_states()["s"]] == [(2, 4, 16, 16), (2, 4, 8, 8), (2, 4, 4, 4), (2, 4, 2, 2)]


def test_csg_without_output_conv_is_the_gated_sum():
    torch.manual_seed(0)
    csg = CSG([8, 16, 32], 8, mode="tanh", select_mode="sigmoid", output_conv=False)
    x = [torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4)]
    out = csg(x)
    m = csg.resample(x)
    lat = [f(v) for f, v in zip(csg.paths.lateral, x)]
    up = lambda t, k: F.interpolate(t, size=lat[k].shape[-2:], mode="bilinear", align_corners=False)
    pool = lambda t: t.mean((2, 3), keepdim=True) + t.amax((2, 3), keepdim=True)
    mag = lambda t: t.abs().mean(1, keepdim=True)
    for k in range(3):
        # descriptors of upsampled paths come from the source level (see the csg docstring)
        pooled = [pool(m[k][i]) if i <= k else pool(lat[i]) for i in range(3)]
        mags = [mag(m[k][i]) if i <= k else up(mag(lat[i]), k) for i in range(3)]
        w, s = csg.control[k](pooled, mags)
        ref = csg.init_gain * sum(w[:, i] * m[k][i] * s[:, i : i + 1] for i in range(3))  # fixed start-up gain
        torch.testing.assert_close(out[k], ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(m[0][1], up(lat[1], 0))
    torch.testing.assert_close(m[2][0], csg.paths.down[0][1](F.relu(csg.paths.down[0][0](lat[0]))))


def test_csg_downsampling_chain_runs_once_per_source():
    csg = CSG([8, 16, 32, 64], 16)
    calls = []
    for chain in csg.paths.down:
        for conv in chain:
            conv.register_forward_hook(lambda m, i, o: calls.append(m))
    csg([b[-1] for b in blocks_for(SPEC)])
    assert len(calls) == 3 + 2 + 1  # sum over sources of (n-1-i); not sum over (i, k) pairs
    assert len(set(map(id, calls))) == 6


def test_different_images_get_different_state_matrices():
    torch.manual_seed(0)
    neck = build_neck("dsic", SPEC, 16, "pool")
    g = torch.Generator().manual_seed(1)
    blocks = blocks_for(SPEC)
    blocks = [[b * torch.tensor([1.0, 3.0]).view(2, 1, 1, 1) + torch.rand(b.shape, generator=g) for b in s]
              for s in blocks]
    neck(blocks)
    w = neck.gate_states()["csg"]["w"]
    assert (w[0] - w[1]).abs().max() > 1e-3
    a = neck.gate_states()["isg"]["a"]
    assert len(a) == 4 and (a[0][0] - a[0][1]).abs().max() > 1e-4


@pytest.mark.parametrize("name", ["isg", "csg", "dsic"])
def test_every_gate_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    neck = build_neck(name, SPEC, 16, "pool")
    out = neck(blocks_for(SPEC))
    sum((v ** 2).mean() for v in out.values()).backward()
    for pname, p in neck.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("mode", ["softmax", "sigmoid", "tanh"])
def test_gate_modes_are_configurable(mode):
    neck = build_neck("dsic", SPEC, 16, "pool", isg_mode=mode, csg_mode=mode, select_mode=mode)
    neck(blocks_for(SPEC))
    w = neck.gate_states()["csg"]["w"]
    if mode == "softmax":
        torch.testing.assert_close(w.sum(1), torch.ones(2, 4))
    elif mode == "sigmoid":
        assert (w > 0).all()


def test_unknown_neck_and_option_are_rejected():
    with pytest.raises(ValueError, match="unknown neck 'fpx'"):
        build_neck("fpx", SPEC)
    with pytest.raises(ValueError, match=r"^neck_cfg: neck 'dsic' got unknown option\(s\) \['isg_mdoe'\] "
                                         r"\(did you mean 'isg_mode'\?\); its options are \['isg_mode', "):
        build_neck("dsic", SPEC, isg_mdoe="tanh")
    with pytest.raises(ValueError, match=r"^neck_cfg: neck 'fpn' takes no options, got \['csg_mode'\]$"):
        build_neck("fpn", SPEC, csg_mode="tanh")
    with pytest.raises(ValueError, match="ISG coarse mode"):
        build_neck("isg", SPEC, isg_mode="relu")


def test_isg_identity_init_starts_as_the_plain_backbone():
    torch.manual_seed(0)
    blocks = [torch.rand(2, 16, 6, 6) for _ in range(3)]  # post-ReLU-like block outputs
    start = StageSelectionGate(16, 3, mode="tanh")(blocks)  # default init: identity
    rel = (start - blocks[-1]).abs().max() / blocks[-1].abs().max()
    assert rel < 0.1  # C' ~ B_n: the last block is neither skipped nor cut off from its gradient
    mean = StageSelectionGate(16, 3, mode="tanh", init="mean")(blocks)
    assert (mean - blocks[-1]).abs().max() / blocks[-1].abs().max() > 0.3  # B^CS takes over
    with pytest.raises(ValueError, match="ISG init"):
        StageSelectionGate(16, 3, init="open")


@pytest.mark.parametrize("mode", ["softmax", "sigmoid", "tanh"])
def test_csg_starts_at_the_scale_of_fcfpn(mode):
    # the fixed gain on P'_k undoes act(w) * act(s), so the initial pyramid is as strong as the ungated sum
    torch.manual_seed(0)
    csg = build_neck("csg", SPEC, 16, None, csg_mode=mode, select_mode=mode)
    fcfpn = build_neck("fcfpn", SPEC, 16, None)
    fcfpn.paths.load_state_dict(csg.csg.paths.state_dict())
    for ours, ref in zip(csg.csg.output, fcfpn.output):
        ref.load_state_dict(ours.state_dict())  # the default gain (input) leaves the output convs unscaled
    blocks = blocks_for(SPEC)
    out, ref = csg(blocks), fcfpn(blocks)
    for k in out:
        ratio = out[k].std() / ref[k].std()
        assert 0.7 < ratio < 1.3, (k, ratio)


def test_csg_control_norm_layer_makes_channel_signals_scale_free():
    torch.manual_seed(0)
    from dsic.necks.csg import ControlUnit

    unit = ControlUnit(3, 8, "tanh", "sigmoid", control_norm="layer")
    pooled = [torch.randn(2, 8, 1, 1) + 2 for _ in range(3)]
    mags = [torch.rand(2, 1, 4, 4) for _ in range(3)]
    w = unit(pooled, mags)[0]
    w10 = unit([10 * p for p in pooled], mags)[0]
    torch.testing.assert_close(w10, w, atol=1e-5, rtol=1e-4)  # only the descriptor's pattern counts
    plain = ControlUnit(3, 8, "tanh", "sigmoid", control_norm="none")
    plain.load_state_dict(unit.state_dict())
    assert (plain([10 * p for p in pooled], mags)[0] - plain(pooled, mags)[0]).abs().max() > 1e-3
    neck = build_neck("dsic", SPEC, 16, "pool", csg_control_norm="layer")
    sum((v ** 2).mean() for v in neck(blocks_for(SPEC)).values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in neck.parameters())
    with pytest.raises(ValueError, match="CSG control_norm"):
        build_neck("csg", SPEC, csg_control_norm="batch")


def test_csg_gain_on_input_is_the_same_function_with_unscaled_output_convs():
    torch.manual_seed(0)
    on_weights = build_neck("csg", SPEC, 16, None, csg_gain="weights")
    torch.manual_seed(0)
    on_input = build_neck("csg", SPEC, 16, None)  # input is the default
    blocks = blocks_for(SPEC)
    for k, v in on_weights(blocks).items():
        torch.testing.assert_close(on_input(blocks)[k], v)
    gain = on_input.csg.init_gain
    for big, plain in zip(on_weights.csg.output, on_input.csg.output):
        torch.testing.assert_close(big.weight, plain.weight * gain)
    with pytest.raises(ValueError, match="CSG gain"):
        build_neck("dsic", SPEC, csg_gain="bias")


def test_running_standardize_uses_running_statistics_in_train_and_eval():
    from dsic.necks.csg import RunningStandardize

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
               for u in build_neck("dsic", SPEC, 16, "pool").modules() if type(u).__name__ == "ControlUnit")
    neck = build_neck("dsic", SPEC, 16, "pool", csg_control_norm="running")
    units = [m for m in neck.modules() if type(m).__name__ == "ControlUnit"]
    assert units and all(u.control_norm == "running" and u.norm is not None for u in units)
    neck.train()
    neck(blocks_for(SPEC, batch=4))
    neck.eval()
    neck(blocks_for(SPEC, batch=2))
    w = neck.gate_states()["csg"]["w"]
    assert not torch.allclose(w[0], w[1])


def test_csg_path_gate_adds_one_logit_per_path_shared_by_its_channels():
    from dsic.necks.csg import ControlUnit

    torch.manual_seed(0)
    unit = ControlUnit(3, 8, "tanh", "sigmoid", control_norm="none", path_gate=True)
    plain = ControlUnit(3, 8, "tanh", "sigmoid", control_norm="none")
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
    neck = build_neck("dsic", SPEC, 16, "pool", csg_path_gate=True)
    sum((v ** 2).mean() for v in neck(blocks_for(SPEC)).values()).backward()
    grads = [p.grad for n, p in neck.named_parameters() if ".path." in n]
    assert len(grads) == 8 and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_csg_path_gate_descriptor_reads_the_logits_linearly_from_the_descriptor():
    from dsic.necks.csg import ControlUnit

    torch.manual_seed(0)
    unit = ControlUnit(3, 8, "tanh", "sigmoid", path_gate="descriptor")
    assert unit.path.in_channels == 24 and unit.path.out_channels == 3
    plain = ControlUnit(3, 8, "tanh", "sigmoid")
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
        ControlUnit(3, 8, "tanh", "sigmoid", path_gate="both")


def test_csg_path_gate_standardized_reads_the_standardised_descriptor():
    from dsic.necks.csg import ControlUnit

    torch.manual_seed(0)
    unit = ControlUnit(3, 8, "tanh", "sigmoid", path_gate="standardized")
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
    from dsic.necks.csg import scale_statistics

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
    from dsic.necks.csg import ControlUnit, scale_statistics

    torch.manual_seed(0)
    unit = ControlUnit(3, 8, "tanh", "sigmoid", path_gate="statistics")
    assert unit.path.in_channels == 9 and unit.path_norm is not None and unit.norm is None
    pooled = [torch.randn(4, 8, 1, 1) for _ in range(3)]
    mags = [torch.rand(4, 1, 4, 4) * (i + 1) for i in range(3)]
    unit.train()
    unit(pooled, mags)  # the first training batch sets the running statistics
    z = unit.path_norm(scale_statistics(mags)).flatten(1)
    assert z.mean(0).abs().max() < 1e-5 and (z.std(0, unbiased=False) - 1).abs().max() < 0.05
    plain = ControlUnit(3, 8, "tanh", "sigmoid")
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
    from dsic.necks.csg import LEAKY_SLOPE, ControlUnit

    pooled = [torch.randn(2, 8, 1, 1) for _ in range(3)]
    mags = [torch.rand(2, 1, 4, 4) for _ in range(3)]
    grads = {}
    for act in ("relu", "leaky_relu"):
        torch.manual_seed(0)
        unit = ControlUnit(3, 8, "tanh", "sigmoid", path_gate=True, hidden_act=act)
        with torch.no_grad():
            unit.channel[0].bias[0] = -1e3  # unit 0: below zero for every input
            unit.channel[0].bias[1] = 1e3  # unit 1: above zero for every input
        w, _ = unit(pooled, mags)
        (w ** 2).sum().backward()
        grads[act] = unit.channel[0].weight.grad[:2].clone()
    assert grads["relu"][0].abs().sum() == 0 and grads["leaky_relu"][0].abs().sum() > 0
    assert grads["relu"][1].abs().sum() > 0 and grads["leaky_relu"][1].abs().sum() > 0
    assert LEAKY_SLOPE == 0.1
    neck = build_neck("dsic", SPEC, 16, "pool", csg_control_act="leaky_relu")
    assert all(isinstance(u.channel[1], torch.nn.LeakyReLU) and u.channel[1].negative_slope == 0.1
               for u in neck.csg.control)
    assert all(isinstance(u.channel[1], torch.nn.ReLU) for u in build_neck("csg", SPEC, 16, "pool").csg.control)
    with pytest.raises(ValueError, match="unknown CSG control_act 'gelu'; expected one of relu, leaky_relu"):
        ControlUnit(3, 8, "tanh", "sigmoid", hidden_act="gelu")


def test_csg_signal_std_sets_the_start_of_the_image_dependent_part():
    """csg_signal_std: the std of the channel signals' last-layer (and path-logit) initial weights;
    the bias, which opens every path at ~1/n, and the selection maps' init do not change."""
    from dsic.necks.csg import ControlUnit

    torch.manual_seed(0)
    wide = ControlUnit(4, 64, "tanh", "sigmoid", path_gate=True, signal_std=0.5)
    torch.manual_seed(0)
    default = ControlUnit(4, 64, "tanh", "sigmoid", path_gate=True)
    assert abs(wide.channel[-1].weight.std().item() - 0.5) < 0.05
    assert abs(default.channel[-1].weight.std().item() - 0.01) < 0.001
    assert abs(wide.path.weight.std().item() - 0.5) < 0.1
    torch.testing.assert_close(wide.channel[-1].bias, default.channel[-1].bias)
    torch.testing.assert_close(wide.select[-1].weight, default.select[-1].weight)
    neck = build_neck("dsic", SPEC, 16, "pool", csg_signal_std=0.2)
    assert abs(neck.csg.control[0].channel[-1].weight.std().item() - 0.2) < 0.05
    for bad in (-1, "0.1", float("nan")):
        with pytest.raises(ValueError, match=f"CSG signal_std must be a number >= 0, got {bad}"):
            ControlUnit(4, 64, "tanh", "sigmoid", signal_std=bad)
