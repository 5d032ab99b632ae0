"""Precision options: names and errors, bf16 inference of every neck vs fp32, train.amp=bf16 on the
CPU, eval / predict / profile --precision, and the profile's memory and throughput figures."""

import json

import pytest
import torch

from dsic.backbones import BackboneSpec
from dsic.cli import main
from dsic.config import load_config
from dsic.engine.evaluate import main_eval
from dsic.engine.precision import PrecisionError, amp_precision, autocast, check_precision, needs_grad_scaler
from dsic.engine.train import train
from dsic.necks import NECKS, build_neck
from dsic.profiling import add_ratios, peak_memory_mb, profile

from .conftest import tiny_overrides

SPEC = BackboneSpec(stage_channels=(8, 16, 32, 64), block_channels=((8,) * 3, (16,) * 2, (32,) * 3, (64,) * 2),
                    strides=(4, 8, 16, 32), stage_ids=(1, 2, 3, 4))
# bf16 vs fp32 relative error ||bf16 - fp32|| / ||fp32|| of a neck's worst level on blocks_for(SPEC)
# below, measured on 2026-11-28 (torch 2.14.1, CPU) for seeds 0, 1, 2 and every neck: 0.0044 (isg)
# to 0.0089 (fpg), i.e. about 2 bf16 ulps (2^-8 = 0.0039). The tolerance is twice the worst.
BF16_REL_TOL = 0.02


pytestmark = pytest.mark.usefixtures("one_thread")


def blocks_for(spec, batch=1, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(batch, c, size // s, size // s, generator=g) for c in cs]
            for cs, s in zip(spec.block_channels, spec.strides)]


# --- names, devices, errors ----------------------------------------------------------------------------

def test_precision_names_and_devices():
    assert check_precision("fp32", "cpu") == "fp32"
    assert check_precision("bf16", "cpu", warn=False) == "bf16"
    with pytest.raises(PrecisionError, match=r"^unknown precision 'fp8'; expected one of fp32, bf16, fp16$"):
        check_precision("fp8", "cpu")
    with pytest.raises(PrecisionError,
                       match=r"^precision fp16 needs a CUDA device, got cpu; use bf16 or fp32 on the CPU$"):
        check_precision("fp16", "cpu")


def test_train_amp_values():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [amp_precision(v, cpu) for v in (False, True, "bf16")] == ["fp32", "fp32", "bf16"]
    assert [amp_precision(v, cuda) for v in (False, True, "fp16")] == ["fp32", "fp16", "fp16"]
    assert needs_grad_scaler("fp16", cuda) and not needs_grad_scaler("bf16", cuda)
    assert not needs_grad_scaler("bf16", cpu) and not needs_grad_scaler("fp32", cuda)
    with pytest.raises(PrecisionError, match=r"^train.amp: precision fp16 needs a CUDA device, got cpu"):
        amp_precision("fp16", cpu)
    with pytest.raises(PrecisionError, match=r"^train.amp must be one of false, true, bf16, fp16, got 1$"):
        amp_precision(1, cpu)


def test_autocast_context_sets_the_dtype():
    layer = torch.nn.Linear(4, 4)
    x = torch.rand(2, 4)
    with autocast("cpu", "fp32"):
        assert layer(x).dtype == torch.float32
    with autocast("cpu", "bf16", warn=False):
        assert layer(x).dtype == torch.bfloat16


# --- bf16 inference of every neck ----------------------------------------------------------------------

@pytest.mark.parametrize("name", list(NECKS))
def test_bf16_inference_of_every_neck_is_close_to_fp32(name):
    torch.manual_seed(0)
    neck = build_neck(name, SPEC, 32).eval()
    blocks = blocks_for(SPEC)
    with torch.inference_mode():
        ref = neck(blocks)
        with autocast("cpu", "bf16", warn=False):
            out = neck(blocks)
    assert list(out) == list(ref)
    for level in ref:
        assert out[level].dtype == torch.bfloat16  # autocast really ran the neck in bf16
        err = ((out[level].float() - ref[level]).norm() / ref[level].norm()).item()
        assert 0 < err < BF16_REL_TOL, (level, err)


# --- training, eval, predict ---------------------------------------------------------------------------

def _dtype_recorder(model, seen: list):
    model.backbone.neck.register_forward_hook(lambda m, i, o: seen.append((m.training, o["0"].dtype)))
    return model


@pytest.fixture(scope="module")
def bf16_run(tiny_synth, tmp_path_factory):
    from dsic.engine.builders import build_model

    out = tmp_path_factory.mktemp("bf16_run")
    cfg = load_config(None, tiny_overrides(tiny_synth, out, "model.neck=dsic", "train.amp=bf16", "train.epochs=1",
                                           "train.max_iters=2"))
    seen: list = []
    result = train(cfg, model_factory=lambda c: _dtype_recorder(build_model(c), seen))
    return out, result, seen


def test_train_amp_bf16_runs_in_bf16_on_the_cpu_without_grad_scaler(bf16_run):
    out, result, seen = bf16_run
    assert result["iteration"] == 2
    assert seen[:2] == [(True, torch.bfloat16)] * 2
    state = torch.load(out / "last.pth", weights_only=False)
    assert state["scaler"] == {}  # GradScaler disabled: its state_dict is empty
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in logs if "loss" in r)
    assert {v.dtype for v in state["model"].values() if v.is_floating_point()} == {torch.float32}  # weights stay fp32


