"""What a training run tells while it runs and when it ends (rank 0 only).

* ``run_info.json`` in the output folder: package versions, git commit of the dsic sources, the
  command line, torch's thread count, host, device and world size, start time; each ``--resume``
  appends the same record of its own invocation (and ``resumed_from``: checkpoint and iteration)
  to the list ``resumes``, so the first command line is kept;
* a plain line per ``log_every`` iterations on stdout when stdout is not a terminal (cluster logs;
  on a terminal tqdm shows a bar): iteration, epoch, losses, lr, seconds per iteration, ETA;
  and a line per evaluation (:func:`run_progress` reads the latest back, for ``make demo``);
* :class:`Progress`, the same choice for the other commands' loops (``dsic predict`` /
  ``visualize``): a tqdm bar on a terminal, plain lines otherwise;
* TensorBoard scalars (``train.tensorboard: true``; through ``torch.utils.tensorboard``, needs the
  ``tensorboard`` package) in ``output_dir/tensorboard``: ``train/<loss>``, ``train/lr``,
  ``train/time``, ``eval/<iou type>/<metric>``;
* at the end, ``summary.md``: the last evaluation's metrics (``-`` for a metric COCOeval has no
  value for, -1: e.g. APl without large objects), per-class AP and the output paths, also printed.

:class:`RunReport` wraps the JSON-lines log: every record written to it is reported as well.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

PACKAGES = ("dsic", "torch", "torchvision", "numpy", "pycocotools", "faster-coco-eval", "pillow", "pyyaml")


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(folder: Path | None = None) -> str | None:
    """The commit of the git checkout holding the dsic sources (``+dirty`` with local changes)."""
    folder = folder or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "") if commit else None


def run_info(cfg: dict, device: str, world_size: int) -> dict:
    return {"command": [Path(sys.argv[0]).name, *sys.argv[1:]], "cwd": os.getcwd(), "host": socket.gethostname(),
            "platform": platform.platform(), "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "git_commit": git_commit(), "packages": package_versions(), "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "device": device, "world_size": world_size,
            "cuda": torch.version.cuda if torch.cuda.is_available() else None, "output_dir": cfg["output_dir"]}


def record_invocation(path: Path, info: dict, resumed_from: str | None) -> None:
    """Write ``info`` as ``path`` (a fresh run), or append it to the run's ``resumes`` (a resumed run:
    the run's first record stays; an unreadable or missing one is started anew, marked resumed)."""
    record = info
    if resumed_from is not None:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = None
        entry = {**info, "resumed_from": resumed_from}
        if isinstance(record, dict):
            record.setdefault("resumes", []).append({k: v for k, v in entry.items() if k != "output_dir"})
        else:
            record = entry
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, path)


