import pytest
import torch
import torchvision
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops.misc import FrozenBatchNorm2d

from dsic.backbones import build_backbone, load_classification_weights


def test_resnet50_exposes_every_block_of_every_stage():
    body = build_backbone("resnet50", trainable_layers=None)
    assert body.spec.num_blocks == (3, 4, 6, 3)
    assert body.spec.stage_channels == (256, 512, 1024, 2048)
    assert body.spec.strides == (4, 8, 16, 32)
    outs = body(torch.rand(1, 3, 96, 64))
    assert [len(s) for s in outs] == [3, 4, 6, 3]
    assert [tuple(b.shape) for b in outs[2]] == [(1, 1024, 6, 4)] * 6


def test_return_stages_and_keep_blocks():
    body = build_backbone("resnet18", norm="bn", return_stages=[2, 3, 4])
    assert body.spec.stage_ids == (2, 3, 4) and body.spec.stage_channels == (128, 256, 512)
    body.keep_blocks = False
    outs = body(torch.rand(1, 3, 64, 64))
    assert [len(s) for s in outs] == [1, 1, 1]
    with pytest.raises(ValueError, match="return_stages"):
        build_backbone("resnet18", return_stages=[3, 2])


@pytest.mark.parametrize("trainable", [0, 3, 5])
def test_trainable_layers_freeze_like_torchvision(trainable):
    ours = build_backbone("resnet50", trainable_layers=trainable)
    tv = _resnet_fpn_extractor(torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d), trainable).body
    assert {n: p.requires_grad for n, p in ours.named_parameters()} == {
        n: p.requires_grad for n, p in tv.named_parameters()
    }


def test_resnet101_and_resnext():
    assert build_backbone("resnet101", trainable_layers=None).spec.num_blocks == (3, 4, 23, 3)
    rx = build_backbone("resnext50_32x4d", trainable_layers=None)
    assert rx.spec.stage_channels == (256, 512, 1024, 2048)


@pytest.mark.parametrize("name,blocks,channels", [
    ("regnet_y_400mf", (1, 3, 6, 6), (48, 104, 208, 440)),
    ("convnext_tiny", (3, 3, 9, 3), (96, 192, 384, 768)),
])
def test_non_resnet_backbones(name, blocks, channels):
    body = build_backbone(name, norm="bn", trainable_layers=5)
    assert body.spec.num_blocks == blocks
    assert body.spec.stage_channels == channels
    assert body.spec.strides == (4, 8, 16, 32)


def test_gn_norm_and_unknown_names():
    body = build_backbone("resnet18", norm="gn")
    assert any(isinstance(m, torch.nn.GroupNorm) for m in body.modules())
    with pytest.raises(ValueError, match="unknown norm 'xx'"):
        build_backbone("resnet18", norm="xx")
    with pytest.raises(ValueError, match="unknown backbone 'resnet5'"):
        build_backbone("resnet5")


def test_local_classification_weights_load(tmp_path):
    src = torchvision.models.resnet18()
    path = tmp_path / "r18.pth"
    torch.save(src.state_dict(), path)
    body = build_backbone("resnet18", pretrained=path, norm="frozen_bn")
    torch.testing.assert_close(body.layer3[1].conv2.weight, src.layer3[1].conv2.weight)
    # frozen BN took the statistics too
    torch.testing.assert_close(body.bn1.running_var, src.bn1.running_var)

    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="bad.pth.*missing keys"):
        load_classification_weights(torchvision.models.resnet18(), bad)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_backbone("resnet18", pretrained=tmp_path / "nope.pth")


def test_resnet_tiny_for_cpu_runs():
    body = build_backbone("resnet_tiny", norm="gn", trainable_layers=5)
    assert body.spec.stage_channels == (32, 64, 128, 256) and body.spec.num_blocks == (2, 2, 2, 2)
    assert body.spec.strides == (4, 8, 16, 32)
    with pytest.raises(ValueError, match="^resnet_tiny has no ImageNet weights; use pretrained: null or a local path$"):
        build_backbone("resnet_tiny", pretrained="imagenet")


def test_resnet_tiny34_has_resnet50s_stage_depths():
    body = build_backbone("resnet_tiny34", norm="gn", trainable_layers=5)
    assert body.spec.stage_channels == (32, 64, 128, 256) and body.spec.num_blocks == (3, 4, 6, 3)
    assert body.spec.strides == (4, 8, 16, 32)
    blocks = body(torch.zeros(1, 3, 64, 64))
    assert [len(stage) for stage in blocks] == [3, 4, 6, 3] and blocks[3][-1].shape == (1, 256, 2, 2)
    with pytest.raises(ValueError, match="^resnet_tiny34 has no ImageNet weights"):
        build_backbone("resnet_tiny34", pretrained="imagenet")
