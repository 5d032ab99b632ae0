"""Probe groups made of training images: does the loss the network trains on ask what the probe asks?

    python projects/routing/train_groups.py runs/v4/data/synth_scenes --split train --out /tmp/train_groups
    python projects/routing/routing_incentive.py runs/v5/<run> --probe /tmp/train_groups --images 50 \\
        --out benchmarks/results/v5/incentive_train/<run>.json

The probe set (``dsic data synth --probe``) draws images whose objects are *all* small or *all*
large, with the probe's rule: every object's sqrt(area) < 32 px, or >= 96 px. This writes the same
layout (``probe_<group>/`` with links to the images, ``annotations/instances_probe_<group>.json``)
from a COCO split, grouped by that rule:

* ``small``: every object's sqrt(area) < ``--small`` px (default 32);
* ``large``: every object's sqrt(area) >= ``--large`` px (default 96; the probe keeps an annotation
  in ``lo <= sqrt(area) < hi``, ``dsic.data.synth.GROUPS``);
* ``mixed``: every other image with at least one object.

On the ``scenes`` set's training split that is 97, 155 and 548 of 800 images; on its validation
split (images the model never trained on), 51 / 88 / 361 of 500.

``--per-group`` images of each (default 50), drawn with ``random.Random(seed)``, so any analysis
of the probe groups (``routing_incentive``, ``control_inputs``, ``path_readout``) can run on
training images too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from collections import defaultdict
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

from dsic.data.synth import GROUPS

SMALL = GROUPS["small"][1][0][1]  # the probe's bounds on sqrt(area): 32 and 96 px
LARGE = GROUPS["large"][1][0][0]


def size_groups(coco: dict, small: float = SMALL, large: float = LARGE) -> dict[str, list[dict]]:
    """``{group: [image records]}`` by the sqrt(area) of each image's objects (module doc)."""
    sizes = defaultdict(list)
    for ann in coco["annotations"]:
        sizes[ann["image_id"]].append(math.sqrt(ann["area"]))
    groups: dict[str, list[dict]] = {"small": [], "large": [], "mixed": []}
    for image in coco["images"]:
        found = sizes.get(image["id"])
        if found:
            group = "small" if max(found) < small else "large" if min(found) >= large else "mixed"
            groups[group].append(image)
    return groups


def write_groups(root: Path, split: str, out: Path, per_group: int = 50, seed: int = 0,
                 small: float = SMALL, large: float = LARGE) -> dict[str, int]:
    """Write the probe layout into ``out``; returns how many images each group had to draw from."""
    coco = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
    groups = size_groups(coco, small, large)
    rng = random.Random(seed)
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for group, images in groups.items():
        if len(images) < per_group:
            raise ValueError(f"{root}: only {len(images)} {group} images in {split}, {per_group} asked for")
        chosen = sorted(rng.sample(images, per_group), key=lambda im: im["id"])
        folder = out / f"probe_{group}"
        folder.mkdir(exist_ok=True)
        for image in chosen:
            link = folder / image["file_name"]
            if not link.exists():
                os.symlink((root / split / image["file_name"]).resolve(), link)
        ids = {image["id"] for image in chosen}
        doc = {"images": chosen, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids],
               "categories": coco["categories"]}
        (out / "annotations" / f"instances_probe_{group}.json").write_text(json.dumps(doc))
    return {group: len(images) for group, images in groups.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a dataset folder: <split>/ and annotations/instances_<split>.json")
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-group", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", type=float, default=SMALL, help="small: every object's sqrt(area) below this (px)")
    parser.add_argument("--large", type=float, default=LARGE, help="large: every object's sqrt(area) at least this (px)")
    args = parser.parse_args(argv)
    try:
        counts = write_groups(args.root, args.split, args.out, args.per_group, args.seed, args.small, args.large)
    except (OSError, ValueError, KeyError) as err:  # a missing file, too few images, a JSON without a field
        print(f"train_groups: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"available": counts, "per_group": args.per_group, "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
