import hashlib

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torchvision.transforms import v2

from dsic.data.coco import CocoDetection, collate_fn, rle_string_counts
from dsic.data.synth import generate
from dsic.data.transforms import DetectionTransform, build_transforms

from .helpers import write_coco

IMAGES = [{"id": 10, "file_name": "a.png", "width": 20, "height": 10},
          {"id": 11, "file_name": "b.png", "width": 8, "height": 8}]


def rle_of(mask: np.ndarray, compressed: bool):
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    if compressed:
        rle["counts"] = rle["counts"].decode()
        return rle
    # uncompressed: column-major run lengths starting with zeros
    flat = mask.flatten(order="F")
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


@pytest.fixture
def dataset(tmp_path):
    m_rle = np.zeros((10, 20), np.uint8)
    m_rle[2:5, 3:9] = 1
    m_unc = np.zeros((10, 20), np.uint8)
    m_unc[6:9, 10:12] = 1
    anns = [
        {"id": 1, "image_id": 10, "category_id": 7, "bbox": [2, 1, 4, 3], "area": 12,
         "segmentation": [[2, 1, 6, 1, 6, 4, 2, 4]]},
        {"id": 2, "image_id": 10, "category_id": 3, "bbox": [3, 2, 6, 3], "area": 18,
         "segmentation": rle_of(m_rle, compressed=True)},
        {"id": 3, "image_id": 10, "category_id": 3, "bbox": [10, 6, 2, 3], "area": 6,
         "segmentation": rle_of(m_unc, compressed=False)},
        {"id": 4, "image_id": 10, "category_id": 3, "bbox": [0, 0, 20, 10], "area": 200, "iscrowd": 1,
         "segmentation": rle_of(np.ones((10, 20), np.uint8), compressed=True)},
        {"id": 5, "image_id": 10, "category_id": 7, "bbox": [15, 5, 10, 10], "area": 25,
         "segmentation": [[15, 5, 20, 5, 20, 10, 15, 10]]},  # partly outside: clipped
    ]
    img_dir, ann = write_coco(tmp_path, IMAGES, anns)
    return CocoDetection(img_dir, ann, with_masks=True), m_rle, m_unc


def test_categories_outside_the_given_classes_are_named(dataset):
    ds = dataset[0]
    with pytest.raises(ValueError) as err:
        CocoDetection(ds.images_dir, ds.ann_file, classes=[{"id": 3, "name": "cat"}])
    assert str(err.value) == (f"{ds.ann_file}: category ids [7] are not among the model's category ids [3] "
                              "(num_classes 1)")


def test_targets_boxes_labels_masks(dataset):
    ds, m_rle, m_unc = dataset
    assert ds.cat_ids == [3, 7] and ds.class_names == ["cat", "dog"] and ds.label_to_cat_id(2) == 7
    image, t = ds[0]
    assert image.shape == (3, 10, 20) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert t["image_id"].item() == 10
    # the crowd annotation is dropped; category ids 7 and 3 become labels 2 and 1
    assert t["labels"].tolist() == [2, 1, 1, 2]
    torch.testing.assert_close(t["boxes"], torch.tensor([[2.0, 1, 6, 4], [3, 2, 9, 5], [10, 6, 12, 9],
                                                         [15, 5, 20, 10]]))
    assert t["masks"].shape == (4, 10, 20) and t["masks"].dtype == torch.uint8
    assert t["masks"][0, 1:4, 2:6].all()  # polygon interior
    assert torch.equal(t["masks"][1], torch.from_numpy(m_rle))
    assert torch.equal(t["masks"][2], torch.from_numpy(m_unc))
    assert t["iscrowd"].tolist() == [0, 0, 0, 0] and t["iscrowd"].dtype == torch.int64
    assert t["area"].tolist() == [12, 18, 6, 25] and t["area"].dtype == torch.float32
    assert t["image_id"].dtype == torch.int64 and t["image_id"].dim() == 0


