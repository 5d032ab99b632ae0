"""EXIF orientation: predict reads photos upright; datasets read pixels as stored and say so."""

import json

from PIL import Image

from dsic.cli import main
from dsic.data.coco import EXIF_ORIENTATION, image_problem
from dsic.inference import read_image


def turned_photo(path, size=(40, 20), orientation=6):
    """A ``size`` (WxH) JPEG whose EXIF tag says: turn by 90 degrees to view (6: clockwise)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    image = Image.new("RGB", size, (200, 30, 30))
    image.paste((20, 20, 220), (0, 0, 10, size[1]))  # the left edge blue
    image.save(path, exif=exif.tobytes())
    return path


def test_read_image_applies_the_orientation(tmp_path):
    image = read_image(turned_photo(tmp_path / "phone.jpg"))
    assert image.shape == (3, 40, 20)  # 40 wide stored, 40 high viewed
    assert image[2, :5].mean() > 0.7 and image[2, -5:].mean() < 0.3  # stored left edge on top after turning


def test_predict_reports_the_upright_size(checkpoint, tmp_path):
    photo = turned_photo(tmp_path / "phone.jpg")
    assert main(["predict", str(checkpoint), str(photo), "--out", str(tmp_path / "o")]) == 0
    record = json.loads((tmp_path / "o" / "images.json").read_text())["images"][0]
    assert (record["width"], record["height"]) == (20, 40)


def test_a_dataset_image_turned_by_exif_is_named_with_the_reason(tmp_path):
    photo = turned_photo(tmp_path / "phone.jpg")
    problem = image_problem(photo, 20, 40)
    assert problem.startswith("size 40x20 (WxH), the annotation file says 20x40; its EXIF orientation turns it "
                              "to the annotated size, but training reads pixels as stored")
    assert image_problem(photo, 40, 20) is None  # annotated as stored: fine
    assert image_problem(photo, 30, 30) == "size 40x20 (WxH), the annotation file says 30x30"
