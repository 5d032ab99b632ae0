"""The harder synthetic preset and the probe groups (benchmark protocol v2)."""

import hashlib
import json
import math
from dataclasses import replace

import pytest

from dsic.data.synth import generate, generate_probe


def _digest(root):
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())).hexdigest()


def test_hard_preset_is_deterministic_and_mostly_small(tmp_path):
    stats = generate(tmp_path / "a", num_train=30, num_val=2, image_size=256, seed=1, preset="hard")
    generate(tmp_path / "b", num_train=30, num_val=2, image_size=256, seed=1, preset="hard")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    train = stats["train"]
    assert train["small_fraction"] > 0.45 and train["large_fraction"] > 0.05
    ann = json.loads((tmp_path / "a" / "annotations" / "instances_train.json").read_text())
    sides = [math.sqrt(a["area"]) for a in ann["annotations"]]
    assert min(sides) < 8 and max(sides) > 96  # wider scale range than the default's 6 px floor
    assert '"preset": "hard"' in (tmp_path / "a" / "README.txt").read_text()
    with pytest.raises(ValueError, match="unknown synth preset 'easy'; expected one of default, hard, scenes"):
        generate(tmp_path / "c", num_train=1, num_val=0, preset="easy")


def test_probe_groups_keep_only_their_sizes(tmp_path):
    stats = generate_probe(tmp_path, count=8, image_size=256, seed=0)
    assert set(stats) == {"small", "large", "mixed"}
    for group in stats:
        assert len(list((tmp_path / f"probe_{group}").glob("*.jpg"))) == 8
    sides = {}
    for group in stats:
        ann = json.loads((tmp_path / "annotations" / f"instances_probe_{group}.json").read_text())
        sides[group] = [math.sqrt(a["area"]) for a in ann["annotations"]]
    assert sides["small"] and max(sides["small"]) < 32
    assert sides["large"] and min(sides["large"]) >= 96
    assert not [s for s in sides["mixed"] if 32 <= s < 96]
    assert min(sides["mixed"]) < 32 and max(sides["mixed"]) >= 96
    with pytest.raises(ValueError, match="need count >= 1"):
        generate_probe(tmp_path, count=0)


def test_synth_command_writes_probe_groups(tmp_path, capsys):
    from dsic.cli import main

    main(["data", "synth", "--out", str(tmp_path), "--num-train", "2", "--num-val", "1", "--size", "128",
          "--preset", "hard", "--probe", "2"])
    stats = json.loads(capsys.readouterr().out)
    assert set(stats["probe"]) == {"small", "large", "mixed"}
    assert (tmp_path / "annotations" / "instances_probe_mixed.json").is_file()


def test_scenes_preset_gives_images_of_different_scale_composition(tmp_path):
    """scenes (protocol v4): small-object, large-object and mixed images, where hard's images all
    draw their objects' sizes from one distribution; hard's images and the probe are unchanged."""
    from dsic.data.synth import PRESETS

    stats = generate(tmp_path / "s", num_train=60, num_val=0, image_size=256, seed=0, preset="scenes")
    assert stats["train"]["objects"] > 100
    ann = json.loads((tmp_path / "s" / "annotations" / "instances_train.json").read_text())
    sides: dict[int, list[float]] = {}
    for a in ann["annotations"]:
        sides.setdefault(a["image_id"], []).append(math.sqrt(a["area"]))
    small_share = [sum(s < 32 for s in v) / len(v) for v in sides.values()]
    assert sum(f == 0 for f in small_share) >= 10 and sum(f == 1 for f in small_share) >= 5  # both kinds of scene
    assert 10 <= sum(0 < f < 1 for f in small_share)  # and mixed ones
    assert '"preset": "scenes"' in (tmp_path / "s" / "README.txt").read_text()
    assert replace(PRESETS["scenes"], scenes=()) == PRESETS["hard"]  # scenes is hard plus the per-image draw
    generate_probe(tmp_path / "p1", count=2, image_size=128, preset="hard")
    generate_probe(tmp_path / "p2", count=2, image_size=128, preset="scenes")
    assert _digest(tmp_path / "p1") == _digest(tmp_path / "p2")  # v4's probe groups are v3's


def test_the_cli_offers_every_synth_preset():
    from dsic.cli import SYNTH_PRESETS
    from dsic.data.synth import PRESETS

    assert SYNTH_PRESETS == list(PRESETS)
