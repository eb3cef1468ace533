"""From heat-maps to tours, batched over instances: greedy edge insertion, nearest neighbour
and 2-opt.

2-opt is best-improvement: each sweep evaluates every move of every instance at once as a
[B, N, N] matrix of length changes (O(1) per move, no re-evaluation of whole tours) and
applies the best one per instance, until no instance improves.
"""

from __future__ import annotations

import numpy as np
import torch


def distance_matrices(coords) -> torch.Tensor:
    """Euclidean distances [B, N, N] (float64) of coords [B, N, 2]."""
    coords = torch.as_tensor(coords, dtype=torch.float64)
    return torch.cdist(coords, coords)


def edge_scores(adjacency, coords) -> np.ndarray:
    """The paper's decoding score (A + Aᵀ)_ij / d_ij, [B, N, N]."""
    A = torch.as_tensor(adjacency, dtype=torch.float64)
    dist = distance_matrices(coords)
    n = dist.shape[-1]
    dist = dist + torch.eye(n, dtype=torch.float64)  # the diagonal is never chosen; avoid 0/0
    return ((A + A.transpose(1, 2)) / dist).numpy()


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def greedy_edge_tours(scores) -> np.ndarray:
    """Insert edges by decreasing score, keeping degrees ≤ 2 and no sub-cycles (union-find),
    then close the Hamiltonian path: tours [B, N] (0-based city orders)."""
    scores = np.asarray(scores, dtype=np.float64)
    B, n = scores.shape[:2]
    iu, ju = np.triu_indices(n, k=1)
    # one vectorised sort per batch; the insertion itself is sequential by nature
    order = np.argsort(-scores[:, iu, ju], axis=1, kind="stable")
    tours = np.empty((B, n), dtype=np.int64)
    for b in range(B):
        degree = [0] * n
        parent = list(range(n))
        neighbours: list[list[int]] = [[] for _ in range(n)]
        added = 0
        for p in order[b]:
            i, j = int(iu[p]), int(ju[p])
            if degree[i] == 2 or degree[j] == 2:
                continue
            ri, rj = _find(parent, i), _find(parent, j)
            if ri == rj:
                continue
            parent[ri] = rj
            degree[i] += 1
            degree[j] += 1
            neighbours[i].append(j)
            neighbours[j].append(i)
            added += 1
            if added == n - 1:
                break
        tours[b] = _walk_path(neighbours, degree)
    return tours


def _walk_path(neighbours: list[list[int]], degree: list[int]) -> np.ndarray:
    start = degree.index(1)
    path, prev, city = [start], -1, start
    while len(path) < len(neighbours):
        nxt = neighbours[city][0] if neighbours[city][0] != prev else neighbours[city][1]
        prev, city = city, nxt
        path.append(city)
    return np.asarray(path, dtype=np.int64)


def nearest_neighbour_tours(coords, start: int = 0) -> np.ndarray:
    """Nearest-neighbour tours [B, N] from city ``start``, all instances at once."""
    dist = distance_matrices(coords)
    B, n = dist.shape[:2]
    visited = torch.zeros(B, n, dtype=torch.bool)
    rows = torch.arange(B)
    city = torch.full((B,), start, dtype=torch.long)
    tours = [city]
    visited[rows, city] = True
    for _ in range(n - 1):
        city = dist[rows, city].masked_fill(visited, float("inf")).argmin(1)
        visited[rows, city] = True
        tours.append(city)
    return torch.stack(tours, 1).numpy()


def two_opt(coords, tours, max_sweeps: int = 10_000, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Batched best-improvement 2-opt. Returns (tours [B, N], moves applied per instance [B]).

    A move (i, j), i < j, replaces edges (t_i, t_i+1) and (t_j, t_j+1) by (t_i, t_j) and
    (t_i+1, t_j+1), i.e. reverses positions i+1..j. It is applied only if it shortens the
    tour by more than ``tol``, so a tour never gets longer.
    """
    dist = distance_matrices(coords)
    t = torch.as_tensor(np.asarray(tours), dtype=torch.long).clone()
    B, n = t.shape
    rows = torch.arange(B)[:, None, None]
    pos = torch.arange(n)
    # valid moves: j ≥ i + 2, and not the pair of edges that share the closing city
    valid = (pos[None, :] >= pos[:, None] + 2) & ~((pos[:, None] == 0) & (pos[None, :] == n - 1))
    moves = torch.zeros(B, dtype=torch.long)
    active = torch.ones(B, dtype=torch.bool)
    for _ in range(max_sweeps):
        idx = torch.nonzero(active).flatten()
        if idx.numel() == 0:
            break
        ta = t[idx]
        nxt = ta.roll(-1, 1)
        d = dist[idx]
        r = rows[: idx.numel()]
        d_ij = d[r, ta[:, :, None], ta[:, None, :]]  # d(t_i, t_j)
        d_next = d[r, nxt[:, :, None], nxt[:, None, :]]  # d(t_i+1, t_j+1)
        edge = d[r[:, :, 0], ta, nxt]  # d(t_i, t_i+1), [b, n]
        delta = d_ij + d_next - edge[:, :, None] - edge[:, None, :]
        delta = delta.masked_fill(~valid, float("inf"))
        best, flat = delta.view(idx.numel(), -1).min(1)
        improving = best < -tol
        i, j = (flat // n)[:, None], (flat % n)[:, None]
        inside = (pos[None] > i) & (pos[None] <= j) & improving[:, None]
        source = torch.where(inside, i + 1 + j - pos[None], pos[None])
        t[idx] = torch.gather(ta, 1, source)
        moves[idx] += improving.long()
        active[idx] = improving
    return t.numpy(), moves.numpy()


def reference_two_opt(coords, tour) -> np.ndarray:
    """The naive 2-opt the batched one is checked and timed against: one instance, every
    reversal tried by re-evaluating the whole tour, the best applied, until none improves.
    Same moves and tie-breaking as :func:`two_opt`; O(n³) per sweep instead of O(n²)."""
    coords = np.asarray(coords, dtype=np.float64)
    dist = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    tour = [int(c) for c in tour]
    n = len(tour)

    def length(t):
        return sum(dist[t[k], t[(k + 1) % n]] for k in range(n))

    while True:
        current = length(tour)
        best, best_tour = current, None
        for i in range(n):
            for j in range(i + 2, n):
                if i == 0 and j == n - 1:
                    continue
                candidate = tour[:i + 1] + tour[i + 1:j + 1][::-1] + tour[j + 1:]
                value = length(candidate)
                if value < best - 1e-10:
                    best, best_tour = value, candidate
        if best_tour is None:
            return np.asarray(tour, dtype=np.int64)
        tour = best_tour
