"""Classes from the data, category ids with gaps, torchvision COCO checkpoints, init_from reports,
sensible norm defaults and offline ImageNet weights."""

import json
import urllib.error

import pytest
import torch
import torchvision

from dsic.config import ConfigError, load_config
from dsic.data.classes import check_classes, resolve_classes, torchvision_coco_classes
from dsic.data.coco import CocoDetection
from dsic.engine.evaluate import to_coco_results
from dsic.models import build_detector
from dsic.models.builder import format_load_report, load_detector_weights

from .conftest import tiny_overrides
from .helpers import write_coco

GAPPY = [{"id": 5, "name": "car"}, {"id": 9, "name": "bus"}, {"id": 42, "name": "tram"}]


def gappy_dataset(tmp_path, categories=GAPPY):
    images = [{"id": 1, "file_name": "a.png", "width": 32, "height": 32}]
    anns = [{"id": i + 1, "image_id": 1, "category_id": c["id"], "bbox": [2 + i, 2, 10, 10]}
            for i, c in enumerate(categories)]
    return write_coco(tmp_path, images, anns, categories)


def test_num_classes_null_takes_the_categories_and_ids_with_gaps_map_both_ways(tmp_path):
    images, ann = gappy_dataset(tmp_path)
    cfg = load_config(None, [f"data.train.annotations={ann}", f"data.train.images={images}"])
    assert cfg["model"]["num_classes"] is None
    cfg = resolve_classes(cfg, "train")
    assert cfg["model"]["num_classes"] == 3 and cfg["model"]["classes"] == GAPPY
    ds = CocoDetection(images, ann, classes=cfg["model"]["classes"])
    assert ds[0][1]["labels"].tolist() == [1, 2, 3]
    assert [ds.label_to_cat_id(label) for label in (1, 2, 3)] == [5, 9, 42]
    det = {"boxes": torch.tensor([[0.0, 0, 4, 4], [1, 1, 5, 5]]), "labels": torch.tensor([3, 1]),
           "scores": torch.tensor([0.9, 0.8])}
    assert [r["category_id"] for r in to_coco_results(1, det, ds.label_to_cat_id)] == [42, 5]


@pytest.mark.parametrize("given", [2, 10])
def test_a_wrong_num_classes_is_refused_before_training(tmp_path, given):
    images, ann = gappy_dataset(tmp_path)
    cfg = load_config(None, [f"data.train.annotations={ann}", f"data.train.images={images}",
                             f"model.num_classes={given}"])
    with pytest.raises(ConfigError, match=rf"^model.num_classes = {given} but .*ann.json has 3 categories "
                                          r"\(ids \[5, 9, 42\]\); set model.num_classes: 3, or null"):
        check_classes(cfg)


def test_val_categories_outside_the_training_classes_are_refused(tmp_path):
    images, ann = gappy_dataset(tmp_path / "train")
    val_images, val_ann = gappy_dataset(tmp_path / "val", GAPPY + [{"id": 50, "name": "boat"}])
    cfg = load_config(None, [f"data.train.annotations={ann}", f"data.train.images={images}",
                             f"data.val.annotations={val_ann}", f"data.val.images={val_images}"])
    with pytest.raises(ValueError) as err:
        check_classes(cfg)
    assert str(err.value) == (f"{val_ann}: category ids [50] are not among the training set's category ids "
                              "[5, 9, 42] (num_classes 3)")
    ten = [{"id": i, "name": str(i)} for i in range(10)]  # model.classes given: named as such
    images, ann = gappy_dataset(tmp_path / "ten", ten)
    val_images, val_ann = gappy_dataset(tmp_path / "eleven", ten + [{"id": 10, "name": "10"}])
    cfg = load_config(None, [f"data.train.annotations={ann}", f"data.train.images={images}",
                             f"data.val.annotations={val_ann}", f"data.val.images={val_images}"])
    cfg["model"]["classes"] = ten
    with pytest.raises(ValueError) as err:
        check_classes(cfg)
    assert str(err.value) == (f"{val_ann}: category ids [10] are not among the category ids of model.classes [0..9] "
                              "(num_classes 10)")


def test_num_classes_90_on_coco_like_ids_suggests_the_torchvision_label_space(tmp_path):
    cats = [{"id": 1, "name": "person"}, {"id": 13, "name": "stop sign"}, {"id": 85, "name": "clock"}]
    images, ann = gappy_dataset(tmp_path, cats)
    cfg = load_config(None, [f"data.val.annotations={ann}", f"data.val.images={images}", "model.num_classes=90"])
    with pytest.raises(ConfigError, match=r"has 3 categories \(ids \[1, 13, 85\]\); set model.num_classes: 3, or null "
                                          r"to take it from the annotations \(for torchvision's COCO detectors, "
                                          r"whose labels are the category ids: model.classes: torchvision_coco\)$"):
        resolve_classes(cfg, "val")


