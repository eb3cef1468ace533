"""How to decode a tour-image prior's heat-maps: the same optimised heat-maps, several decodings.

The prior's optimised heat-map A is a row-softmax at temperature 0.1, so after optimisation
most entries are near 0 or 1: its greedy decoding follows the prior almost blindly, and the
perturbed-restarts noise (a multiplicative factor on each edge score) hardly reorders edges
whose scores differ by orders of magnitude. Mixing in the uniform heat-map,

    H_w = (1 − w)·A + w·U,      U = 1/(N − 1) everywhere,

interpolates between the prior's decoding (w = 0, the paper's) and the distances alone
(w = 1). This script optimises the heat-maps once (cached in ``--heatmaps``), then decodes
each mixture greedily, with 2-opt, and with perturbed restarts + 2-opt, next to the uniform
heat-map with the same decoding, and gives paired 95% bootstrap intervals against it.

Tune ``w`` on validation instances only:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tsp_decoding.py \
        --instances runs/tsp-data-50k/val50.txt --limit 64 --heatmaps runs/tsp-decoding/val64.npz \
        --json docs/tutorials/tsp/decoding-val64.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def mixtures(adjacency: np.ndarray, weights: list[float]) -> dict[float, np.ndarray]:
    n = adjacency.shape[-1]
    uniform = np.full_like(adjacency, 1.0 / (n - 1))
    return {w: (1 - w) * adjacency + w * uniform for w in weights}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=Path, required=True, help="instances with reference tours")
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--checkpoint", default=None, help="tour-image prior (default: the bundled tsp50)")
    parser.add_argument("--steps", type=int, default=256, help="optimisation steps (tsp eval's default)")
    parser.add_argument("--heatmaps", type=Path, required=True,
                        help="cache of the optimised heat-maps (.npz): read if present, else written")
    parser.add_argument("--weights", default="0,0.05,0.1,0.2,0.3,0.5,0.7",
                        help="uniform mixture weights w to decode, comma-separated")
    parser.add_argument("--restarts", type=int, default=8)
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from diffprior_tsp.evaluation import paired_bootstrap, perturbed_restarts
    from diffprior_tsp.instances import read_instances, tour_lengths
    from diffprior_tsp.solver import (PriorSettings, decode_heatmaps, load_tsp_prior, optimise_heatmaps,
                                      with_two_opt)

    instances = read_instances(args.instances, limit=args.limit)
    if instances.tours is None:
        parser.error(f"{args.instances} has no reference tours; gaps need them")
    coords = instances.coords
    reference = tour_lengths(coords, instances.tours)

    if args.heatmaps.exists():
        cached = np.load(args.heatmaps)
        if not np.array_equal(cached["coords"], coords):
            parser.error(f"{args.heatmaps} was optimised for other instances; delete it or pass another path")
        adjacency, seconds = cached["adjacency"], float(cached["seconds"])
    else:
        prior = load_tsp_prior(args.checkpoint, cities=instances.size)
        solution = optimise_heatmaps(prior, coords, PriorSettings(steps=args.steps))
        adjacency, seconds = solution.adjacency, solution.seconds
        args.heatmaps.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.heatmaps, coords=coords, adjacency=adjacency, seconds=seconds)

    def gaps(tours):
        return 100 * (tour_lengths(coords, tours) / reference - 1)

    weights = [float(w) for w in args.weights.split(",")]
    rows = []
    uniform = {}
    for name, heat in [("uniform", None)] + [(f"prior w={w:g}", h) for w, h in mixtures(adjacency, weights).items()]:
        start = time.perf_counter()
        if heat is None:
            n = coords.shape[1]
            heat = np.full((len(coords), n, n), 1.0 / (n - 1))
        greedy = decode_heatmaps(heat, coords)
        row = {"heat-map": name, "greedy": gaps(greedy), "2-opt": gaps(with_two_opt(coords, greedy)),
               "restarts": gaps(perturbed_restarts(coords, heat, args.restarts, args.sigma))}
        row["decode seconds / instance"] = (time.perf_counter() - start) / len(coords)
        if name == "uniform":
            uniform = row
        rows.append(row)

    columns = ["greedy", "2-opt", "restarts"]
    print(f"{len(coords)} instances of {args.instances}; heat-maps: {args.steps} steps, "
          f"{seconds / len(coords):.1f} s / instance; restarts: best of {args.restarts}, σ {args.sigma}, + 2-opt")
    print(f"| heat-map | greedy | greedy + 2-opt | {args.restarts} restarts + 2-opt | 2-opt − uniform [95%] "
          f"| restarts − uniform [95%] |")
    print("|---|---|---|---|---|---|")
    summary = []
    for row in rows:
        compare = {c: paired_bootstrap(row[c], uniform[c]) for c in ("2-opt", "restarts")}
        cells = [f"{row[c].mean():.2f}%" for c in columns]
        cells += ["–" if row is uniform else "{:+.2f} [{:+.2f}, {:+.2f}]".format(*compare[c])
                  for c in ("2-opt", "restarts")]
        print(f"| {row['heat-map']} | " + " | ".join(cells) + " |")
        summary.append({"heat-map": row["heat-map"], **{c: float(row[c].mean()) for c in columns},
                        "per-instance": {c: [round(float(g), 5) for g in row[c]] for c in columns},
                        "against uniform": {c: list(compare[c]) for c in compare}})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"instances": str(args.instances), "count": len(coords),
                                         "steps": args.steps, "restarts": args.restarts, "sigma": args.sigma,
                                         "rows": summary}, indent=1))


if __name__ == "__main__":
    main()
