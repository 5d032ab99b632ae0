import pytest
import torch
import torchvision
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.misc import FrozenBatchNorm2d

from dsic.models import build_detector, gate_states, load_detector_weights

ARCHS = ["faster_rcnn", "mask_rcnn", "fcos", "retinanet"]
NECKS = ["fpn", "isg", "csg", "dsic"]


def randomize_frozen_bn(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, FrozenBatchNorm2d):
            m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(1 + 0.1 * torch.rand(m.running_var.shape, generator=g))


@torch.no_grad()
def test_fpn_faster_rcnn_r50_loads_torchvision_checkpoint_and_matches_it():
    torch.manual_seed(0)
    # torchvision's fasterrcnn_resnet50_fpn as built with COCO weights (FrozenBN, 3 trainable layers)
    tv = FasterRCNN(_resnet_fpn_extractor(torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d), 3), 91,
                    min_size=320, max_size=320, box_score_thresh=0.0)
    randomize_frozen_bn(tv)
    ours = build_detector("faster_rcnn", "resnet50", "fpn", num_classes=90, min_size=320, max_size=320,
                          norm="frozen_bn", trainable_layers=3, detector_cfg={"box_score_thresh": 0.0})
    ours.load_state_dict(tv.state_dict(), strict=True)
    assert {n for n, p in ours.named_parameters() if p.requires_grad} == {
        n.replace("backbone.fpn.", "backbone.neck.fpn.") for n, p in tv.named_parameters() if p.requires_grad
    }
    tv.eval(), ours.eval()
    images = [torch.rand(3, 320, 288, generator=torch.Generator().manual_seed(1)), torch.rand(3, 256, 320)]
    feats_tv = tv.backbone(torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2)))
    feats = ours.backbone(torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2)))
    for k in feats_tv:
        torch.testing.assert_close(feats[k], feats_tv[k], rtol=0, atol=0)
    out_tv, out = tv(images), ours(images)
    for a, b in zip(out, out_tv):
        assert len(b["boxes"]) > 0
        for k in ("boxes", "scores", "labels"):
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_torchvision_fpn_weights_initialise_a_dsic_detector_non_strictly():
    tv = FasterRCNN(_resnet_fpn_extractor(torchvision.models.resnet18(norm_layer=FrozenBatchNorm2d), 3, ), 91)
    ours = build_detector("faster_rcnn", "resnet18", "isg", num_classes=90)
    report = load_detector_weights(ours, tv.state_dict())
    assert not report["skipped"]
    assert all(k.startswith("backbone.neck.isg.") for k in report["result"].missing_keys)
    torch.testing.assert_close(ours.backbone.neck.fpn.inner_blocks[0][0].weight,
                               tv.backbone.fpn.inner_blocks[0][0].weight)
    torch.testing.assert_close(ours.roi_heads.box_predictor.cls_score.weight, tv.roi_heads.box_predictor.cls_score.weight)


def make_batch(arch):
    images = [torch.rand(3, 128, 112), torch.rand(3, 96, 128)]
    targets = []
    for img, box, label in zip(images, ([8.0, 10, 60, 70], [30.0, 20, 100, 90]), (1, 2)):
        t = {"boxes": torch.tensor([box]), "labels": torch.tensor([label])}
        if arch == "mask_rcnn":
            t["masks"] = torch.zeros(1, *img.shape[1:], dtype=torch.uint8)
            t["masks"][0, int(box[1]):int(box[3]), int(box[0]):int(box[2])] = 1
        targets.append(t)
    return images, targets


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("neck", NECKS)
def test_every_arch_and_neck_trains_one_step_and_predicts(arch, neck):
    torch.manual_seed(0)
    model = build_detector(arch, "resnet18", neck, num_classes=3, norm="bn", trainable_layers=5,
                           min_size=128, max_size=128)
    images, targets = make_batch(arch)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
    model.train()
    losses = model(images, targets)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    gated = [(n, p) for n, p in model.backbone.neck.named_parameters() if ".isg." in f".{n}" or "csg." in n]
    for n, p in gated:
        assert p.grad is not None and p.grad.abs().sum() > 0, n
    opt.step()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert len(out) == 2 and {"boxes", "scores", "labels"} <= set(out[0])
    if arch == "mask_rcnn":
        assert "masks" in out[0]
    states = gate_states(model)
    n_levels = 4 if arch.endswith("rcnn") else 3
    if neck in ("csg", "dsic"):
        assert states["csg"]["w"].shape == (2, n_levels, n_levels)
    if neck in ("isg", "dsic"):
        assert len(states["isg"]["a"]) == n_levels and states["isg"]["a"][0].shape[0] == 2
    if neck == "fpn":
        assert states == {}


def test_custom_anchor_sizes_and_bad_arguments():
    m = build_detector("fcos", "resnet18", "dsic", num_classes=2, anchor_sizes=[4, 8, 16, 32, 64])
    assert m.anchor_generator.sizes == ((4,), (8,), (16,), (32,), (64,))
    with pytest.raises(ValueError, match="one size per pyramid level"):
        build_detector("faster_rcnn", "resnet18", "fpn", num_classes=2, anchor_sizes=[8, 16])
    with pytest.raises(ValueError, match="unknown arch 'yolo'"):
        build_detector("yolo")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_detector("fcos", "resnet18", "fpn", num_classes=2, init_from="missing.pth")


def test_dsic_on_a_non_resnet_backbone():
    model = build_detector("retinanet", "regnet_y_400mf", "dsic", num_classes=2, norm="bn", min_size=128, max_size=128)
    images, targets = make_batch("retinanet")
    losses = model(images, targets)
    sum(losses.values()).backward()
    assert gate_states(model)["csg"]["w"].shape == (2, 3, 3)