def test_torchvision_coco_labels_are_category_ids():
    classes = torchvision_coco_classes()
    assert len(classes) == 90 and classes[12] == {"id": 13, "name": "stop sign"}
    assert classes[84] == {"id": 85, "name": "clock"} and classes[11]["name"] == "N/A"


def test_torchvision_label_space_maps_stop_sign_and_clock_and_drops_unused_ids(tmp_path):
    cats = [{"id": 1, "name": "person"}, {"id": 13, "name": "stop sign"}, {"id": 85, "name": "clock"}]
    images, ann = gappy_dataset(tmp_path, cats)
    ds = CocoDetection(images, ann, classes=torchvision_coco_classes())
    assert ds.label_to_cat_id(13) == 13 and ds.label_to_cat_id(85) == 85
    assert ds.label_to_cat_id(12) is None  # "N/A": no such COCO category
    assert ds[0][1]["labels"].tolist() == [1, 13, 85]
    det = {"boxes": torch.rand(3, 4).cumsum(1), "labels": torch.tensor([13, 12, 85]),
           "scores": torch.tensor([0.9, 0.8, 0.7])}
    assert [r["category_id"] for r in to_coco_results(1, det, ds.label_to_cat_id)] == [13, 85]


def test_from_scratch_defaults_follow_torchvision_and_frozen_bn_from_scratch_is_refused(tmp_path):
    model = build_detector("faster_rcnn", "resnet_tiny", "fpn", num_classes=2)
    body = model.backbone.body
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in body.modules())
    assert all(p.requires_grad for p in body.parameters())
    with pytest.raises(ConfigError, match=r"'model.norm' = 'frozen_bn' with no pretrained weights"):
        load_config(None, ["model.norm=frozen_bn"])
    cfg = load_config(None, ["model.norm=frozen_bn", "model.pretrained_backbone=imagenet"])
    assert cfg["model"]["norm"] == "frozen_bn"


def test_imagenet_weights_offline_name_the_cache_file_and_the_config_key(tmp_path, monkeypatch):
    import torchvision.models._api as api

    from dsic.backbones import build_backbone

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(api, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(FileNotFoundError) as err:
        build_backbone("resnet18", "imagenet")
    assert str(err.value) == (
        f"ImageNet weights for resnet18 are not in the torch hub cache ({expected}) and could not be downloaded "
        "(URLError: <urlopen error [Errno -3] Temporary failure in name resolution>); put the file there, or set "
        "model.pretrained_backbone to the path of a local state dict")


def torchvision_standin(tmp_path, arch="fasterrcnn_resnet50_fpn"):
    """A checkpoint of the shapes of torchvision's COCO detector (random weights: nothing downloaded)."""
    torch.manual_seed(0)
    model = getattr(torchvision.models.detection, arch)(weights=None, weights_backbone=None)
    path = tmp_path / f"{arch}.pth"
    torch.save(model.state_dict(), path)
    return path, model.state_dict()


def test_init_from_torchvision_fpn_with_other_classes_reports_and_reinitialises(tmp_path, capsys):
    path, state = torchvision_standin(tmp_path)
    model = build_detector("faster_rcnn", "resnet50", "fpn", num_classes=10, init_from=str(path))
    report = model.load_report
    assert report["reinitialised"] == {
        "roi_heads.box_predictor.bbox_pred.bias": ("364", "44"),
        "roi_heads.box_predictor.bbox_pred.weight": ("364x1024", "44x1024"),
        "roi_heads.box_predictor.cls_score.bias": ("91", "11"),
        "roi_heads.box_predictor.cls_score.weight": ("91x1024", "11x1024"),
    }
    assert report["skipped"] == [] and report["missing"] == []
    counters = [k for k in state if k.endswith("num_batches_tracked")]  # BatchNorm's, meaningless when frozen
    assert len(counters) == 53 and len(report["loaded"]) == len(state) - 4 - 53
    torch.testing.assert_close(model.backbone.neck.fpn.inner_blocks[0][0].weight,
                               state["backbone.fpn.inner_blocks.0.0.weight"])
    # the default norm with init_from is torchvision's: frozen BN, 3 trainable stages
    assert not model.backbone.body.layer1[0].conv1.weight.requires_grad
    assert model.backbone.body.layer4[0].conv1.weight.requires_grad
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"[dsic] init_from {path}: loaded {len(state) - 57} tensors, skipped 0 not in this model, "
                           "re-initialised 4 of another shape (roi_heads.box_predictor.bbox_pred.bias 364 -> 44, ")
    assert line.endswith("0 not in the checkpoint kept at their initialisation")


