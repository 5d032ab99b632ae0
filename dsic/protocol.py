"""The embedded benchmark protocols: which config, which data, where results go.

* ``v1`` (history): configs/_base_/embedded.yaml on the default synthetic set (500 / 100 images,
  320 px). Its noise (FPN 58.8 vs 51.5 AP for two seeds; up to 5.7 AP from the thread count
  alone) was larger than the differences it had to measure.
* ``v2``: configs/_base_/embedded_v2.yaml on the ``hard`` synthetic set (800 / 500 images,
  256 px, probe groups of 50 images), EMA evaluation, paired initialisation, one thread per run
  (BENCHMARKS.md gives the variance it was chosen from). Its FPN spread (sd 2.61 AP over 4 seeds)
  was still larger than the effect to measure.
* ``v3``: v2 with one change, the backbone pre-trained once on crops of a synthetic set of its own
  (configs/_base_/embedded_v3.yaml; ``benchmarks/weights/resnet_tiny_gn_crops.pth``, made by
  :mod:`dsic.engine.pretrain`), in place of the ImageNet pre-training this machine cannot download.
  Rule fixed before its FPN runs finished: v3 becomes the comparison protocol if FPN's sample sd over
  seeds 0-3 is below v2's 2.61 AP, whatever the other necks then give.
* ``v4``: v3 on the ``scenes`` synthetic set (:mod:`dsic.data.synth`): each image is a small-object,
  a large-object or a mixed scene, as COCO's images differ, where in v2 / v3 every object draws its
  size independently and all images share one expected scale composition, so routing each image
  differently has nothing to gain. It asks whether the gates route by image when the data rewards
  it (the v3 probe groups, unchanged); v3 stays the protocol of the AP comparison. Fixed before its
  runs (2026-11-28): rows ``fpn`` and ``dsic_gatelr01``, seeds 0-3; the gate goal counts as met
  only if every seed has a W entry differing by >= 0.10 between the small and large groups with
  effect size >= 2.
* ``v5``: v4 trained four times longer (configs/_base_/embedded_v5.yaml: 1600 iterations, the lr steps
  at the same fractions of the schedule), for the gate question alone: does a longer schedule let
  the control units learn to route by image? Fixed before its runs (2026-11-28, session 6): rows
  ``dsic_gatelr01`` and ``dsic_path_gatelr01``, seed 0 first, seed 1 next (``dsic_path_head1_gatelr01``
  added after seed 0; ``dsic_path_pathlr03_gatelr01`` and ``dsic_path_pathlr03_leaky_gatelr01`` later, each
  with its rule written before its runs); the rule is in docs/design.md ("A longer schedule"). About
  50 min per run on one core.
* ``v6``: v4 trained eight times longer (configs/_base_/embedded_v6.yaml: 3200 iterations, the lr
  steps at the same fractions), for the gate question alone: on v5 the routing's effect size grew
  with the square root of the schedule but its amplitude stayed below the goal's 0.10; does it reach
  it when the schedule doubles again? Fixed before its runs (2026-11-28, session 7): row
  ``dsic_path_gatelr01`` seeds 0 and 1 first, then ``dsic_gatelr01`` seeds 0 and 1 for the paired
  AP only if both met the gate goal (one did: v6 stopped there); the rule is in docs/design.md
  ("An 8x schedule"). About 110 min per run on one core.
* ``v7``: v5's schedule (1600 iterations at 4 images) over 8x as many distinct training images
  (6400, each seen about once; configs/_base_/embedded_v7.yaml), for the gate question alone: on v5
  the loss of validation images still asks for routing into P2 while the loss of the 800 training
  images, fit by then, no longer does; do the gates route (P2 included) when the training images'
  loss is not yet fit? The first 800 training images, the validation images and the probe groups
  are v4's. Fixed before its runs (2026-11-29, session 10): row ``dsic_path_gatelr01`` seeds 0 and 1
  first, then ``dsic_gatelr01`` seeds 0 and 1 for the paired AP and for routing as shipped; the rule
  is in docs/design.md ("Many more distinct training images"). Then (added after those) row ``fpn``,
  seeds 0-3: FPN's variance decides whether v7 becomes a comparison protocol (docs/design.md,
  "FPN's variance on v7"); its sd, 0.61 AP, made v7 a comparison protocol, with ``fcfpn`` as a row.
  (Session 11 also trained its two gated rows again, instrumented, by benchmarks/unit_dynamics.py:
  docs/design.md, "Why P2's unit dies with path logits"), then row ``dsic_path_running_gatelr01``,
  seeds 0-1 (docs/design.md, "Descriptors standardised on v7"). Session 12: path logits read from
  the paths' scale statistics at 1x, 3x and 10x the gate lr (rows ``dsic_pathstats_gatelr01``,
  ``dsic_pathstats_pathlr03_gatelr01``, ``dsic_pathstats_pathlr1_gatelr01``), seeds 0-1 each, one
  after the other (docs/design.md, "Path logits from scale statistics" and the two entries after it);
  then the same path logits learned second on ``dsic_gatelr01``'s trained, frozen weights at 1x and
  3x the gate lr (``dsic_gatelr01_gateft_pathstats01`` / ``...03``, seeds 0-1; "Routing learned
  after the network" and after). Session 13: the same at 2x the gate lr
  (``dsic_gatelr01_gateft_pathstats02``) and at the gate lr for twice v7's schedule
  (``dsic_gatelr01_gateft_pathstats01_long``), seeds 0-1 each ("The two levers left"); and seeds
  4-5 of ``fpn``, ``dsic_gatelr01`` and ``fcfpn`` ("v7's headline comparisons at 6 seeds", n fixed
  at 6; their own table in BENCHMARKS.md, v7's other tables keep seeds 0-3). Session 14: the path
  logits learned second read from the whole standardised descriptor (``dsic_gatelr01_gateft_pathstd``,
  seeds 0-1; "Routing learned second, read from the descriptor"). Session 15, after the scale
  oracle (benchmarks/scale_oracle.py, an instrument): the path logits learned second read the
  image's scale group as predicted by a head taught by the boxes (``dsic_gatelr01_gateft_pathscale``,
  seeds 0-1; 2-3 only by its rule, which they did not meet; "A scale reader taught by the boxes"), paired against
  ``dsic_gatelr01`` trained again on the same machine (``benchmarks/results/v7/rerun``); then its
  head at 0.5x (``dsic_gatelr01_gateft_pathscale_head05``, seeds 0-1). Session 16: the heads
  fitted first on the frozen network's descriptors (benchmarks/fit_scale_head.py), then frozen,
  with the path layer alone learning (``dsic_gatelr01_gateft_pathscale_fitted``, seeds 0-1 first;
  "A scale head fitted before the routing"); then the same with heads that answer whether the
  image has a small and a large object (``dsic_gatelr01_gateft_pathpresence_fitted``, seeds 0-1
  first; "Presence instead of groups"). Session 17: the path layer of those heads reads the four
  cells of their two answers, so images with both kinds of object get a code of their own
  (``dsic_gatelr01_gateft_pathcells_fitted``, seeds 0-1; 2-3 only by its rule, which they did not
  meet; "Cells of the two answers").
  21-28 min per run on one core of the 2026-11-29 machine (v5 took ~49 min per run on the machine
  of its day).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
        return ROOT / "benchmarks" / "results" / self.name


_V2 = Protocol("v2", ROOT / "configs" / "embedded_v2" / "faster_rcnn_tiny_fpn.yaml",
               synth={"preset": "hard", "image_size": 256, "num_train": 800, "num_val": 500},
               probe=50, data_name="synth_hard")
PROTOCOLS = {
    "v1": Protocol("v1", ROOT / "configs" / "embedded" / "faster_rcnn_tiny_fpn.yaml"),
    "v2": _V2,
    "v3": replace(_V2, name="v3", base_config=ROOT / "configs" / "embedded_v3" / "faster_rcnn_tiny_fpn.yaml",
                  overrides=(f"model.pretrained_backbone={ROOT / 'benchmarks' / 'weights' / 'resnet_tiny_gn_crops.pth'}",)),
}
PROTOCOLS["v4"] = replace(PROTOCOLS["v3"], name="v4",
                          base_config=ROOT / "configs" / "embedded_v4" / "faster_rcnn_tiny_fpn.yaml",
                          synth=dict(_V2.synth, preset="scenes"), data_name="synth_scenes")
PROTOCOLS["v5"] = replace(PROTOCOLS["v4"], name="v5",
                          base_config=ROOT / "configs" / "embedded_v5" / "faster_rcnn_tiny_fpn.yaml", seeds=2)
PROTOCOLS["v6"] = replace(PROTOCOLS["v5"], name="v6",
                          base_config=ROOT / "configs" / "embedded_v6" / "faster_rcnn_tiny_fpn.yaml")
PROTOCOLS["v7"] = replace(PROTOCOLS["v5"], name="v7",
                          base_config=ROOT / "configs" / "embedded_v7" / "faster_rcnn_tiny_fpn.yaml",
                          synth=dict(PROTOCOLS["v5"].synth, num_train=6400), data_name="synth_scenes_6400",
                          seeds=4)  # FPN's variance: seeds 0-3 (the gated rows have seeds 0-1)


def on_scenes(protocol: str) -> bool:
    """Whether the protocol trains on the ``scenes`` set (its only table is then ``scenes``)."""
    return protocol in PROTOCOLS and PROTOCOLS[protocol].synth.get("preset") == "scenes"


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"unknown benchmark protocol {name!r}; expected one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
