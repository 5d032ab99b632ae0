import pytest
import torch

from dsic.cli import main
from dsic.profiling import count_flops, format_table, profile


def test_count_flops_of_a_conv_is_two_times_macs():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_flops(conv, torch.rand(1, 3, 10, 10)) == 2 * 8 * 3 * 9 * 100


def test_profile_rows_and_table():
    rows = profile("faster_rcnn", "resnet_tiny", ["fpn", "dsic"], size=128, warmup=0, repeats=1)
    fpn, dsic = rows
    assert fpn.neck == "fpn" and dsic.neck == "dsic"
    assert dsic.neck_params_m > fpn.neck_params_m > 0
    assert dsic.neck_gflops > fpn.neck_gflops > 0
    assert dsic.detector_gflops - fpn.detector_gflops == pytest_approx(dsic.neck_gflops - fpn.neck_gflops)
    assert fpn.neck_ms > 0 and dsic.detector_ms > 0
    table = format_table(rows)
    assert "| faster_rcnn | resnet_tiny | dsic | 128 |" in table and "1.00x" in table


def pytest_approx(x):
    return pytest.approx(x, rel=1e-6, abs=1e-9)


def test_profile_command_writes_json(tmp_path, capsys):
    out = tmp_path / "p.json"
    main(["profile", "--arch", "retinanet", "--backbone", "resnet_tiny", "--necks", "fpn,csg", "--size", "96",
          "--warmup", "0", "--repeats", "1", "--batch", "1", "--no-train", "--no-memory", "--out", str(out)])
    assert "| retinanet | resnet_tiny | csg | 96 |" in capsys.readouterr().out
    assert out.is_file() and '"neck": "csg"' in out.read_text()


def test_profile_checks_out_before_profiling(tmp_path, capsys, monkeypatch):
    import dsic.profiling

    monkeypatch.setattr(dsic.profiling, "profile", lambda *a, **kw: pytest.fail("profiled"))
    (tmp_path / "file").write_text("")
    for out, said in ((tmp_path, f"is a folder; expected the JSON file to write, e.g. '{tmp_path}/profile.json'"),
                      (tmp_path / "file" / "p.json", f"{tmp_path}/file is a file, not a folder")):
        assert main(["profile", "--out", str(out)]) == 2
        assert capsys.readouterr().err.splitlines() == [
            f"dsic: error: --out '{out}': {said} (--debug shows the traceback)"]


def test_profile_takes_the_class_count_of_a_config_with_num_classes_null(tiny_synth, tmp_path, capsys, monkeypatch):
    import dsic.profiling

    seen = {}
    real = dsic.profiling.profile
    monkeypatch.setattr(dsic.profiling, "profile", lambda *a, **kw: seen.update(kw) or real(*a, **kw))
    config = tmp_path / "mine.yaml"  # the own-data config of README.md: classes from the training JSON
    config.write_text("model: {backbone: resnet_tiny, norm: gn, num_classes: null, out_channels: 32}\n"
                      f"data: {{train: {{images: {tiny_synth}/train, "
                      f"annotations: {tiny_synth}/annotations/instances_train.json}}}}\n")
    assert main(["profile", "--config", str(config), "--necks", "fpn", "--size", "64", "--warmup", "0",
                 "--repeats", "1", "--batch", "0", "--no-train", "--no-memory"]) == 0
    assert seen["num_classes"] == 10 and "| faster_rcnn | resnet_tiny | fpn | 64 |" in capsys.readouterr().out

