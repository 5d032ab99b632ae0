"""``make demo``: generate the embedded dataset, train FPN and DSIC Faster R-CNN on CPU, compare.

Steps (all outputs under ``out``):

1. ``data/synth`` - the embedded multi-scale dataset (generated once, deterministic);
2. ``<neck>_seed<k>/`` - one training run per neck and seed from ``configs/embedded``;
3. ``summary.md`` / ``summary.json`` - AP, AP50, AP75, APs, APm, APl, params and CPU latency;
4. ``plots/`` - AP bars, loss curves and the gate states (Fig. 3 style) of a validation image.

``quick=True`` shrinks everything to a smoke run of about a minute (used by the tests).
Finished runs (``final.pth`` and an evaluation present) are reused, interrupted ones resumed from
their ``last.pth``, so the command can be re-run with more necks or seeds to extend a benchmark.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "embedded"
QUICK = {"synth": {"num_train": 16, "num_val": 8, "image_size": 160},
         "train": ["train.epochs=1", "train.max_iters=4", "train.warmup_iters=2", "train.eval_every=1",
                   "train.batch_size=2", "model.min_size=160", "model.max_size=160"]}


def final_metrics(run_dir: Path) -> dict:
    """The last evaluation a run wrote (``eval_epoch*.json``), bbox metrics."""
    evals = sorted(run_dir.glob("eval_epoch*.json"), key=lambda p: int(p.stem.removeprefix("eval_epoch")))
    if not evals:
        raise FileNotFoundError(f"{run_dir}: the run wrote no evaluation (eval_epoch*.json)")
    data = json.loads(evals[-1].read_text())
    return data.get("bbox", data)


def mean_over_seeds(rows: list[dict]) -> dict:
    return {m: statistics.mean(r[m] for r in rows) for m in METRICS}


def run_demo(out: str | Path = "runs/demo", quick: bool = False, seeds: int = 1,
             necks: list[str] = ("fpn", "dsic")) -> dict:
    from .data.synth import generate
    from .engine.train import main_train
    from .profiling import profile
    from .visualize import ap_bars, loss_curves

    out = Path(out)
    data = out / "data" / "synth"
    if not (data / "annotations" / "instances_val.json").is_file():
        print(f"[demo] generating the embedded dataset in {data}", flush=True)
        generate(data, seed=0, **(QUICK["synth"] if quick else {}))
    data_overrides = [f"data.train.images={data / 'train'}",
                      f"data.train.annotations={data / 'annotations' / 'instances_train.json'}",
                      f"data.val.images={data / 'val'}",
                      f"data.val.annotations={data / 'annotations' / 'instances_val.json'}"]
    results, logs = {}, {}
    for neck in necks:
        per_seed = []
        for seed in range(seeds):
            run = out / f"{neck}_seed{seed}"
            print(f"[demo] training Faster R-CNN + {neck} (seed {seed}) -> {run}", flush=True)
            overrides = data_overrides + [f"output_dir={run}", f"train.seed={seed}"] + (QUICK["train"] if quick else [])
            if (run / "final.pth").is_file() and list(run.glob("eval_epoch*.json")):
                print(f"[demo] {run} is complete, reusing it", flush=True)
            else:
                main_train(CONFIGS / f"faster_rcnn_tiny_{neck}.yaml", overrides,
                           resume=(run / "last.pth").is_file())
            per_seed.append(final_metrics(run))
            logs[f"{neck} seed {seed}"] = run / "log.jsonl"
        results[neck] = mean_over_seeds(per_seed)
    from .config import load_config

    model_cfg = load_config(CONFIGS / "faster_rcnn_tiny_fpn.yaml")["model"]
    size = 160 if quick else model_cfg["max_size"]
    for row in profile("faster_rcnn", model_cfg["backbone"], list(necks), size, model_cfg["num_classes"],
                       warmup=1, repeats=3 if quick else 20, model_cfg=model_cfg):
        results[row.neck].update(params_m=row.detector_params_m, latency_ms=row.detector_ms,
                                 gflops=row.detector_gflops)
    plots = out / "plots"
    ap_bars(results, plots / "ap_bars.png")
    loss_curves(logs, plots / "loss_curves.png")
    _gate_figures(out, necks, data, plots, data_overrides)
    table = summary_table(results, seeds)
    (out / "summary.md").write_text(table + "\n")
    (out / "summary.json").write_text(json.dumps(results, indent=2))
    print(table, flush=True)
    print(f"[demo] plots in {plots}, summary in {out / 'summary.md'}", flush=True)
    return results


def summary_table(results: dict, seeds: int) -> str:
    head = "| neck | " + " | ".join(METRICS) + " | params (M) | GFLOPs | CPU latency (ms) |"
    lines = [f"Faster R-CNN, resnet_tiny, embedded dataset; COCO metrics in %, mean of {seeds} seed(s)", "",
             head, "|" + "---|" * (len(METRICS) + 4)]
    for neck, r in results.items():
        vals = " | ".join(f"{100 * r[m]:.1f}" for m in METRICS)
        lines.append(f"| {neck} | {vals} | {r['params_m']:.2f} | {r['gflops']:.1f} | {r['latency_ms']:.0f} |")
    return "\n".join(lines)


def _gate_figures(out: Path, necks, data: Path, plots: Path, overrides: list[str]) -> None:
    from .inference import visualize_files

    val_images = sorted((data / "val").iterdir())[:2]
    for neck in necks:
        run = out / f"{neck}_seed0"
        if neck == "fpn" or not (run / "final.pth").is_file():
            continue
        visualize_files(CONFIGS / f"faster_rcnn_tiny_{neck}.yaml", run / "final.pth", val_images,
                        plots / f"gates_{neck}", score_thresh=0.5, overrides=overrides)
