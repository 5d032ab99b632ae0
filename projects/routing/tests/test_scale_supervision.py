"""csg_path_gate: scale and routing.scale_supervision: path logits read a scale group that a head
learns from the boxes alone."""

import copy
import math

import pytest
import torch
from study_helpers import tiny_detector

from dsic.analysis.probe import control_units
from dsic.models import gate_states
from routing.scale_supervision import IGNORE, group_labels

SCALE = {"csg_path_gate": "scale", "csg_signal_std": 0}


def _target(size: float, n: int = 1, area: bool = True) -> dict:
    boxes = torch.tensor([[2.0, 2.0, 2.0 + size, 2.0 + size]] * n).reshape(n, 4)
    t = {"boxes": boxes, "labels": torch.ones(n, dtype=torch.long)}
    if area:
        t["area"] = torch.full((n,), size * size)
    return t


def test_group_labels_follow_the_probe_rule_from_areas_or_boxes():
    targets = [_target(10), _target(100), _target(50), _target(10, n=0), _target(100, area=False)]
    assert group_labels(targets).tolist() == [0, 1, 2, IGNORE, 1]  # small, large, mixed, no boxes, large


def test_only_scale_path_gates_get_the_hooks():
    assert tiny_detector().scale_supervision is None
    model = tiny_detector(neck_cfg=SCALE)
    units = control_units(model)
    assert model.scale_supervision.units == units and len(units) == 4
    assert all(u.scale_head.weight.shape[:2] == (3, u.n * u.channels) and u.path.weight.shape[:2] == (u.n, 3)
               for u in units)


def test_zero_start_computes_the_loaded_network_exactly():
    image = torch.rand(3, 64, 64)
    plain = tiny_detector().eval()
    model = tiny_detector(neck_cfg=SCALE).eval()
    missing, unexpected = model.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(".scale_head." in k or ".path." in k or ".path_norm." in k for k in missing)
    with torch.no_grad():
        plain([image])
        w_plain = gate_states(plain)["csg"]["w"].clone()
        model([image])  # no targets in evaluation: q from the image alone
    torch.testing.assert_close(gate_states(model)["csg"]["w"], w_plain)


def test_the_head_learns_from_the_boxes_only_and_the_path_layer_from_the_detection_loss():
    model = tiny_detector(neck_cfg=SCALE).train()
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    losses = model(images, [_target(10), _target(40)])
    assert losses["loss_scale"].item() == pytest.approx(math.log(3), abs=1e-6)  # uniform q at the start
    params = dict(model.named_parameters())
    head = [n for n in params if ".scale_head." in n]
    path = [n for n in params if ".csg.control." in n and ".path." in n]
    scale_grads = torch.autograd.grad(losses["loss_scale"], [params[n] for n in head + path], allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in scale_grads[:len(head)])
    assert all(g is None for g in scale_grads[len(head):])
    detection = sum(v for k, v in losses.items() if k != "loss_scale")
    det_grads = torch.autograd.grad(detection, [params[n] for n in head + path], allow_unused=True)
    assert all(g is None for g in det_grads[:len(head)])  # q is detached
    assert any(g is not None and g.abs().sum() > 0 for g in det_grads[len(head):])


def test_a_batch_without_boxes_adds_a_zero_loss_and_the_model_copies_after_training():
    model = tiny_detector(neck_cfg=SCALE).train()
    losses = model([torch.rand(3, 64, 64)], [_target(10, n=0)])
    assert losses["loss_scale"].item() == 0.0 and losses["loss_scale"].requires_grad
    ema = copy.deepcopy(model).eval()  # as the EMA is: no graph is kept on the units
    with torch.no_grad():
        assert len(ema([torch.rand(3, 64, 64)])) == 1


def test_the_head_fits_the_groups_of_a_few_images():
    torch.manual_seed(0)
    model = tiny_detector(neck_cfg=SCALE).train()
    heads = [p for n, p in model.named_parameters() if ".scale_head." in n]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in heads:
        p.requires_grad_(True)
    optimizer = torch.optim.SGD(heads, lr=0.05)
    images = [torch.rand(3, 64, 64) * 0.2, torch.rand(3, 64, 64)]  # two different images, two groups
    targets = [_target(10), _target(60)]
    first = None
    for _ in range(30):
        loss = model(images, targets)["loss_scale"]
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first