def test_init_from_into_a_csg_detector_reports_skipped_and_missing_keys():
    tv = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    body = torchvision.models.resnet18()
    state = {k: v for k, v in tv.state_dict().items() if not k.startswith("backbone.body.")}
    state |= {f"backbone.body.{k}": v for k, v in body.state_dict().items() if not k.startswith("fc.")}
    model = build_detector("faster_rcnn", "resnet18", "csg", num_classes=90, norm="bn")
    report = load_detector_weights(model, state)
    assert "backbone.fpn.inner_blocks.0.0.weight" in report["skipped"]
    assert any(k.startswith("backbone.neck.csg.") for k in report["missing"])
    assert "backbone.fpn.inner_blocks.0.0.weight" not in report["loaded"]
    text = format_load_report(report, "x.pth")
    assert f"skipped {len(report['skipped'])} not in this model (backbone.fpn." in text
    assert f", ... ({len(report['skipped']) - 3} more)), re-initialised 0 of another shape," in text


@pytest.mark.parametrize("arch, tv_name", [("faster_rcnn", "fasterrcnn_resnet50_fpn"),
                                           ("mask_rcnn", "maskrcnn_resnet50_fpn"),
                                           ("retinanet", "retinanet_resnet50_fpn"),
                                           ("fcos", "fcos_resnet50_fpn")])
def test_torchvision_coco_checkpoints_load_strictly_with_their_label_space(tmp_path, arch, tv_name):
    from dsic.inference import load_trained

    path, _ = torchvision_standin(tmp_path, tv_name)
    cfg = tmp_path / "tv.yaml"
    cfg.write_text(f"model: {{arch: {arch}, backbone: resnet50, neck: fpn, classes: torchvision_coco, "
                   f"pretrained_backbone: imagenet}}\n")
    model, loaded, _ = load_trained(path, cfg, device="cpu")  # strict: a mismatch would raise
    assert loaded["model"]["num_classes"] == 90 and model.classes[12]["name"] == "stop sign"


def test_eval_of_a_torchvision_style_checkpoint_writes_dataset_category_ids(tiny_synth, tmp_path):
    from dsic.cli import main

    cfg = load_config(None, tiny_overrides(tiny_synth, tmp_path / "run", "model.num_classes=90"))
    torch.manual_seed(0)
    model = build_detector(**{**cfg["model"], "detector_cfg": {"box_score_thresh": 0.0}})
    torch.save(model.state_dict(), tmp_path / "bare.pth")  # a bare state dict, as torchvision's
    overrides = tiny_overrides(tiny_synth, tmp_path / "eval", "model.classes=torchvision_coco",
                               "model.num_classes=null", "model.detector_cfg.box_score_thresh=0.0")
    assert main(["eval", str(tmp_path / "bare.pth"), *overrides, "--evaluator", "pycocotools"]) == 0
    results = json.loads((tmp_path / "eval" / "results_eval.json").read_text())
    gt_ids = {c["id"] for c in json.loads((tiny_synth / "annotations" / "instances_val.json").read_text())["categories"]}
    assert results and {r["category_id"] for r in results} <= gt_ids


def test_eval_with_too_few_classes_exits_2_naming_the_numbers(tiny_synth, tmp_path, capsys):
    from dsic.cli import main

    cfg = load_config(None, tiny_overrides(tiny_synth, tmp_path / "run", "model.num_classes=4"))
    model = build_detector(**cfg["model"])
    torch.save(model.state_dict(), tmp_path / "four.pth")
    overrides = tiny_overrides(tiny_synth, tmp_path / "eval", "model.num_classes=4")
    assert main(["eval", str(tmp_path / "four.pth"), *overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dsic: error: model.num_classes = 4 but ") and "instances_val.json has 10 categories" in err


def test_dsic_train_with_a_wrong_num_classes_exits_2_before_building_anything(tiny_synth, tmp_path, capsys):
    from dsic.cli import main

    assert main(["train", *tiny_overrides(tiny_synth, tmp_path / "run", "model.num_classes=5")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dsic: error: model.num_classes = 5 but ") and "instances_train.json has 10 categories" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("override, line", [
    ("data.train.images=/no/such/train", "data.train.images = '/no/such/train': no such folder"),
    ("data.val.annotations=/no/val.json", "data.val.annotations = '/no/val.json': no such file"),
    ("data.train.annotations=mine/train.json",
     "data.train.annotations = 'mine/train.json': no such file (relative to the current folder {cwd})"),
])
def test_a_data_path_that_does_not_exist_is_named_by_its_key(tiny_synth, tmp_path, capsys, monkeypatch, override,
                                                              line):
    from dsic.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", *tiny_overrides(tiny_synth, tmp_path / "run", override)]) == 2
    assert capsys.readouterr().err == f"dsic: error: {line.format(cwd=tmp_path)} (--debug shows the traceback)\n"
    assert not (tmp_path / "run").exists()


def test_a_training_json_without_categories_is_named(tmp_path):
    ann = tmp_path / "train.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
                               "annotations": [], "categories": []}))
    cfg = load_config(None, [f"data.train.annotations={ann}", f"data.train.images={tmp_path}"])
    for num_classes in (None, 3, 90):
        cfg["model"]["num_classes"] = num_classes
        with pytest.raises(ValueError, match=rf"^{ann}: field 'categories' is empty; the classes are taken from it "
                                             r"\(ids and names\)$"):
            check_classes(cfg)
