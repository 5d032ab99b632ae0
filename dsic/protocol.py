"""The embedded benchmark protocols: which config, which data, where results go.

v3 is the protocol of the AP comparisons (v7 a second one, on scenes of different scales); v1 and
v2 are history; v4-v6 (and v7's routing rows) are the routing study's (projects/routing/). What
each protocol is, why it was made and the rule fixed before its runs: benchmarks/PROTOCOLS.md.

Each protocol's base config (its FPN row; the other rows add overrides) lives beside whoever uses it
(configs/README.md): v3 and v7 in ``configs/``, v1 and v2 in ``benchmarks/protocols/``, v4-v6 in
``projects/routing/configs/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"  # the current protocols, v3 and v7
HISTORY = ROOT / "benchmarks" / "protocols"  # v1 and v2
STUDY = ROOT / "projects" / "routing" / "configs"  # the routing study's v4-v6


@dataclass(frozen=True)
class Protocol:
    name: str
    base_config: Path  # the FPN row; other rows add overrides
    synth: dict = field(default_factory=dict)  # dsic.data.synth.generate arguments
    probe: int = 0  # images per probe group (0: none)
    data_name: str = "synth"
    threads: int = 1
    seeds: int = 4  # seeds 0..seeds-1, fixed in advance for its tables
    overrides: tuple[str, ...] = ()  # added to every run's command line (after the config)

    def data_dir(self, out: str | Path) -> Path:
        return Path(out) / "data" / self.data_name

    @property
    def results_dir(self) -> Path:
        """The benchmark's records of this protocol (v4-v6: the routing study's, :attr:`study_dir`)."""
        return self.study_dir if self.name in ("v4", "v5", "v6") else ROOT / "benchmarks" / "results" / self.name

    @property
    def study_dir(self) -> Path:
        """The routing study's records of this protocol (its rows, analyses and runs trained again)."""
        return ROOT / "projects" / "routing" / "results" / self.name


_V2 = Protocol("v2", HISTORY / "embedded_v2" / "faster_rcnn_tiny_fpn.yaml",
               synth={"preset": "hard", "image_size": 256, "num_train": 800, "num_val": 500},
               probe=50, data_name="synth_hard")
PROTOCOLS = {
    "v1": Protocol("v1", HISTORY / "embedded" / "faster_rcnn_tiny_fpn.yaml"),
    "v2": _V2,
    "v3": replace(_V2, name="v3", base_config=CONFIGS / "embedded_v3" / "faster_rcnn_tiny_fpn.yaml",
                  overrides=(f"model.pretrained_backbone={ROOT / 'benchmarks' / 'weights' / 'resnet_tiny_gn_crops.pth'}",)),
}
PROTOCOLS["v4"] = replace(PROTOCOLS["v3"], name="v4",
                          base_config=STUDY / "embedded_v4" / "faster_rcnn_tiny_fpn.yaml",
                          synth=dict(_V2.synth, preset="scenes"), data_name="synth_scenes")
PROTOCOLS["v5"] = replace(PROTOCOLS["v4"], name="v5",
                          base_config=STUDY / "embedded_v5" / "faster_rcnn_tiny_fpn.yaml", seeds=2)
PROTOCOLS["v6"] = replace(PROTOCOLS["v5"], name="v6",
                          base_config=STUDY / "embedded_v6" / "faster_rcnn_tiny_fpn.yaml")
PROTOCOLS["v7"] = replace(PROTOCOLS["v5"], name="v7",
                          base_config=CONFIGS / "embedded_v7" / "faster_rcnn_tiny_fpn.yaml",
                          synth=dict(PROTOCOLS["v5"].synth, num_train=6400), data_name="synth_scenes_6400",
                          seeds=4)  # FPN's variance: seeds 0-3 (the gated rows have seeds 0-1)


def on_scenes(protocol: str) -> bool:
    """Whether the protocol trains on the ``scenes`` set (its only table is then ``scenes``)."""
    return protocol in PROTOCOLS and PROTOCOLS[protocol].synth.get("preset") == "scenes"


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown benchmark protocol {name!r}; expected one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