def _bench(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scale_head_report_reads_the_head_per_level_and_the_losses(tmp_path):
    import json

    from PIL import Image

    bench = _bench("scale_head")
    paths = {}
    for group in ("small", "large", "mixed"):
        paths[group] = []
        for i in range(2):
            f = tmp_path / f"{group}{i}.jpg"
            Image.new("RGB", (64, 64), (40 * i, 90, 200)).save(f)
            paths[group].append(f)
    model = tiny_detector(neck_cfg=SCALE).eval()
    with torch.no_grad():
        for u in control_units(model):
            u.scale_head.bias[:] = torch.tensor([0.0, 5.0, 0.0])  # every image read as "large"
    reading = bench.head_reading(model, paths)
    assert reading["accuracy"] == [pytest.approx(1 / 3, abs=1e-4)] * 4 and reading["images"]["small"] == 2
    assert reading["mean_q"]["small"][0][1] == pytest.approx(math.exp(5) / (math.exp(5) + 2), abs=1e-4)
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps({"iter": i, "loss": 1.5 - i / 100, "loss_scale": 1.0 - i / 100})
                             for i in range(1, 11)) + "\n")
    ends = bench.loss_ends(log, count=2)
    assert ends == {"detection_first100": 0.5, "detection_last100": 0.5, "scale_first100": 0.985,
                    "scale_last100": 0.905}
    with pytest.raises(SystemExit, match="no scale path gates"):
        bench.head_reading(tiny_detector().eval(), paths)
    presence = tiny_detector(neck_cfg={**SCALE, "csg_scale_target": "presence"}).eval()
    with torch.no_grad():
        for u in control_units(presence):
            u.scale_head.bias[:] = torch.tensor([4.0, -4.0])  # every image: a small object, no large one
    reading = bench.head_reading(presence, paths)
    assert reading["order"] == ["small", "large"] and reading["accuracy"] == [pytest.approx(1 / 3, abs=1e-4)] * 4
    assert reading["mean_q"]["large"][0] == pytest.approx([1 / (1 + math.exp(-4)), 1 / (1 + math.exp(4))], abs=1e-4)


def test_presence_labels_and_their_loss():
    from routing.scale_supervision import presence_labels, scale_loss

    targets = [_target(10), _target(100), _target(50), _target(10, n=0)]
    both = {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 100.0, 100.0]]), "labels": torch.ones(2, dtype=torch.long)}
    labels = presence_labels([*targets, both])
    assert labels.tolist() == [[1, 0], [0, 1], [0, 0], [IGNORE, IGNORE], [1, 1]]
    logits = torch.tensor([[2.0, -1.0], [0.0, 0.0], [1.0, 1.0], [9.0, 9.0], [0.5, 0.5]])
    kept = [0, 1, 2, 4]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[kept], labels[kept], reduction="sum") / 4
    torch.testing.assert_close(scale_loss(logits, labels, "presence"), expected)


def test_presence_supervision_adds_the_two_questions_loss():
    model = tiny_detector(neck_cfg={**SCALE, "csg_scale_target": "presence"}).train()
    losses = model([torch.rand(3, 64, 64), torch.rand(3, 64, 64)], [_target(10), _target(40)])
    assert model.scale_supervision.target == "presence"
    assert losses["loss_scale"].item() == pytest.approx(2 * math.log(2), abs=1e-6)  # two sigmoids at 0.5


def test_presence_cells_are_the_products_of_the_two_answers():
    from routing.control import presence_cells

    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.9, 0.2]])
    cells = presence_cells(q)
    assert cells[:4].tolist() == torch.eye(4).tolist()  # small only, large only, both, neither
    torch.testing.assert_close(cells[4], torch.tensor([0.72, 0.02, 0.18, 0.08]))
    torch.testing.assert_close(cells.sum(1), torch.ones(5))


def test_cells_code_feeds_the_path_layer_four_cells():
    model = tiny_detector(neck_cfg={**SCALE, "csg_scale_target": "presence", "csg_scale_code": "cells"}).eval()
    units = control_units(model)
    assert all(u.scale_head.weight.shape[:2] == (2, u.n * u.channels) and u.path.weight.shape[:2] == (u.n, 4)
               for u in units)
    with torch.no_grad():
        for u in units:
            u.scale_head.bias[:] = torch.tensor([9.0, -9.0])  # every image: small only
            u.path.weight[:] = 0.0
            u.path.weight[0, 0] = 3.0  # small only opens path 0
    without = copy.deepcopy(model)
    with torch.no_grad():
        for u in control_units(without):
            u.path.weight[0, 0] = 0.0
    image = [torch.rand(3, 64, 64)]
    with torch.no_grad():
        model(image), without(image)
    w, w0 = gate_states(model)["csg"]["w"][0], gate_states(without)["csg"]["w"][0]  # [n_in, n_out]
    assert (w[0] > w0[0] + 0.1).all() and torch.allclose(w[1:], w0[1:], atol=1e-5)  # path 0 opens at every level


def test_cells_code_needs_presence_answers():
    with pytest.raises(ValueError, match="CSG scale_code 'cells' needs scale_target 'presence', got 'groups'"):
        tiny_detector(neck_cfg={**SCALE, "csg_scale_code": "cells"})
    with pytest.raises(ValueError, match="unknown CSG scale_code 'onehot'; expected one of outputs, cells"):
        tiny_detector(neck_cfg={**SCALE, "csg_scale_target": "presence", "csg_scale_code": "onehot"})