def test_keep_crowd_and_label_range(dataset):
    ds, *_ = dataset
    kept = CocoDetection(ds.images_dir, ds.ann_file, with_masks=True, keep_crowd=True)
    _, t = kept[0]
    assert t["iscrowd"].tolist() == [0, 0, 0, 1, 0] and t["masks"][3].sum() == 200
    with pytest.raises(ValueError, match="label 0 is outside 1..2"):
        ds.label_to_cat_id(0)
    with pytest.raises(ValueError, match="label 3 is outside 1..2"):
        ds.label_to_cat_id(3)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_grayscale_rgba_and_palette_images_become_rgb(tmp_path, mode):
    img_dir, ann = write_coco(tmp_path, IMAGES[1:], [])
    Image.new(mode, (8, 8), 200).save(img_dir / "b.png")
    image, _ = CocoDetection(img_dir, ann)[0]
    assert image.shape == (3, 8, 8) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1


def test_compressed_rle_counts_are_read_like_pycocotools():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = (rng.random((int(rng.integers(1, 30)), int(rng.integers(1, 30)))) < rng.random()).astype(np.uint8)
        counts = rle_string_counts(mask_utils.encode(np.asfortranarray(mask))["counts"].decode())
        assert counts == rle_of(mask, compressed=False)["counts"]


def test_image_without_annotations_and_remove_empty(dataset, tmp_path):
    ds, *_ = dataset
    _, t = ds[1]
    assert t["boxes"].shape == (0, 4) and t["labels"].shape == (0,) and t["masks"].shape == (0, 8, 8)
    kept = CocoDetection(ds.images_dir, ds.ann_file, remove_empty=True)
    assert kept.ids == [10] and ds.ids == [10, 11]
    images, targets = collate_fn([ds[0], ds[1]])
    assert len(images) == 2 and targets[1]["image_id"].item() == 11


def test_degenerate_box_is_dropped_with_a_warning(tmp_path):
    anns = [{"id": 1, "image_id": 10, "category_id": 3, "bbox": [25, 2, 4, 4]},  # right of the image
            {"id": 2, "image_id": 10, "category_id": 3, "bbox": [1, 1, 0, 5]},   # zero width
            {"id": 3, "image_id": 10, "category_id": 3, "bbox": [1, 1, 3, 3]}]
    with pytest.warns(UserWarning, match=r"dropped 2 degenerate box\(es\) \(empty inside their image\) from "
                                         r"training and evaluation alike: annotation\(s\) 1, 2$"):
        ds = CocoDetection(*write_coco(tmp_path, IMAGES[:1], anns))
    _, t = ds[0]
    assert t["boxes"].tolist() == [[1.0, 1.0, 4.0, 4.0]] and ds.dropped_boxes == 2
    assert [a["id"] for a in ds.coco.dataset["annotations"]] == [3]  # the evaluation ground truth too


def test_remove_empty_also_skips_crowd_only_and_outside_only_images(tmp_path):
    images = [dict(IMAGES[1], id=i, file_name=f"{i}.png") for i in (1, 2, 3)]
    anns = [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 3, 3], "iscrowd": 1},
            {"id": 2, "image_id": 2, "category_id": 3, "bbox": [8, 1, 3, 3]},  # starts at the right edge
            {"id": 3, "image_id": 3, "category_id": 3, "bbox": [-2, -2, 3, 3]}]  # clipped to [0, 0, 1, 1]
    ds = CocoDetection(*write_coco(tmp_path, images, anns), remove_empty=True)
    assert ds.ids == [3]
    assert ds[0][1]["boxes"].tolist() == [[0.0, 0.0, 1.0, 1.0]]


def test_flip_and_resize_move_boxes_and_masks():
    image = torch.rand(3, 10, 20)
    masks = torch.zeros(1, 10, 20, dtype=torch.uint8)
    masks[0, 2:5, 1:4] = 1
    target = {"boxes": torch.tensor([[1.0, 2, 4, 5]]), "labels": torch.tensor([1]), "masks": masks}
    flipped, t = build_transforms(True, hflip_prob=1.0)(image, target)
    torch.testing.assert_close(flipped, image.flip(-1))
    torch.testing.assert_close(t["boxes"], torch.tensor([[16.0, 2, 19, 5]]))
    assert t["masks"][0, 2:5, 16:19].all() and t["masks"].sum() == 9
    resized, t = build_transforms(True, scales=[20], max_size=100, hflip_prob=0.0)(image, target)
    assert resized.shape == (3, 20, 40)
    torch.testing.assert_close(t["boxes"], torch.tensor([[2.0, 4, 8, 10]]))
    same, t = build_transforms(False)(image, target)
    assert same is image and t is target


