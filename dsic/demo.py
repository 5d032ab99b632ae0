"""``make demo`` and the embedded benchmarks: train variants of Faster R-CNN on CPU and compare.

Steps (all outputs under ``out``):

1. ``data/synth`` - the embedded multi-scale dataset (generated once, deterministic);
2. ``<variant>_seed<k>/`` - one training run per variant and seed, from
   ``configs/embedded/faster_rcnn_tiny_fpn.yaml`` plus the variant's overrides;
3. ``summary.md`` / ``summary.json`` - AP, AP50, AP75, APs, APm, APl (mean and spread over seeds),
   params, GFLOPs and CPU latency of each variant;
4. ``plots/`` - AP bars, loss curves and, for gated necks, the gate states of validation images.

Finished runs (``final.pth`` and an evaluation present) are reused and interrupted ones resumed
from their ``last.pth``, so a command can be re-run with more variants or seeds to extend it.
``quick=True`` shrinks everything to a smoke run of seconds (used by the tests).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = ROOT / "configs" / "embedded" / "faster_rcnn_tiny_fpn.yaml"
QUICK = {"synth": {"num_train": 16, "num_val": 8, "image_size": 160},
         "train": ["train.epochs=1", "train.max_iters=4", "train.warmup_iters=2", "train.eval_every=1",
                   "train.batch_size=2", "model.min_size=160", "model.max_size=160", "train.log_every=1"]}


def neck_variants(necks) -> dict[str, list[str]]:
    return {neck: [f"model.neck={neck}"] for neck in necks}


def final_metrics(run_dir: Path) -> dict:
    """The last evaluation a run wrote (``eval_epoch*.json``), bbox metrics."""
    evals = sorted(run_dir.glob("eval_epoch*.json"), key=lambda p: int(p.stem.removeprefix("eval_epoch")))
    if not evals:
        raise FileNotFoundError(f"{run_dir}: the run wrote no evaluation (eval_epoch*.json)")
    data = json.loads(evals[-1].read_text())
    return data.get("bbox", data)


def summarize(rows: list[dict]) -> dict:
    out = {m: statistics.mean(r[m] for r in rows) for m in METRICS}
    out.update({f"{m}_std": statistics.pstdev(r[m] for r in rows) for m in METRICS})
    out["seeds"] = len(rows)
    out["AP_per_seed"] = [r["AP"] for r in rows]
    return out


def data_overrides(data: Path) -> list[str]:
    return [f"data.train.images={data / 'train'}",
            f"data.train.annotations={data / 'annotations' / 'instances_train.json'}",
            f"data.val.images={data / 'val'}",
            f"data.val.annotations={data / 'annotations' / 'instances_val.json'}"]


def run_variants(out: str | Path, variants: dict[str, list[str]], seeds: int | list[int] = 1, quick: bool = False,
                 profile_size: int | None = None, profile: bool = True) -> dict:
    """Train every variant for ``seeds`` seeds (a count, or a list of seed numbers), evaluate and
    (unless ``profile`` is False) profile it; returns ``{variant: summary}``."""
    from .config import load_config
    from .data.synth import generate
    from .engine.train import main_train
    from .profiling import profile as profile_model

    out = Path(out)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    data = out / "data" / "synth"
    if not (data / "annotations" / "instances_val.json").is_file():
        print(f"[dsic] generating the embedded dataset in {data}", flush=True)
        generate(data, seed=0, **(QUICK["synth"] if quick else {}))
    results = {}
    for name, overrides in variants.items():
        per_seed = []
        for seed in seeds:
            run = out / f"{name}_seed{seed}"
            args = data_overrides(data) + overrides + [f"output_dir={run}", f"train.seed={seed}"]
            args += QUICK["train"] if quick else []
            if (run / "final.pth").is_file() and list(run.glob("eval_epoch*.json")):
                print(f"[dsic] {run} is complete, reusing it", flush=True)
            else:
                print(f"[dsic] training {name} (seed {seed}) -> {run}", flush=True)
                main_train(BASE_CONFIG, args, resume=(run / "last.pth").is_file())
            per_seed.append(final_metrics(run))
        results[name] = summarize(per_seed)
        if not profile:
            continue
        model_cfg = load_config(BASE_CONFIG, args)["model"]
        size = profile_size or model_cfg["max_size"]
        row = profile_model(model_cfg["arch"], model_cfg["backbone"], [model_cfg["neck"]], size, model_cfg["num_classes"],
                      warmup=1, repeats=3 if quick else 20, neck_cfg=model_cfg["neck_cfg"], model_cfg=model_cfg)[0]
        results[name].update(params_m=row.detector_params_m, latency_ms=row.detector_ms, gflops=row.detector_gflops)
    return results


def summary_table(results: dict, title: str) -> str:
    head = "| variant | " + " | ".join(METRICS) + " | AP per seed | params (M) | GFLOPs | CPU latency (ms) |"
    lines = [title, "", head, "|" + "---|" * (len(METRICS) + 5)]
    for name, r in results.items():
        cells = []
        for m in METRICS:
            cell = f"{100 * r[m]:.1f}"
            if r.get("seeds", 1) > 1:
                cell += f" ± {100 * r[m + '_std']:.1f}"
            cells.append(cell)
        cost = (f"{r['params_m']:.2f} | {r['gflops']:.1f} | {r['latency_ms']:.0f}" if "params_m" in r
                else "- | - | -")
        per_seed = " / ".join(f"{100 * ap:.1f}" for ap in r.get("AP_per_seed", [r["AP"]]))
        lines.append(f"| {name} | {' | '.join(cells)} | {per_seed} | {cost} |")
    return "\n".join(lines)


def write_summary(out: Path, results: dict, title: str, name: str = "summary") -> str:
    table = summary_table(results, title)
    (out / f"{name}.md").write_text(table + "\n")
    (out / f"{name}.json").write_text(json.dumps(results, indent=2))
    return table


def run_demo(out: str | Path = "runs/demo", quick: bool = False, seeds: int = 1,
             necks: list[str] = ("fpn", "dsic")) -> dict:
    """The ``make demo`` job: FPN vs DSIC (or ``necks``) on the embedded dataset, table and plots."""
    from .visualize import ap_bars, loss_curves

    out = Path(out)
    results = run_variants(out, neck_variants(necks), seeds, quick, profile_size=160 if quick else None)
    plots = out / "plots"
    ap_bars({k: {m: 100 * v[m] for m in METRICS} for k, v in results.items()}, plots / "ap_bars.png")
    loss_curves({f"{n} seed {s}": out / f"{n}_seed{s}" / "log.jsonl" for n in necks for s in range(seeds)},
                plots / "loss_curves.png")
    _gate_figures(out, necks, plots)
    title = (f"Faster R-CNN, resnet_tiny, trained from scratch on the embedded dataset; COCO metrics in %, "
             f"mean of {seeds} seed(s); latency: one 320x320 image, 2 CPU cores")
    table = write_summary(out, results, title)
    print(table, flush=True)
    print(f"[dsic] plots in {plots}, summary in {out / 'summary.md'}", flush=True)
    return results


def _gate_figures(out: Path, necks, plots: Path) -> None:
    from .inference import visualize_files

    data = out / "data" / "synth"
    val_images = sorted((data / "val").iterdir())[:3]
    for neck in necks:
        run = out / f"{neck}_seed0"
        if neck == "fpn" or not (run / "final.pth").is_file():
            continue
        visualize_files(BASE_CONFIG, run / "final.pth", val_images, plots / f"gates_{neck}", score_thresh=0.5,
                        overrides=data_overrides(data) + [f"model.neck={neck}"])
