"""``make demo`` and the embedded benchmarks: train variants of Faster R-CNN on CPU and compare.

``make demo`` (:func:`run_demo`) follows benchmark protocol v3 (:mod:`dsic.protocol`: v2 with the
committed pre-trained backbone) with one seed; all outputs under ``out``:

1. ``data/synth_hard`` - the harder embedded dataset and its probe groups (generated once);
2. ``fpn_seed0/``, ``dsic_gatelr01_seed0/`` - one run each, trained side by side (one process per
   core, one thread each), from ``configs/embedded_v3/faster_rcnn_tiny_fpn.yaml`` with the row's
   overrides. Each neck runs as the library ships it (:func:`demo_rows`): the benchmark configs pin
   ``train.gate_lr_mult`` to the 1.0 their older rows were run with, and a gated neck at the
   default 0.1 is the protocol row ``<neck>_gatelr01``. Run folders and records keep that row name, so they pair with the
   committed records; the table, the plots and the probe lines show the neck's name (``dsic``);
3. ``results/<row>_seed0.json`` - each run's record (:mod:`dsic.results`), with the gate probe of
   DSIC (:mod:`dsic.analysis.probe`);
4. ``summary.md`` - the demo's own numbers: metrics, DSIC - FPN at this seed (one seed: no
   interval), how differently DSIC routes small- and large-object images; then the committed
   protocol-v3 table (``benchmarks/results/v3``: every seed, paired differences with 95 % intervals);
5. ``plots/`` - AP bars, loss curves and ``routing_<row>.png`` (the paper's Fig. 3 analog).

Finished runs (``final.pth`` and an evaluation present) are reused and interrupted ones resumed
from their ``last.pth``, so a command can be re-run with more variants or seeds to extend it.
``quick=True`` shrinks everything to a smoke run of seconds (used by the tests). The v1 tables
(:func:`run_variants`) remain for the history in benchmarks/PROTOCOLS.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .necks import GATED_NECKS
from .protocol import Protocol, get_protocol

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = get_protocol("v1").base_config  # the v1 tables (run_variants)
QUICK = {"synth": {"num_train": 16, "num_val": 8, "image_size": 160},
         "train": ["train.epochs=1", "train.max_iters=4", "train.warmup_iters=2", "train.eval_every=1",
                   "train.batch_size=2", "model.min_size=160", "model.max_size=160", "train.log_every=1"]}


def neck_variants(necks) -> dict[str, list[str]]:
    return {neck: [f"model.neck={neck}"] for neck in necks}


def gate_lr_row(neck: str, factor: float) -> tuple[str, list[str]]:
    """The benchmark row of ``neck`` with its gate signals at ``factor`` x the lr: its name
    ``<neck>_gatelr<factor without the dot>`` (0.1: ``dsic_gatelr01``) and its overrides."""
    return f"{neck}_gatelr{str(factor).replace('.', '')}", [f"model.neck={neck}", f"train.gate_lr_mult={factor}"]


def final_metrics(run_dir: Path, iou_type: str = "bbox") -> dict | None:
    """The last evaluation a run wrote (``eval_epoch*.json``): its ``iou_type`` metrics (bbox, or
    segm: None when the run evaluated no masks)."""
    evals = sorted(run_dir.glob("eval_epoch*.json"), key=lambda p: int(p.stem.removeprefix("eval_epoch")))
    if not evals:
        raise FileNotFoundError(f"{run_dir}: the run wrote no evaluation (eval_epoch*.json)")
    data = json.loads(evals[-1].read_text())
    return data.get(iou_type, data if iou_type == "bbox" else None)


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


def ensure_data(out: str | Path, protocol: Protocol, quick: bool = False) -> Path:
    """The protocol's dataset (and probe groups) under ``out/data``, generated when missing."""
    from .data.synth import generate, generate_probe

    data = protocol.data_dir(out)
    if not (data / "annotations" / "instances_val.json").is_file():
        print(f"[dsic] generating the {protocol.name} embedded dataset in {data}", flush=True)
        synth = dict(protocol.synth, **(QUICK["synth"] if quick else {}))
        generate(data, seed=0, **synth)
        if protocol.probe:
            generate_probe(data, 4 if quick else protocol.probe, synth.get("image_size", 320), 0,
                           synth.get("preset", "default"))
    return data


