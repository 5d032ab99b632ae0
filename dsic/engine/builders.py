"""Model, datasets, samplers and loaders from a config (shared by training, evaluation and the CLI)."""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .distributed import DistInfo


def build_model(cfg: dict) -> torch.nn.Module:
    """The detector of ``cfg["model"]`` (:func:`dsic.models.build_detector`)."""
    from ..models import build_detector

    return build_detector(**cfg["model"])


def make_dataset(cfg: dict, split: str):
    """The ``train`` or ``val`` :class:`~dsic.data.coco.CocoDetection` of ``cfg`` (training drops
    images without usable annotations and augments; evaluation keeps every image as it is)."""
    from ..data.coco import CocoDetection
    from ..data.errors import DatasetError
    from ..data.transforms import build_transforms

    data = cfg["data"]
    paths = data[split]
    for key in ("images", "annotations"):
        if not paths.get(key):
            raise DatasetError(f"config: data.{split}.{key} is not set")
    train = split == "train"
    transforms = build_transforms(train, data["train_scales"], cfg["model"]["max_size"], data["hflip_prob"])
    classes = cfg["model"].get("classes")
    return CocoDetection(paths["images"], paths["annotations"], transforms=transforms,
                         with_masks=data["with_masks"], remove_empty=train, verify=data.get("verify_images", True),
                         classes=classes if isinstance(classes, list) else None)


def _mix(*values: int) -> int:
    """A 63-bit seed from a few integers (splitmix64 steps)."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        x = (x ^ (x >> 31)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
    return x >> 1


class SeededSamples(Dataset):
    """Item ``i`` of epoch ``e`` is loaded (and augmented) under torch seed f(seed, e, i).

    Augmentation then depends on neither the worker count, the worker that loads an item, the
    process nor where training resumed, and the main process's RNG stream is left alone. (The
    data transforms draw from torch's global RNG; that is what is seeded here.)
    """

    def __init__(self, dataset, seed: int):
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix(self.seed, self.epoch, index))
            return self.dataset[index]


class TrainSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled per epoch from ``seed``, padded to equal shards; used with
    one process too, so the order depends only on the seed and the epoch) that can skip the first
    ``skip`` samples of this rank's shard once - how a run resumes in the middle of an epoch."""

    def __init__(self, dataset, info: DistInfo, seed: int):
        super().__init__(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed,
                         drop_last=False)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        super().set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return iter(list(super().__iter__())[self.skip:])

    def __len__(self) -> int:
        return self.num_samples - self.skip


class ShardSampler(Sampler):
    """Evaluation: rank r gets the contiguous r-th shard of the dataset, in order, no padding."""

    def __init__(self, dataset, info: DistInfo):
        n = len(dataset)
        per = math.ceil(n / info.world_size) if n else 0
        self.indices = list(range(min(n, info.rank * per), min(n, (info.rank + 1) * per)))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def make_train_loader(cfg: dict, info: DistInfo, dataset=None) -> DataLoader:
    """Shuffled, per-sample-seeded training loader; each rank sees ``train.batch_size`` images per step."""
    dataset = dataset if dataset is not None else make_dataset(cfg, "train")
    seed = cfg["train"]["seed"]
    seeded = SeededSamples(dataset, seed)
    sampler = TrainSampler(seeded, info, seed)
    batch = cfg["train"]["batch_size"]
    from ..data.coco import collate_fn

    generator = torch.Generator()
    generator.manual_seed(_mix(seed, info.rank, 1))
    return DataLoader(seeded, batch_size=batch, sampler=sampler, num_workers=cfg["data"]["num_workers"],
                      collate_fn=collate_fn, drop_last=sampler.num_samples >= batch, generator=generator,
                      persistent_workers=False, pin_memory=info.device.type == "cuda")


def make_eval_loader(cfg: dict, info: DistInfo, dataset=None) -> DataLoader:
    """In-order validation loader, sharded over ranks without padding."""
    dataset = dataset if dataset is not None else make_dataset(cfg, "val")
    from ..data.coco import collate_fn

    return DataLoader(dataset, batch_size=cfg["eval"]["batch_size"], sampler=ShardSampler(dataset, info),
                      num_workers=cfg["data"]["num_workers"], collate_fn=collate_fn,
                      pin_memory=info.device.type == "cuda")


def make_loader(cfg: dict, split: str, info: DistInfo, dataset=None) -> DataLoader:
    """``make_train_loader`` for ``split == "train"``, ``make_eval_loader`` otherwise."""
    if split == "train":
        return make_train_loader(cfg, info, dataset)
    return make_eval_loader(cfg, info, dataset)
