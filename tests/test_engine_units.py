"""Engine pieces without training: lr policy, parameter groups, atomic checkpoints, samplers."""

import os
import re

import pytest
import torch

from dsic.engine import checkpoint as ckpt_mod
from dsic.engine.builders import SeededSamples, ShardSampler, TrainSampler
from dsic.engine.checkpoint import load_checkpoint, model_state, save_atomic
from dsic.engine.distributed import DistInfo
from dsic.engine.param_groups import parameter_groups
from dsic.engine.schedule import WarmupMultiStep, build_scheduler, scaled_lr, step_iterations


def test_warmup_multistep_values():
    policy = WarmupMultiStep([100, 150], gamma=0.1, warmup_iters=10, warmup_factor=0.001)
    assert policy(0) == pytest.approx(0.001)
    assert policy(5) == pytest.approx(0.001 * 0.5 + 0.5)
    assert policy(9) == pytest.approx(0.001 * 0.1 + 0.9)
    assert policy(10) == 1.0 and policy(99) == 1.0
    assert policy(100) == pytest.approx(0.1) and policy(149) == pytest.approx(0.1)
    assert policy(150) == pytest.approx(0.01) and policy(10**6) == pytest.approx(0.01)
    no_warmup = WarmupMultiStep([3], gamma=0.5, warmup_iters=0)
    assert [no_warmup(i) for i in range(5)] == [1, 1, 1, 0.5, 0.5]
    # a drop inside the warmup multiplies the warmup factor
    assert WarmupMultiStep([2], 0.1, 4, 0.0)(2) == pytest.approx(0.1 * 0.5)


def test_lr_scaling_and_step_iterations():
    assert scaled_lr(0.02, 2, 8, 16) == pytest.approx(0.02)  # 8 GPUs x 2 images: the reference lr
    assert scaled_lr(0.02, 2, 1, 16) == pytest.approx(0.0025)
    assert scaled_lr(0.01, 4, 2, 4) == pytest.approx(0.02)
    assert step_iterations([8, 11], 100) == [800, 1100]
    assert step_iterations([4, 5.5], 3) == [12, 17]  # fractional epochs round half up (16.5 -> 17)
    assert step_iterations([2.5], 5) == [13]


def test_scheduler_sets_every_group():
    a, b = torch.nn.Parameter(torch.ones(2, 2)), torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b], "weight_decay": 0.0}], lr=0.04, momentum=0.9)
    sched = build_scheduler(opt, [1, 2], iters_per_epoch=10, gamma=0.1, warmup_iters=4, warmup_factor=0.25)
    expect = {0: 0.01, 2: 0.04 * (0.25 * 0.5 + 0.5), 4: 0.04, 9: 0.04, 10: 0.004, 19: 0.004, 20: 0.0004}
    for it, lr in expect.items():
        assert sched.set(it) == pytest.approx(lr)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([lr, lr])
    assert sched.state_dict()["iteration"] == 20 and sched.state_dict()["step_iters"] == [10, 20]


def test_parameter_groups_without_decay_on_norms_and_biases():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.GroupNorm(2, 4), torch.nn.Conv2d(4, 4, 1))
    model[2].weight.requires_grad_(False)
    one = parameter_groups(model, 1e-4, True)
    assert len(one) == 1 and len(one[0]["params"]) == 5 and one[0]["weight_decay"] == 1e-4
    decay, no_decay = parameter_groups(model, 1e-4, False)
    assert [tuple(p.shape) for p in decay["params"]] == [(4, 3, 3, 3)] and decay["weight_decay"] == 1e-4
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0  # 2 biases, GN weight and bias


def test_gate_lr_mult_gives_the_gate_signals_their_own_lr():
    from dsic.engine.param_groups import gate_parameters
    from dsic.engine.schedule import IterationLR
    from dsic.necks.csg import CSG

    neck = CSG([8, 16, 32], out_channels=16)
    gates = gate_parameters(neck)
    assert gates == {id(p) for unit in neck.control for p in unit.parameters()}
    assert len(parameter_groups(neck, 1e-4, True)) == 1  # no multiplier: one group, as before
    rest, gate_group = parameter_groups(neck, 1e-4, True, gate_lr_mult=10.0)
    assert {id(p) for p in gate_group["params"]} == gates and gate_group["lr_mult"] == 10.0
    assert not gates & {id(p) for p in rest["params"]} and "lr_mult" not in rest
    assert len(parameter_groups(neck, 1e-4, False, gate_lr_mult=10.0)) == 4
    opt = torch.optim.SGD(parameter_groups(neck, 1e-4, True, gate_lr_mult=10.0), lr=0.02)
    sched = IterationLR(opt, WarmupMultiStep([100], 0.1, 0, 1.0))
    sched.set(150)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.002, 0.02])


