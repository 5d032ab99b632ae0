"""bf16 inference keeps a detector's coordinates and scores in fp32: for every detector family, the
detections returned under bf16 autocast are fp32 and equal the fp32 post-processing (box decoding,
scores, NMS, mask pasting) of the same head outputs cast to fp32; the anchors and proposals are fp32."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import maskrcnn_inference

from dsic.engine.precision import EmulatedBf16, autocast, fp32_outputs, to_fp32
from dsic.models import build_detector

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = {"faster_rcnn": 64, "mask_rcnn": 64, "fcos": 256, "retinanet": 256}  # P7 of a dense head > 1 px
RCNN = {"rpn_pre_nms_top_n_test": 50, "rpn_post_nms_top_n_test": 20, "box_score_thresh": 0.0,
        "box_detections_per_img": 20}
DENSE = {"score_thresh": 0.0, "detections_per_img": 20, "topk_candidates": 50}


def detector(arch):
    torch.manual_seed(0)
    return build_detector(arch=arch, backbone="resnet_tiny", neck="fpn", num_classes=3, min_size=SIZE[arch],
                          max_size=SIZE[arch], pretrained_backbone=None, out_channels=32,
                          detector_cfg=RCNN if arch.endswith("rcnn") else DENSE).eval()


def recorded(model, names):
    """Forward hooks recording each named module's output as the module returned it."""
    seen, handles = {}, []
    for name in names:
        module = model.get_submodule(name)
        handles.append(module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o)))
    return seen, handles


def run_bf16(model, names, islands=True):
    size = model.transform.min_size[0]
    image = torch.rand(3, size, size, generator=torch.Generator().manual_seed(1))
    seen, handles = recorded(model, ["transform", *names])  # registered first: they see the raw outputs
    with torch.inference_mode(), EmulatedBf16(), autocast("cpu", "bf16", warn=False, model=model if islands else None):
        out = model([image])[0]
    for h in handles:
        h.remove()
    return out, seen


def assert_same(out, expected):
    assert set(out) == set(expected) and len(out["boxes"]) > 0
    for key, value in out.items():
        assert value.dtype == expected[key].dtype, key
        if value.is_floating_point():
            assert value.dtype == torch.float32, key
            torch.testing.assert_close(value, expected[key], rtol=1e-6, atol=1e-4)
        else:
            assert torch.equal(value, expected[key]), key


@pytest.mark.parametrize("arch", ["faster_rcnn", "mask_rcnn"])
def test_rcnn_boxes_scores_and_masks_are_decoded_in_fp32(arch):
    model = detector(arch)
    heads = ["rpn", "rpn.anchor_generator", "rpn.head", "roi_heads.box_predictor"]
    out, seen = run_bf16(model, heads + (["roi_heads.mask_predictor"] if arch == "mask_rcnn" else []))
    assert seen["rpn.head"][0][0].dtype == torch.bfloat16  # the heads' convs did run in bf16
    assert all(a.dtype == torch.float32 for a in seen["rpn.anchor_generator"])
    proposals = seen["rpn"][0]
    assert all(p.dtype == torch.float32 for p in proposals)
    images = seen["transform"][0]
    logits, deltas = to_fp32(seen["roi_heads.box_predictor"])
    with torch.inference_mode():
        boxes, scores, labels = model.roi_heads.postprocess_detections(logits, deltas, proposals, images.image_sizes)
        result = [{"boxes": boxes[0], "scores": scores[0], "labels": labels[0]}]
        if arch == "mask_rcnn":
            result[0]["masks"] = maskrcnn_inference(seen["roi_heads.mask_predictor"].float(), labels)[0]
        expected = model.transform.postprocess(result, images.image_sizes, [images.tensors.shape[-2:]])[0]
    assert_same(out, expected)


