"""routing.unit_dynamics: per-iteration life and gradients of CSG's channel control units."""

import math

import pytest
import torch
from study_helpers import tiny_detector

from dsic.analysis.probe import control_units
from dsic.ops.gate import gate_activation
from routing.unit_dynamics import FIELDS, UnitDynamics, per_iteration


def _model(path_gate):
    return tiny_detector(neck_cfg={"csg_path_gate": path_gate})


def _step(model):
    images = [torch.rand(3, 64, 64) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])} for _ in range(2)]
    model.train()
    sum(model(images, targets).values()).backward()


def _reference(unit, descriptor, upstream):
    """dLoss/dh through channel[2] and through path, by autograd on two copies of h, for the loss
    sum(upstream * act(logits))."""
    h = unit.channel[1](unit.channel[0](descriptor)).detach()
    h_channel, h_path = h.clone().requires_grad_(True), h.clone().requires_grad_(True)
    logits = unit.channel[2](h_channel).unflatten(1, (unit.n, unit.channels)) + unit.path(h_path).unsqueeze(2)
    (gate_activation(logits, unit.mode, dim=1) * upstream).sum().backward()
    b = math.sqrt(descriptor.shape[0])
    return float(h_channel.grad.norm() / b), float(h_path.grad.norm() / b)


def test_each_training_step_records_every_field_of_every_unit():
    model = _model(True)
    dyn = UnitDynamics(model)
    for _ in range(3):
        _step(model)
    model.eval()
    with torch.no_grad():
        model([torch.rand(3, 64, 64)])  # evaluation forwards are not training iterations
    rows = per_iteration(dyn)
    assert len(rows) == 4
    for row in rows:
        assert set(row) == set(FIELDS) and all(len(v) == 3 for v in row.values())
        assert all(0 <= a <= 1 for a in row["alive"])
        assert all(g > 0 for g in row["grad_channel"] + row["grad_path"])
    summary = dyn.summary(window=2)
    assert [len(summary[0]["alive"]), len(summary[0]["ratio"])] == [2, 2]
    assert summary[0]["ratio"][1] == pytest.approx(rows[0]["grad_path"][2] / rows[0]["grad_channel"][2], rel=1e-3)
    dyn.remove()
    _step(model)
    assert len(dyn.records[0]["alive"]) == 3


def test_without_path_logits_the_path_gradient_is_zero():
    model = _model(False)
    dyn = UnitDynamics(model)
    _step(model)
    row = per_iteration(dyn)[0]
    assert row["grad_path"] == [0.0] and row["grad_channel"][0] > 0


def test_branch_gradients_match_autograd_on_two_copies_of_the_hidden_layer():
    torch.manual_seed(1)
    model = _model(True)
    unit = control_units(model)[0]
    dyn = UnitDynamics(model)
    descriptor = torch.randn(3, unit.n * unit.channels, 1, 1)
    upstream = torch.randn(3, unit.n, unit.channels, 1, 1)
    unit.train()
    hidden = unit.channel[1](unit.channel[0](descriptor))
    logits = unit.channel[2](hidden).unflatten(1, (unit.n, unit.channels)) + unit.path(hidden).unsqueeze(2)
    (gate_activation(logits, unit.mode, dim=1) * upstream).sum().backward()
    got = dyn.records[0]
    expect_channel, expect_path = _reference(unit, descriptor, upstream)
    assert got["grad_channel"][0] == pytest.approx(expect_channel, rel=1e-5)
    assert got["grad_path"][0] == pytest.approx(expect_path, rel=1e-5)
    pre = unit.channel[0](descriptor).flatten(1)
    assert got["alive"][0] == pytest.approx(float((pre > 0).any(0).float().mean()))


def test_a_model_without_control_units_is_named():
    fpn = tiny_detector("fpn")
    with pytest.raises(ValueError, match="^unit_dynamics: the model has no CSG control units$"):
        UnitDynamics(fpn)
