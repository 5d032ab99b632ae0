"""routing.incentive: per-image gradients of the loss on CSG's state matrix, and their statistics."""

import numpy as np
import torch

from routing.incentive import image_gradients, incentive_statistics


def test_incentive_statistics_by_hand():
    small = np.array([[[1.0, -0.5], [0.0, 2.0]], [[3.0, -0.5], [0.0, 2.0]]])  # mean [[2, -0.5], [0, 2]]
    large = np.array([[[-1.0, -0.5], [0.0, 2.0]], [[-3.0, -0.5], [0.0, 2.0]]])  # mean [[-2, -0.5], [0, 2]]
    stats = incentive_statistics({"small": small, "large": large})
    assert stats["images"] == {"small": 2, "large": 2}
    assert stats["G_small"] == [[2.0, -0.5], [0.0, 2.0]] and stats["G_std_large"][0][0] == 1.0
    assert stats["G_max_diff"] == 4.0 and stats["G_max_diff_at"] == [0, 0]
    assert stats["G_effect_size"] == 4.0  # difference 4 over a pooled std of 1
    assert stats["G_effect_sizes"][0][0] == 4.0
    # median |mean| over the 8 entries of both groups is 1.25: [0, 0] has opposite signs above 0.125
    assert stats["G_scale"] == 1.25 and stats["G_opposite"] == [[0, 0]]


def _sample(dtype):
    boxes = torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 30.0, 60.0, 62.0]], dtype=dtype)
    return torch.rand(3, 64, 64, dtype=dtype), {"boxes": boxes, "labels": torch.tensor([1, 2])}


def test_image_gradient_is_the_loss_slope_of_a_uniform_shift_of_a_path():
    """G[i, k] = sum_c dL/d act(w_ik[c]): shifting every channel of one path by +-eps changes the
    loss by +-eps * G[i, k] (central difference on a real tiny DSIC, train mode). The RPN's loss
    terms: the RoI head's depend on W also through the proposal boxes, which torchvision detaches
    (so G leaves that out, as SGD does, and a finite difference would not)."""
    from dsic.analysis.probe import control_units
    from routing.models import build_detector

    torch.manual_seed(0)
    model = build_detector("faster_rcnn", "resnet_tiny", "dsic_routing", num_classes=3, min_size=64, max_size=64,
                           out_channels=16).double()
    image, target = _sample(torch.float64)
    rpn = ("loss_objectness", "loss_rpn_box_reg")
    grads = image_gradients(model, [(image, target)], seed=5, terms=rpn)
    n = grads.shape[1]
    assert grads.shape == (1, n, n) and np.isfinite(grads).all() and np.abs(grads).max() > 0
    i, k, eps = 0, 0, 1e-2  # the RPN losses come out in float32: a step the slope shows above its rounding
    unit = control_units(model)[k]

    def loss_with_shift(delta):
        def shift(_module, _inputs, output):
            w, s = output
            w = w.clone()
            w[:, i] += delta
            return w, s
        handle = unit.register_forward_hook(shift)
        torch.manual_seed(5)  # the same RPN / RoI sampling as image_gradients' first image
        try:
            return sum(v for name, v in model([image], [target]).items() if name in rpn).item()
        finally:
            handle.remove()

    model.train()
    slope = (loss_with_shift(eps) - loss_with_shift(-eps)) / (2 * eps)
    np.testing.assert_allclose(grads[0, i, k], slope, rtol=2e-2)


def test_image_gradients_leave_the_model_as_it_was():
    """Training mode moves running statistics (here CSG's RunningStandardize): they are put back,
    no gradient is left on the parameters, and the mode is restored."""
    from routing.models import build_detector

    torch.manual_seed(0)
    model = build_detector("faster_rcnn", "resnet_tiny", "dsic_routing", num_classes=3, min_size=64, max_size=64,
                           out_channels=16, neck_cfg={"csg_control_norm": "running"})
    model.train()
    model([_sample(torch.float32)[0]], [_sample(torch.float32)[1]])  # statistics away from their start
    model.eval()
    before = {name: b.clone() for name, b in model.named_buffers()}
    image_gradients(model, [_sample(torch.float32) for _ in range(2)])
    assert any("running" in name for name in before)
    assert all(torch.equal(b, before[name]) for name, b in model.named_buffers())
    assert all(p.grad is None for p in model.parameters()) and not model.training
