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
    m = csg.paths(x)
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
