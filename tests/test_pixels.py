"""Pixels deeper than 8 bits are scaled, not clipped, by every image reader; float images are refused."""

import numpy as np
import pytest
import torch
from PIL import Image

from dsic.cli import main
from dsic.data.coco import CocoDetection, image_problem, read_rgb
from dsic.data.errors import DatasetError
from dsic.data.pixels import UnsupportedPixels, to_rgb
from dsic.inference import read_image

from .helpers import write_coco

RAMP = (np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 341)  # 0 .. 65131, every 16-bit decade


def sixteen_bit_png(path):
    Image.fromarray(RAMP).save(path)  # Pillow writes mode I;16 as a 16-bit grayscale PNG
    with Image.open(path) as im:
        assert im.mode == "I;16"
    return path


def test_sixteen_bit_pixels_are_scaled_by_their_range():
    out = np.asarray(to_rgb(Image.fromarray(RAMP)))
    assert out.shape == (12, 16, 3) and out.dtype == np.uint8
    assert np.array_equal(out[..., 0], np.rint(RAMP / 257).astype(np.uint8))  # Pillow alone: 255 almost everywhere
    assert (out[..., 0] == out[..., 2]).all() and out.max() == 253 and out.min() == 0


def test_thirty_two_bit_integer_pixels_are_read_as_sixteen_bit_and_clipped():
    values = np.array([[0, 257, 65535, 70000, -5]], dtype=np.int32)
    out = np.asarray(to_rgb(Image.fromarray(values, mode="I")))[..., 0]
    assert out.tolist() == [[0, 1, 255, 255, 0]]


def test_float_pixels_are_refused_with_the_reason():
    with pytest.raises(UnsupportedPixels, match=r"pixel mode 'F' \(32-bit floating point\) has no fixed range"):
        to_rgb(Image.new("F", (4, 4), 0.5))


def test_predict_reads_a_sixteen_bit_png_as_its_eight_bit_twin(tmp_path):
    image = read_image(sixteen_bit_png(tmp_path / "thermal.png"))
    assert image.shape == (3, 12, 16)
    torch.testing.assert_close(image[0], torch.from_numpy(np.rint(RAMP / 257) / 255).float())


def test_predict_skips_a_float_image_naming_it(checkpoint, tmp_path, capsys):
    Image.new("F", (16, 12), 0.5).save(tmp_path / "depth.tiff")
    sixteen_bit_png(tmp_path / "thermal.png")
    assert main(["predict", str(checkpoint), str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "skipping " in err and "depth.tiff" in err and "pixel mode 'F'" in err
    assert (tmp_path / "o" / "thermal_det.png").is_file() and not (tmp_path / "o" / "depth_det.png").exists()


def test_a_dataset_reads_sixteen_bit_images_and_names_float_ones(tmp_path):
    images = [{"id": 1, "file_name": "t.png", "width": 16, "height": 12}]
    img_dir, ann = write_coco(tmp_path, images, [])
    sixteen_bit_png(img_dir / "t.png")
    image, _ = CocoDetection(img_dir, ann)[0]
    assert 0.3 < image.mean() < 0.7  # the ramp's mean, 0.5; clipped it would be ~1
    Image.new("F", (16, 12), 0.5).save(img_dir / "f.tiff")
    assert image_problem(img_dir / "f.tiff", 16, 12).startswith("pixel mode 'F' (32-bit floating point)")
    with pytest.raises(DatasetError, match=r"image 1 cannot be decoded: .*f.tiff: pixel mode 'F'"):
        read_rgb(img_dir / "f.tiff", 1)