@pytest.mark.parametrize("arch", ["fcos", "retinanet"])
def test_dense_detector_boxes_and_scores_are_decoded_in_fp32(arch):
    model = detector(arch)
    out, seen = run_bf16(model, ["backbone", "anchor_generator", "head"])
    head = seen["head"]
    assert head["cls_logits"].dtype == torch.bfloat16  # raw head output: bf16 convs
    anchors = seen["anchor_generator"]
    assert all(a.dtype == torch.float32 for a in anchors)
    images = seen["transform"][0]
    per_level = [f.shape[-2] * f.shape[-1] for f in seen["backbone"].values()]
    per_level = [n * (head["cls_logits"].shape[1] // sum(per_level)) for n in per_level]
    split = {k: list(v.float().split(per_level, dim=1)) for k, v in head.items()}
    with torch.inference_mode():
        dets = model.postprocess_detections(split, [list(a.split(per_level)) for a in anchors], images.image_sizes)
        expected = model.transform.postprocess(dets, images.image_sizes, [images.tensors.shape[-2:]])[0]
    assert_same(out, expected)


def test_without_the_islands_boxes_come_back_in_bf16():
    """What the rule changes: autocast alone leaves anchors, proposals and boxes in bf16."""
    out, seen = run_bf16(detector("faster_rcnn"), ["rpn.anchor_generator"], islands=False)
    assert out["boxes"].dtype == torch.bfloat16 and seen["rpn.anchor_generator"][0].dtype == torch.bfloat16


def test_fp32_outputs_hooks_are_removed_and_missing_parts_skipped():
    model = detector("fcos")
    with fp32_outputs(model, ("head", "rpn.head", "roi_heads.mask_predictor")):
        assert len(model.head._forward_hooks) == 1
    assert len(model.head._forward_hooks) == 0
    ctx = autocast("cpu", "bf16", warn=False, model=model)
    for _ in range(2):  # one context, entered once per image (dsic predict)
        with ctx:
            assert torch.is_autocast_enabled("cpu") and len(model.head._forward_hooks) == 1
        assert not torch.is_autocast_enabled("cpu") and len(model.head._forward_hooks) == 0


def test_emulated_bf16_rounds_operands_and_result_like_a_bf16_kernel():
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(1, 8, 12, 12, generator=g), torch.randn(6, 8, 3, 3, generator=g), torch.randn(6, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        real = F.conv2d(x, w, b)
        with EmulatedBf16():
            emulated = F.conv2d(x, w, b)
            lin = F.linear(x.flatten(1), torch.randn(5, 8 * 144, generator=g))
    r = lambda t: t.bfloat16().float()
    assert emulated.dtype == real.dtype == lin.dtype == torch.bfloat16
    assert torch.equal(emulated, F.conv2d(r(x), r(w), r(b)).bfloat16())
    # the real kernel (bf16 operands, fp32 sums, bf16 result) differs by the order of its sums: <= 1 ulp
    assert ((emulated.float() - real.float()).abs() <= real.float().abs() * 2 ** -7 + 1e-6).all()
    with EmulatedBf16():
        assert F.conv2d(x, w, b).dtype == torch.float32  # outside bf16 autocast: untouched


def bench(name):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_precision_ap_compares_box_by_box_and_tabulates_per_machine():
    ap = bench("precision_ap")
    ref = [{"image_id": 1, "category_id": 2, "bbox": [10, 10, 100, 50], "score": 0.9},
           {"image_id": 1, "category_id": 3, "bbox": [0, 0, 8, 8], "score": 0.8},
           {"image_id": 2, "category_id": 2, "bbox": [5, 5, 5, 5], "score": 0.1}]  # below MATCH_SCORE
    other = [{"image_id": 1, "category_id": 2, "bbox": [10, 10, 102, 50], "score": 0.9},
             {"image_id": 1, "category_id": 2, "bbox": [300, 300, 10, 10], "score": 0.9}]
    vs = ap.box_by_box(ref, other)
    # the first box's best match is 2 px wider (IoU 100/102); the second has no match of its category
    assert vs["compared"] == 2 and vs["coord_err_px_max"] == 2.0 and vs["iou_below_0.95"] == 0.5
    assert vs["iou_median"] == round((100 / 102 + 0) / 2, 4)
    metrics = {"bbox": {"AP": 0.30, "AP50": 0.5, "AP75": 0.3, "APs": 0.1}}
    machine = {"cpu": "AMD EPYC", "cpu_count": 2, "torch": "2.14.1", "native_bf16_cpu": False}
    rec = {"row": "fpn", "arch": "faster_rcnn", "neck": "fpn", "seed": 0, "run": "r", "iteration": 400, "images": 5, "size": 256,
           "checkpoint": "final.pth", "precision": "fp32", "fp32_parts": None, "bf16_kernels": None,
           "metrics": metrics, "machine": machine}
    bf16 = dict(rec, precision="bf16", fp32_parts="none", bf16_kernels="emulated", vs_fp32=vs,
                metrics={"bbox": dict(metrics["bbox"], AP=0.28, APs=0.07)})
    assert [ap.record_name(r) for r in (rec, bf16)] == ["fpn_seed0_fp32.json", "fpn_seed0_bf16_none.json"]
    native = dict(machine, native_bf16_cpu=True, cpu_capability="AVX512")  # same model name, another machine
    assert ap.record_name(dict(bf16, machine=native)) == "fpn_seed0_bf16_none_emulated.json"  # beside native's
    lines = ap.table([bf16, rec, dict(rec, machine=dict(machine, cpu="Xeon")), dict(rec, machine=native)]).splitlines()
    assert lines[0] == "### AMD EPYC, 2 cores, native bf16: no, torch 2.14.1" and lines.count("") == 5
    assert lines[4] == ("| fpn | faster_rcnn | fpn | 0 | 400 | 5 | 256 | fp32 | - | - | 30.00 | 50.00 | 30.00 | 10.00 | "
                        "- | - | - | - | - | - |")
    assert lines[5].endswith("| bf16 | none | emulated | 28.00 | 50.00 | 30.00 | 7.00 | -2.00 | -3.00 | - | - | 0.5 | 2.0 |")
    assert lines[7] == "### AMD EPYC, 2 cores, AVX512, native bf16: yes, torch 2.14.1"
    assert lines[13].startswith("### Xeon")
    segm = {"segm": {"AP": 0.25}}  # Mask R-CNN: mask AP and its difference to fp32
    lines = ap.table([dict(rec, metrics={**metrics, **segm}),
                      dict(bf16, metrics={**bf16["metrics"], "segm": {"AP": 0.2475}})]).splitlines()
    assert lines[4].endswith("| 25.00 | - | - | - |") and lines[5].endswith("| 24.75 | -0.25 | 0.5 | 2.0 |")


def test_precision_ap_loads_final_pth_and_a_training_checkpoints_ema():
    ap = bench("precision_ap")
    weights, ema = {"w": torch.zeros(1)}, {"w": torch.ones(1)}
    assert ap.evaluated_weights({"model": weights, "ema": True, "iteration": 400}) is weights  # final.pth: a flag
    assert ap.evaluated_weights({"model": weights, "ema": {"module": ema, "updates": 3}}) is ema  # last.pth
    assert ap.evaluated_weights({"model": weights}) is weights


def test_a_bf16_training_step_computes_its_losses_from_fp32_predictions():
    """train.amp: bf16 passes the model to autocast, so the RPN's and the box predictor's outputs reach
    the losses (matching, box encoding) in fp32, and the step's gradients reach the backbone."""
    torch.manual_seed(0)
    model = build_detector(arch="faster_rcnn", backbone="resnet_tiny", neck="dsic", num_classes=3, min_size=64,
                           max_size=64, pretrained_backbone=None, out_channels=32).train()
    target = {"boxes": torch.tensor([[8.0, 8.0, 40.0, 44.0]]), "labels": torch.tensor([1])}
    with EmulatedBf16(), autocast("cpu", "bf16", warn=False, model=model):
        seen, handles = recorded(model, ["rpn.head", "roi_heads.box_predictor"])  # after the fp32 casts
        losses = model([torch.rand(3, 64, 64)], [target])
    for h in handles:
        h.remove()
    rpn_logits, rpn_deltas = seen["rpn.head"]
    assert all(t.dtype == torch.float32 for t in [*rpn_logits, *rpn_deltas, *seen["roi_heads.box_predictor"]])
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.body.conv1.weight.grad.abs().sum() > 0
