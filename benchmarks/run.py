"""The embedded benchmarks, one command per table (see benchmarks/README.md).

    python benchmarks/run.py table4 --seeds 4     # ISG / CSG ablation: fpn, isg, csg, dsic
    python benchmarks/run.py table2 --seeds 4     # all necks: fpn, fcfpn, panet, fpg, fpt, dsic
    python benchmarks/run.py table5 --seeds 4     # gate modes of DSIC: softmax, sigmoid, tanh
    python benchmarks/run.py gates --seeds 4      # CSG control: descriptors none / running / layer, path gates
    python benchmarks/run.py scenes --protocol v4 # routing by image on scenes of different scales
    python benchmarks/run.py scenes --protocol v5 --seeds 2  # the same, gated rows, 4x schedule
    python benchmarks/run.py scenes --protocol v6 --seeds 2  # the same, gated rows, 8x schedule
    python benchmarks/run.py scenes --protocol v7 --seeds 4  # the same, v5's schedule over 8x the images
    python benchmarks/run.py table1 --protocol v3 # FPN / DSIC / CSG in FCOS, RetinaNet and Mask R-CNN
    python benchmarks/run.py table4_tiny34 --protocol v3 --reference r34_fpn  # ISG / CSG on resnet_tiny34
    python benchmarks/run.py profile              # Faster R-CNN R50 at 512x512: params, GFLOPs, latency

Protocol v2 (default, :mod:`dsic.protocol`): trains every missing (row, seed) run in ``--out``
(default ``runs/v2``), ``--jobs`` at a time (default 2: one process per core, one thread each),
writes each finished run's record to ``benchmarks/results/v2/<row>_seed<s>.json`` (commit them),
and prints the table made from those records: every row's metrics, its AP per seed, and its
paired difference to ``--reference`` (default fpn) with the 95 % t-interval. ``--protocol v1``
re-makes the history tables of BENCHMARKS.md (runs in ``runs/demo``, mean ± std, no records).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsic.demo import (
    gate_lr_row,
    is_complete,
    neck_variants,
    record_run,
    run_variants,
    train_runs,
    write_summary,
)
from dsic.protocol import PROTOCOLS, get_protocol, on_scenes
from dsic.results import load_records, paired_table, write_record

TITLES = {
    "table1": "Table 1 analog: FPN, DSIC and CSG in each detector (resnet_tiny, embedded dataset)",
    "table4_tiny34": "Table 4 analog on resnet_tiny34, where ISG has 2-5 former blocks to choose from (Faster R-CNN)",
    "table2": "Table 2 analog: necks compared in Faster R-CNN (resnet_tiny, embedded dataset)",
    "table4": "Table 4 analog: ISG / CSG ablation (Faster R-CNN, resnet_tiny, embedded dataset)",
    "table5": "Table 5 analog: gate modes of DSIC, ISG and CSG alike (Faster R-CNN, embedded dataset)",
    "gates": "How CSG's gates learn (Faster R-CNN, embedded dataset)",
    "scenes": "Routing by image: necks on small-object, large-object and mixed scenes (protocols v4 to v7)",
}


# Table 1's detectors besides Faster R-CNN (whose rows are table 2's and 4's): each is v3 with the
# architecture swapped. The one-stage detectors take torchvision's own detector settings (the
# protocol's are the R-CNNs' RPN and RoI sampling). Each detector's setting is kept only if FPN's AP
# sd over seeds 0-3 is <= 1.0 at <= 15 min per run (docs/breadth.md). FCOS's one change, made after
# FPN's seed 0 (16.0 AP): the size per level that assigns objects to P3-P7 is torchvision's 8..128
# (v3's 16..256 are Faster R-CNN's anchors on P2-P6; on FCOS's levels they sent every object of
# these 256 px images to P3 and P4). RetinaNet's, after FPN's seed 0 (0.05 AP: its classification loss
# sat at its starting value for ~150 of the 400 iterations and was still falling at the end, in 438 s
# of CPU time): twice the iterations, the lr steps at the same fractions (as v5 lengthened v4).
TABLE1_ARCHS = {
    "fcos": ["model.arch=fcos", "model.detector_cfg={_replace_: true}", "model.anchor_sizes=[8, 16, 32, 64, 128]"],
    "retinanet": ["model.arch=retinanet", "model.detector_cfg={_replace_: true}", "train.epochs=4",
                  "train.steps=[3.0, 3.6]"],
    "mask_rcnn": ["model.arch=mask_rcnn"],
}


def table1_rows() -> dict[str, list[str]]:
    """``<arch>_fpn``, ``<arch>_dsic_gatelr01`` (DSIC as shipped), ``<arch>_csg_gatelr01`` per detector."""
    necks = [("fpn", ["model.neck=fpn"]), gate_lr_row("dsic", 0.1), gate_lr_row("csg", 0.1)]
    return {f"{arch}_{name}": arch_overrides + overrides
            for arch, arch_overrides in TABLE1_ARCHS.items() for name, overrides in necks}


def table4_tiny34_rows() -> dict[str, list[str]]:
    """Table 4 on resnet_tiny34 (ResNet-50's stage depths: ISG has blocks to choose), pre-trained as v3's
    resnet_tiny was: ``r34_fpn`` and ISG, CSG, DSIC as shipped (docs/breadth.md)."""
    weights = Path(__file__).resolve().parents[1] / "benchmarks" / "weights" / "resnet_tiny34_gn_crops.pth"
    backbone = ["model.backbone=resnet_tiny34", f"model.pretrained_backbone={weights}"]
    necks = [("fpn", ["model.neck=fpn"]), *(gate_lr_row(n, 0.1) for n in ("isg", "csg", "dsic"))]
    return {f"r34_{name}": backbone + overrides for name, overrides in necks}


def variants(table: str, protocol: str = "v1") -> dict[str, list[str]]:
    if (table == "scenes") != on_scenes(protocol):
        return {}  # the scenes set is the data of v4 to v7, and they have no other table
    if table == "table1":
        return table1_rows() if protocol == "v3" else {}
    if table == "table4_tiny34":
        return table4_tiny34_rows() if protocol == "v3" else {}
    if table == "table2":
        out = neck_variants(["fpn", "fcfpn", "panet", "fpg", "fpt", "dsic"])
        if protocol not in ("v1", "v2"):  # v3: DSIC as shipped (gate lr x0.1) beside the necks
            out.update([gate_lr_row("dsic", 0.1)])
        return out
    if table == "table4":
        out = neck_variants(["fpn", "isg", "csg", "dsic"])
        if protocol not in ("v1", "v2"):  # v3: the ablation again at the gate lr x0.1 (library default since 2026-11-28)
            out.update(gate_lr_row(neck, 0.1) for neck in ("isg", "csg", "dsic"))
        return out
    if table == "table5":
        modes = {m: f"model.neck_cfg={{isg_mode: {m}, csg_mode: {m}}}" for m in ("softmax", "sigmoid")}
        out = {f"dsic_{m}": ["model.neck=dsic", mode] for m, mode in modes.items()}
        out["dsic"] = ["model.neck=dsic"]  # tanh is DSIC's default: the same run as table 4's
        if protocol not in ("v1", "v2"):  # v3: the modes again at the gate lr x0.1; tanh there is DSIC as shipped
            shipped, overrides = gate_lr_row("dsic", 0.1)
            out.update({f"dsic_{m}_gatelr01": overrides + [mode] for m, mode in modes.items()})
            out[shipped] = overrides
        if protocol != "v1":
            out = {"fpn": ["model.neck=fpn"], **out}
        return out
    if table == "scenes":  # protocol v4: fpn and DSIC as shipped first (fixed in advance), then the dense controls
        out = {**neck_variants(["fpn"]), **dict([gate_lr_row("dsic", 0.1)]), **neck_variants(["fcfpn"]),
               **dict([gate_lr_row("csg", 0.1)])}
        # added after seed 0 of dsic_gatelr01 (W flat): do path-level logits route when the data rewards it?
        out["dsic_path_gatelr01"] = out["dsic_gatelr01"] + ["model.neck_cfg.csg_path_gate=true"]
        # added 2026-11-28 (session 5), after the rows above: the control units' last layers at 10x
        # the gate lr (1x the schedule's), in training from scratch (with path logits) ...
        head = '"*.csg.control.*.channel.2.*": 1.0, "*.csg.control.*.path.*": 1.0'
        out["dsic_path_head1_gatelr01"] = out["dsic_path_gatelr01"] + [f"train.lr_mults={{{head}}}"]
        # the same with the path logits read linearly from the descriptor (the hidden layer tells
        # small from large images worse than the descriptor: dsic.models.control_inputs)
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
            # benchmarks/unit_drift.py located the units' death) path logits on standardised descriptors
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
            # benchmarks/fit_scale_head.py, then frozen with their statistics; the path layer alone learns)
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
    if table == "gates":
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
        # v1 history: csg and dsic are the defaults (csg_gain: input, csg_control_norm: none)
        out = {}
        for neck in ("csg", "dsic"):
            out[neck] = [f"model.neck={neck}"]
            out[f"{neck}_gain_weights"] = [f"model.neck={neck}", "model.neck_cfg={csg_gain: weights}"]
        out["dsic_control_norm"] = ["model.neck=dsic", "model.neck_cfg={csg_control_norm: layer}"]
        out["dsic_gain_weights_control_norm"] = [
            "model.neck=dsic", "model.neck_cfg={csg_gain: weights, csg_control_norm: layer}"]
        return out
    raise SystemExit(f"unknown table {table!r}")


def table1_markdown(records: dict, protocol: str) -> str:
    """One paired table per detector, against its own FPN (Faster R-CNN's rows are tables 2 and 4's)."""
    parts = [(f"{TITLES['table1']}, protocol {protocol}; COCO bbox metrics in %, mean over the seeds each row has; "
              "difference to the detector's FPN paired by seed, 95 % t-interval")]
    groups = {"faster_rcnn": ["fpn", "dsic_gatelr01", "csg_gatelr01"]}
    groups.update({arch: [f"{arch}_{n}" for n in ("fpn", "dsic_gatelr01", "csg_gatelr01")] for arch in TABLE1_ARCHS})
    for arch, rows in groups.items():
        parts += [f"**{arch}**", paired_table(records, rows, reference=rows[0])]
        if arch == "mask_rcnn":
            masks = {r: {s: dict(rec, metrics=rec["mask_metrics"]) for s, rec in records.get(r, {}).items()
                         if "mask_metrics" in rec} for r in rows}
            parts += ["**mask_rcnn, mask AP**", paired_table(masks, rows, reference=rows[0])]
    return "\n\n".join(parts)


def v2_table(table: str, args, rows: dict[str, list[str]], seeds: list[int]) -> int:
    proto = get_protocol(args.protocol)
    out = Path(args.out or f"runs/{proto.name}")
    if not args.report_only:
        train_runs(out, proto, rows, seeds, args.quick, jobs=args.jobs)
    # a --quick smoke run's numbers are meaningless: its records and table stay in --out
    results = Path(args.results) if args.results else out / "results" if args.quick else proto.results_dir
    for name, overrides in rows.items():
        for seed in seeds:
            path = results / f"{name}_seed{seed}.json"
            if is_complete(out / f"{name}_seed{seed}") and (args.rerecord or not path.is_file()):
                print(f"[dsic] recording {name} seed {seed} -> {path}", flush=True)
                write_record(results, record_run(out, proto, name, overrides, seed, args.quick))
    records = load_records(results)
    if table == "table1":
        table_md = table1_markdown(records, proto.name)
    else:
        table_md = (f"{TITLES[table]}, protocol {proto.name}; COCO bbox metrics in %, mean over the seeds each row "
                    f"has; difference to {args.reference} paired by seed, 95 % t-interval\n\n"
                    + paired_table(records, list(rows), reference=args.reference))
    print(table_md)
    if args.variants or args.only_seed is not None:  # a subset would overwrite the whole table with its own rows
        print(f"[dsic] {results / f'{table}.md'} left as it is (only the whole table writes it); "
              "benchmarks/report.py makes BENCHMARKS.md from every record", flush=True)
    else:
        (results / f"{table}.md").write_text(table_md + "\n")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=["table1", "table4_tiny34", "table2", "table4", "table5", "gates", "scenes", "profile"])
    parser.add_argument("--protocol", default="v2", choices=list(PROTOCOLS))
    parser.add_argument("--seeds", type=int, default=4, help="seeds 0..N-1")
    parser.add_argument("--only-seed", type=int, default=None, help="this seed alone")
    parser.add_argument("--variants", default=None, help="comma-separated subset of the table's rows")
    parser.add_argument("--jobs", type=int, default=2, help="v2: runs trained at once, one thread each")
    parser.add_argument("--reference", default="fpn", help="v2: the row differences are paired against")
    parser.add_argument("--report-only", action="store_true", help="v2: train nothing, table from the records")
    parser.add_argument("--rerecord", action="store_true", help="v2: rewrite records of runs present in --out")
    parser.add_argument("--results", default=None, help="v2: records folder (default benchmarks/results/<protocol>; with --quick <out>/results)")
    parser.add_argument("--out", default=None, help="run folders (default runs/v2; v1: runs/demo)")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    args = parser.parse_args(argv)
    if args.table == "profile":
        from dsic.profiling import format_table, profile

        rows = profile("faster_rcnn", "resnet50", ["fpn", "isg", "csg", "dsic", "fcfpn", "panet", "fpg", "fpt"],
                       size=512, warmup=2, repeats=20)
        print(format_table(rows))
        return 0
    seeds = [args.only_seed] if args.only_seed is not None else list(range(args.seeds))
    rows = variants(args.table, args.protocol)
    if not rows:
        raise SystemExit(f"{args.table} has no rows under protocol {args.protocol} "
                         f"(scenes: --protocol {', '.join(p for p in PROTOCOLS if on_scenes(p))} only, "
                         "and they have no other table)")
    if args.variants:
        unknown = set(args.variants.split(",")) - set(rows)
        if unknown:
            raise SystemExit(f"{args.table} has no rows {sorted(unknown)}; its rows: {', '.join(rows)}")
        rows = {k: v for k, v in rows.items() if k in args.variants.split(",")}
    if args.protocol != "v1":
        return v2_table(args.table, args, rows, seeds)
    out = Path(args.out or "runs/demo")
    results = run_variants(out, rows, seeds, args.quick, profile=args.only_seed is None)
    title = TITLES[args.table] + f"; COCO metrics in %, mean ± std over seeds {seeds}"
    name = args.table if args.only_seed is None else f"{args.table}_seed{args.only_seed}"
    print(write_summary(out, results, title, name=name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
