"""The routing study's benchmark rows: the ``gates`` table (protocols v1-v3: how CSG's gates learn)
and the ``scenes`` table (protocols v4-v7: routing by image on scenes of different scales).

benchmarks/run.py reads ``TABLES`` from here and trains the rows with ``COMMAND`` (projects/routing/train.py:
the ``dsic`` command with the study's neck and model factory):

    python benchmarks/run.py scenes --protocol v7 --seeds 4
    python benchmarks/run.py gates --protocol v3 --seeds 4

A row is the list of overrides on its protocol's base config. Rows that set one of the study's
control-unit options (:data:`STUDY_OPTIONS`) train the ``dsic_routing`` neck (:mod:`routing.necks`);
in a row's overrides ``{seed}`` stands for the seed and ``{runs}`` for the folder of the runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

import routing  # noqa: F401 - registers the study's neck, dsic_routing
from dsic.demo import gate_lr_row, neck_variants
from dsic.protocol import on_scenes

COMMAND = (sys.executable, str(Path(__file__).with_name("train.py")))
STUDY_OPTIONS = ("csg_control_norm", "csg_path_gate", "csg_signal_std", "csg_control_act", "csg_norm_momentum",
                 "csg_scale_target", "csg_scale_code")


def on_routing_neck(rows: dict[str, list[str]]) -> dict[str, list[str]]:
    """``rows`` with ``model.neck=dsic`` as ``model.neck=dsic_routing`` in the rows that set a study option."""
    def neck(overrides: list[str]) -> list[str]:
        if not any(option in o for o in overrides for option in STUDY_OPTIONS):
            return overrides
        return ["model.neck=dsic_routing" if o == "model.neck=dsic" else o for o in overrides]

    return {name: neck(overrides) for name, overrides in rows.items()}


def scenes(protocol: str) -> dict[str, list[str]]:
    """The ``scenes`` rows of ``protocol`` (v4 to v7; none for the others)."""
    return on_routing_neck(_scenes(protocol)) if on_scenes(protocol) else {}


def gates(protocol: str) -> dict[str, list[str]]:
    """The ``gates`` rows of ``protocol`` (v1 to v3; none for the scenes protocols)."""
    return {} if on_scenes(protocol) else on_routing_neck(_gates(protocol))


def _scenes(protocol: str) -> dict[str, list[str]]:
    # protocol v4: fpn and DSIC as shipped first (fixed in advance), then the dense controls
    out = {**neck_variants(["fpn"]), **dict([gate_lr_row("dsic", 0.1)]), **neck_variants(["fcfpn"]),
           **dict([gate_lr_row("csg", 0.1)])}
    # added after seed 0 of dsic_gatelr01 (W flat): do path-level logits route when the data rewards it?
    out["dsic_path_gatelr01"] = out["dsic_gatelr01"] + ["model.neck_cfg.csg_path_gate=true"]
    # added 2026-11-28 (session 5), after the rows above: the control units' last layers at 10x
    # the gate lr (1x the schedule's), in training from scratch (with path logits) ...
    head = '"*.csg.control.*.channel.2.*": 1.0, "*.csg.control.*.path.*": 1.0'
    out["dsic_path_head1_gatelr01"] = out["dsic_path_gatelr01"] + [f"train.lr_mults={{{head}}}"]
    # the same with the path logits read linearly from the descriptor (the hidden layer tells
    # small from large images worse than the descriptor: routing.control_inputs)
    out["dsic_pathdesc_head1_gatelr01"] = out["dsic_gatelr01"] + [
        "model.neck_cfg.csg_path_gate=descriptor", f"train.lr_mults={{{head}}}"]
    # descriptor logits saturated at seed 0 (W +-1): the descriptor standardised per entry first
    out["dsic_pathstd_head1_gatelr01"] = out["dsic_gatelr01"] + [
        "model.neck_cfg.csg_path_gate=standardized", f"train.lr_mults={{{head}}}"]
    # ... and a diagnostic: can the control units learn to route on features that are already
    # trained? dsic_gatelr01's final weights, path logits added, everything but CSG's control
    # units frozen, 400 more iterations (the same schedule)
    out["dsic_gatelr01_gateft_path"] = out["dsic_path_gatelr01"] + [
        "model.init_from={runs}/dsic_gatelr01_seed{seed}/final.pth",
        f'train.lr_mults={{{head}, "*.csg.control.*": 0.1, "*": 0}}']
    if protocol == "v5":  # the 4x schedule: DSIC as shipped, and with the path logits that moved W most on v4
        # (then, added after v5's seed 0: the path logits with the units' last layers at 1x the lr)
        # (and, added after path_readout showed W's difference is the path logits' own: their layer alone at 3x the gate lr)
        out["dsic_path_pathlr03_gatelr01"] = out["dsic_path_gatelr01"] + [
            'train.lr_mults={"*.csg.control.*.path.*": 0.3}']
        # (and, added after that killed P2's and P3's hidden units: the same with leaky hidden units)
        out["dsic_path_pathlr03_leaky_gatelr01"] = out["dsic_path_pathlr03_gatelr01"] + [
            "model.neck_cfg.csg_control_act=leaky_relu"]
        # (and, added after the routing incentive showed P3's pull satisfied and P2's, whose unit dies, not:
        # path logits at the gate lr with leaky hidden units)
        out["dsic_path_leaky_gatelr01"] = out["dsic_path_gatelr01"] + ["model.neck_cfg.csg_control_act=leaky_relu"]
        return {name: out[name] for name in ("dsic_gatelr01", "dsic_path_gatelr01", "dsic_path_head1_gatelr01",
                                             "dsic_path_pathlr03_gatelr01", "dsic_path_pathlr03_leaky_gatelr01",
                                             "dsic_path_leaky_gatelr01")}
    if protocol == "v6":  # the 8x schedule: the path logits (seeds 0-1 first), then DSIC as shipped for the pairing
        return {name: out[name] for name in ("dsic_path_gatelr01", "dsic_gatelr01")}
    if protocol == "v7":  # v5's schedule over 8x the images: the same two rows first; then (added after
        # them) FPN, whose variance made v7 a comparison protocol, and FC-FPN; then (session 11, after
        # projects/routing/unit_drift.py located the units' death) path logits on standardised descriptors
        out["dsic_path_running_gatelr01"] = out["dsic_path_gatelr01"] + ["model.neck_cfg.csg_control_norm=running"]
        # (session 12) path logits read from the paths' scale statistics, the channel units as shipped
        out["dsic_pathstats_gatelr01"] = out["dsic_gatelr01"] + ["model.neck_cfg.csg_path_gate=statistics"]
        # (and, after it: its path layer alone at 3x the gate lr, which cannot reach the channel units)
        out["dsic_pathstats_pathlr03_gatelr01"] = out["dsic_pathstats_gatelr01"] + [
            'train.lr_mults={"*.csg.control.*.path.*": 0.3}']
        out["dsic_pathstats_pathlr1_gatelr01"] = out["dsic_pathstats_gatelr01"] + [  # (and at the schedule's lr)
            'train.lr_mults={"*.csg.control.*.path.*": 1.0}']
        # (and, after static_routing placed their AP cost in training: the routing learned second, on
        # DSIC as shipped, trained and frozen)
        # (first with the path layers at the schedule's lr; that diverged and was stopped, so the row
        # is at the gate lr: docs/design.md, "Routing learned second, at the gate lr")
        out["dsic_gatelr01_gateft_pathstats01"] = out["dsic_pathstats_gatelr01"] + [
            "model.init_from={runs}/dsic_gatelr01_seed{seed}/final.pth",
            'train.lr_mults={"*.csg.control.*.path.*": 0.1, "*": 0}']
        out["dsic_gatelr01_gateft_pathstats03"] = out["dsic_pathstats_gatelr01"] + [  # (and, after it, at 3x)
            "model.init_from={runs}/dsic_gatelr01_seed{seed}/final.pth",
            'train.lr_mults={"*.csg.control.*.path.*": 0.3, "*": 0}']
        # (session 13, the two levers left: between those two lrs, and the gate lr for twice the schedule)
        out["dsic_gatelr01_gateft_pathstats02"] = out["dsic_pathstats_gatelr01"] + [
            "model.init_from={runs}/dsic_gatelr01_seed{seed}/final.pth",
            'train.lr_mults={"*.csg.control.*.path.*": 0.2, "*": 0}']
        out["dsic_gatelr01_gateft_pathstats01_long"] = out["dsic_gatelr01_gateft_pathstats01"] + [
            "train.epochs=2", "train.steps=[1.5, 1.8]"]
        # (session 14: the same frozen recipe with the path logits read linearly from the whole n*C
        # descriptor, standardised, at the statistics reader's step per image: docs/design.md,
        # "Routing learned second, read from the descriptor")
        out["dsic_gatelr01_gateft_pathstd"] = out["dsic_gatelr01"] + [
            "model.neck_cfg.csg_path_gate=standardized", "model.neck_cfg.csg_signal_std=0",
            "model.init_from={runs}/dsic_gatelr01_seed{seed}/final.pth",
            'train.lr_mults={"*.csg.control.*.path.*": 0.0025, "*": 0}']
        # (session 15, after the scale oracle routed 0.20 deep: the path logits read the image's scale
        # group predicted by a head taught by the boxes, q detached: "A scale reader taught by the boxes")
        out["dsic_gatelr01_gateft_pathscale"] = out["dsic_gatelr01"] + [
            "model.neck_cfg.csg_path_gate=scale", "model.neck_cfg.csg_signal_std=0",
            "model.init_from={runs}/dsic_gatelr01_seed{seed}/final.pth",
            'train.lr_mults={"*.csg.control.*.path.*": 0.65, "*.csg.control.*.scale_head.*": 0.1, "*": 0}']
        # (and, after its head ended underfit, loss_scale still falling: the head at 0.5x)
        out["dsic_gatelr01_gateft_pathscale_head05"] = out["dsic_gatelr01_gateft_pathscale"][:-1] + [
            'train.lr_mults={"*.csg.control.*.path.*": 0.65, "*.csg.control.*.scale_head.*": 0.5, "*": 0}']
        # (session 16, after neither head lr fitted: the heads fitted first on the frozen network,
        # projects/routing/fit_scale_head.py, then frozen with their statistics; the path layer alone learns)
        out["dsic_gatelr01_gateft_pathscale_fitted"] = out["dsic_gatelr01"] + [
            "model.neck_cfg.csg_path_gate=scale", "model.neck_cfg.csg_signal_std=0",
            "model.neck_cfg.csg_norm_momentum=0", "model.init_from={runs}/scale_head_fit_seed{seed}.pth",
            'train.lr_mults={"*.csg.control.*.path.*": 0.65, "*": 0}']
        # (and, after the groups' head read small-object images as "mixed": heads fitted the same
        # way on two questions, any object small / any object large: "Presence instead of groups")
        out["dsic_gatelr01_gateft_pathpresence_fitted"] = out["dsic_gatelr01_gateft_pathscale_fitted"][:-2] + [
            "model.neck_cfg.csg_scale_target=presence",
            "model.init_from={runs}/scale_head_fit_presence_seed{seed}.pth",
            'train.lr_mults={"*.csg.control.*.path.*": 0.65, "*": 0}']
        # (session 17, after confident presence heads routed no deeper: the path layer reads the four
        # cells of the two answers, so mixed images get a code of their own: "Cells of the two answers")
        out["dsic_gatelr01_gateft_pathcells_fitted"] = out["dsic_gatelr01_gateft_pathpresence_fitted"][:-1] + [
            "model.neck_cfg.csg_scale_code=cells",
            'train.lr_mults={"*.csg.control.*.path.*": 0.65, "*": 0}']
        return {name: out[name] for name in ("dsic_path_gatelr01", "dsic_gatelr01", "fpn", "fcfpn",
                                             "dsic_path_running_gatelr01", "dsic_pathstats_gatelr01",
                                             "dsic_pathstats_pathlr03_gatelr01", "dsic_pathstats_pathlr1_gatelr01",
                                             "dsic_gatelr01_gateft_pathstats01", "dsic_gatelr01_gateft_pathstats03",
                                             "dsic_gatelr01_gateft_pathstats02", "dsic_gatelr01_gateft_pathstats01_long",
                                             "dsic_gatelr01_gateft_pathstd", "dsic_gatelr01_gateft_pathscale",
                                             "dsic_gatelr01_gateft_pathscale_head05",
                                             "dsic_gatelr01_gateft_pathscale_fitted",
                                             "dsic_gatelr01_gateft_pathpresence_fitted",
                                             "dsic_gatelr01_gateft_pathcells_fitted")}
    return out


def _gates(protocol: str) -> dict[str, list[str]]:
    if protocol != "v1":  # the control descriptors' normalisation; dsic = none (default)
        out = {"fpn": ["model.neck=fpn"], "dsic": ["model.neck=dsic"]}
        for norm in ("running", "layer"):
            out[f"dsic_control_{norm}"] = ["model.neck=dsic", f"model.neck_cfg.csg_control_norm={norm}"]
        out["dsic_path"] = ["model.neck=dsic", "model.neck_cfg.csg_path_gate=true",
                            "model.neck_cfg.csg_control_norm=running"]
        if protocol != "v2":  # v3: the gate signals' lr x10 (alone, on layer-normalised descriptors) and x0.1
            out.update([gate_lr_row("dsic", 0.1)])
            out["dsic_gatelr10"] = ["model.neck=dsic", "train.gate_lr_mult=10.0"]
            out["dsic_gatelr10_layer"] = ["model.neck=dsic", "train.gate_lr_mult=10.0",
                                          "model.neck_cfg.csg_control_norm=layer"]
            # path-level logits (one per path, shared by its channels) at the gate lr x0.1
            out["dsic_path_gatelr01"] = ["model.neck=dsic", "model.neck_cfg.csg_path_gate=true",
                                         "train.gate_lr_mult=0.1"]
            for norm in ("layer", "running"):  # ... on descriptors normalised per image / per entry
                out[f"dsic_path_{norm}_gatelr01"] = out["dsic_path_gatelr01"] + [
                    f"model.neck_cfg.csg_control_norm={norm}"]
            # the image-dependent part of w_ik starting 10x larger (the loss asks for routing by image)
            out["dsic_signal01_gatelr01"] = ["model.neck=dsic", "model.neck_cfg.csg_signal_std=0.1",
                                             "train.gate_lr_mult=0.1"]
        return out
    # v1 history: csg and dsic are the defaults (csg_control_norm: none); its rows with csg_gain: weights
    # (csg_gain_weights, dsic_gain_weights, dsic_gain_weights_control_norm) went with the option (LOG.md)
    return {"csg": ["model.neck=csg"], "dsic": ["model.neck=dsic"],
            "dsic_control_norm": ["model.neck=dsic", "model.neck_cfg={csg_control_norm: layer}"]}


TABLES = {
    "gates": ("How CSG's gates learn (Faster R-CNN, embedded dataset)", gates),
    "scenes": ("Routing by image: necks on small-object, large-object and mixed scenes (protocols v4 to v7)", scenes),
}


def variants(table: str, protocol: str) -> dict[str, list[str]]:
    """The rows of the study's ``table`` under ``protocol``."""
    return TABLES[table][1](protocol)
