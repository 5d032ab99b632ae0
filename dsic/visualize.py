"""Drawing: detections on images, gate states (paper Fig. 3 style), AP bars and loss curves.

Everything renders with matplotlib's Agg backend to files; nothing needs a display.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch


def _image_array(image: torch.Tensor) -> np.ndarray:
    return image.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy()


def draw_detections(ax, image: torch.Tensor, det: dict, class_names: list[str] | None = None,
                    score_thresh: float = 0.5) -> int:
    """Draw boxes with ``score >= score_thresh`` on ``ax``; returns how many were drawn."""
    ax.imshow(_image_array(image))
    ax.set_axis_off()
    keep = det["scores"] >= score_thresh
    cmap = plt.get_cmap("tab10")
    for box, label, score in zip(det["boxes"][keep].tolist(), det["labels"][keep].tolist(),
                                 det["scores"][keep].tolist()):
        x0, y0, x1, y1 = box
        color = cmap(label % 10)
        ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=color, linewidth=1.5))
        name = class_names[label - 1] if class_names and 0 < label <= len(class_names) else str(label)
        ax.text(x0, y0, f"{name} {score:.2f}", fontsize=7, color="white", va="bottom",
                bbox={"facecolor": color, "alpha": 0.7, "pad": 1, "linewidth": 0})
    return int(keep.sum())


def plot_state_matrix(ax, w: torch.Tensor, title: str = "CSG state matrix") -> None:
    """Heatmap of one image's state matrix w[i, k] (input level i -> output level k)."""
    w = w.detach().cpu().numpy()
    n_in, n_out = w.shape
    limit = max(abs(float(w.min())), abs(float(w.max())), 1e-6)
    im = ax.imshow(w, cmap="RdBu_r", vmin=-limit, vmax=limit)
    for i in range(n_in):
        for k in range(n_out):
            ax.text(k, i, f"{w[i, k]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(n_out), [f"P{k + 2}'" for k in range(n_out)])
    ax.set_yticks(range(n_in), [f"C{i + 2}" for i in range(n_in)])
    ax.set_xlabel("output level k")
    ax.set_ylabel("input level i")
    ax.set_title(title, fontsize=9)
    plt.colorbar(im, ax=ax, fraction=0.046)


def plot_fine_selection(ax, a: list) -> None:
    """ISG's Fine Selection of one image: per stage, its channels' a_i sorted from most to least
    open against the fraction of channels, so how many channels open and how far both show (a
    box plot hides them: on trained models most channels stay at a = 0, their start). The legend
    gives each stage's mean a_i and the share of channels with a_i > 0.1. ``a``: one [C] (or
    [C, 1, 1]) tensor per stage, None for a stage with one block."""
    for i, x in enumerate(a):
        if x is None:
            continue
        values = np.sort(x.detach().float().cpu().numpy().ravel())[::-1]
        share = np.arange(1, len(values) + 1) / len(values)
        ax.step(share, values, where="post",
                label=f"C{i + 2}: mean {values.mean():.2f}, {100 * (values > 0.1).mean():.0f} % > 0.1")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("fraction of channels (most open first)", fontsize=8)
    ax.set_ylabel("a_i", fontsize=8)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("ISG fine selection a_i per channel", fontsize=9)


def gate_figure(image: torch.Tensor, det: dict, states: dict, index: int = 0,
                class_names: list[str] | None = None, score_thresh: float = 0.5):
    """Fig. 3 style: detections, the CSG state matrix and ISG's Fine Selection per stage."""
    panels = 1 + ("csg" in states) + ("isg" in states)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4))
    axes = np.atleast_1d(axes)
    draw_detections(axes[0], image, det, class_names, score_thresh)
    axes[0].set_title("detections", fontsize=9)
    col = 1
    if "csg" in states:
        plot_state_matrix(axes[col], states["csg"]["w"][index])
        col += 1
    if "isg" in states:
        plot_fine_selection(axes[col], [x[index] if x is not None else None for x in states["isg"]["a"]])
    fig.tight_layout()
    return fig


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def ap_bars(results: dict[str, dict], path: str | Path,
            metrics=("AP", "AP50", "AP75", "APs", "APm", "APl")) -> Path:
    """Grouped bars of COCO metrics per run: ``results[run][metric]``."""
    runs = list(results)
    x = np.arange(len(metrics))
    width = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for j, run in enumerate(runs):
        vals = [v if isinstance(v, (int, float)) and v >= 0 else np.nan  # -1: COCOeval has no value
                for v in (results[run].get(m) for m in metrics)]
        ax.bar(x + j * width - 0.4 + width / 2, vals, width, label=run)
    ax.set_xticks(x, metrics)
    ax.set_ylabel("COCO metric")
    ax.legend()
    fig.tight_layout()
    return save(fig, path)


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_losses(ax, logs: dict[str, str | Path], key: str = "loss", smooth: int = 10) -> int:
    """Draw ``key`` against iteration for each run's JSON-lines log on ``ax``; returns the number of
    points drawn. Short logs (a smoke run logs a handful of iterations) are drawn with markers and
    without smoothing, so that even one record is visible."""
    points = 0
    for run, log in logs.items():
        recs = [r for r in read_jsonl(log) if key in r and "iter" in r]
        if not recs:
            continue
        it = np.array([r["iter"] for r in recs])
        loss = np.array([r[key] for r in recs], dtype=float)
        if smooth > 1 and len(loss) >= 3 * smooth:
            loss = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
            it = it[smooth - 1:]
        ax.plot(it, loss, label=run, marker="o" if len(it) < 30 else None, markersize=3)
        points += len(it)
    ax.set_xlabel("iteration")
    ax.set_ylabel(key)
    if points:
        ax.legend()
    return points


