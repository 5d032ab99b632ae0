"""routing.static_routing: a routed model with its path logits frozen at their bias."""

import pytest
import torch
from study_helpers import tiny_detector

from dsic.analysis.probe import control_units
from routing.static_routing import freeze_path_logits


def _path_logits(model, images):
    """Each control unit's path logits [N, n] over ``images``, one forward each."""
    seen = {i: [] for i, _ in enumerate(control_units(model))}
    handles = [u.path.register_forward_hook(lambda _m, _i, out, i=i: seen[i].append(out.flatten(1)))
               for i, u in enumerate(control_units(model))]
    with torch.no_grad():
        for image in images:
            model([image])
    for h in handles:
        h.remove()
    return {i: torch.cat(v) for i, v in seen.items()}


def test_frozen_path_logits_are_their_bias_for_every_image():
    torch.manual_seed(0)
    model = tiny_detector(neck_cfg={"csg_path_gate": "statistics"}).eval()
    units = control_units(model)
    with torch.no_grad():
        for u in units:
            u.path.weight.normal_(std=1.0)  # a path layer that follows the image
            u.path.bias.uniform_(-1, 1)
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64) * 0.3]
    before = _path_logits(model, images)
    assert all((p[0] - p[1]).abs().max() > 1e-3 for p in before.values())
    channel = [u.channel[0].weight.clone() for u in units]
    assert freeze_path_logits(model) == len(units) == 4
    after = _path_logits(model, images)
    for i, u in enumerate(units):
        torch.testing.assert_close(after[i], u.path.bias.expand(2, -1))
        torch.testing.assert_close(u.channel[0].weight, channel[i])  # the channel units are untouched


def test_a_model_without_path_logits_is_named():
    with pytest.raises(ValueError, match=r"^static_routing: the model has no CSG path logits \(csg_path_gate is off\)$"):
        freeze_path_logits(tiny_detector())
