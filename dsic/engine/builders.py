"""Model and data loaders from a config (shared by training, evaluation and the CLI)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, DistributedSampler

from ..data.coco import CocoDetection, collate_fn
from ..data.errors import DatasetError
from ..data.transforms import build_transforms
from ..models import build_detector
from .distributed import DistInfo


def build_model(cfg: dict) -> torch.nn.Module:
    return build_detector(**cfg["model"])


def make_dataset(cfg: dict, split: str) -> CocoDetection:
    data = cfg["data"]
    paths = data[split]
    for key in ("images", "annotations"):
        if not paths.get(key):
            raise DatasetError(f"config: data.{split}.{key} is not set")
    train = split == "train"
    transforms = build_transforms(train, data["train_scales"], cfg["model"]["max_size"], data["hflip_prob"])
    return CocoDetection(paths["images"], paths["annotations"], transforms=transforms,
                         with_masks=data["with_masks"], remove_empty=train)


def make_loader(cfg: dict, split: str, info: DistInfo, dataset: CocoDetection | None = None) -> DataLoader:
    """Training: shuffled per epoch by ``DistributedSampler(seed=train.seed)`` (also with one
    process, so the order only depends on the seed and the epoch); evaluation: in order, sharded."""
    dataset = dataset or make_dataset(cfg, split)
    train = split == "train"
    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=train,
                                 seed=cfg["train"]["seed"], drop_last=False)
    batch = cfg["train"]["batch_size"] if train else cfg["eval"]["batch_size"]
    workers = cfg["data"]["num_workers"]
    return DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers, collate_fn=collate_fn,
                      drop_last=train and len(dataset) >= batch * info.world_size,
                      persistent_workers=False, pin_memory=info.device.type == "cuda")