def test_train_amp_fp16_on_the_cpu_is_refused(tiny_synth, tmp_path):
    cfg = load_config(None, tiny_overrides(tiny_synth, tmp_path, "train.amp=fp16", "train.max_iters=1"))
    with pytest.raises(PrecisionError, match=r"^train.amp: precision fp16 needs a CUDA device, got cpu"):
        train(cfg)


def test_eval_and_predict_in_bf16(bf16_run, tiny_synth, tmp_path, capsys, monkeypatch):
    _, result, _ = bf16_run
    overrides = tiny_overrides(tiny_synth, tmp_path / "eval", "model.neck=dsic")
    from dsic.engine import builders

    seen: list = []
    build = builders.build_model
    monkeypatch.setattr(builders, "build_model", lambda c: _dtype_recorder(build(c), seen))
    m32 = main_eval(None, result["final"], overrides, precision="fp32")
    m16 = main_eval(None, result["final"], overrides, precision="bf16")
    assert {d for _, d in seen} == {torch.float32, torch.bfloat16}
    assert set(m16["bbox"]) == set(m32["bbox"])
    images = sorted((tiny_synth / "val").iterdir())[:1]
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("{}\n")
    assert main(["predict", str(cfg_file), result["final"], str(images[0]), "--out", str(tmp_path / "pred"),
                 "--precision", "bf16", "--set", *overrides]) == 0
    assert len(list((tmp_path / "pred").glob("*_det.png"))) == 1


def test_cli_rejects_bad_precisions(bf16_run, tiny_synth, tmp_path, capsys):
    _, result, _ = bf16_run
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("{}\n")
    overrides = tiny_overrides(tiny_synth, tmp_path / "eval", "model.neck=dsic")
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(cfg_file), result["final"], *overrides, "--precision", "fp8"])
    assert exc.value.code == 2 and "invalid choice: 'fp8'" in capsys.readouterr().err
    assert main(["eval", str(cfg_file), result["final"], *overrides, "--precision", "fp16"]) == 2
    err = capsys.readouterr().err
    assert err == ("dsic: error: precision fp16 needs a CUDA device, got cpu; use bf16 or fp32 on the CPU "
                   "(--debug shows the traceback)\n")
    assert main(["profile", "--backbone", "resnet_tiny", "--precision", "fp32,fp16"]) == 2
    assert capsys.readouterr().err.startswith("dsic: error: precision fp16 needs a CUDA device")
    with pytest.raises(SystemExit) as exc:
        main(["profile", "--precision", "fp32,fp8"])
    assert exc.value.code == 2 and "unknown precision 'fp8'" in capsys.readouterr().err


# --- profile: memory, throughput, ratios ---------------------------------------------------------------

def test_peak_memory_counts_allocations_in_order():
    def fn():
        a = torch.empty(2**20)  # 4 MiB
        b = torch.empty(2**21)  # 8 MiB: 12 live
        del a
        c = torch.empty(2**20)  # 4 MiB: 12 live again, not 16
        return b, c

    assert peak_memory_mb(fn, torch.device("cpu")) == pytest.approx(12.0)


SMALL = {"out_channels": 16, "detector_cfg": {"rpn_post_nms_top_n_test": 20, "rpn_post_nms_top_n_train": 20,
                                              "rpn_pre_nms_top_n_test": 50, "rpn_pre_nms_top_n_train": 50,
                                              "box_batch_size_per_image": 16}}


