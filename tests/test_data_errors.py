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


def test_missing_images_folder(tmp_path):
    _, ann = write_coco(tmp_path, IMG, [ANN])
    with pytest.raises(DatasetError, match="images folder not found: .*no_such_dir"):
        CocoDetection(tmp_path / "no_such_dir", ann)


def test_malformed_json_gives_the_character_position(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": []\n, "x": tru}')
    with pytest.raises(DatasetError, match=r"bad.json: malformed JSON at line 2 column 8 \(char 21\)"):
        CocoDetection(tmp_path, bad)
    bad.write_bytes(b'{"images": "\xff"}')
    with pytest.raises(DatasetError, match=r"bad.json: not UTF-8 text \(byte 12\)"):
        CocoDetection(tmp_path, bad)


@pytest.mark.parametrize("record, message", [
    ({"id": "1"}, r"image field 'id' = '1' is not an integer"),
    ({"width": 0}, r"image 1 field 'width' = 0 is not a positive integer"),
    ({"height": 12.5}, r"image 1 field 'height' = 12.5 is not a positive integer"),
    ({"file_name": ""}, r"image 1 field 'file_name' must be a non-empty string"),
])
def test_bad_image_records(tmp_path, record, message):
    img_dir, ann = write_coco(tmp_path, IMG, [])
    data = json.loads(ann.read_text())
    data["images"][0].update(record)
    ann.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=f"ann.json: {message}"):
        CocoDetection(img_dir, ann)


def test_duplicate_ids(tmp_path):
    with pytest.raises(DatasetError, match=r"ann.json: image field 'id' = 1 .* duplicated"):
        make(tmp_path, images=[IMG[0], dict(IMG[0], file_name="y.png")], anns=[])
    with pytest.raises(DatasetError, match=r"ann.json: annotation field 'id' = 9 .* duplicated"):
        make(tmp_path / "b", anns=[ANN, ANN])
    with pytest.raises(DatasetError, match=r"ann.json: category field 'id' = 3 .* duplicated"):
        img_dir, ann = write_coco(tmp_path / "c", IMG, [ANN], categories=[{"id": 3}, {"id": 3}])
        CocoDetection(img_dir, ann)


@pytest.mark.parametrize("field, value, message", [
    ("bbox", [1, float("nan"), 3, 4], "field 'bbox' must be 4 numbers"),
    ("bbox", [1, True, 3, 4], "field 'bbox' must be 4 numbers"),
    ("iscrowd", 2, "field 'iscrowd' = 2 must be 0 or 1"),
    ("area", "big", "field 'area' = 'big' is not a number"),
])
def test_bad_annotation_values(tmp_path, field, value, message):
    with pytest.raises(DatasetError, match=f"ann.json: annotation 9 {message}"):
        make(tmp_path, anns=[dict(ANN, **{field: value})])


@pytest.mark.parametrize("segmentation, message", [
    ([], "an empty polygon list"),
    ([[1, 1, 5, 1, 5]], "a polygon must be an even number"),
    ([[1, 1, 5, 1]], "a polygon must be an even number"),
    ([[1, 1, "5", 1, 5, 5]], "a polygon must be an even number"),
    ({"size": [12, 15], "counts": [192]}, r"RLE 'size' \[12, 15\] is not the image's \[height, width\] = \[12, 16\]"),
    ({"size": [12, 16], "counts": [100, 50]}, "RLE run lengths must be >= 0 and add up to height \\* width = 192, got 150"),
    ({"size": [12, 16], "counts": [200, -8]}, "RLE run lengths must be >= 0"),
    ({"size": [12, 16], "counts": "19"}, "RLE run lengths .* = 192, got 10"),
    ({"size": [12, 16], "counts": "z"}, "compressed RLE 'counts': character 'z' is not an RLE character"),
    ({"size": [12, 16], "counts": "0\x7f"}, "compressed RLE 'counts': character"),
    ({"size": [12, 16], "counts": "P"}, "compressed RLE 'counts': the counts string ends inside a number"),
    ({"size": [12, 16], "counts": 5}, "RLE 'counts' must be a string"),
])
def test_malformed_segmentations(tmp_path, segmentation, message):
    ds = make(tmp_path, anns=[dict(ANN, segmentation=segmentation)], with_masks=True)
    with pytest.raises(DatasetError, match=f"ann.json: annotation 9 field 'segmentation' is malformed: {message}"):
        ds[0]


def test_truncated_image_file(tmp_path):
    ds = make(tmp_path)
    path = ds.images_dir / "x.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DatasetError, match=r"image 1 cannot be decoded: .*x.png"):
        ds[0]
