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
        a = [x[index].cpu().numpy() if x is not None else np.zeros(1) for x in states["isg"]["a"]]
        axes[col].boxplot(a, showfliers=False)
        axes[col].set_xticks(range(1, len(a) + 1), [f"C{i + 2}" for i in range(len(a))])
        axes[col].set_ylim(0, 1)
        axes[col].set_title("ISG fine selection a_i (per channel)", fontsize=9)
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
        vals = [results[run].get(m, 0.0) for m in metrics]
        ax.bar(x + j * width - 0.4 + width / 2, vals, width, label=run)
    ax.set_xticks(x, metrics)
    ax.set_ylabel("COCO metric")
    ax.legend()
    fig.tight_layout()
    return save(fig, path)


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def loss_curves(logs: dict[str, str | Path], path: str | Path, key: str = "loss", smooth: int = 10) -> Path:
    """Training loss (``key``) against iteration for each run's JSON-lines log."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for run, log in logs.items():
        recs = [r for r in read_jsonl(log) if key in r and "iter" in r]
        if not recs:
            continue
        it = np.array([r["iter"] for r in recs])
        loss = np.array([r[key] for r in recs], dtype=float)
        if smooth > 1 and len(loss) >= smooth:
            loss = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
            it = it[smooth - 1:]
        ax.plot(it, loss, label=run)
    ax.set_xlabel("iteration")
    ax.set_ylabel(key)
    ax.legend()
    fig.tight_layout()
    return save(fig, path)