def test_profile_reports_memory_throughput_and_ratios_per_precision():
    rows = profile("faster_rcnn", "resnet_tiny", ["fpn", "dsic"], size=64, num_classes=3, warmup=0, repeats=1,
                   precisions=["fp32", "bf16"], batch=2, train=True, memory=True, model_cfg=SMALL, slow_bf16=True)
    assert [(r.neck, r.precision) for r in rows] == [("fpn", "fp32"), ("dsic", "fp32"), ("fpn", "bf16"),
                                                    ("dsic", "bf16")]
    for r in rows:
        for figure in ("neck_ms", "detector_ms", "infer_img_s", "infer_peak_mb", "train_step_ms", "train_img_s",
                       "train_peak_mb"):
            assert getattr(r, figure) > 0, (r.neck, r.precision, figure)
        assert r.train_img_s == pytest.approx(2000 / r.train_step_ms)
        ref = rows[0] if r.precision == "fp32" else rows[2]
        assert r.ratio["train_peak_mb"] == pytest.approx(r.train_peak_mb / ref.train_peak_mb, rel=1e-3)
    assert rows[0].ratio["detector_ms"] == 1.0 and rows[0].vs_fp32 == {}
    assert rows[3].vs_fp32["neck_ms"] == pytest.approx(rows[3].neck_ms / rows[1].neck_ms, rel=1e-3)
    # a training step holds activations and gradients: more memory than inference
    assert rows[1].train_peak_mb > rows[1].infer_peak_mb


def test_fixed_proposals_give_every_neck_the_same_boxes():
    from dsic.profiling import SharedProposals

    shared, seen = SharedProposals(), []
    models = []
    for neck in ("fpn", "dsic"):
        torch.manual_seed(0)
        from dsic.models import build_detector

        m = build_detector("faster_rcnn", "resnet_tiny", neck, num_classes=3, min_size=64, max_size=64,
                           **SMALL).eval()
        m.rpn.register_forward_hook(shared)
        m.roi_heads.register_forward_pre_hook(lambda mod, args: seen.append(args[1][0].clone()))
        models.append(m)
    image = [torch.rand(3, 64, 64)]
    with torch.inference_mode():
        for m in models:
            m(image)
    assert len(seen) == 2 and torch.equal(seen[0], seen[1])


def test_add_ratios_relative_to_the_reference_neck():
    from dsic.profiling import Profile

    def row(neck, precision, ms):
        return Profile("faster_rcnn", "r", neck, 64, 1, 1, 1, 1, ms, 2 * ms, precision=precision)

    rows = add_ratios([row("fpn", "fp32", 10), row("dsic", "fp32", 12), row("fpn", "bf16", 5),
                       row("dsic", "bf16", 5.5)], "fpn")
    assert rows[1].ratio == {"neck_ms": 1.2, "detector_ms": 1.2}
    assert rows[3].ratio == {"neck_ms": 1.1, "detector_ms": 1.1}
    assert rows[3].vs_fp32 == {"neck_ms": pytest.approx(0.4583, abs=1e-4), "detector_ms": pytest.approx(0.4583,
                                                                                                           abs=1e-4)}


# --- CSG's fast paths compute the reference formula ------------------------------------------------------

@pytest.mark.parametrize("cfg", [{}, {"mode": "softmax", "select_mode": "softmax"}, {"output_conv": False}])
def test_csg_fast_paths_equal_the_materialised_formula(cfg):
    """CSG.forward (gating at the source resolution, gain folded into the signals, in-place sums,
    abs-mean magnitudes) equals P'_k = gain * sum_i G(w_ik, M_ik) * s_ik on every path materialised
    by Resampler.forward, within float tolerance (measured max difference: 1e-6 of the output's
    largest magnitude)."""
    from dsic.necks.csg import CSG, upsample
    from dsic.ops.gate import global_pool

    torch.manual_seed(0)
    csg = CSG([8, 16, 32, 64], 16, **cfg).eval()
    for name, param in csg.control.named_parameters():  # move the gates away from their constant start
        if name.endswith("weight"):
            torch.nn.init.normal_(param, std=0.3)
    feats = [b[-1] for b in blocks_for(SPEC, batch=2, seed=3)]
    with torch.no_grad():
        out = csg(feats)
        paths = csg.paths(feats)  # M[k][i], every path materialised
        lat = [f(x) for f, x in zip(csg.paths.lateral, feats)]
        for k, m in enumerate(paths):
            src = [m[i] if i <= k else lat[i] for i in range(4)]  # descriptors of upsampled paths: source
            pooled = [global_pool(x) for x in src]
            mags = [x.abs().mean(1, keepdim=True) if i <= k else upsample(x.abs().mean(1, keepdim=True),
                                                                             m[k].shape[-2:])
                    for i, x in enumerate(src)]
            w, s = csg.control[k](pooled, mags)  # the control unit itself is not under test here
            p = csg.init_gain * sum(w[:, i] * m[i] * s[:, i : i + 1] for i in range(4))
            ref = csg.output[k](p) if csg.output is not None else p
            torch.testing.assert_close(out[k], ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