def is_complete(run: Path) -> bool:
    return (run / "final.pth").is_file() and bool(list(run.glob("eval_epoch*.json")))


def train_command(protocol: Protocol, data: Path, overrides: list[str], run: Path, seed: int,
                  quick: bool) -> list[str]:
    """``dsic train`` arguments of one run. In a row's overrides ``{seed}`` stands for the seed and
    ``{runs}`` for the folder of the runs (rows that start from another row's trained run)."""
    overrides = [o.replace("{seed}", str(seed)).replace("{runs}", str(run.parent)) for o in overrides]
    args = data_overrides(data) + list(protocol.overrides) + overrides + [f"output_dir={run}", f"train.seed={seed}"]
    return [str(protocol.base_config), *args, *(QUICK["train"] if quick else [])]


def _stamp(run: Path, start: float, threads: int, commit: str, cpu_s: float | None = None) -> None:
    """``wall.json``: wall time, threads, commit and machine; ``cpu_s``, the run's CPU time, in this
    process or in a process of its own (a shared machine stretches the wall time, not the CPU time)."""
    from .results import host_fingerprint

    stamp = {"wall_s": round(time.time() - start, 1), "threads": threads, "commit": commit, "host": host_fingerprint()}
    if cpu_s is not None:
        stamp["cpu_s"] = round(cpu_s, 1)
    (run / "wall.json").write_text(json.dumps(stamp))