def test_resize_respects_max_size():
    out, _ = build_transforms(True, scales=[100], max_size=60, hflip_prob=0)(torch.rand(3, 10, 30),
                                                                           {"boxes": torch.zeros(0, 4),
                                                                            "labels": torch.zeros(0)})
    assert out.shape == (3, 20, 60)


def test_eval_resize_and_crop_drop_degenerate_boxes():
    image = torch.rand(3, 10, 20)
    target = {"boxes": torch.tensor([[1.0, 2, 4, 5], [12, 0, 14, 3]]), "labels": torch.tensor([1, 2]),
              "area": torch.tensor([9.0, 6]), "iscrowd": torch.tensor([0, 0])}
    out, t = build_transforms(False, scales=[99], max_size=100, eval_scale=5)(image, target)
    assert out.shape == (3, 5, 10)
    torch.testing.assert_close(t["boxes"], target["boxes"] / 2)
    _, t = DetectionTransform([v2.CenterCrop((10, 10))])(image, target)  # keeps x in 5..15
    assert t["boxes"].tolist() == [[7.0, 0.0, 9.0, 3.0]] and t["labels"].tolist() == [2]
    assert t["area"].tolist() == [6.0] and t["iscrowd"].tolist() == [0]


def test_transforms_are_deterministic_given_the_torch_seed():
    image = torch.rand(3, 30, 40)
    target = {"boxes": torch.tensor([[1.0, 2, 14, 25]]), "labels": torch.tensor([1])}
    aug = build_transforms(True, scales=[16, 20, 24, 28, 32], max_size=64)

    def run(seed):
        torch.manual_seed(seed)
        return [aug(image, target) for _ in range(8)]

    first, again, other = run(0), run(0), run(1)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1]["boxes"], b[1]["boxes"]) for a, b in zip(first, again))
    assert any(a[0].shape != b[0].shape or not torch.equal(a[0], b[0]) for a, b in zip(first, other))


def test_synth_is_deterministic_multiscale_and_consistent(tmp_path):
    stats = generate(tmp_path / "a", num_train=60, num_val=4, image_size=320, seed=3)
    generate(tmp_path / "b", num_train=60, num_val=4, image_size=320, seed=3)
    for split in ("train", "val"):
        ja = (tmp_path / "a" / "annotations" / f"instances_{split}.json").read_bytes()
        jb = (tmp_path / "b" / "annotations" / f"instances_{split}.json").read_bytes()
        assert hashlib.sha256(ja).digest() == hashlib.sha256(jb).digest()
    assert (tmp_path / "a/train/000007.jpg").read_bytes() == (tmp_path / "b/train/000007.jpg").read_bytes()
    train = stats["train"]
    for bucket in ("small", "medium", "large"):
        assert train[f"{bucket}_fraction"] >= 0.25, train
    assert train["buckets_balanced"] and train["objects"] >= 200 and train["min_visible_fraction"] > 0.5
    assert sum(train["per_class"].values()) == train["objects"] and min(train["per_class"].values()) > 0
    assert "parameters" in (tmp_path / "a/README.txt").read_text()
    ds = CocoDetection(tmp_path / "a/train", tmp_path / "a/annotations/instances_train.json", with_masks=True)
    assert len(ds.cat_ids) == 10 and len(ds.class_names) == len(set(ds.class_names)) == 10
    for index in range(5):
        _, t = ds[index]
        assert len(t["boxes"]) >= 1 and t["masks"].shape[1:] == (320, 320)
        torch.testing.assert_close(t["area"], t["masks"].sum((1, 2)).float())
        for box, mask in zip(t["boxes"], t["masks"]):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            expected = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
            torch.testing.assert_close(box, expected)


def test_synth_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="max_objects >= 3"):
        generate(tmp_path, num_train=1, num_val=0, max_objects=2)