def percent(value) -> str:
    """A COCO metric (a fraction) as a percentage with one decimal, or ``-`` when COCOeval has none
    (-1: e.g. APl of a split without large objects) or it is missing."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        return "-"
    return f"{100 * value:.1f}"


def format_eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


def format_line(rec: dict, total: int, epochs: int, eta: float | None) -> str:
    losses = " ".join(f"{k} {v:.4f}" for k, v in rec.items() if k.startswith("loss_"))
    eta_text = f" eta {format_eta(eta)}" if eta is not None else ""
    return (f"[dsic] iter {rec['iter']}/{total} epoch {rec['epoch']}/{epochs} loss {rec['loss']:.4f} ({losses}) "
            f"lr {rec['lr']:.2e} {rec['time']:.3f} s/it{eta_text}")


_LINE = re.compile(r"^\[dsic\] iter (\d+)/(\d+) epoch (\S+) loss (\S+) .* s/it(?: eta (\S+))?$")


def run_progress(text: str) -> str | None:
    """The latest :func:`format_line` in a run's plain output ``text`` (its ``<run>.log``), shortened:
    ``iter 40/1200 (3%), epoch 1/4, loss 1.2345, eta 0:16:25``; None before the first one."""
    for line in reversed(text.splitlines()):
        found = _LINE.match(line.strip())
        if found:
            it, total, epoch, loss, eta = found.groups()
            return (f"iter {it}/{total} ({100 * int(it) // max(int(total), 1)}%), epoch {epoch}, loss {loss}"
                    + (f", eta {eta}" if eta else ""))
    return None


def on_terminal() -> bool:
    """Whether progress is drawn as tqdm bars: stderr is a terminal and ``CI`` is not set."""
    return sys.stderr.isatty() and not os.environ.get("CI")


class Progress:
    """Progress over ``items`` (a sized iterable): a tqdm bar on stderr on a terminal
    (:func:`on_terminal`), else a plain line ``[dsic] images 3/40 (7%) 0.52 s/img eta 0:00:19`` on
    stderr after the first item, every ``every`` seconds and after the last (a redirected log gets no
    carriage returns). Nothing for fewer than 2 items. :meth:`write` prints a message (a warning) on
    a line of its own either way."""

    def __init__(self, items, desc: str, unit: str = "it", every: float = 30.0, bar: bool | None = None):
        self.items, self.desc, self.unit, self.every = items, desc, unit, every
        self.total = len(items)
        self.bar = None
        if (on_terminal() if bar is None else bar) and self.total >= 2:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)

    def __iter__(self):
        start = last = time.perf_counter()
        try:
            for done, item in enumerate(self.items, 1):
                yield item
                if self.bar is not None:
                    self.bar.update(1)
                    continue
                now = time.perf_counter()
                if self.total >= 2 and (done in (1, self.total) or now - last >= self.every):
                    last, per = now, (now - start) / done
                    print(f"[dsic] {self.desc} {done}/{self.total} ({100 * done // self.total}%) {per:.2f} "
                          f"s/{self.unit} eta {format_eta(per * (self.total - done))}", file=sys.stderr, flush=True)
        finally:
            if self.bar is not None:
                self.bar.close()

    def write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)


class RunReport:
    """A :class:`~dsic.engine.train.JsonLog` that also reports (see the module doc).

    Args:
        log: the JSON-lines log (its ``path`` None on ranks other than 0: nothing is reported there).
        cfg: the run config; ``iters_per_epoch``: for the total and the ETA.
        plain: print plain lines (default: when stdout is not a terminal).
        resumed_from: ``"<checkpoint> (iteration N)"`` when the run resumes (added to ``run_info.json``).
    """

    def __init__(self, log, cfg: dict, iters_per_epoch: int, device: str = "cpu", world_size: int = 1,
                 plain: bool | None = None, resumed_from: str | None = None):
        self.log, self.cfg = log, cfg
        self.active = log.path is not None
        tcfg = cfg["train"]
        self.epochs = tcfg["epochs"]
        self.total = self.epochs * iters_per_epoch
        if tcfg.get("max_iters"):
            self.total = min(self.total, tcfg["max_iters"])
        self.plain = (not sys.stdout.isatty()) if plain is None else plain
        self.out = Path(cfg["output_dir"])
        self.writer = None
        self.started, self.start_iter = time.perf_counter(), None
        if not self.active:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        record_invocation(self.out / "run_info.json", run_info(cfg, device, world_size), resumed_from)
        if tcfg.get("tensorboard"):
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ImportError("train.tensorboard needs the tensorboard package: pip install tensorboard "
                                  "(or pip install -e '.[tensorboard]')") from err
            self.writer = SummaryWriter(str(self.out / "tensorboard"))

    # --- the JsonLog interface -----------------------------------------------------------------------
    @property
    def path(self):
        return self.log.path

    def truncate_after(self, iteration: int) -> None:
        self.log.truncate_after(iteration)

    def reset(self) -> None:
        self.log.reset()

    def has_eval_at(self, *args, **kwargs):
        return self.log.has_eval_at(*args, **kwargs)

    def write(self, record: dict) -> None:
        self.log.write(record)
        if not self.active:
            return
        if "eval" in record:
            self._eval(record)
        elif "loss" in record:
            self._train(record)

    # --- reporting -----------------------------------------------------------------------------------
    def _train(self, rec: dict) -> None:
        if self.start_iter is None:
            self.start_iter, self.started = rec["iter"], time.perf_counter()
            eta = None
        else:
            per_iter = (time.perf_counter() - self.started) / max(rec["iter"] - self.start_iter, 1)
            eta = per_iter * (self.total - rec["iter"])
        if self.plain:
            print(format_line(rec, self.total, self.epochs, eta), flush=True)
        if self.writer is not None:
            for key, value in rec.items():
                if key.startswith("loss") or key in ("lr", "time", "data_time", "grad_norm"):
                    self.writer.add_scalar(f"train/{key}", value, rec["iter"])
            self.writer.flush()

    def _eval(self, rec: dict) -> None:
        if self.plain:
            parts = ", ".join(f"{t} AP {percent(m.get('AP'))} AP50 {percent(m.get('AP50'))}"
                              for t, m in rec["eval"].items() if isinstance(m, dict))
            print(f"[dsic] eval after epoch {rec['epoch']} (iter {rec['iter']}): {parts}", flush=True)
        if self.writer is not None:
            for iou_type, metrics in rec["eval"].items():
                for name, value in (metrics or {}).items():
                    self.writer.add_scalar(f"eval/{iou_type}/{name}", value, rec["iter"])
            self.writer.flush()

    def finish(self, result: dict) -> str | None:
        """Print and write ``summary.md``: metrics, per-class AP, output paths. Returns the text."""
        if self.writer is not None:
            self.writer.close()
        if not self.active:
            return None
        text = summary_text(self.cfg, result, self.out)
        (self.out / "summary.md").write_text(text + "\n")
        print(text, flush=True)
        return text


def per_class_ap(gt: dict, results: list[dict]) -> dict[str, float]:
    """bbox AP (IoU .50:.95, all areas, 100 detections) per category name (-1: no ground truth)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from .evaluate import _prepared_gt, _results_for

    dets = _results_for(results, "bbox")
    if not dets:
        return {c["name"]: 0.0 for c in gt["categories"]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = _prepared_gt(gt)
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    out = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        out[str(coco_gt.cats[cat_id].get("name", cat_id))] = float(np.mean(p[p > -1])) if (p > -1).any() else -1.0
    return out


def summary_text(cfg: dict, result: dict, out: Path) -> str:
    lines = [f"# dsic run {out}", "", f"{result['iteration']} iterations, {result['epoch']} epoch(s) completed", ""]
    metrics = result.get("metrics")
    if metrics:
        names = list(next(iter(metrics.values())))
        lines += ["| iou type | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        lines += [f"| {t} | " + " | ".join(percent(m.get(n)) for n in names) + " |" for t, m in metrics.items()]
        lines += ["", "(-: no value, e.g. APl / ARl when no object is large)"] if any(
            percent(m.get(n)) == "-" for m in metrics.values() for n in names) else []
        results_file = out / f"results_epoch{result['epoch']}.json"
        ann = cfg["data"]["val"].get("annotations")
        if results_file.is_file() and ann and Path(ann).is_file():
            try:
                per_class = per_class_ap(json.loads(Path(ann).read_text()), json.loads(results_file.read_text()))
            except Exception as err:  # noqa: BLE001 - a report must not fail a finished run (weights are saved)
                lines += ["", f"per-class AP not computed: {type(err).__name__}: {err}"]
            else:
                lines += ["", "| class | bbox AP |", "|---|---|"]
                lines += [f"| {name} | {100 * ap:.1f} |" if ap >= 0 else f"| {name} | - (no ground truth) |"
                          for name, ap in per_class.items()]
    else:
        lines.append("no evaluation (data.val not set, or train.eval_every: 0)")
    lines += ["", "outputs:"]
    for name in ("final", "checkpoint"):
        lines.append(f"- {name}: {result[name]}")
    for name in ("log.jsonl", "config.yaml", "run_info.json", "summary.md", "tensorboard"):
        if (out / name).exists() or name == "summary.md":
            lines.append(f"- {out / name}")
    evals = sorted(out.glob("eval_epoch*.json"))
    if evals:
        lines.append(f"- evaluations: {', '.join(str(p) for p in evals)}")
    lines.append(f"- plots: dsic plot {out}")
    return "\n".join(lines)
