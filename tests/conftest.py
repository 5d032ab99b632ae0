import shutil

import pytest
import torch

from dsic.demo import data_overrides

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A tiny embedded dataset (12 train / 5 val images of 96 px; 5 is odd on purpose: DDP pads), made once per test session."""
    from dsic.data.synth import generate

    root = tmp_path_factory.mktemp("synth")
    generate(root, num_train=12, num_val=5, image_size=96, seed=0, max_objects=4)
    return root


def tiny_overrides(data_root, out_dir, *extra) -> list[str]:
    """Config overrides for a seconds-long CPU run on ``tiny_synth``."""
    return [
        *data_overrides(data_root),
        "data.num_workers=0", "model.backbone=resnet_tiny", "model.norm=gn", "model.trainable_layers=5",
        "model.out_channels=32", "model.num_classes=10", "model.min_size=96", "model.max_size=96",
        "model.pretrained_backbone=null", "model.anchor_sizes=[16, 32, 64, 128, 256]",
        ("model.detector_cfg={rpn_batch_size_per_image: 64, box_batch_size_per_image: 64, "
         "rpn_post_nms_top_n_train: 200, rpn_post_nms_top_n_test: 100}"),
        "train.batch_size=4", "train.base_batch_size=4", "train.base_lr=0.01", "train.warmup_iters=2",
        "train.log_every=1", "train.eval_every=0", f"output_dir={out_dir}", *extra,
    ]


@pytest.fixture(scope="session")
def checkpoint(tiny_synth, tmp_path_factory):
    """An untrained tiny detector saved as training saves it (weights + config with the classes)."""
    from dsic.config import load_config
    from dsic.data.classes import resolve_classes
    from dsic.models import build_detector

    out = tmp_path_factory.mktemp("ckpt")
    cfg = resolve_classes(load_config(None, tiny_overrides(tiny_synth, out, "model.neck=fpn",
                                                           "model.detector_cfg.box_score_thresh=0.0")))
    torch.manual_seed(0)
    model = build_detector(**cfg["model"])
    torch.save({"model": model.state_dict(), "config": cfg}, out / "final.pth")
    return out / "final.pth"


@pytest.fixture
def image_folder(tiny_synth, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    val = sorted((tiny_synth / "val").iterdir())
    shutil.copy(val[0], folder / "a.jpg")
    shutil.copy(val[1], folder / "a.png")
    shutil.copy(val[2], folder / "b.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    return folder
