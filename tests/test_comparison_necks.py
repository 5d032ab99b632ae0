import pytest
import torch
import torch.nn.functional as F

from dsic.backbones import BackboneSpec, build_backbone
from dsic.models import build_detector
from dsic.necks import build_neck

from .test_models import make_batch
from .test_necks import SPEC, blocks_for

COMPARISON = ["fcfpn", "panet", "fpg", "fpt"]


@pytest.mark.parametrize("name", COMPARISON)
@pytest.mark.parametrize("extra,names", [("pool", ["0", "1", "2", "3", "pool"]),
                                         ("p6p7", ["0", "1", "2", "3", "p6", "p7"])])
def test_output_levels_and_strides(name, extra, names):
    out = build_neck(name, SPEC, 16, extra)(blocks_for(SPEC, size=128))
    assert list(out) == names
    for (key, v), size in zip(out.items(), [32, 16, 8, 4, 2, 1]):
        assert v.shape == (2, 16, size, size), key


@pytest.mark.parametrize("name", COMPARISON)
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    neck = build_neck(name, SPEC, 16, "pool")
    out = neck(blocks_for(SPEC))
    sum((v ** 2).mean() for v in out.values()).backward()
    for pname, p in neck.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


def test_fcfpn_is_the_plain_sum_of_all_resampled_paths():
    torch.manual_seed(0)
    spec = BackboneSpec((8, 16), ((8, 8), (16, 16)), (4, 8), (1, 2))
    neck = build_neck("fcfpn", spec, 8, None)
    blocks = blocks_for(spec, size=32)
    out = neck(blocks)
    lat = [f(b[-1]) for f, b in zip(neck.paths.lateral, blocks)]
    p0 = lat[0] + F.interpolate(lat[1], size=(8, 8), mode="bilinear", align_corners=False)
    p1 = neck.paths.down[0][0](lat[0]) + lat[1]
    torch.testing.assert_close(out["0"], neck.output[0](p0))
    torch.testing.assert_close(out["1"], neck.output[1](p1))


def test_panet_top_down_part_is_fpn_and_bottom_up_follows_the_paper():
    torch.manual_seed(0)
    fpn = build_neck("fpn", SPEC, 16, None)
    panet = build_neck("panet", SPEC, 16, None)
    panet.fpn.load_state_dict(fpn.fpn.state_dict())
    blocks = blocks_for(SPEC)
    p, n = fpn(blocks), panet(blocks)
    torch.testing.assert_close(n["0"], p["0"])  # N_2 = P_2
    n1 = F.relu(panet.fuse[0](F.relu(panet.down[0](p["0"])) + p["1"]))
    torch.testing.assert_close(n["1"], n1)


def test_fpg_pathways_are_configurable():
    small, big = build_neck("fpg", SPEC, 16, None, num_pathways=1), build_neck("fpg", SPEC, 16, None, num_pathways=4)
    assert len(big.pathways) == 4 and sum(p.numel() for p in big.parameters()) > sum(
        p.numel() for p in small.parameters())
    with pytest.raises(ValueError, match="num_pathways must be >= 1"):
        build_neck("fpg", SPEC, 16, None, num_pathways=0)


def test_fpt_attention_is_translation_invariant_in_the_keys():
    # permuting key/value positions must not change the self-attention output
    torch.manual_seed(0)
    neck = build_neck("fpt", SPEC, 16, None, kv_size=4)
    att = neck.self_t[3]
    x = torch.randn(1, 16, 2, 2)
    ctx = torch.randn(1, 16, 2, 2)
    torch.testing.assert_close(att(x, ctx), att(x, ctx.flip(-1).flip(-2)))


# parameter counts at 256 channels on a ResNet-50 spec (stages 1-4, 'pool'); also in docs/necks.md
PARAMS_R50 = {"fpn": 3_344_384, "isg": 5_174_512, "csg": 7_418_192, "dsic": 9_248_320, "fcfpn": 6_884_864,
              "panet": 6_884_864, "fpg": 10_563_072, "fpt": 16_886_912}


def test_parameter_counts_at_256_channels():
    spec = build_backbone("resnet50", trainable_layers=None).spec
    counts = {n: sum(p.numel() for p in build_neck(n, spec, 256, "pool").parameters()) for n in PARAMS_R50}
    assert counts == PARAMS_R50
    assert counts["fpn"] == 3_344_384  # torchvision's FPN on ResNet-50
    assert counts["fcfpn"] > counts["fpn"] and counts["csg"] > counts["fcfpn"]  # CSG = FC-FPN + control units
    assert counts["dsic"] == counts["csg"] + counts["isg"] - counts["fpn"]  # ISG + CSG share nothing else


@pytest.mark.parametrize("name", COMPARISON)
@pytest.mark.parametrize("arch", ["faster_rcnn", "retinanet"])
def test_comparison_necks_in_detectors(name, arch):
    torch.manual_seed(0)
    model = build_detector(arch, "resnet18", name, num_classes=3, norm="bn", trainable_layers=5,
                           min_size=128, max_size=128)
    images, targets = make_batch(arch)
    losses = model(images, targets)
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and out[0]["boxes"].shape[1] == 4
