"""(Superseded by `diffprior tsp eval --shard I/N --json PART.json` and `diffprior merge PARTS...
--out EVAL.json`, which reproduce the whole file's table, per-instance gaps and paired intervals
exactly; see docs/scaling.md. Kept for JSON files written before --shard existed.)

Merge the JSON tables of several `diffprior tsp eval --json` runs over disjoint parts of an
instance file into one table (gap = Σ length / Σ reference − 1 over all parts).

With per-sample seeds (instance i uses seed + i), evaluating lines a..b of a file with
`--seed a` gives exactly the tours of a single run over the whole file, so a long
evaluation can run in parts, in parallel, or resume after a stop:

    sed -n 257,512p FILE > part2.txt
    diffprior tsp eval part2.txt --seed 256 --json part2.json
    python benchmarks/tsp_merge.py part1.json part2.json ...
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(paths: list[str]) -> None:
    if not paths:
        sys.exit(__doc__)
    total, reference = defaultdict(float), 0.0
    seconds, counts, method_reference = defaultdict(float), defaultdict(int), defaultdict(float)
    n = 0
    for path in paths:
        data = json.loads(open(path).read())
        m = data["instances"]
        n += m
        reference += data["reference_mean"] * m
        for row in data["rows"]:
            total[row["method"]] += row["mean_length"] * m
            seconds[row["method"]] += row["seconds_per_instance"] * m
            counts[row["method"]] += m
            method_reference[row["method"]] += data["reference_mean"] * m  # a method may skip parts
    print(f"{n} instances from {len(paths)} part(s); reference mean length {reference / n:.5f}")
    width = max(len(k) for k in total)
    print(f"| {'method':<{width}} | instances | mean length |    gap | s / instance |")
    print(f"|{'-' * (width + 2)}|-----------|-------------|--------|--------------|")
    for method in total:
        m = counts[method]
        gap = 100 * (total[method] / method_reference[method] - 1)
        print(f"| {method:<{width}} | {m:9d} | {total[method] / m:11.4f} | {gap:5.2f}% | {seconds[method] / m:12.4f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
