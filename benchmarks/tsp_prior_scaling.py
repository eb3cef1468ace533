"""How a tour-image prior improves with training: every checkpoint snapshot of a training run
evaluated on the same validation instances (never the test set), one row per snapshot, and a
plot of gap against images seen (log scale) to read off what the next doubling should give.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tsp_prior_scaling.py runs/train-tsp50/snapshots \
        --instances runs/tsp-data-50k/val50.txt --limit 32 --plot docs/tutorials/tsp/scaling.png

``--add-rows`` joins the rows of an earlier session's ``--json`` (same instances and settings),
so a curve grows across sessions without re-evaluating old snapshots.

Each row keeps its per-instance gaps (greedy + 2-opt), so two checkpoints can be compared
instance by instance: the table gives every checkpoint's paired 95% bootstrap interval of the
2-opt gap difference against the uniform heat-map and against ``--reference`` (a checkpoint
name, e.g. the bundled one's snapshot ``tsp50-8500``).

Snapshots are NAME-STEP.safetensors + .json pairs (copies of the checkpoint a run rewrites at
each save). Each is marked as a 50-city tour prior in a temporary copy; the originals are
not modified.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("snapshots", type=Path, nargs="?", help="folder of NAME-STEP.safetensors + .json")
    parser.add_argument("--instances", type=Path, required=True, help="validation instances with reference tours")
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--steps", type=int, default=256, help="optimisation steps per instance")
    parser.add_argument("--gradient", choices=("full", "sds"), default="full")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--cities", type=int, default=50)
    parser.add_argument("--every", type=int, default=1, help="evaluate every k-th snapshot (the last one always)")
    parser.add_argument("--also", type=Path, action="append", default=[], help="another checkpoint to compare")
    parser.add_argument("--add-rows", type=Path, action="append", default=[],
                        help="--json of an earlier run on the same instances and settings (e.g. an earlier "
                             "training session's snapshots): its checkpoint rows join the table and the plot")
    parser.add_argument("--reference", default=None,
                        help="checkpoint name (file stem) the others are compared with, instance by instance")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from diffprior_tsp.decode import two_opt
    from diffprior_tsp.evaluation import is_single_cycle, paired_bootstrap
    from diffprior_tsp.instances import read_instances, tour_lengths
    from diffprior_tsp.solver import (decode_heatmaps, load_tsp_prior, mark_checkpoint,
                                      optimise_heatmaps, uniform_heatmap_tours)

    def step_of(path: Path) -> int:
        match = re.search(r"-(\d+)\.safetensors$", path.name)
        return int(match.group(1)) if match else -1

    snapshots = sorted(args.snapshots.glob("*.safetensors"), key=step_of) if args.snapshots else []
    chosen = snapshots[:-1][:: args.every] + snapshots[-1:]
    instances = read_instances(args.instances, args.limit)
    coords, reference = instances.coords, tour_lengths(instances.coords, instances.tours)

    def gaps(tours: np.ndarray) -> tuple[float, list[float]]:
        """Total gap (Σ length / Σ reference − 1) and per-instance gaps, in %."""
        lengths = tour_lengths(coords, tours)
        return float(100 * (lengths.sum() / reference.sum() - 1)), (100 * (lengths / reference - 1)).tolist()

    uniform = uniform_heatmap_tours(coords)
    uniform_two_opt, uniform_per_instance = gaps(two_opt(coords, uniform)[0])
    rows = [{"name": "uniform heat-map", "images_seen": 0, "greedy_gap": gaps(uniform)[0],
             "two_opt_gap": uniform_two_opt, "two_opt_gaps": uniform_per_instance,
             "single_cycle": 0.0, "seconds": 0.0}]
    with tempfile.TemporaryDirectory() as tmp:
        for path in chosen + args.also:
            copy = Path(tmp) / path.name
            shutil.copyfile(path, copy)
            shutil.copyfile(path.with_suffix(".json"), copy.with_suffix(".json"))
            meta = json.loads(copy.with_suffix(".json").read_text())
            if "tsp" not in meta and "tsp" not in meta.get("plugins", {}):
                mark_checkpoint(copy, args.cities)
            training = meta.get("training", {})
            seen = training.get("budget", {}).get("images_seen", training.get("steps", 0) * training.get("batch_size", 0))
            prior = load_tsp_prior(copy, cities=args.cities, precision=args.precision)
            start = time.perf_counter()
            solution = optimise_heatmaps(prior, args.instances, [f"optimizer.steps={args.steps}",
                                                                 f"gradient={args.gradient}"], count=len(coords),
                                         progress=False)
            seconds = time.perf_counter() - start
            greedy = decode_heatmaps(solution.adjacency, coords)
            two_opt_gap, two_opt_gaps = gaps(two_opt(coords, greedy)[0])
            rows.append({"name": path.stem, "images_seen": int(seen), "greedy_gap": gaps(greedy)[0],
                         "two_opt_gap": two_opt_gap, "two_opt_gaps": two_opt_gaps,
                         "single_cycle": float(100 * is_single_cycle(solution.adjacency).mean()),
                         "seconds": seconds / len(coords)})
            print(f"{rows[-1]['name']}: greedy {rows[-1]['greedy_gap']:.2f}%, 2-opt {rows[-1]['two_opt_gap']:.2f}%",
                  flush=True)

    earlier = [row for path in args.add_rows for row in json.loads(path.read_text()) if row["images_seen"] > 0]
    measured = {r["name"] for r in rows}
    rows = rows[:1] + sorted(rows[1:] + [r for r in earlier if r["name"] not in measured],
                             key=lambda r: r["images_seen"])
    print(f"\n{len(coords)} instances of {args.instances}; {args.steps} steps, gradient {args.gradient}, "
          f"precision {args.precision}")
    by_name = {r["name"]: r for r in rows}
    if args.reference is not None and args.reference not in by_name:
        raise SystemExit(f"--reference {args.reference!r} is not among the checkpoints: {sorted(by_name)}")

    def against(row: dict, other: dict | None) -> str:
        """Paired interval of the 2-opt gap difference row − other (points), or '–'."""
        if other is None or row is other or "two_opt_gaps" not in row or "two_opt_gaps" not in other:
            return "–"
        mean, low, high = paired_bootstrap(np.array(row["two_opt_gaps"]), np.array(other["two_opt_gaps"]))
        return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"

    reference_row = by_name.get(args.reference)
    print("| checkpoint | images seen | greedy gap | greedy + 2-opt gap | heat-map is a tour | s / instance | "
          f"2-opt − uniform | 2-opt − {args.reference or 'reference'} |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['images_seen']:,} | {r['greedy_gap']:.2f}% | {r['two_opt_gap']:.2f}% | "
              f"{r['single_cycle']:.0f}% | {r['seconds']:.2f} | {against(r, rows[0])} | {against(r, reference_row)} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        trained = [r for r in rows[1:] if r["images_seen"] > 0]
        fig, ax = plt.subplots(figsize=(6.5, 4), dpi=120)
        seen = np.array([r["images_seen"] for r in trained])
        for key, label in (("greedy_gap", "greedy"), ("two_opt_gap", "greedy + 2-opt")):
            ax.plot(seen, [r[key] for r in trained], "o-", label=f"prior, {label}")
            ax.axhline(rows[0][key], ls="--", lw=1, color="grey")
            ax.annotate(f"uniform heat-map, {label}", (seen.min(), rows[0][key]), fontsize=7, va="bottom")
        ax.set_xscale("log")
        ax.set_xlabel("training images seen (log scale)")
        ax.set_ylabel("optimality gap (%)")
        ax.set_title(f"{len(coords)} validation instances, {args.steps} steps ({args.gradient})", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot)
        print(f"plot → {args.plot}")


if __name__ == "__main__":
    main()
