"""The fused operators (dsic.ops.gated_sum, dsic.ops.gate.global_pool) compute the plain formulas'
outputs and gradients, and the necks with them compute what they computed with the plain operators."""

import pytest
import torch

import dsic.necks.csg as csg_module
import dsic.necks.isg as isg_module
from dsic.necks import build_neck
from dsic.ops.gate import GlobalPool, global_pool, plain_global_pool
from dsic.ops.gated_sum import GatedSum, gated_sum, plain_gated_sum

from .test_necks import SPEC, blocks_for


def signals(batch=2, n=4, m=2, c=3, h=5, w=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    wt = torch.randn(batch, m, c, 1, 1, generator=g, dtype=dtype).requires_grad_()
    s = torch.rand(batch, n, h, w, generator=g, dtype=dtype).requires_grad_()
    maps = [torch.randn(batch, c, h, w, generator=g, dtype=dtype).requires_grad_() for _ in range(n)]
    return wt, s, maps


def formula(w, maps, s):
    m = w.shape[1]
    return sum((w[:, i] * x if i < m else x) * s[:, i : i + 1] for i, x in enumerate(maps))


@pytest.mark.parametrize("m", [0, 1, 2, 4])
def test_fused_gradients_pass_gradcheck_in_float64(m):
    w, s, maps = signals(m=m)
    assert torch.autograd.gradcheck(lambda w, s, *x: GatedSum.apply(w, s, *x), (w, s, *maps))


@pytest.mark.parametrize("m", [1, 3])
def test_fused_and_plain_give_the_formula_in_float32(m):
    w, s, maps = signals(n=4, m=m, c=16, h=24, w=20, dtype=torch.float32)
    grad = torch.randn(2, 16, 24, 20, generator=torch.Generator().manual_seed(1))
    results = []
    for f in (formula, plain_gated_sum, gated_sum):
        out = f(w, maps, s)
        results.append((out, torch.autograd.grad(out, (w, s, *maps), grad)))
    assert results[2][0].grad_fn.name() == "GatedSumBackward"
    with torch.no_grad():  # inference: the scratch-buffer form
        results.append((gated_sum(w, maps, s), None))
    for out, grads in results[1:]:
        torch.testing.assert_close(out, results[0][0], rtol=1e-6, atol=1e-5)
        for got, ref in zip(grads or (), results[0][1]):
            torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-5)


def test_a_map_without_gradient_gets_none():
    w, s, maps = signals()
    maps[1].requires_grad_(False)
    gated_sum(w, maps, s).sum().backward()
    assert maps[1].grad is None and maps[0].grad is not None and w.grad is not None


@pytest.mark.parametrize("neck", ["csg", "dsic"])
@pytest.mark.parametrize("mode", ["tanh", "sigmoid", "softmax"])
def test_necks_with_the_fused_operators_give_the_plain_outputs_and_gradients(monkeypatch, neck, mode):
    torch.manual_seed(0)
    model = build_neck(neck, SPEC, 16, "pool", csg_mode=mode, select_mode=mode)
    blocks = blocks_for(SPEC, batch=2, size=64)

    def run():
        model.zero_grad()
        out = list(model(blocks).values())
        sum((v ** 2).mean() for v in out).backward()
        return out, {k: p.grad.clone() for k, p in model.named_parameters()}

    fused, fused_grads = run()
    monkeypatch.setattr(csg_module, "gated_sum", plain_gated_sum)
    monkeypatch.setattr(csg_module, "global_pool", plain_global_pool)
    monkeypatch.setattr(isg_module, "global_pool", plain_global_pool)
    plain, plain_grads = run()
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    for k in plain_grads:
        torch.testing.assert_close(fused_grads[k], plain_grads[k], rtol=1e-5, atol=1e-6, msg=k)


def test_csg_gradients_pass_gradcheck_in_float64():
    torch.manual_seed(0)
    csg = csg_module.CSG([3, 4, 5], 4, output_conv=False).double()
    g = torch.Generator().manual_seed(2)
    x = [torch.randn(2, c, 8 // 2**i, 8 // 2**i, generator=g, dtype=torch.float64, requires_grad=True)
         for i, c in enumerate((3, 4, 5))]
    assert torch.autograd.gradcheck(lambda *x: tuple(csg(list(x))), tuple(x))


def test_global_pool_gradients_pass_gradcheck_in_float64():
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_()
    assert torch.autograd.gradcheck(GlobalPool.apply, (x,))


def test_global_pool_shares_the_gradient_of_tied_maxima_as_amax_does():
    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(2, 8, 16, 12, generator=g))
    x[0, 1] = 0  # a dead channel: every pixel is a maximum
    x[1, 2, :3] = x[1, 2].max()  # 36 tied maxima
    x.requires_grad_()
    grad = torch.randn(2, 8, 1, 1, generator=g)
    fused = global_pool(x)
    assert fused.grad_fn.name() == "GlobalPoolBackward"
    plain = plain_global_pool(x)
    torch.testing.assert_close(fused, plain, rtol=0, atol=0)
    torch.testing.assert_close(torch.autograd.grad(fused, x, grad)[0], torch.autograd.grad(plain, x, grad)[0],
                               rtol=1e-6, atol=1e-7)
    with torch.no_grad():
        assert global_pool(x).grad_fn is None
