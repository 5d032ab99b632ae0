"""The paper's Fig. 3 analog: how one trained gated detector routes a small-object, a large-object
and a mixed image (detections and CSG state matrix per image), plus the state matrix difference
between the small and large probe groups' means."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.pixels import read_image
from ..models.states import gate_states
from ..visualize import draw_detections, plot_state_matrix, plt, save


@torch.no_grad()
def routing_figure(model, images: dict[str, Path], path: str | Path, class_names: list[str] | None = None,
                   group_means: dict[str, list] | None = None, score_thresh: float = 0.5) -> Path:
    """One row per ``{group: image path}``: detections and that image's state matrix W[i, k];
    with ``group_means`` (``W_small`` / ``W_large`` of :func:`dsic.analysis.individuality`) a
    last row shows W_small - W_large."""
    rows = len(images) + (group_means is not None)
    fig, axes = plt.subplots(rows, 2, figsize=(8.4, 4 * rows), squeeze=False)
    model.eval()
    device = next(model.parameters()).device
    for r, (group, image_path) in enumerate(images.items()):
        image = read_image(image_path).to(device)
        det = model([image])[0]
        states = gate_states(model)
        draw_detections(axes[r, 0], image, det, class_names, score_thresh)
        axes[r, 0].set_title(f"{group}-object image: detections", fontsize=9)
        if "csg" in states:
            plot_state_matrix(axes[r, 1], states["csg"]["w"][0], f"{group}: CSG state matrix W[i, k]")
        else:
            axes[r, 1].set_axis_off()
    if group_means is not None:
        diff = np.asarray(group_means["W_small"]) - np.asarray(group_means["W_large"])
        plot_state_matrix(axes[-1, 1], torch.as_tensor(diff), "W(small group) - W(large group), group means")
        axes[-1, 0].set_axis_off()
    fig.tight_layout()
    return save(fig, path)
