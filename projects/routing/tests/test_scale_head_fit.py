"""routing.scale_head_fit: CSG's scale heads fitted once on frozen descriptors, and
csg_norm_momentum 0, which keeps the statistics they were fitted on."""

import pytest
import torch
import torch.nn.functional as F
from study_helpers import tiny_detector

from routing.control import RunningStandardize
from routing.scale_head_fit import (
    accuracy,
    choose_l2,
    collect_descriptors,
    fit_head,
    head_loss,
    install_heads,
    scale_units,
    standardize,
    standardize_stats,
)

SCALE = {"csg_path_gate": "scale", "csg_signal_std": 0}


def _blobs(n: int = 90, features: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.randn(3, features, generator=g, dtype=torch.float64) * 2
    return centres[y] + torch.randn(n, features, generator=g, dtype=torch.float64), y


def test_the_fit_is_the_minimum_of_the_penalised_cross_entropy():
    x, y = _blobs()
    weight, bias = fit_head(x, y, 3, l2=0.01)
    w, b = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    head_loss(w, b, x, y, 0.01).backward()
    assert w.grad.abs().max() < 1e-6 and b.grad.abs().max() < 1e-6  # stationary, and the loss is convex
    # the optimality condition in closed form: l2 W = X^T (Y - P) / N
    p = (x @ weight.T + bias).softmax(1)
    torch.testing.assert_close(0.01 * weight, (F.one_hot(y, 3).double() - p).T @ x / len(x), atol=1e-6, rtol=0)


def test_a_stronger_penalty_gives_a_smaller_head_and_zero_is_refused():
    x, y = _blobs()
    small, _ = fit_head(x, y, 3, l2=1.0)
    large, _ = fit_head(x, y, 3, l2=0.001)
    assert small.norm() < large.norm()
    with pytest.raises(ValueError, match="l2 must be > 0"):
        fit_head(x, y, 3, l2=0)


def test_choose_l2_scores_every_lambda_on_the_held_out_rows_and_keeps_the_best():
    x, y = _blobs(n=100)
    chosen = choose_l2(x, y, 3, eps=1e-2, grid=(1e-3, 1.0, 100.0))
    scores = chosen["scores"]
    assert [s["l2"] for s in scores] == [1e-3, 1.0, 100.0]
    assert chosen["l2"] == min(scores, key=lambda s: s["held_out_ce"])["l2"]
    assert scores[-1]["held_out_ce"] > scores[0]["held_out_ce"]  # lambda 100 all but flattens the head
    with pytest.raises(ValueError, match="leaves no images"):
        choose_l2(x, y, 3, eps=1e-2, held_out=0.0)


def test_installed_heads_reproduce_the_fit_inside_the_detector():
    model = tiny_detector(neck_cfg=SCALE).eval()
    images = [torch.rand(3, 64, 64) for _ in range(6)]
    descriptors = collect_descriptors(model, [images[:4], images[4:]])
    units = scale_units(model)
    assert len(descriptors) == len(units) == 4
    assert all(d.shape == (6, u.n * u.channels) and d.dtype == torch.float64 for d, (_, u) in zip(descriptors, units))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    fits = []
    for (_, unit), x in zip(units, descriptors):
        mean, var = standardize_stats(x)
        weight, bias = fit_head(standardize(x, mean, var, unit.path_norm.eps), y, 3, l2=0.1)
        fits.append({"mean": mean, "var": var, "weight": weight, "bias": bias})
    model.load_state_dict(install_heads(model.state_dict(), [n for n, _ in units], fits))
    with torch.no_grad():
        model([images[5]])
    for (_, unit), x, fit in zip(units, descriptors, fits):
        expected = standardize(x[5:], fit["mean"], fit["var"], unit.path_norm.eps) @ fit["weight"].T + fit["bias"]
        torch.testing.assert_close(unit.scale_logits.double(), expected, atol=1e-4, rtol=1e-4)


def test_collect_descriptors_needs_scale_heads():
    with pytest.raises(ValueError, match="no scale path gates"):
        collect_descriptors(tiny_detector(), [[torch.rand(3, 64, 64)]])


def test_momentum_zero_keeps_loaded_statistics_in_training():
    norm = RunningStandardize(4, momentum=0).train()
    norm.load_state_dict({"running_mean": torch.ones(4), "running_var": torch.full((4,), 4.0),
                          "initialized": torch.tensor(True)})
    out = norm(torch.full((2, 4, 1, 1), 3.0))
    assert norm.running_mean.tolist() == [1.0] * 4 and norm.running_var.tolist() == [4.0] * 4
    torch.testing.assert_close(out, torch.full((2, 4, 1, 1), 2.0 / (4.0 + 1e-2) ** 0.5))
    moving = RunningStandardize(4).train()
    moving.load_state_dict(norm.state_dict())
    moving(torch.full((2, 4, 1, 1), 3.0))
    assert moving.running_mean.tolist() == pytest.approx([1.1] * 4)  # 0.05 of the way to 3


def test_the_norm_momentum_reaches_every_unit_and_a_bad_one_is_refused():
    model = tiny_detector(neck_cfg={**SCALE, "csg_norm_momentum": 0})
    assert all(u.path_norm.momentum == 0 for _, u in scale_units(model))
    with pytest.raises(ValueError, match=r"CSG norm_momentum must be a number in \[0, 1\], got 2"):
        tiny_detector(neck_cfg={**SCALE, "csg_norm_momentum": 2})


def test_the_presence_fit_is_one_logistic_regression_per_output():
    x, groups = _blobs()
    y = torch.stack([(groups == 0) | (groups == 2), (groups == 1) | (groups == 2)], 1).double()
    weight, bias = fit_head(x, y, 2, l2=0.01, target="presence")
    for k in range(2):  # each output alone: the same minimum
        w1, b1 = fit_head(x, y[:, k:k + 1], 1, l2=0.01, target="presence")
        torch.testing.assert_close(weight[k:k + 1], w1, atol=1e-5, rtol=0)
        torch.testing.assert_close(bias[k:k + 1], b1, atol=1e-5, rtol=0)
    w, b = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    head_loss(w, b, x, y, 0.01, "presence").backward()
    assert w.grad.abs().max() < 1e-6
    assert accuracy(weight, bias, x, y, "presence") > 0.9
    assert accuracy(torch.zeros_like(weight), torch.tensor([1.0, -1.0], dtype=torch.float64), x, y, "presence") == (
        pytest.approx(float(((y[:, 0] == 1) & (y[:, 1] == 0)).double().mean())))


def test_a_presence_head_reads_two_sigmoids_into_the_path_layer():
    model = tiny_detector(neck_cfg={**SCALE, "csg_scale_target": "presence"}).eval()
    units = scale_units(model)
    assert all(u.scale_head.weight.shape[0] == 2 and u.path.weight.shape[1] == 2 for _, u in units)
    _, unit = units[0]
    with torch.no_grad():
        unit.scale_head.bias.copy_(torch.tensor([3.0, -3.0]))
        unit.path.weight.zero_()
        unit.path.weight[:, 0] = 1.0  # p_ik = q_small
        model([torch.rand(3, 64, 64)])
    assert unit.scale_logits.tolist() == [[3.0, -3.0]]
    with pytest.raises(ValueError, match="unknown CSG scale_target 'sizes'; expected one of groups, presence"):
        tiny_detector(neck_cfg={**SCALE, "csg_scale_target": "sizes"})
