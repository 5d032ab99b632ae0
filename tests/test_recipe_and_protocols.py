"""The own-data recipe trains DSIC as shipped with the benchmark's stabilisers, and the benchmark
protocols' bases keep the meaning their committed records were made with."""

import json
from pathlib import Path

import pytest

from dsic.config import load_config
from dsic.protocol import get_protocol

ROOT = Path(__file__).resolve().parents[1]
BASES = ROOT / "configs" / "_base_"
ROWS = {"fpn": ["model.neck=fpn"], "dsic": ["model.neck=dsic"],
        "dsic_gatelr01": ["model.neck=dsic", "train.gate_lr_mult=0.1"]}


def _flat(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in cfg.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _set_keys(path: Path, overrides: list[str]) -> dict:
    """The resolved config's keys whose value differs from the library's defaults (output_dir aside)."""
    default = _flat(load_config())
    got = _flat(load_config(path, overrides))
    return {k: v for k, v in got.items() if default.get(k, object()) != v and k != "output_dir"}


def _protocol_base(protocol: str) -> Path:
    """The protocol's base yaml, in the ``_base_`` folder beside its FPN row (dsic.protocol)."""
    row = get_protocol(protocol).base_config
    return row.parent.parent / "_base_" / ("embedded.yaml" if protocol == "v1" else f"embedded_{protocol}.yaml")


@pytest.mark.parametrize("protocol", ["v1", "v2", "v3", "v4", "v5", "v6", "v7"])
def test_each_protocols_rows_resolve_as_when_their_records_were_made(protocol):
    """Captured from configs/_base_/embedded*.yaml at d412d78, before the recipe got a base of its own;
    the bases have moved since (configs/README.md), the resolved configs not. Checked for the base
    yaml and for the FPN row dsic.protocol trains from."""
    expected = json.loads((ROOT / "tests" / "protocol_configs.json").read_text())
    for base in (_protocol_base(protocol), get_protocol(protocol).base_config):
        for row, overrides in ROWS.items():
            assert _set_keys(base, overrides) == expected[f"{protocol} {row}"], (protocol, row, base)
        assert _set_keys(base, ROWS["fpn"])["train.gate_lr_mult"] == 1.0  # the historical value, pinned by the base


def test_configs_holds_the_current_protocols_and_the_others_live_beside_their_users():
    """configs/ carries the recipe's and the paper's bases and protocols v3 and v7, none of whose
    bases reaches outside configs/; v1 and v2 (history) live in benchmarks/protocols/, the routing
    study's v4-v6 in projects/routing/configs/ (configs/README.md)."""
    homes = {"v1": "benchmarks/protocols", "v2": "benchmarks/protocols", "v3": "configs",
             "v4": "projects/routing/configs", "v5": "projects/routing/configs", "v6": "projects/routing/configs",
             "v7": "configs"}
    for protocol, home in homes.items():
        assert get_protocol(protocol).base_config.parents[1] == ROOT / home, protocol
    assert sorted(p.name for p in BASES.glob("*.yaml")) == ["coco.yaml", "embedded_v3.yaml", "embedded_v7.yaml",
                                                              "tiny.yaml"]
    for base in ("embedded_v3.yaml", "tiny.yaml", "coco.yaml"):
        assert "_base_:" not in (BASES / base).read_text()  # stated in full
    assert "\n_base_: embedded_v3.yaml\n" in (BASES / "embedded_v7.yaml").read_text()
    assert "configs/_base_/embedded_v3.yaml" in (ROOT / "projects" / "routing" / "configs" / "_base_" /
                                                 "embedded_v4.yaml").read_text()


def test_the_readme_recipe_is_dsic_as_shipped_with_the_measured_stabilisers(tmp_path):
    readme = (ROOT / "README.md").read_text()
    recipe = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "_base_: configs/_base_/tiny.yaml" in recipe
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    (tmp_path / "my.yaml").write_text(recipe)
    cfg = load_config(tmp_path / "my.yaml")
    train, model = cfg["train"], cfg["model"]
    assert model["neck"] == "dsic" and train["gate_lr_mult"] == load_config()["train"]["gate_lr_mult"] == 0.1
    assert train["ema"] and train["ema_decay"] == 0.99 and train["ema_tau"] == 50.0  # protocol v2 / v3's EMA
    epochs = train["epochs"]
    assert epochs == 12 and train["steps"] == [8, 11]  # the lr ends low: x0.1 at 2/3, x0.01 at 11/12 of training
    assert model["pretrained_backbone"] == "benchmarks/weights/resnet_tiny_gn_crops.pth"
    assert (ROOT / model["pretrained_backbone"]).is_file()  # relative to the repository root, where dsic runs
    assert model["norm"] == "gn" and model["trainable_layers"] == 5
    assert load_config(tmp_path / "my.yaml", ["train.epochs=24"])["train"]["steps"] == [16, 22]  # drops follow epochs


def test_no_base_a_user_is_pointed_to_pins_the_historical_gate_lr():
    """README and docs/usage.md point to tiny.yaml and coco.yaml; the protocol bases say themselves
    that they pin 1.0."""
    for doc in (ROOT / "README.md", ROOT / "docs" / "usage.md"):
        assert "_base_/embedded.yaml" not in doc.read_text().replace("_base_/embedded*.yaml", "")
    for base in ("tiny.yaml", "coco.yaml"):
        assert load_config(BASES / base)["train"]["gate_lr_mult"] == 0.1
    for protocol in ("v1", "v3"):  # v2 and v7 inherit theirs, v4-v6 through v3
        assert "pins the historical" in _protocol_base(protocol).read_text()


def test_protocol_records_live_with_the_benchmark_or_the_routing_study():
    assert get_protocol("v3").results_dir == ROOT / "benchmarks" / "results" / "v3"
    assert get_protocol("v7").results_dir == ROOT / "benchmarks" / "results" / "v7"
    assert get_protocol("v5").results_dir == get_protocol("v5").study_dir == ROOT / "projects" / "routing" / "results" / "v5"
    assert (get_protocol("v7").study_dir / "rerun").is_dir() and (get_protocol("v3").results_dir / "rerun").is_dir()
