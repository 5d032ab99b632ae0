"""The embedded benchmarks, one command each (see benchmarks/README.md).

    python benchmarks/run.py table4 --seeds 2     # ISG / CSG ablation: fpn, isg, csg, dsic
    python benchmarks/run.py table2 --seeds 1     # all necks: fpn, fcfpn, panet, fpg, fpt, dsic
    python benchmarks/run.py table5 --seeds 1     # gate modes of DSIC: softmax, sigmoid, tanh
    python benchmarks/run.py gates --seeds 2      # CSG/DSIC: csg_gain weights vs input, csg_control_norm
    python benchmarks/run.py profile              # Faster R-CNN R50 at 512x512: params, GFLOPs, latency

Every table trains Faster R-CNN (resnet_tiny, from scratch, configs/embedded) on the embedded
dataset on CPU, one run per variant and seed, in ``--out`` (default ``runs/demo``, the folder
``make demo`` fills, so its FPN and DSIC runs are reused; finished runs are never trained twice).
Each table is written to ``<out>/<table>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dsic.demo import neck_variants, run_variants, write_summary

TITLES = {
    "table2": "Table 2 analog: necks compared in Faster R-CNN (resnet_tiny, embedded dataset)",
    "table4": "Table 4 analog: ISG / CSG ablation (Faster R-CNN, resnet_tiny, embedded dataset)",
    "table5": "Table 5 analog: gate modes of DSIC, ISG and CSG alike (Faster R-CNN, embedded dataset)",
    "gates": "How CSG's gates learn: where the start-up gain lives, descriptor normalisation (Faster R-CNN, embedded)",
}


def variants(table: str) -> dict[str, list[str]]:
    if table == "table2":
        return neck_variants(["fpn", "fcfpn", "panet", "fpg", "fpt", "dsic"])
    if table == "table4":
        return neck_variants(["fpn", "isg", "csg", "dsic"])
    if table == "table5":
        out = {f"dsic_{m}": ["model.neck=dsic", f"model.neck_cfg={{isg_mode: {m}, csg_mode: {m}}}"]
               for m in ("softmax", "sigmoid")}
        out["dsic"] = ["model.neck=dsic"]  # tanh is DSIC's default: the same run as table 4's
        return out
    if table == "gates":
        # csg and dsic are the defaults (csg_gain: input): the same runs as table 4's
        out = {}
        for neck in ("csg", "dsic"):
            out[neck] = [f"model.neck={neck}"]
            out[f"{neck}_gain_weights"] = [f"model.neck={neck}", "model.neck_cfg={csg_gain: weights}"]
        out["dsic_control_norm"] = ["model.neck=dsic", "model.neck_cfg={csg_control_norm: layer}"]
        out["dsic_gain_weights_control_norm"] = [
            "model.neck=dsic", "model.neck_cfg={csg_gain: weights, csg_control_norm: layer}"]
        return out
    raise SystemExit(f"unknown table {table!r}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", choices=["table2", "table4", "table5", "gates", "profile"])
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1")
    parser.add_argument("--only-seed", type=int, default=None,
                        help="train and report this seed alone, without profiling (to split a table "
                             "over processes; run again without it to aggregate and profile)")
    parser.add_argument("--variants", default=None, help="comma-separated subset of the table's rows")
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run")
    args = parser.parse_args(argv)
    if args.table == "profile":
        from dsic.profiling import format_table, profile

        rows = profile("faster_rcnn", "resnet50", ["fpn", "isg", "csg", "dsic", "fcfpn", "panet", "fpg", "fpt"],
                       size=512, warmup=2, repeats=20)
        print(format_table(rows))
        return 0
    out = Path(args.out)
    seeds = [args.only_seed] if args.only_seed is not None else list(range(args.seeds))
    rows = variants(args.table)
    if args.variants:
        unknown = set(args.variants.split(",")) - set(rows)
        if unknown:
            raise SystemExit(f"{args.table} has no rows {sorted(unknown)}; its rows: {', '.join(rows)}")
        rows = {k: v for k, v in rows.items() if k in args.variants.split(",")}
    results = run_variants(out, rows, seeds, args.quick, profile=args.only_seed is None)
    title = TITLES[args.table] + f"; COCO metrics in %, mean ± std over seeds {seeds}"
    name = args.table if args.only_seed is None else f"{args.table}_seed{args.only_seed}"
    print(write_summary(out, results, title, name=name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
