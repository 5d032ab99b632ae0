"""routing.unit_drift: did a control unit die by its own weights or by its inputs?"""

import copy

import pytest
import torch
from study_helpers import tiny_detector

from dsic.analysis.probe import control_units
from routing.control_inputs import unit_inputs
from routing.unit_drift import unit_drift


def _model():
    return tiny_detector().eval()


def test_a_model_against_itself_changes_nothing():
    model = _model()
    images = [torch.rand(3, 64, 64) for _ in range(3)]
    got = unit_drift(model, copy.deepcopy(model), images)
    assert all(len(v) == 4 for v in got.values())
    assert got["weight_change"] == [0.0] * 4
    assert got["alive_init_init"] == got["alive_init_final"] == got["alive_final_final"]
    assert got["descriptor_norm_init"] == got["descriptor_norm_final"]
    assert all(0 < a <= 1 for a in got["alive_final_final"])
    d = torch.from_numpy(unit_inputs(model, images)[0]["descriptor"])  # [images, n*C]: spread over images / mean
    assert got["descriptor_spread"][0] == pytest.approx(float(d.std(0).norm() / d.mean(0).norm()), abs=1e-4)


def test_own_weights_and_inputs_are_told_apart():
    initial = _model()
    images = [torch.rand(3, 64, 64) for _ in range(3)]
    final = copy.deepcopy(initial)
    unit = control_units(final)[0]
    with torch.no_grad():
        unit.channel[0].bias.sub_(1e4)  # P2's unit killed by its own weights
        control_units(final)[1].channel[0].weight.mul_(1.5)
    got = unit_drift(final, initial, images)
    assert got["alive_final_final"][0] == 0.0 and got["alive_init_final"][0] == got["alive_init_init"][0] > 0
    assert got["pre_final_final"][0] == pytest.approx(got["pre_init_init"][0] - 1e4, rel=1e-4)
    assert got["weight_change"][1] == pytest.approx(0.5, rel=1e-5) and got["weight_change"][0] == 0.0
    # the descriptors are the same model's: only the weights differ
    assert got["descriptor_norm_init"] == got["descriptor_norm_final"]


def test_inputs_that_change_leave_the_weights_unchanged():
    initial = _model()
    images = [torch.rand(3, 64, 64) for _ in range(3)]
    final = copy.deepcopy(initial)
    with torch.no_grad():  # everything upstream of the control units scaled: the descriptors change
        for name, p in final.named_parameters():
            if ".control." not in name:
                p.mul_(1.1)
    got = unit_drift(final, initial, images)
    assert got["weight_change"] == [0.0] * 4
    assert all(f != i for f, i in zip(got["descriptor_norm_final"], got["descriptor_norm_init"]))
    assert got["pre_init_final"] == got["pre_final_final"] != got["pre_init_init"]


def test_models_without_control_units_are_named():
    fpn = tiny_detector("fpn")
    with pytest.raises(ValueError, match="^unit_drift: both models need the same CSG control units$"):
        unit_drift(fpn, fpn, [torch.rand(3, 64, 64)])
