"""Instances per second, batched vs one at a time, for the two batched parts of the TSP solver:
the free-energy optimisation of the tsp-edges variable and 2-opt (vs the naive per-instance scan).

Uses generated instances (never the test set) and the bundled tsp50 prior unless --checkpoint.
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/tsp_batching.py --instances 16 --steps 64
"""

from __future__ import annotations

import argparse
from pathlib import Path
import time

import numpy as np
import torch

from diffprior_tsp.decode import greedy_edge_tours, edge_scores, reference_two_opt, two_opt
from diffprior_tsp.instances import random_instances, tour_lengths, write_instances
from diffprior_tsp.solver import load_tsp_prior, optimise_heatmaps


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=16)
    parser.add_argument("--cities", type=int, default=50)
    parser.add_argument("--steps", type=int, default=64, help="optimisation steps per instance")
    parser.add_argument("--gradient", choices=("full", "sds"), default="sds")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--two-opt-instances", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    coords = random_instances(args.instances, args.cities, seed=12345)
    rows = []
    import tempfile

    instances = Path(tempfile.mkdtemp()) / "instances.txt"
    write_instances(instances, coords)

    prior = load_tsp_prior(args.checkpoint, cities=args.cities)
    # warm-up: the first optimiser construction pays torch's one-time lazy imports
    optimise_heatmaps(prior, instances, ["optimizer.steps=1", "batch_size=1"], count=1, progress=False)
    for batch in (1, args.instances):
        sets = [f"optimizer.steps={args.steps}", f"gradient={args.gradient}", f"batch_size={batch}"]
        _, seconds = timed(lambda: optimise_heatmaps(prior, instances, sets, progress=False))
        label = "one at a time" if batch == 1 else f"batch of {batch}"
        rows.append((f"optimise ({args.steps} {args.gradient} steps), {label}", args.instances, seconds))

    many = random_instances(args.two_opt_instances, args.cities, seed=54321)
    uniform = np.full((len(many), args.cities, args.cities), 1.0)
    start = greedy_edge_tours(edge_scores(uniform, many))
    fast, seconds = timed(lambda: two_opt(many, start)[0])
    rows.append((f"2-opt batched (all {len(many)} at once)", len(many), seconds))
    few = min(8, len(many))
    naive, seconds = timed(lambda: np.stack([reference_two_opt(c, t) for c, t in zip(many[:few], start[:few])]))
    rows.append(("2-opt naive, one at a time (full re-evaluation)", few, seconds))
    same = np.allclose(tour_lengths(many[:few], naive), tour_lengths(many[:few], fast[:few]))

    width = max(len(r[0]) for r in rows)
    print(f"TSP-{args.cities}, {torch.get_num_threads()} thread(s)")
    print(f"{'what':<{width}}  {'instances':>9}  {'seconds':>8}  {'instances/s':>11}")
    for name, count, seconds in rows:
        print(f"{name:<{width}}  {count:>9}  {seconds:>8.2f}  {count / seconds:>11.2f}")
    print(f"naive and batched 2-opt reach the same tours: {same}")


if __name__ == "__main__":
    main()