def loss_curves(logs: dict[str, str | Path], path: str | Path, key: str = "loss", smooth: int = 10) -> Path:
    """Training loss (``key``) against iteration for each run's JSON-lines log."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    plot_losses(ax, logs, key, smooth)
    fig.tight_layout()
    return save(fig, path)


def plot_run(run_dir: str | Path, out: str | Path | None = None,
             metrics=("AP", "AP50", "AP75", "APs", "APm", "APl")) -> list[Path]:
    """``dsic plot``: ``loss.png`` (the total loss and every loss term against iteration) and, when
    the run evaluated, ``ap.png`` (bbox metrics in % against epoch; a metric COCOeval gave no value,
    -1, is left out) of a training run folder."""
    run_dir = Path(run_dir)
    log = run_dir / "log.jsonl"
    if not log.is_file():
        raise FileNotFoundError(f"{run_dir}: no log.jsonl (is it the output_dir of a dsic training run?)")
    out = Path(out) if out is not None else run_dir / "plots"
    recs = read_jsonl(log)
    train = [r for r in recs if "loss" in r]
    terms = sorted({k for r in train for k in r if k.startswith("loss_")})
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    plot_losses(axes[0], {run_dir.name: log}, "loss")
    axes[0].set_title("total loss", fontsize=9)
    for term in terms:
        it = [r["iter"] for r in train if term in r]
        axes[1].plot(it, [r[term] for r in train if term in r], label=term, marker="o" if len(it) < 30 else None,
                     markersize=3)
    axes[1].set_xlabel("iteration")
    axes[1].set_title("loss terms", fontsize=9)
    if terms:
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    written = [save(fig, out / "loss.png")]
    evals = [r for r in recs if isinstance(r.get("eval"), dict)]
    if evals:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        epochs = [r["epoch"] for r in evals]
        for m in metrics:
            points = [(e, 100 * v) for e, v in zip(epochs, (r["eval"].get("bbox", r["eval"]).get(m) for r in evals))
                      if isinstance(v, (int, float)) and v >= 0]  # -1: no value (e.g. APl without large objects)
            if points:
                ax.plot(*zip(*points), label=m, marker="o")
        ax.set_xlabel("epoch")
        ax.set_ylabel("bbox metric (%)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(save(fig, out / "ap.png"))
    return written
