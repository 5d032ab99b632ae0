"""Pre-train a backbone once, on a classification task of its own: object crops (:mod:`dsic.data.crops`).

This machine cannot download ImageNet weights, and a detector trained from scratch in minutes varies
a lot from seed to seed (BENCHMARKS.md, protocol v2). Protocol v3 therefore starts every run from one
committed ``resnet_tiny`` pre-trained here on crops of a synthetic set made with another seed than the
detection set, as the paper's detectors start from ImageNet. The task sees no detection head and no
neck, so it favours no neck.

``pretrain_backbone(...)`` trains the classification network of :func:`dsic.backbones.zoo.build_backbone`
(ResNet family: its ``fc`` is replaced by a K-way layer) with SGD (momentum 0.9, Nesterov), a linear
warm-up then a cosine decay to 0, label smoothing 0.1, random horizontal flips, and torchvision's
ImageNet mean and std for the input, as the detectors' transform uses. A held-out share of the crops
measures accuracy. It writes ``out`` (``{"state_dict": ..., "meta": ...}``, loadable by
``model.pretrained_backbone``, the classifier keys are ignored there) and ``out`` + ``.json`` with the
metrics, the arguments, the commit, the threads and the wall time.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torchvision
from torch import nn

from ..backbones.zoo import TINY, norm_layer, resnet_tiny
from ..data.crops import extract_crops
from ..results import git_commit
from .checkpoint import save_atomic
from .param_groups import parameter_groups

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def classification_network(name: str, norm: str, num_classes: int) -> nn.Module:
    """``name`` (``resnet_tiny``, ``resnet_tiny34`` or a torchvision ResNet) with ``norm`` layers and a
    ``num_classes``-way fc."""
    if name in TINY:
        net = resnet_tiny(norm_layer=norm_layer(norm), layers=TINY[name])
    elif name.startswith(("resnet", "resnext", "wide_resnet")) and hasattr(torchvision.models, name):
        net = getattr(torchvision.models, name)(weights=None, norm_layer=norm_layer(norm))
    else:
        raise ValueError(f"pretrain: backbone {name!r} is not of the ResNet family (resnet_tiny, resnet18, ...)")
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net


def _normalize(batch: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (batch.float() / 255 - mean) / std


@torch.no_grad()
def accuracy(net: nn.Module, crops: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> float:
    was = net.training
    net.eval()
    correct = 0
    for i in range(0, len(crops), batch_size):
        correct += int((net(_normalize(crops[i:i + batch_size])).argmax(1) == labels[i:i + batch_size]).sum())
    net.train(was)
    return correct / max(len(crops), 1)


def _lr(step: int, steps: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))


def pretrain_backbone(images: str | Path, annotations: str | Path, out: str | Path, *, backbone: str = "resnet_tiny",
                      norm: str = "gn", steps: int = 3000, batch_size: int = 64, lr: float = 0.1,
                      weight_decay: float = 5e-4, warmup: int = 100, size: int = 64, min_side: float = 8.0,
                      holdout: float = 0.05, seed: int = 0, threads: int | None = None, log_every: int = 100,
                      log=print) -> dict:
    """Pre-train ``backbone`` on the crops of a COCO-format set; return the metrics (module doc)."""
    if steps < 1 or batch_size < 1 or lr <= 0 or not 0 < holdout < 1:
        raise ValueError(f"pretrain: need steps >= 1, batch_size >= 1, lr > 0 and 0 < holdout < 1, got "
                         f"{steps}, {batch_size}, {lr} and {holdout}")
    if threads:
        torch.set_num_threads(threads)
    start = time.time()
    torch.manual_seed(seed)
    crops, labels, categories = extract_crops(images, annotations, size=size, min_side=min_side, seed=seed)
    order = torch.randperm(len(crops), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(len(crops) * holdout))
    val, train = order[:n_val], order[n_val:]
    log(f"[dsic] pretrain {backbone} ({norm}) on {len(train)} crops of {size} px, {len(categories)} classes, "
        f"{len(val)} held out; {steps} steps of {batch_size}")
    net = classification_network(backbone, norm, len(categories))
    opt = torch.optim.SGD(parameter_groups(net, weight_decay, norm_bias_decay=False), lr=lr, momentum=0.9,
                          nesterov=True)  # no weight decay on biases and norm weights
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    gen = torch.Generator().manual_seed(seed + 1)
    perm, pos, history = train[torch.randperm(len(train), generator=gen)], 0, []
    net.train()
    for step in range(steps):
        if pos + batch_size > len(perm):
            perm, pos = train[torch.randperm(len(train), generator=gen)], 0
        idx = perm[pos:pos + batch_size]
        pos += batch_size
        x = crops[idx]
        flip = torch.rand(len(idx), generator=gen) < 0.5
        x[flip] = x[flip].flip(-1)
        for group in opt.param_groups:
            group["lr"] = _lr(step, steps, lr, warmup)
        loss = loss_fn(net(_normalize(x)), labels[idx])
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"pretrain: non-finite loss at step {step + 1}; lower the lr ({lr})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % log_every == 0 or step == 0:
            history.append({"step": step + 1, "loss": round(value, 4)})
            log(f"[dsic] pretrain step {step + 1}/{steps} loss {value:.4f} "
                f"({(time.time() - start) / (step + 1):.3f} s/step)")
    metrics = {"train_accuracy": round(accuracy(net, crops[train[:2000]], labels[train[:2000]]), 4),
               "heldout_accuracy": round(accuracy(net, crops[val], labels[val]), 4),
               "final_loss": history[-1]["loss"] if history else None}
    record = {"backbone": backbone, "norm": norm, "images": str(images), "annotations": str(annotations),
              "crops": len(crops), "classes": [c["name"] for c in categories],
              "args": {"steps": steps, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
                       "warmup": warmup, "size": size, "min_side": min_side, "holdout": holdout, "seed": seed},
              "metrics": metrics, "history": history, "commit": git_commit(Path(__file__).parent), "threads": torch.get_num_threads(),
              "wall_s": round(time.time() - start, 1), "torch": torch.__version__}
    out = Path(out)
    save_atomic({"state_dict": net.state_dict(), "meta": {k: record[k] for k in ("backbone", "norm", "commit")}}, out)
    Path(f"{out}.json").write_text(json.dumps(record, indent=1) + "\n")
    log(f"[dsic] pretrain done: held-out accuracy {metrics['heldout_accuracy']:.3f}, {record['wall_s']:.0f} s -> {out}")
    return record