def poll_cpu(proc) -> tuple[int | None, float | None]:
    """``(returncode, CPU seconds)`` of a child process once it has ended, ``(None, None)`` before: the
    CPU time is what the OS adds to this process's children's usage when :meth:`Popen.poll` reaps it."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    returncode = proc.poll()
    if returncode is None:
        return None, None
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return returncode, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def train_runs(out: str | Path, protocol: Protocol, variants: dict[str, list[str]], seeds: list[int],
               quick: bool = False, jobs: int = 1, command: tuple[str, ...] | None = None,
               status_seconds: float = 30.0) -> None:
    """Train every missing (variant, seed) run of ``protocol`` under ``out``; ``jobs`` > 1 trains
    that many at once, each in its own process with ``protocol.threads`` threads (its output in
    ``<run>.log``; every ``status_seconds`` a line per run says its latest iteration, loss and ETA
    read from that log). Each run gets ``wall.json`` (wall time, threads, commit). ``command``: the
    program that trains a run in its own process (default ``python -m dsic.cli``; a project's, e.g.
    projects/routing/train.py, registers the project's necks), then always in processes of their own."""
    import torch

    from .engine.reporting import run_progress
    from .engine.train import main_train
    from .results import git_commit

    out = Path(out)
    data = ensure_data(out, protocol, quick)
    commit = git_commit(Path(__file__).resolve().parents[1])
    todo = []
    for name, overrides in variants.items():
        for seed in seeds:
            run = out / f"{name}_seed{seed}"
            if is_complete(run):
                print(f"[dsic] {run} is complete, reusing it", flush=True)
            else:
                todo.append((name, seed, run, train_command(protocol, data, overrides, run, seed, quick)))
    if jobs <= 1 and command is None:
        for name, seed, run, (config, *args) in todo:
            print(f"[dsic] training {name} (seed {seed}) -> {run}", flush=True)
            start, cpu = time.time(), time.process_time()
            main_train(config, args, resume=(run / "last.pth").is_file())
            _stamp(run, start, torch.get_num_threads(), commit, cpu_s=time.process_time() - cpu)
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(protocol.threads), MKL_NUM_THREADS=str(protocol.threads))
    running: list = []
    failed = []
    said: dict = {}  # run -> the status last printed
    status_at = time.time()
    while todo or running:
        while todo and len(running) < jobs:
            name, seed, run, cmd = todo.pop(0)
            run.parent.mkdir(parents=True, exist_ok=True)
            resume = ["--resume"] if (run / "last.pth").is_file() else []
            log = open(run.with_name(run.name + ".log"), "a")  # noqa: SIM115 - closed when the run ends
            print(f"[dsic] training {name} (seed {seed}) -> {run} (log: {log.name})", flush=True)
            proc = subprocess.Popen([*(command or (sys.executable, "-m", "dsic.cli")), "train", *cmd, *resume], env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
            running.append((proc, log, run, time.time(), name, seed))
        time.sleep(1.0)
        for item in list(running):
            proc, log, run, start, name, seed = item
            returncode, cpu_s = poll_cpu(proc)
            if returncode is None:
                continue
            running.remove(item)
            log.close()
            if returncode == 0:
                _stamp(run, start, protocol.threads, commit, cpu_s=cpu_s)
                print(f"[dsic] {name} (seed {seed}) finished in {time.time() - start:.0f} s", flush=True)
            else:
                failed.append(f"{run} (exit {proc.returncode}, see {log.name})")
        if running and time.time() - status_at >= status_seconds:  # the runs' own lines, read from their logs
            status_at = time.time()
            for _, log, run, _, name, seed in running:
                with open(log.name, "rb") as f:  # its end: the latest lines
                    f.seek(max(0, os.fstat(f.fileno()).st_size - 65536))
                    status = run_progress(f.read().decode(errors="replace"))
                if status and status != said.get(run):
                    said[run] = status
                    print(f"[dsic] {name} (seed {seed}): {status}", flush=True)
    if failed:
        raise RuntimeError("training failed: " + "; ".join(failed))


def demo_rows(necks, protocol: Protocol) -> dict[str, list[str]]:
    """``{row: overrides}`` training each neck as the library ships it under ``protocol``: v1 and v2
    predate ``train.gate_lr_mult`` (their rows are the necks); from v3 on, a gated neck whose shipped
    gate lr factor differs from the 1.0 the benchmark configs pin is the row ``<neck>_gatelr<factor>``
    (0.1: ``dsic_gatelr01``), as benchmarks/run.py defines it."""
    from .config import load_config

    factor = load_config()["train"]["gate_lr_mult"]
    shipped = protocol.name not in ("v1", "v2") and factor != 1.0
    return dict(gate_lr_row(neck, factor) if shipped and neck in GATED_NECKS else (neck, [f"model.neck={neck}"])
                for neck in necks)


def record_run(out: str | Path, protocol: Protocol, row: str, overrides: list[str], seed: int,
               quick: bool = False) -> dict:
    """The :mod:`dsic.results` record of a finished run, with the gate probe for gated necks."""
    import yaml

    from .analysis import probe_model
    from .inference import load_model
    from .results import git_commit, host_fingerprint, percent_metrics, run_record

    run = Path(out) / f"{row}_seed{seed}"
    stamp = json.loads((run / "wall.json").read_text()) if (run / "wall.json").is_file() else {}
    cfg_path = run / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    record = run_record(protocol.name, row, seed, overrides, final_metrics(run),
                        commit=stamp.get("commit") or git_commit(), threads=stamp.get("threads"),
                        wall_s=stamp.get("wall_s"), **({"cpu_s": stamp["cpu_s"]} if "cpu_s" in stamp else {}),
                        iterations=_iterations(run), neck=cfg["model"]["neck"],
                        ema=bool(cfg["train"].get("ema")), arch=cfg["model"]["arch"],
                        backbone=cfg["model"]["backbone"], host=stamp.get("host") or host_fingerprint())
    segm = final_metrics(run, "segm")
    if segm is not None:  # Mask R-CNN: mask AP beside the box AP
        record["mask_metrics"] = percent_metrics(segm)
    if cfg["model"]["neck"] in GATED_NECKS and protocol.probe:
        model, _, _ = load_model(cfg_path, run / "final.pth", device="cpu")
        record["gate_probe"] = probe_model(model, protocol.data_dir(out), 4 if quick else protocol.probe)
    return record


def _iterations(run: Path) -> int | None:
    from .visualize import read_jsonl

    iters = [r["iter"] for r in read_jsonl(run / "log.jsonl") if "iter" in r] if (run / "log.jsonl").is_file() else []
    return max(iters) if iters else None


def run_demo(out: str | Path = "runs/demo", quick: bool = False, seeds: int = 1,
             necks: list[str] = ("fpn", "dsic"), protocol: str = "v3", jobs: int = 2) -> dict:
    """The ``make demo`` job (module doc): FPN vs DSIC under the protocol, table, probe and plots."""
    from .analysis import probe_images
    from .analysis.routing_figure import routing_figure
    from .inference import class_names_of, load_model
    from .results import load_records, paired_table, write_record
    from .visualize import ap_bars, loss_curves

    out = Path(out)
    proto = get_protocol(protocol)
    variants = demo_rows(necks, proto)
    names = list(variants)
    shown = dict(zip(names, necks))  # what the user reads: the neck, not the protocol row (dsic_gatelr01)

    def by_neck(recs: dict) -> dict:
        return {shown[row]: recs[row] for row in names if row in recs}

    seed_list = list(range(seeds))
    train_runs(out, proto, variants, seed_list, quick, jobs=1 if quick else jobs)
    results_dir = out / "results"
    records = {}
    for name, overrides in variants.items():
        for seed in seed_list:
            rec = record_run(out, proto, name, overrides, seed, quick)
            write_record(results_dir, rec)
            records.setdefault(name, {})[seed] = rec
    plots = out / "plots"
    ap_bars({shown[k]: {m: statistics.mean(r["metrics"][m] for r in v.values()) for m in METRICS}
             for k, v in records.items()}, plots / "ap_bars.png")
    loss_curves({f"{shown[n]} seed {s}": out / f"{n}_seed{s}" / "log.jsonl" for n in names for s in seed_list},
                plots / "loss_curves.png")
    renamed = [f"{shown[n]} is the protocol row {n}" for n in names if shown[n] != n]
    lines = [f"# make demo: protocol {proto.name}, seed(s) {seed_list}" + (" (quick smoke run)" if quick else ""),
             "", "Each neck as the library ships it" + (f" ({'; '.join(renamed)}: its run folder and record "
                                                        "keep that name)" if renamed else "") + ".",
             "", paired_table(by_neck(load_records(results_dir)), list(shown.values()), reference=shown[names[0]]), ""]
    for name in names:
        probe = records[name][0].get("gate_probe")
        if probe and "W_max_diff" in probe:
            i, k = probe["W_max_diff_at"]
            lines.append(f"{shown[name]}: routing differs between all-small and all-large images by up to "
                         f"{probe['W_max_diff']:.3f} (W[{i}, {k}], effect size {probe['W_effect_size']:.1f}); "
                         f"W alone tells small / large / mixed images apart "
                         f"{100 * probe['W_group_accuracy']:.0f} % of the time (chance 33 %).")
            run = out / f"{name}_seed0"
            model, cfg, _ = load_model(run / "config.yaml", run / "final.pth", device="cpu")
            picks = {g: paths[0] for g, paths in probe_images(proto.data_dir(out)).items()}
            routing_figure(model, picks, plots / f"routing_{shown[name]}.png", class_names_of(cfg), probe)
    committed = proto.results_dir
    if not quick and list(committed.glob("*_seed*.json")):
        lines += ["", f"## The full protocol {proto.name} (committed results in {committed}, every seed)", "",
                  paired_table(by_neck(load_records(committed)), list(shown.values()), reference=shown[names[0]])]
    summary = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(summary)
    (out / "summary.json").write_text(json.dumps(records, indent=1))
    print(summary, flush=True)
    print(f"[dsic] plots in {plots}, summary in {out / 'summary.md'}, run records in {results_dir}", flush=True)
    return records
