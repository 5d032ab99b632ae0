"""The embedded benchmarks, one command per table (see benchmarks/README.md).

    python benchmarks/run.py table4 --seeds 4     # ISG / CSG ablation: fpn, isg, csg, dsic
    python benchmarks/run.py table2 --seeds 4     # all necks: fpn, fcfpn, panet, fpg, fpt, dsic
    python benchmarks/run.py table5 --seeds 4     # gate modes of DSIC: softmax, sigmoid, tanh
    python benchmarks/run.py table1 --protocol v3 # FPN / DSIC / CSG in FCOS, RetinaNet and Mask R-CNN
    python benchmarks/run.py table4_tiny34 --protocol v3 --reference r34_fpn  # ISG / CSG on resnet_tiny34
    python benchmarks/run.py bf16 --protocol v3 --out runs/v3_bf16 --results benchmarks/results/v3/bf16  # bf16 training
    python benchmarks/run.py profile              # Faster R-CNN R50 at 512x512: params, GFLOPs, latency

and the tables of the projects beside the library, each defined in its ``projects/<name>/rows.py``
(``TABLES``: {table: (title, rows)}; ``COMMAND``: the program that trains its runs), e.g. the routing
study's ``gates`` (v1-v3) and ``scenes`` (v4-v7):

    python benchmarks/run.py gates --seeds 4      # CSG control: descriptors none / running / layer, path gates
    python benchmarks/run.py scenes --protocol v7 --seeds 4  # routing by image on scenes of different scales

Protocol v2 (default, :mod:`dsic.protocol`): trains every missing (row, seed) run in ``--out``
(default ``runs/v2``), ``--jobs`` at a time (default 2: one process per core, one thread each),
writes each finished run's record to ``benchmarks/results/v2/<row>_seed<s>.json`` (commit them),
and prints the table made from those records: every row's metrics, its AP per seed, and its
paired difference to ``--reference`` (default fpn) with the 95 % t-interval. ``--protocol v1``
re-makes the history tables of BENCHMARKS.md (runs in ``runs/demo``, mean ± std, no records).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
from dsic.results import load_records, mask_records, paired_table, write_record


def table2(protocol: str) -> dict[str, list[str]]:
    out = neck_variants(["fpn", "fcfpn", "panet", "fpg", "fpt", "dsic"])
    if protocol not in ("v1", "v2"):  # v3: DSIC as shipped (gate lr x0.1) beside the necks
        out.update([gate_lr_row("dsic", 0.1)])
    return out


def table4(protocol: str) -> dict[str, list[str]]:
    out = neck_variants(["fpn", "isg", "csg", "dsic"])
    if protocol not in ("v1", "v2"):  # v3: the ablation again at the gate lr x0.1 (library default since 2026-11-28)
        out.update(gate_lr_row(neck, 0.1) for neck in ("isg", "csg", "dsic"))
    return out


def table5(protocol: str) -> dict[str, list[str]]:
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


# Table 1's detectors besides Faster R-CNN (whose rows are table 2's and 4's): each is v3 with the
# architecture swapped. The one-stage detectors take torchvision's own detector settings (the
# protocol's are the R-CNNs' RPN and RoI sampling). Each detector's setting is kept only if FPN's AP
# sd over seeds 0-3 is <= 1.0 at <= 15 min of CPU per run; every change, and the FPN runs it was chosen
# from, is in docs/breadth.md ("What happened"). Now: FCOS setting 2 (torchvision's sizes 8..128, 800
# iterations; kept), RetinaNet setting 3 (800 iterations, GroupNorm head; not kept), Mask R-CNN setting 2
# (32 sampled RoIs, 20 detections per image at evaluation; not kept).
TABLE1_ARCHS = {
    "fcos": ["model.arch=fcos", "model.detector_cfg={_replace_: true}", "model.anchor_sizes=[8, 16, 32, 64, 128]",
             "train.epochs=4", "train.steps=[3.0, 3.6]"],
    # setting 4 (docs/breadth.md, budget extension 2): 1600 iterations, evaluated once, at the end
    "retinanet": ["model.arch=retinanet", "model.detector_cfg={_replace_: true}", "train.epochs=8",
                  "train.steps=[6.0, 7.2]", "model.detector_cfg.head_norm=gn", "train.eval_every=8"],
    "mask_rcnn": ["model.arch=mask_rcnn", "model.detector_cfg.box_batch_size_per_image=32",
                  "model.detector_cfg.box_detections_per_img=20"],
}


def table1(protocol: str) -> dict[str, list[str]]:
    """``<arch>_fpn``, ``<arch>_dsic_gatelr01`` (DSIC as shipped), ``<arch>_csg_gatelr01`` per detector (v3)."""
    if protocol != "v3":
        return {}
    necks = [("fpn", ["model.neck=fpn"]), gate_lr_row("dsic", 0.1), gate_lr_row("csg", 0.1)]
    return {f"{arch}_{name}": arch_overrides + overrides
            for arch, arch_overrides in TABLE1_ARCHS.items() for name, overrides in necks}


def table4_tiny34(protocol: str) -> dict[str, list[str]]:
    """Table 4 on resnet_tiny34 (ResNet-50's stage depths: ISG has blocks to choose), pre-trained as v3's
    resnet_tiny was: ``r34_fpn`` and ISG, CSG, DSIC as shipped (v3; docs/breadth.md)."""
    if protocol != "v3":
        return {}
    weights = ROOT / "benchmarks" / "weights" / "resnet_tiny34_gn_crops.pth"
    backbone = ["model.backbone=resnet_tiny34", f"model.pretrained_backbone={weights}"]
    necks = [("fpn", ["model.neck=fpn"]), *(gate_lr_row(n, 0.1) for n in ("isg", "csg", "dsic"))]
    return {f"r34_{name}": backbone + overrides for name, overrides in necks}


def bf16(protocol: str) -> dict[str, list[str]]:
    """Issue 38's bf16 training pairs (v3; docs/precision.md): FPN and DSIC as shipped trained in fp32 and in
    bf16 (``train.amp=bf16``) at the same seeds on one machine with native bf16. Run with ``--out runs/v3_bf16
    --results benchmarks/results/v3/bf16`` so the fp32 rows never mix with v3's records of other machines."""
    if protocol != "v3":
        return {}
    rows = {"fpn": ["model.neck=fpn"], **dict([gate_lr_row("dsic", 0.1)])}
    return {**rows, **{f"{name}_bf16": overrides + ["train.amp=bf16"] for name, overrides in rows.items()}}


def table1_markdown(records: dict, protocol: str) -> str:
    """One paired table per detector, against its own FPN (Faster R-CNN's rows are tables 2 and 4's)."""
    parts = [(f"{TABLES['table1'].title}, protocol {protocol}; COCO bbox metrics in %, mean over the seeds each "
              "row has; difference to the detector's FPN paired by seed, 95 % t-interval")]
    groups = {"faster_rcnn": ["fpn", "dsic_gatelr01", "csg_gatelr01"]}
    groups.update({arch: [f"{arch}_{n}" for n in ("fpn", "dsic_gatelr01", "csg_gatelr01")] for arch in TABLE1_ARCHS})
    for arch, rows in groups.items():
        parts += [f"**{arch}**", paired_table(records, rows, reference=rows[0])]
        if arch == "mask_rcnn":
            parts += ["**mask_rcnn, mask AP**", paired_table(mask_records(records, rows), rows, reference=rows[0])]
    return "\n\n".join(parts)


class Table(NamedTuple):
    title: str
    rows: Callable[[str], dict[str, list[str]]]  # protocol -> {row: overrides}
    command: tuple[str, ...] | None = None  # what trains a run (default: python -m dsic.cli)


def project_tables() -> dict[str, Table]:
    """The tables of the projects beside the library: ``TABLES`` ({name: (title, rows)}) and ``COMMAND``
    of every ``projects/<name>/rows.py``."""
    tables = {}
    for path in sorted((ROOT / "projects").glob("*/rows.py")):
        spec = importlib.util.spec_from_file_location(f"{path.parent.name}_rows", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        tables.update({name: Table(title, rows, module.COMMAND) for name, (title, rows) in module.TABLES.items()})
    return tables


LIBRARY_TABLES = {
    "table1": Table("Table 1 analog: FPN, DSIC and CSG in each detector (resnet_tiny, embedded dataset)", table1),
    "bf16": Table("bf16 training against fp32, paired by seed on one machine with native bf16 (Faster R-CNN)", bf16),
    "table4_tiny34": Table("Table 4 analog on resnet_tiny34, where ISG has 2-5 former blocks to choose from "
                           "(Faster R-CNN)", table4_tiny34),
    "table2": Table("Table 2 analog: necks compared in Faster R-CNN (resnet_tiny, embedded dataset)", table2),
    "table4": Table("Table 4 analog: ISG / CSG ablation (Faster R-CNN, resnet_tiny, embedded dataset)", table4),
    "table5": Table("Table 5 analog: gate modes of DSIC, ISG and CSG alike (Faster R-CNN, embedded dataset)", table5),
}
TABLES = {**LIBRARY_TABLES, **project_tables()}


def variants(table: str, protocol: str = "v1") -> dict[str, list[str]]:
    """``{row: overrides}`` of ``table`` under ``protocol`` ({} when it has none there)."""
    if table not in TABLES:
        raise SystemExit(f"unknown table {table!r}")
    if table in LIBRARY_TABLES and on_scenes(protocol):
        return {}  # the scenes set of v4 to v7 is the routing study's (projects/routing/rows.py)
    return TABLES[table].rows(protocol)


def v2_table(table: str, args, rows: dict[str, list[str]], seeds: list[int]) -> int:
    proto = get_protocol(args.protocol)
    out = Path(args.out or f"runs/{proto.name}")
    if not args.report_only:
        train_runs(out, proto, rows, seeds, args.quick, jobs=args.jobs, command=TABLES[table].command)
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
        table_md = (f"{TABLES[table].title}, protocol {proto.name}; COCO bbox metrics in %, mean over the seeds "
                    f"each row has; difference to {args.reference} paired by seed, 95 % t-interval\n\n"
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
    parser.add_argument("table", choices=[*TABLES, "profile"])
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
    title = TABLES[args.table].title + f"; COCO metrics in %, mean ± std over seeds {seeds}"
    name = args.table if args.only_seed is None else f"{args.table}_seed{args.only_seed}"
    print(write_summary(out, results, title, name=name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
