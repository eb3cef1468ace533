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

With ``--samples K`` the heat-maps are optimised K times per instance (seeds seed + i + k·10⁶,
as ``tsp eval --samples``). The "prior w" rows then average each instance's gaps over the K
heat-maps decoded one at a time (what one run gives, with less of one seed's noise; two seeds
differ by about a point of greedy gap on 64 instances), and two more ways to spend K runs are
compared: decoding the mean of the K heat-maps once, and the best of the K decodings. The last
column compares every row with the smallest weight given (normally 0, the paper's decoding).

(The best-of-K rows are compared with as many decodings of the uniform heat-map: K perturbed
restarts for greedy and 2-opt, K·R for the restarts column.)

Tune ``w`` on validation instances only:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tsp_decoding.py \
        --instances runs/tsp-data-50k/val50.txt --limit 64 --heatmaps runs/tsp-decoding/val64.npz \
        --json docs/tutorials/tsp/decoding-val64.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


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
    parser.add_argument("--samples", type=int, default=1, help="K heat-maps per instance (K optimisations)")
    parser.add_argument("--cache-sample", type=int, default=None, metavar="k",
                        help="only optimise and cache sample k, then stop (fills the cache from parallel processes)")
    parser.add_argument("--restarts", type=int, default=8)
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from diffprior_tsp.commands import SAMPLE_SEED_STRIDE
    from diffprior_tsp.evaluation import paired_bootstrap, perturbed_restarts
    from diffprior_tsp.instances import read_instances, tour_lengths
    from diffprior_tsp.solver import (decode_heatmaps, load_tsp_prior, mix_uniform,
                                      optimise_heatmaps, with_two_opt)

    instances = read_instances(args.instances, limit=args.limit)
    if instances.tours is None:
        parser.error(f"{args.instances} has no reference tours; gaps need them")
    coords = instances.coords
    reference = tour_lengths(coords, instances.tours)

    # the heat-maps are cached per sample, so a longer run reuses the samples of a shorter one
    samples, seconds, prior = [], 0.0, None
    recipe = f"{args.checkpoint or 'bundled tsp50'}, {args.steps} steps"
    for k in range(args.samples) if args.cache_sample is None else [args.cache_sample]:
        cache = args.heatmaps if k == 0 else args.heatmaps.with_name(f"{args.heatmaps.stem}-sample{k}.npz")
        if cache.exists():
            cached = np.load(cache)
            if not np.array_equal(cached["coords"], coords) or str(cached["recipe"]) != recipe:
                parser.error(f"{cache} was optimised for other instances or another prior or step count "
                             f"({cached['recipe']}); delete it or pass another path")
            adjacency, spent = cached["adjacency"], float(cached["seconds"])
        else:
            prior = prior or load_tsp_prior(args.checkpoint, cities=instances.size)
            solution = optimise_heatmaps(prior, args.instances, [f"optimizer.steps={args.steps}"], count=len(coords),
                                         seed=k * SAMPLE_SEED_STRIDE)
            adjacency, spent = solution.adjacency, solution.seconds
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(cache, coords=coords, adjacency=adjacency, seconds=spent, recipe=recipe)
        samples.append(adjacency)
        seconds += spent
    if args.cache_sample is not None:
        print(f"sample {args.cache_sample} of the heat-maps is in {cache}")
        return

    def gaps(tours):
        return 100 * (tour_lengths(coords, tours) / reference - 1)

    columns = ("greedy", "2-opt", "restarts")

    def decodings(heat):
        greedy = decode_heatmaps(heat, coords)
        improved = with_two_opt(coords, greedy)
        return [gaps(t) for t in (greedy, improved, perturbed_restarts(coords, heat, args.restarts, args.sigma))]

    def row(name, figures):
        return {"heat-map": name, **dict(zip(columns, figures))}

    K, n = args.samples, coords.shape[1]
    uniform_heat = np.full((len(coords), n, n), 1.0 / (n - 1))
    uniform = row("uniform", decodings(uniform_heat))
    rows, single = [uniform], {}
    for w in [float(w) for w in args.weights.split(",")]:
        per_sample = [decodings(mix_uniform(a, w)) for a in samples]
        # each heat-map decoded alone, its gaps averaged over the K samples: what one run gives,
        # with less of the seed's noise than one sample
        single[w] = row(f"prior w={w:g}" + (f", mean over {K} samples" if K > 1 else ""),
                        np.mean(per_sample, axis=0))
        rows.append(single[w])
        if K > 1:
            rows.append(row(f"mean of {K} heat-maps, w={w:g}", decodings(mix_uniform(np.mean(samples, axis=0), w))))
            rows.append(row(f"best of {K} heat-maps, w={w:g}", np.min(per_sample, axis=0)))
    if K > 1:
        # best of K heat-maps decodes K times (K·R with restarts): compare it with as many decodings
        # of the uniform heat-map, i.e. K (K·R) perturbed restarts
        rows.append(row(f"uniform, best of {K} / {K * args.restarts} restarts", [
            gaps(perturbed_restarts(coords, uniform_heat, K, args.sigma, two_opt_moves=False)),
            gaps(perturbed_restarts(coords, uniform_heat, K, args.sigma)),
            gaps(perturbed_restarts(coords, uniform_heat, K * args.restarts, args.sigma))]))
    paper = single[min(single)]  # the smallest weight given, normally 0: the paper's decoding

    def interval(a, b):
        return "{:+.2f} [{:+.2f}, {:+.2f}]".format(*paired_bootstrap(a, b))

    print(f"{len(coords)} instances of {args.instances}; heat-maps: {args.steps} steps, "
          f"{seconds / len(coords):.1f} s / instance ({K} per instance); "
          f"restarts: best of {args.restarts}, σ {args.sigma}, + 2-opt")
    print(f"| heat-map | greedy | greedy + 2-opt | {args.restarts} restarts + 2-opt | 2-opt − uniform [95%] "
          f"| restarts − uniform [95%] | greedy / 2-opt / restarts − {paper['heat-map']} |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for r in rows:
        baseline = rows[-1] if r["heat-map"].startswith("best of") else uniform
        compare = {c: paired_bootstrap(r[c], baseline[c]) for c in ("2-opt", "restarts")}
        cells = [f"{r[c].mean():.2f}%" for c in columns]
        cells += ["–" if r["heat-map"].startswith("uniform") else interval(r[c], baseline[c]) for c in ("2-opt", "restarts")]
        cells.append("–" if r["heat-map"].startswith("uniform") or r is paper
                     else " / ".join(interval(r[c], paper[c]) for c in columns))
        print(f"| {r['heat-map']} | " + " | ".join(cells) + " |")
        summary.append({"heat-map": r["heat-map"], **{c: float(r[c].mean()) for c in columns},
                        "per-instance": {c: [round(float(g), 5) for g in r[c]] for c in columns},
                        "against uniform": {c: list(compare[c]) for c in compare}})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"instances": str(args.instances), "count": len(coords),
                                         "steps": args.steps, "samples": args.samples, "restarts": args.restarts, "sigma": args.sigma,
                                         "rows": summary}, indent=1))


if __name__ == "__main__":
    main()
