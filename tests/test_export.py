"""``dsic export``: ONNX (run by onnxruntime) and TorchScript files give eager PyTorch's detections."""

import warnings

import pytest
import torch

from dsic.cli import main
from dsic.config import load_config
from dsic.models import build_detector

SIZE = 128


def tiny_checkpoint(tmp_path, neck, overrides=()):
    cfg = load_config(None, [f"model.neck={neck}", "model.backbone=resnet_tiny", "model.num_classes=3",
                             "model.out_channels=32", f"model.min_size={SIZE}", f"model.max_size={SIZE}",
                             "model.detector_cfg={box_score_thresh: 0.0}", *overrides])
    torch.manual_seed(0)
    model = build_detector(**cfg["model"]).eval()
    path = tmp_path / f"{neck}.pth"
    torch.save({"model": model.state_dict(), "config": cfg}, path)
    return model, path


@pytest.mark.parametrize("neck, overrides", [("fpn", ()), ("dsic", ())], ids=["fpn", "dsic"])
def test_onnx_and_torchscript_match_eager(tmp_path, neck, overrides):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    model, ckpt = tiny_checkpoint(tmp_path, neck, overrides)
    image = torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        eager = model([image])[0]
    assert len(eager["boxes"]) > 10
    assert main(["export", str(ckpt), "--format", "onnx", "--size", str(SIZE), str(SIZE),
                 "--out", str(tmp_path / "m.onnx")]) == 0
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"]
    boxes, labels, scores = session.run(["boxes", "labels", "scores"], {"image": image.numpy()})
    torch.testing.assert_close(torch.from_numpy(boxes), eager["boxes"], rtol=0, atol=1e-3)
    torch.testing.assert_close(torch.from_numpy(scores), eager["scores"], rtol=0, atol=1e-4)
    assert torch.equal(torch.from_numpy(labels), eager["labels"])
    assert main(["export", str(ckpt), "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, (script,) = scripted([image])
    torch.testing.assert_close(script["boxes"], eager["boxes"], rtol=0, atol=1e-4)
    assert torch.equal(script["labels"], eager["labels"])


def test_export_refuses_bad_arguments(tmp_path, capsys):
    _, ckpt = tiny_checkpoint(tmp_path, "fpn")
    assert main(["export", str(ckpt), "--size", "8", "8", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "the example size must be at least 32x32 pixels, got 8x8" in capsys.readouterr().err


@pytest.mark.parametrize("out, fmt, message", [
    ("m.txt", None, "m.txt: the suffix does not say the format; name the file .onnx or .pt, or give --format"),
    ("m.pt", "onnx", "m.pt: a .pt file would hold torchscript, but the format is onnx; name the file .onnx"),
    ("m.onnx", "torchscript", "m.onnx: a .onnx file would hold onnx, but the format is torchscript; name the file .pt"),
])
def test_the_output_suffix_and_the_format_must_agree(tmp_path, capsys, out, fmt, message):
    _, ckpt = tiny_checkpoint(tmp_path, "fpn")
    argv = ["export", str(ckpt), "--out", str(tmp_path / out)] + (["--format", fmt] if fmt else [])
    assert main(argv) == 2
    assert capsys.readouterr().err == f"dsic: error: {tmp_path}/{message} (--debug shows the traceback)\n"
    assert not (tmp_path / out).exists()


def test_the_format_follows_the_output_suffix():
    from dsic.export import output_format

    assert output_format("a/m.onnx") == "onnx" and output_format("m.PT") == "torchscript"
    assert output_format("m.ts") == "torchscript" and output_format("m.bin", "onnx") == "onnx"
