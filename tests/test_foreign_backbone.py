"""DSIC in a detector built on another library's backbone: a timm-like network (``stem``, then
``stages[i].downsample`` and ``stages[i].blocks``), wrapped with a plan, as docs/usage.md shows."""

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.ops import MultiScaleRoIAlign

from dsic.backbones import StagedBackbone
from dsic.models import DetectorBackbone, gate_states
from dsic.necks import build_neck


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.norm = nn.BatchNorm2d(c)

    def forward(self, x):
        return x + torch.relu(self.norm(self.conv(x)))


class Stage(nn.Module):
    def __init__(self, cin, cout, depth, stride):
        super().__init__()
        self.downsample = nn.Conv2d(cin, cout, stride, stride) if stride > 1 or cin != cout else nn.Identity()
        self.blocks = nn.Sequential(*(Block(cout) for _ in range(depth)))

    def forward(self, x):
        return self.blocks(self.downsample(x))


class TimmLike(nn.Module):
    """The layout of timm's ConvNeXt / ResNet-style models: stem, stages[i].{downsample, blocks}, head."""

    def __init__(self, widths=(16, 32, 48, 64), depths=(2, 2, 3, 2)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 4, 4), nn.BatchNorm2d(widths[0]))
        cins = (widths[0], *widths[:-1])
        self.stages = nn.Sequential(*(Stage(ci, co, d, 1 if i == 0 else 2)
                                      for i, (ci, co, d) in enumerate(zip(cins, widths, depths))))
        self.head = nn.Linear(widths[-1], 1000)


def timm_plan(network) -> list[tuple[str, bool]]:
    plan = [("stem", False)]
    for i in range(len(network.stages)):
        plan += [(f"stages.{i}.downsample", False), (f"stages.{i}.blocks", True)]
    return plan


def test_dsic_on_a_timm_like_backbone_trains_predicts_and_exposes_gates():
    torch.manual_seed(0)
    network = TimmLike()
    body = StagedBackbone(network, timm_plan(network), return_stages=[1, 2, 3, 4])
    assert body.spec.block_channels == ((16, 16), (32, 32), (48, 48, 48), (64, 64))
    assert body.spec.strides == (4, 8, 16, 32)
    assert "head.weight" not in body.state_dict() and "stages.2.blocks.2.conv.weight" in body.state_dict()
    neck = build_neck("dsic", body.spec, out_channels=32, extra="pool")
    roi_pool = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=7, sampling_ratio=2)
    model = FasterRCNN(DetectorBackbone(body, neck), num_classes=3, min_size=128, max_size=128,
                       box_roi_pool=roi_pool, box_score_thresh=0.0)
    images = [torch.rand(3, 128, 112), torch.rand(3, 96, 128)]
    targets = [{"boxes": torch.tensor([[8.0, 10, 60, 70]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[30.0, 20, 100, 90]]), "labels": torch.tensor([2])}]
    losses = model(images, targets)
    sum(losses.values()).backward()
    assert network.stages[2].blocks[0].conv.weight.grad is not None
    assert neck.isg.stages[2].signals.weight.grad is not None
    model.eval()
    with torch.no_grad():
        dets = model(images)
    assert len(dets) == 2 and dets[0]["boxes"].shape[1] == 4
    states = gate_states(model)
    assert [a.shape[1] for a in states["isg"]["a"] if a is not None] == [16, 32, 48, 64]
    assert states["csg"]["w"].shape == (2, 4, 4)