def test_atomic_save_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ck.pth"
    save_atomic({"a": torch.ones(3)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):  # fails while writing
        save_atomic({"a": torch.zeros(3), "b": Unpicklable()}, path)
    assert torch.equal(load_checkpoint(path)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pth"]  # no temporary file is left

    def crash(src, dst):  # the process "dies" between writing and renaming
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"a": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pth"]


def test_atomic_save_gives_the_permissions_of_a_plain_save(tmp_path):
    old = os.umask(0o027)
    try:
        path = save_atomic({"x": 1}, tmp_path / "a.pth")
        assert path.stat().st_mode & 0o777 == 0o640  # 0666 less the umask, not mkstemp's 0600
        path.chmod(0o604)
        save_atomic({"x": 2}, path)
        assert path.stat().st_mode & 0o777 == 0o604  # an existing file keeps its permissions
    finally:
        os.umask(old)


def test_atomic_save_syncs_before_renaming(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(ckpt_mod.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(ckpt_mod.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    save_atomic({"x": 1}, tmp_path / "sub" / "a.pth")  # creates the folder too
    assert events[:2] == ["fsync", "replace"]
    assert load_checkpoint(tmp_path / "sub" / "a.pth") == {"x": 1}


def test_load_checkpoint_errors_and_model_state(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*missing.pth"):
        load_checkpoint(tmp_path / "missing.pth")
    good = save_atomic({"model": {"w": torch.ones(1)}}, tmp_path / "good.pth")
    (tmp_path / "cut.pth").write_bytes(good.read_bytes()[:40])
    with pytest.raises(ValueError, match="cannot read checkpoint .*cut.pth"):
        load_checkpoint(tmp_path / "cut.pth")
    for size in (400, len(good.read_bytes()) - 10):  # torch says "[Errno 22] Invalid argument" or miniz errors
        (tmp_path / "cut.pth").write_bytes(good.read_bytes()[:size])
        with pytest.raises(ValueError, match=rf"^cannot read checkpoint {re.escape(str(tmp_path))}/cut.pth: "
                                             rf"truncated or damaged \({size} bytes; the zip archive"):
            load_checkpoint(tmp_path / "cut.pth")
    (tmp_path / "notes.txt").write_text("root:x:0:0:root:/root:/bin/bash\n")  # a file passed by mistake
    with pytest.raises(ValueError, match=r"cannot read checkpoint .*notes.txt: not a PyTorch file \(torch.save writes"):
        load_checkpoint(tmp_path / "notes.txt")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="cannot read checkpoint .*empty.pth: not a PyTorch file"):
        load_checkpoint(tmp_path / "empty.pth")
    assert model_state({"model": {"module.w": 1, "module.b": 2}}) == {"w": 1, "b": 2}
    assert model_state({"w": 1}) == {"w": 1}


def test_train_sampler_order_depends_on_seed_and_epoch_and_can_skip():
    data = list(range(10))
    one = TrainSampler(data, DistInfo(), seed=3)
    one.set_epoch(0)
    order0 = list(one)
    one.set_epoch(1)
    order1 = list(one)
    assert sorted(order0) == data and order0 != order1
    again = TrainSampler(data, DistInfo(), seed=3)
    again.set_epoch(1, skip=4)
    assert list(again) == order1[4:] and len(again) == 6
    again.set_epoch(1)
    assert list(again) == order1
    shards = [TrainSampler(data, DistInfo(rank=r, world_size=3), seed=3) for r in range(3)]
    for s in shards:
        s.set_epoch(1)
    assert all(len(list(s)) == 4 for s in shards) and set().union(*map(set, shards)) == set(data)


def test_shard_sampler_covers_every_image_once():
    for n, world in ((5, 2), (7, 3), (2, 4), (0, 2)):
        parts = [list(ShardSampler(range(n), DistInfo(rank=r, world_size=world))) for r in range(world)]
        assert [i for part in parts for i in part] == list(range(n))


class RandomItem(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.rand(1).item()


def test_seeded_samples_are_reproducible_and_leave_the_global_rng_alone():
    data = SeededSamples(RandomItem(), seed=1)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = [data[i] for i in range(4)]
    assert torch.equal(torch.get_rng_state(), before)
    assert [data[i] for i in (3, 2, 1, 0)] == first[::-1]  # independent of the order of access
    data.set_epoch(1)
    assert [data[i] for i in range(4)] != first
    assert len(set(first)) == 4
