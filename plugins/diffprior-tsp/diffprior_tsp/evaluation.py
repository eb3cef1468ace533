"""What a sceptical reader compares a TSP prior with, and how: perturbed-heat-map restarts,
best-of-K selection, paired bootstrap intervals and the gap-against-time picture.

The strongest simple baseline is not one greedy pass over a uniform heat-map but many:
multiply every edge score by log-normal noise (σ), decode greedily, improve with 2-opt,
keep the shortest tour. Run with the same number of restarts on the prior's heat-map it
asks the question that matters: does the prior's heat-map give better tours than the
distances alone at the same cost?
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .decode import edge_scores, greedy_edge_tours, two_opt
from .instances import tour_lengths


def perturbed_restarts(coords: np.ndarray, adjacency: np.ndarray | None, restarts: int, sigma: float = 0.3,
                       seed: int = 0, two_opt_moves: bool = True, chunk: int = 4096) -> np.ndarray:
    """Best of ``restarts`` decodings per instance of a heat-map whose edge scores are multiplied
    by exp(σ·z), z ~ N(0, 1) symmetric per edge. ``adjacency`` None means the uniform heat-map.
    Restart r of instance i uses the noise of generator ``seed + i`` (its r-th draw), so an
    instance's result does not depend on the other instances in the call. Restart 0 is noise-free
    (the plain decoding), so best-of-R is never worse than one pass."""
    M, n = coords.shape[:2]
    heat = np.full((M, n, n), 1.0 / (n - 1)) if adjacency is None else np.asarray(adjacency, dtype=np.float64)
    base = edge_scores(heat, coords)  # [M, n, n]
    best = np.empty((M, n), dtype=np.int64)
    best_len = np.full(M, np.inf)
    iu = np.triu_indices(n, k=1)
    rngs = [np.random.default_rng(seed + i) for i in range(M)]
    per_round = max(1, chunk // restarts)  # instances per batched decode (bounded memory)
    for first in range(0, M, per_round):
        group = range(first, min(M, first + per_round))
        for r0 in range(0, restarts, chunk):
            count = min(chunk, restarts - r0)
            scores, owners = [], []
            for i in group:
                z = np.zeros((count, n, n))
                noisy = slice(1, count) if r0 == 0 else slice(0, count)  # restart 0: no noise
                z[noisy, iu[0], iu[1]] = rngs[i].standard_normal((len(range(count)[noisy]), len(iu[0])))
                scores.append(base[i] * np.exp(sigma * (z + z.transpose(0, 2, 1))))
                owners += [i] * count
            owners = np.asarray(owners)
            tours = greedy_edge_tours(np.concatenate(scores))
            if two_opt_moves:
                tours = two_opt(coords[owners], tours)[0]
            lengths = tour_lengths(coords[owners], tours)
            for k, i in enumerate(owners):
                if lengths[k] < best_len[i] - 1e-12:
                    best_len[i], best[i] = lengths[k], tours[k]
    return best


def best_of(coords: np.ndarray, candidates: list[np.ndarray]) -> np.ndarray:
    """Per instance, the shortest of several tours [M, N] (first one on ties)."""
    lengths = np.stack([tour_lengths(coords, t) for t in candidates])  # [K, M]
    pick = lengths.argmin(0)
    return np.stack([candidates[k][i] for i, k in enumerate(pick)])


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 10_000, seed: int = 0,
                     level: float = 0.95) -> tuple[float, float, float]:
    """Mean of a − b over instances with a percentile bootstrap interval (instances resampled
    with replacement, pairs kept together): (mean, low, high)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[idx].mean(1)
    tail = (1 - level) / 2 * 100
    return float(diff.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def plot_gap_against_time(rows: list[dict], path: Path, title: str) -> Path:
    """One point per method: gap (%) against seconds per instance (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=120)
    markers = {"diffprior": "o", "uniform": "s", "nearest": "^", "elkai": "*"}
    for row in rows:
        marker = next((m for key, m in markers.items() if row["method"].startswith(key)), "D")
        seconds = max(row["seconds_per_instance"], 1e-5)
        ax.scatter(seconds, row["gap_percent"], marker=marker, s=60, label=row["method"])
    ax.set_xscale("log")
    ax.set_xlabel("seconds per instance (log scale, this machine)")
    ax.set_ylabel("optimality gap (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def is_single_cycle(adjacency: np.ndarray) -> np.ndarray:
    """Per instance: do the two strongest neighbours of every city in A + Aᵀ form one cycle
    through all cities? True means the heat-map *is* a tour, before any decoding heuristic."""
    A = np.asarray(adjacency, dtype=np.float64)
    M, n = A.shape[:2]
    sym = A + A.transpose(0, 2, 1)
    sym[:, np.arange(n), np.arange(n)] = -np.inf
    top2 = np.argsort(-sym, axis=2, kind="stable")[:, :, :2]  # [M, n, 2]
    result = np.zeros(M, dtype=bool)
    for b in range(M):
        nbrs = [set(map(int, top2[b, i])) for i in range(n)]
        if any(i not in nbrs[j] for i in range(n) for j in nbrs[i]):
            continue  # not mutual: some city is chosen by a neighbour it does not choose back
        prev, city, seen = -1, 0, 1
        while True:
            nxt = next(c for c in nbrs[city] if c != prev)
            if nxt == 0:
                break
            prev, city, seen = city, nxt, seen + 1
        result[b] = seen == n
    return result


def shared_edges(tours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per instance, the share of a tour's edges that the reference tour also has."""
    shares = []
    for tour, ref in zip(np.asarray(tours), np.asarray(reference)):
        edges = {frozenset(e) for e in zip(tour.tolist(), np.roll(tour, -1).tolist())}
        ref_edges = {frozenset(e) for e in zip(ref.tolist(), np.roll(ref, -1).tolist())}
        shares.append(len(edges & ref_edges) / len(ref_edges))
    return np.asarray(shares)
