import json

import pytest

from dsic.data.coco import CocoDetection
from dsic.data.errors import DatasetError

from .helpers import write_coco

IMG = [{"id": 1, "file_name": "x.png", "width": 16, "height": 12}]
ANN = {"id": 9, "image_id": 1, "category_id": 3, "bbox": [1, 1, 4, 4]}


def make(tmp_path, images=IMG, anns=(ANN,), **kw):
    img_dir, ann = write_coco(tmp_path, images, list(anns))
    return CocoDetection(img_dir, ann, **kw)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(DatasetError, match="annotation file not found: .*nope.json"):
        CocoDetection(tmp_path, tmp_path / "nope.json")


def test_malformed_json_names_file_and_position(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [}')
    with pytest.raises(DatasetError, match=r"bad.json: malformed JSON at line 1 column 13"):
        CocoDetection(tmp_path, bad)


@pytest.mark.parametrize("field", ["bbox", "category_id", "image_id"])
def test_annotation_missing_field(tmp_path, field):
    ann = {k: v for k, v in ANN.items() if k != field}
    with pytest.raises(DatasetError, match=f"ann.json: annotation 9 has no field '{field}'"):
        make(tmp_path, anns=[ann])


@pytest.mark.parametrize("bbox", [[1, 2, 3], [1, "a", 3, 4], "1,2,3,4"])
def test_bad_bbox(tmp_path, bbox):
    with pytest.raises(DatasetError, match="annotation 9 field 'bbox' must be 4 numbers"):
        make(tmp_path, anns=[dict(ANN, bbox=bbox)])


def test_unknown_category_and_image(tmp_path):
    with pytest.raises(DatasetError, match="annotation 9 field 'category_id' = 5 is not among the categories"):
        make(tmp_path, anns=[dict(ANN, category_id=5)])
    with pytest.raises(DatasetError, match="annotation 9 field 'image_id' = 4 names no image"):
        make(tmp_path / "b", anns=[dict(ANN, image_id=4)])


def test_missing_image_file(tmp_path):
    ds = make(tmp_path)
    (ds.images_dir / "x.png").unlink()
    with pytest.raises(DatasetError, match=r"image 1 file not found: .*x.png"):
        ds[0]


def test_corrupt_image_file(tmp_path):
    ds = make(tmp_path)
    (ds.images_dir / "x.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match=r"image 1 cannot be decoded: .*x.png"):
        ds[0]


def test_image_size_disagrees_with_json(tmp_path):
    ds = make(tmp_path)
    ds.coco.imgs[1]["width"] = 30
    with pytest.raises(DatasetError, match=r"image 1 .*x.png: size 16x12 \(WxH\) differs .* 30x12"):
        ds[0]


def test_image_record_missing_field_and_bad_segmentation(tmp_path):
    with pytest.raises(DatasetError, match="image 1 has no field 'height'"):
        make(tmp_path, images=[{k: v for k, v in IMG[0].items() if k != "height"}])
    ds = make(tmp_path / "b", anns=[dict(ANN, segmentation={"counts": 5})], with_masks=True)
    with pytest.raises(DatasetError, match="annotation 9 field 'segmentation' is malformed"):
        ds[0]
    ds = make(tmp_path / "c", with_masks=True)
    with pytest.raises(DatasetError, match="annotation 9 has no field 'segmentation'"):
        ds[0]


def test_not_an_object(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(DatasetError, match="list.json: expected a JSON object"):
        CocoDetection(tmp_path, path)
