"""projects/routing/train_groups.py: probe groups drawn from training images by object size."""

import json
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # projects/routing


def _script() -> dict:
    return runpy.run_path(str(ROOT / "train_groups.py"))


def _dataset(root: Path, sides: dict[int, list[float]]) -> None:
    """A COCO split 'train' whose image i holds objects of the given sqrt(area) (none: no annotation)."""
    (root / "train").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, anns = [], []
    for image_id, sizes in sides.items():
        name = f"{image_id:06d}.jpg"
        (root / "train" / name).write_bytes(b"not decoded here")
        images.append({"id": image_id, "file_name": name, "width": 256, "height": 256})
        anns += [{"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "bbox": [0, 0, 2 * s, 2 * s],
                  "area": s * s, "iscrowd": 0} for s in sizes]  # the box is larger than the object: area decides
    doc = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}]}
    (root / "annotations" / "instances_train.json").write_text(json.dumps(doc))


def test_images_are_grouped_by_the_probe_rule_on_all_their_objects(tmp_path):
    sides = {1: [10, 31], 2: [97, 200], 3: [10, 200], 4: [32], 5: [95.9], 6: [], 7: [20], 8: [96, 120]}
    _dataset(tmp_path / "d", sides)
    counts = _script()["write_groups"](tmp_path / "d", "train", tmp_path / "g", per_group=2)
    assert counts == {"small": 2, "large": 2, "mixed": 3}  # the probe's bounds: 32 is not small, 96 is large (8); 6 has no object
    for group, ids in {"small": {1, 7}, "large": {2, 8}}.items():
        doc = json.loads((tmp_path / "g" / "annotations" / f"instances_probe_{group}.json").read_text())
        assert {im["id"] for im in doc["images"]} == ids
        assert {a["image_id"] for a in doc["annotations"]} == ids
        assert sorted(p.name for p in (tmp_path / "g" / f"probe_{group}").iterdir()) == [f"{i:06d}.jpg" for i in sorted(ids)]
        assert (tmp_path / "g" / f"probe_{group}" / f"{min(ids):06d}.jpg").resolve().parent == (tmp_path / "d" / "train").resolve()
    mixed = json.loads((tmp_path / "g" / "annotations" / "instances_probe_mixed.json").read_text())
    assert {im["id"] for im in mixed["images"]} < {3, 4, 5} and len(mixed["images"]) == 2


def test_too_few_images_in_a_group_is_one_clear_error(tmp_path):
    _dataset(tmp_path / "d", {1: [10], 2: [200], 3: [10, 200]})
    with pytest.raises(ValueError, match=r": only 1 small images in train, 2 asked for"):
        _script()["write_groups"](tmp_path / "d", "train", tmp_path / "g", per_group=2)


def test_a_missing_dataset_is_one_line_and_exit_code_2(tmp_path, capsys):
    main = _script()["main"]
    assert main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train_groups: error: ") and "instances_train.json" in err and err.count("\n") == 1
