"""routing.scale_oracle: path logits that read each image's probe group from its boxes."""

import copy

import pytest
import torch
from study_helpers import tiny_detector

from dsic.analysis.probe import control_units
from dsic.models import gate_states
from routing.scale_oracle import ScaleOracle, scale_group


@pytest.mark.parametrize("areas, group", [([100.0, 900.0], "small"), ([96.0 ** 2, 20000.0], "large"),
                                          ([100.0, 20000.0], "mixed"), ([32.0 ** 2], "mixed"), ([], None)])
def test_scale_group_follows_the_probe_rule(areas, group):
    assert scale_group(areas) == group  # small: every sqrt(area) < 32; large: every one >= 96


def _W(model, image):
    with torch.no_grad():
        model([image])
    return gate_states(model)["csg"]["w"][0].clone()


def test_zero_offsets_leave_the_network_as_it_was_and_each_group_gets_its_own():
    image = torch.rand(3, 64, 64)
    model = tiny_detector().eval()
    before = _W(model, image)
    oracle = ScaleOracle(model)
    units = control_units(model)
    assert all(u.path.weight.shape == (4, 3, 1, 1) for u in units)
    for group in ("small", "large", None):
        oracle.set_groups([group])
        torch.testing.assert_close(_W(model, image), before)  # zero-initialised: DSIC as it was
    with torch.no_grad():
        for u in units:
            u.path.weight[:, 0] = 0.5  # small images: every path's logit +0.5
            u.path.weight[:, 1] = -0.5  # large ones: -0.5
    oracle.set_groups(["small"])
    small = _W(model, image)
    oracle.set_groups(["large"])
    large = _W(model, image)
    oracle.set_groups([None])
    torch.testing.assert_close(_W(model, image), before)  # no object: the bias alone
    assert (small > before).all() and (large < before).all()  # tanh is increasing
    assert oracle.offsets()[0][0] == [0.5, -0.5, 0.0]


def test_training_forwards_set_the_groups_from_the_targets_and_count_them():
    model = tiny_detector()
    oracle = ScaleOracle(model)
    ema = copy.deepcopy(model)  # as ModelEMA copies it: the copy reads the same groups
    box = torch.tensor([[2.0, 2.0, 60.0, 60.0]])
    targets = [{"boxes": box, "labels": torch.tensor([1]), "area": torch.tensor([3364.0])},  # sqrt 58: mixed
               {"boxes": box, "labels": torch.tensor([1]), "area": torch.tensor([100.0])}]  # small
    losses = model([torch.rand(3, 64, 64), torch.rand(3, 64, 64)], targets)
    assert oracle.groups.onehot.tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    assert dict(oracle.trained_on) == {"mixed": 1, "small": 1}
    sum(losses.values()).backward()
    grads = [u.path.weight.grad for u in control_units(model)]
    assert all(g is not None and g[:, 1].abs().max() == 0 for g in grads)  # no large image: its column untouched
    assert any(g[:, 0].abs().max() > 0 for g in grads)
    with torch.no_grad():
        for u in control_units(model):
            u.path.weight[:, 1] = 0.7
    ema.load_state_dict(model.state_dict())
    oracle.set_groups(["large"])
    image = torch.rand(3, 64, 64)
    torch.testing.assert_close(_W(ema.eval(), image), _W(model.eval(), image))  # the copy reads the same groups


def test_a_batch_without_groups_is_named():
    model = tiny_detector().eval()
    ScaleOracle(model)
    with pytest.raises(RuntimeError, match="scale oracle: no groups set for this batch"), torch.no_grad():
        model([torch.rand(3, 64, 64)])


def test_a_model_without_csg_is_refused():
    with pytest.raises(ValueError, match="scale oracle: the model has no CSG control units"):
        ScaleOracle(tiny_detector("fpn"))
