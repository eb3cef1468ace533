"""One figure per instance: cities, the optimised heat-map A + Aᵀ, the rendered image, the tour."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def draw_solution(path: Path, coords: np.ndarray, adjacency: np.ndarray, image: np.ndarray, tour: np.ndarray,
                  reference: np.ndarray | None = None, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    from .instances import tour_lengths

    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    x, y = coords[:, 0], coords[:, 1]

    def cities(ax, heading):
        ax.scatter(x, y, s=14, c="black", zorder=3)
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(1.03, -0.03)  # image convention: row = 63·y grows downwards
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(heading)

    cities(axes[0], f"{len(coords)} cities")

    heat = adjacency + adjacency.T
    i, j = np.triu_indices(len(coords), k=1)
    weights = heat[i, j] / max(heat.max(), 1e-12)
    keep = weights > 0.02
    segments = np.stack([coords[i[keep]], coords[j[keep]]], axis=1)
    colours = np.zeros((keep.sum(), 4))
    colours[:, 0] = 0.8
    colours[:, 3] = weights[keep]
    axes[1].add_collection(LineCollection(segments, colors=colours, linewidths=2))
    cities(axes[1], "heat-map A + Aᵀ")

    axes[2].imshow(image, cmap="gray", vmin=-1, vmax=1)
    axes[2].set_xticks([])
    axes[2].set_yticks([])
    axes[2].set_title("rendered image (optimised)")

    closed = np.append(tour, tour[0])
    length = float(tour_lengths(coords[None], tour[None])[0])
    heading = f"decoded + 2-opt: {length:.4f}"
    if reference is not None:
        ref = np.append(reference, reference[0])
        axes[3].plot(x[ref], y[ref], "--", color="tab:green", lw=1, label="reference")
        ref_length = float(tour_lengths(coords[None], reference[None])[0])
        heading += f"\nreference {ref_length:.4f} (gap {100 * (length / ref_length - 1):.2f}%)"
    axes[3].plot(x[closed], y[closed], "-", color="tab:blue", lw=1.5, label="diffprior")
    if reference is not None:
        axes[3].legend(loc="lower right", fontsize=8)
    cities(axes[3], heading)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, format="png")  # the run folder writes to a temporary name
    plt.close(fig)
