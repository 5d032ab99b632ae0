"""train.lr_mults: lr factors by parameter-name pattern, freezing, errors, resume, run placeholders."""
import pytest
import torch

from dsic.config import ConfigError, load_config
from dsic.engine.param_groups import lr_factors, parameter_groups
from dsic.engine.schedule import IterationLR, WarmupMultiStep
from dsic.necks.csg import CSG


def _neck():
    torch.manual_seed(0)
    return CSG([8, 16, 32], out_channels=16)


def test_first_matching_pattern_wins_over_the_gate_factor():
    neck = _neck()
    factors = lr_factors(neck, gate_lr_mult=0.1,
                         lr_mults={"control.*.channel.2.*": 1.0, "control.*.select.0.*": 2.0, "control.*": 0.5})
    assert factors["control.0.channel.2.weight"] == 1.0 and factors["control.2.select.0.bias"] == 2.0
    assert factors["control.1.channel.0.weight"] == 0.5 and factors["control.1.select.2.bias"] == 0.5
    assert factors["paths.lateral.0.weight"] == 1.0 and factors["output.0.weight"] == 1.0
    # without patterns the gate signals keep gate_lr_mult
    assert lr_factors(neck, gate_lr_mult=0.1)["control.0.channel.2.weight"] == 0.1


def test_factor_zero_freezes_and_groups_follow_the_factors():
    neck = _neck()
    groups = parameter_groups(neck, 1e-4, True, 0.1, {"control.*.channel.2.*": 1.0, "control.*": 0.1, "*": 0})
    trainable = {n for n, p in neck.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("control.") for n in trainable)
    assert not any(p.requires_grad for n, p in neck.named_parameters() if n.startswith(("paths.", "output.")))
    first, second = groups
    assert "lr_mult" not in first and {id(p) for p in first["params"]} == {
        id(p) for n, p in neck.named_parameters() if ".channel.2." in n}
    assert second["lr_mult"] == 0.1 and len(first["params"]) + len(second["params"]) == len(trainable)
    opt = torch.optim.SGD(groups, lr=0.02)
    IterationLR(opt, WarmupMultiStep([100], 0.1, 0, 1.0)).set(10)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.02, 0.002])
    # a frozen parameter gets no gradient, the trained ones do
    out = neck([torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4)])
    sum(o.sum() for o in out).backward()
    assert neck.paths.lateral[0].weight.grad is None and neck.control[0].channel[2].weight.grad is not None


def test_a_pattern_matching_nothing_is_named():
    with pytest.raises(ValueError, match=r"^train.lr_mults: pattern 'contrl\.\*' matches no trainable parameter"):
        lr_factors(_neck(), lr_mults={"control.*": 1.0, "contrl.*": 2.0})


@pytest.mark.parametrize("value, message", [
    ('{"*": -1}', r"train\.lr_mults\.\*: lr factor must be a number >= 0, got -1$"),
    ('{"*": true}', r"train\.lr_mults\.\*: lr factor must be a number >= 0, got True$"),
    ('{"*": .inf}', r"'train\.lr_mults\.\*' = inf is not a finite number$"),  # where the number enters
])
def test_config_rejects_bad_factors_in_one_line(value, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(None, [f"train.lr_mults={value}"])
    assert "\n" not in str(err.value)


def test_config_rejects_a_list():
    with pytest.raises(ConfigError, match="train.lr_mults"):
        load_config(None, ["train.lr_mults=[1, 2]"])


def test_resume_uses_the_current_configs_factors(tmp_path, tiny_synth):
    """A checkpoint's optimizer groups carry the factor they trained with; a resumed run follows
    the current config, as it does for the lr itself."""
    from dsic.demo import data_overrides
    from dsic.engine.checkpoint import load_checkpoint
    from dsic.engine.train import train

    from .test_engine_train import factory

    def cfg(mult, epochs):
        return load_config(None, [*data_overrides(tiny_synth), "data.num_workers=0", "model.num_classes=10",
                                  "train.batch_size=4", "train.base_batch_size=4", "train.warmup_iters=0",
                                  "train.eval_every=0", f"train.epochs={epochs}", "train.steps=[5]", "train.log_every=1",
                                  f"train.lr_mults={{'det.rpn.*': {mult}}}", f"output_dir={tmp_path}"])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # steps this small only lose from more threads on a shared CPU
    try:
        train(cfg(0.5, epochs=1), factory())
        saved = load_checkpoint(tmp_path / "last.pth")["optimizer"]["param_groups"]
        train(cfg(0.25, epochs=2), factory(), resume=True)
    finally:
        torch.set_num_threads(threads)
    assert [g.get("lr_mult") for g in saved] == [None, 0.5]
    log = [line for line in (tmp_path / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(log) == 6
    groups = load_checkpoint(tmp_path / "last.pth")["optimizer"]["param_groups"]
    assert [g.get("lr_mult") for g in groups] == [None, 0.25]
    assert groups[1]["lr"] == pytest.approx(groups[0]["lr"] * 0.25)


def test_benchmark_rows_may_name_their_seed_and_runs_folder(tmp_path):
    from dsic.demo import train_command
    from dsic.protocol import get_protocol

    cmd = train_command(get_protocol("v4"), tmp_path, ["model.init_from={runs}/dsic_gatelr01_seed{seed}/final.pth"],
                        tmp_path / "runs" / "x_seed3", 3, quick=False)
    assert f"model.init_from={tmp_path}/runs/dsic_gatelr01_seed3/final.pth" in cmd
