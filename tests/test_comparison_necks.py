"""The comparison necks of the paper's Table 2: FC-FPN, PANet, FPG and FPT."""

from functools import cache

import pytest
import torch
import torch.nn.functional as F

from dsic.backbones import BackboneSpec, build_backbone
from dsic.models import build_detector
from dsic.models.builder import ARCHS
from dsic.necks import build_neck

from .test_models import make_batch
from .test_necks import SPEC, blocks_for

COMPARISON = ["fcfpn", "panet", "fpg", "fpt"]


@cache
def resnet18_spec(stages):
    return build_backbone("resnet18", trainable_layers=None, return_stages=list(stages)).spec


def maps(shapes, batch=2, seed=0):
    """One block per stage: ``shapes`` = [(channels, h, w), ...]."""
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(batch, c, h, w, generator=g)] for c, h, w in shapes]


@pytest.mark.parametrize("name", COMPARISON)
@pytest.mark.parametrize("arch", list(ARCHS))
def test_output_names_shapes_and_strides_for_every_detector(name, arch):
    # the stages and extra levels each detector gives its neck (R-CNNs: C2-C5 + pool; FCOS and
    # RetinaNet: C3-C5 + P6/P7), on the real resnet18 spec; a 256x192 image, strides 4..128
    _, stages, extra = ARCHS[arch]
    spec = resnet18_spec(tuple(stages))
    blocks = maps([(c, 256 // s, 192 // s) for c, s in zip(spec.stage_channels, spec.strides)])
    neck = build_neck(name, spec, 16, extra)
    assert neck.needs_blocks is False
    out = neck(blocks)
    levels = [str(i) for i in range(len(stages))]
    names = levels + (["pool"] if extra == "pool" else ["p6", "p7"])
    strides = list(spec.strides) + ([64] if extra == "pool" else [64, 128])
    assert list(out) == names
    for (key, v), stride in zip(out.items(), strides):
        assert v.shape == (2, 16, -(-256 // stride), -(-192 // stride)), key
        assert torch.isfinite(v).all(), key


@pytest.mark.parametrize("name", ["panet", "fpg", "fpt"])
def test_levels_that_are_not_exact_halves(name):
    # a backbone that floors odd sizes (25 -> 12): stride-2 convs land on 13 and are resized
    spec = BackboneSpec((8, 16, 32), ((8,), (16,), (32,)), (4, 8, 16), (1, 2, 3))
    out = build_neck(name, spec, 16, None)(maps([(8, 25, 19), (16, 12, 9), (32, 6, 4)]))
    assert [tuple(v.shape[-2:]) for v in out.values()] == [(25, 19), (12, 9), (6, 4)]


@pytest.mark.parametrize("name", COMPARISON)
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    neck = build_neck(name, SPEC, 16, "pool")
    out = neck(blocks_for(SPEC, size=96))  # the finest level is 24x24: FPT pools its keys to 16x16
    sum((v ** 2).mean() for v in out.values()).backward()
    for pname, p in neck.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_fcfpn_with_chosen_weights_is_the_hand_computed_sum():
    # identity laterals and output convs, stride-2 convs that subsample (centre tap = identity):
    # P_k = sum_i M_ik with M_ik = subsampled chains (ReLU between chained convs) or bilinear upsampling
    spec = BackboneSpec((4, 4, 4), ((4,), (4,), (4,)), (4, 8, 16), (1, 2, 3))
    neck = build_neck("fcfpn", spec, 4, None)
    eye = torch.eye(4)
    with torch.no_grad():
        for c in [*neck.paths.lateral, *neck.output, *(d for chain in neck.paths.down for d in chain)]:
            c.weight.zero_()
            c.bias.zero_()
            c.weight[:, :, c.weight.shape[2] // 2, c.weight.shape[3] // 2] = eye
    blocks = maps([(4, 16, 16), (4, 8, 8), (4, 4, 4)])
    x0, x1, x2 = (b[-1] for b in blocks)
    out = neck(blocks)

    def up(x, size):
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    def sub(x):
        return x[..., ::2, ::2]

    torch.testing.assert_close(out["0"], x0 + up(x1, 16) + up(x2, 16))
    torch.testing.assert_close(out["1"], sub(x0) + x1 + up(x2, 8))
    torch.testing.assert_close(out["2"], sub(F.relu(sub(x0))) + sub(x1) + x2)


def test_panet_top_down_part_is_fpn_and_bottom_up_follows_the_paper():
    torch.manual_seed(0)
    fpn = build_neck("fpn", SPEC, 16, None)
    panet = build_neck("panet", SPEC, 16, None)
    panet.fpn.load_state_dict(fpn.fpn.state_dict())
    blocks = blocks_for(SPEC)
    p, n = fpn(blocks), panet(blocks)
    torch.testing.assert_close(n["0"], p["0"])  # N_2 = P_2
    expected = p["0"]
    for i in range(1, 4):  # N_{i+1} = ReLU(conv3x3(ReLU(conv3x3_s2(N_i)) + P_{i+1}))
        w_down, b_down = panet.down[i - 1].weight, panet.down[i - 1].bias
        w_fuse, b_fuse = panet.fuse[i - 1].weight, panet.fuse[i - 1].bias
        down = F.relu(F.conv2d(expected, w_down, b_down, stride=2, padding=1))
        expected = F.relu(F.conv2d(down + p[str(i)], w_fuse, b_fuse, padding=1))
        torch.testing.assert_close(n[str(i)], expected)


def test_fpg_connections_by_hand():
    # two levels, two pathways: pathway 1 has across-same, same-up and across-down; pathway 2 also
    # the across-skip from the backbone pathway; every connection reads the ReLU of its source
    torch.manual_seed(0)
    spec = BackboneSpec((8, 16), ((8,), (16,)), (4, 8), (1, 2))
    neck = build_neck("fpg", spec, 8, None, num_pathways=2)
    blocks = maps([(8, 8, 8), (16, 4, 4)])
    b = [F.relu(f(x[-1])) for f, x in zip(neck.lateral, blocks)]

    def up(x):
        return F.interpolate(x, scale_factor=2, mode="nearest")

    prev = b
    for p, path in enumerate(neck.pathways):
        skip = [path.across_skip[i](b[i]) for i in range(2)] if p > 0 else [0, 0]
        f0 = path.across_same[0](prev[0]) + path.across_down[0](up(prev[1])) + skip[0]
        f1 = path.across_same[1](prev[1]) + path.same_up[0](F.relu(f0)) + skip[1]
        prev = [F.relu(f0), F.relu(f1)]
    assert neck.pathways[0].across_skip is None and neck.pathways[1].across_skip is not None
    out = neck(blocks)
    torch.testing.assert_close(out["0"], neck.output[0](prev[0]))
    torch.testing.assert_close(out["1"], neck.output[1](prev[1]))


def test_fpg_pathways_are_configurable():
    small, big = build_neck("fpg", SPEC, 16, None, num_pathways=1), build_neck("fpg", SPEC, 16, None, num_pathways=4)
    assert len(big.pathways) == 4 and sum(p.numel() for p in big.parameters()) > sum(
        p.numel() for p in small.parameters())
    with pytest.raises(ValueError, match="num_pathways must be >= 1"):
        build_neck("fpg", SPEC, 16, None, num_pathways=0)


def reference_attention(att, x, ctx, euclidean):
    """Mixture of softmaxes over the (unpooled) context, written out with cdist / einsum."""
    q = att.q(x).flatten(2).transpose(1, 2)  # [B, HWq, width]
    k = att.k(ctx).flatten(2).transpose(1, 2)
    v = ctx.flatten(2).transpose(1, 2)
    n, d = att.groups, q.shape[-1] // att.groups
    maps_ = []
    for g in range(n):
        qg, kg = q[..., g * d:(g + 1) * d], k[..., g * d:(g + 1) * d]
        sim = -torch.cdist(qg, kg) ** 2 if euclidean else qg @ kg.transpose(1, 2)
        maps_.append(torch.softmax(sim * d ** -0.5, -1))
    pi = torch.softmax(att.mix(k.mean(1)), -1) if att.mix is not None else torch.ones(x.shape[0], 1)
    attn = sum(pi[:, g, None, None] * m for g, m in enumerate(maps_))
    return (attn @ v).transpose(1, 2).reshape(x.shape)


@pytest.mark.parametrize("softmaxes", [1, 2])
def test_fpt_self_and_grounding_attention_by_hand(softmaxes):
    torch.manual_seed(0)
    neck = build_neck("fpt", SPEC, 16, None, softmaxes=softmaxes)
    x, ctx = torch.randn(2, 16, 4, 5), torch.randn(2, 16, 3, 2)
    for att, euclidean in ((neck.self_t[0], False), (neck.ground_t[0], True)):
        if att.mix is not None:
            torch.nn.init.normal_(att.mix.weight)  # a non-uniform mixture
        torch.testing.assert_close(att(x, ctx), reference_attention(att, x, ctx, euclidean))


def test_fpt_attention_pools_keys_and_ignores_their_order():
    torch.manual_seed(0)
    att = build_neck("fpt", SPEC, 16, None, kv_size=4).self_t[0]
    x, ctx = torch.randn(1, 16, 6, 6), torch.randn(1, 16, 8, 8)
    pooled = F.adaptive_avg_pool2d(ctx, (4, 4))
    torch.testing.assert_close(att(x, ctx), reference_attention(att, x, pooled, False))
    small = torch.randn(1, 16, 4, 4)  # already <= kv_size^2 positions: a permutation of the keys changes nothing
    torch.testing.assert_close(att(x, small), att(x, small.flip(-1).flip(-2)))


def test_fpt_rendering_by_hand():
    torch.manual_seed(0)
    rt = build_neck("fpt", SPEC, 16, None).render_t[0]
    high, low = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 8, 8)
    q_att = F.conv2d(high * low.mean((2, 3), keepdim=True), rt.q_conv.weight, rt.q_conv.bias, padding=1)
    v_dow = F.conv2d(low, rt.v_down.weight, rt.v_down.bias, stride=2, padding=1)
    expected = F.conv2d(F.relu(q_att + v_dow), rt.refine.weight, rt.refine.bias, padding=1)
    torch.testing.assert_close(rt(high, low), expected)


def test_fpt_attention_runs_in_float32_under_float16_autocast():
    # the Euclidean logits of large features overflow float16 (max 65504): |k|^2 here is ~1e5
    torch.manual_seed(0)
    att = build_neck("fpt", SPEC, 16, None).ground_t[0]
    x = (300 * torch.randn(1, 16, 4, 4)).half()  # under autocast the FPN levels are float16
    with torch.autocast("cpu", dtype=torch.float16):
        assert att.k(x).float().pow(2).sum(1).max() > 65504
        y = att(x, x)
    assert y.dtype == torch.float16 and torch.isfinite(y).all()
    torch.testing.assert_close(y.float(), att(x.float(), x.float()), rtol=0.02, atol=1.0)
    with pytest.raises(ValueError, match="softmaxes"):
        build_neck("fpt", SPEC, 16, None, softmaxes=3)


# parameter counts at 256 channels on a ResNet-50 spec (stages 1-4, 'pool'); also in docs/necks.md
PARAMS_R50 = {"fpn": 3_344_384, "isg": 5_174_512, "csg": 7_418_192, "dsic": 9_248_320, "fcfpn": 6_884_864,
              "panet": 6_884_864, "fpg": 15_281_664, "fpt": 17_144_846}


def test_parameter_counts_at_256_channels():
    spec = build_backbone("resnet50", trainable_layers=None).spec
    counts = {n: sum(p.numel() for p in build_neck(n, spec, 256, "pool").parameters()) for n in PARAMS_R50}
    assert counts == PARAMS_R50
    assert counts["fpn"] == 3_344_384  # torchvision's FPN on ResNet-50
    assert counts["fcfpn"] > counts["fpn"] and counts["csg"] > counts["fcfpn"]  # CSG = FC-FPN + control units
    assert counts["dsic"] == counts["csg"] + counts["isg"] - counts["fpn"]  # ISG + CSG share nothing else


SMALL_RCNN = {"rpn_pre_nms_top_n_train": 200, "rpn_post_nms_top_n_train": 100, "rpn_pre_nms_top_n_test": 200,
              "rpn_post_nms_top_n_test": 50, "box_batch_size_per_image": 64}


@pytest.mark.parametrize("name", COMPARISON)
@pytest.mark.parametrize("arch", ["faster_rcnn", "retinanet", "fcos"])  # mask_rcnn: same neck input as faster_rcnn
def test_comparison_necks_train_one_step_and_predict(name, arch):
    torch.manual_seed(0)
    model = build_detector(arch, "resnet18", name, num_classes=3, norm="bn", trainable_layers=5, out_channels=64,
                           min_size=128, max_size=128, detector_cfg=SMALL_RCNN if arch == "faster_rcnn" else None)
    images, targets = make_batch(arch)
    losses = model(images, targets)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    neck = model.backbone.neck
    assert all(p.grad is not None for p in neck.parameters())
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and all(o["boxes"].shape[1] == 4 and torch.isfinite(o["boxes"]).all() for o in out)
