"""Problems per second of `diffprior run` in 1 and in 2 processes (torchrun, gloo, one thread
each), side by side, and the parallel efficiency (rate with P processes / (P × rate with 1)).

Each configuration is run the same way: `diffprior run CONFIG --batch B --batch-size S` as a
subprocess, with OMP_NUM_THREADS=1. Every process count runs the same batches of S samples
(default S = B / the largest process count, so each process gets whole batches), which also
makes the samples bit-identical across process counts; the script checks that they are.
"optimise" is the run's own wall time from metrics.json (building the prior, optimising,
gathering to rank 0); "end to end" adds interpreter start-up, plugin loading and torchrun's
rendezvous. With --repeats R the process counts are run in turn R times (1, 2, 1, 2, ...) and
the medians are shown, so a change in the machine's load hits both alike.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scaling.py                  # 8 digits samples, 60 steps
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scaling.py --repeats 3      # on a quiet machine
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scaling.py --quick          # does it work? (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(processes: int, config: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """(seconds of the run itself, seconds end to end)."""
    diffprior = [sys.executable, "-m", "diffprior.cli"]
    if processes > 1:
        diffprior = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                     f"--nproc-per-node={processes}", "-m", "diffprior.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    start = time.perf_counter()
    proc = subprocess.run([*diffprior, "run", str(config), "--out", str(out), "--overwrite", "--quiet", *extra],
                          capture_output=True, text=True, env=env)
    total = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{processes} process(es) failed:\n{proc.stderr}")
    return json.loads((out / "metrics.json").read_text())["seconds"], total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "digits.toml")
    parser.add_argument("--batch", type=int, default=8, help="problems (samples) per run")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="samples optimised together (default: batch / the largest process count)")
    parser.add_argument("--steps", type=int, default=60, help="optimisation steps")
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts (the first is the base)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each process count, in turn; medians shown")
    parser.add_argument("--quick", action="store_true",
                        help="a check that the benchmark works, not a measurement: 4 samples, 3 steps")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.steps, args.repeats = 4, 3, 1
    counts = [int(p) for p in args.processes.split(",")]
    batch_size = args.batch_size or max(1, args.batch // max(counts))
    extra = ["--batch", str(args.batch), "--batch-size", str(batch_size), "--set", f"optimizer.steps={args.steps}"]
    times: dict[int, list[tuple[float, float]]] = {p: [] for p in counts}
    samples: dict[int, bytes] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for p in counts:
                out = Path(tmp) / f"p{p}"
                times[p].append(run(p, args.config, out, extra))
                samples.setdefault(p, (out / "samples.safetensors").read_bytes())
                print(f"  run {repeat + 1}/{args.repeats}, {p} process(es): {times[p][-1][0]:.2f} s", file=sys.stderr)
    same = len(set(samples.values())) == 1
    medians = {p: (statistics.median(t for t, _ in times[p]), statistics.median(e for _, e in times[p]))
               for p in counts}
    base_rate = args.batch / medians[counts[0]][0]
    print(f"{args.config.name}: {args.batch} problems in batches of {batch_size}, {args.steps} steps, one thread "
          f"per process, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}, "
          f"median of {args.repeats} run(s)" + (" (--quick: a check, not a measurement)" if args.quick else ""))
    print("| processes | optimise s | problems/s | efficiency | end to end s | problems/s (end to end) |")
    print("|-----------|------------|------------|------------|--------------|-------------------------|")
    for p in counts:
        seconds, total = medians[p]
        rate = args.batch / seconds
        efficiency = rate / (p / counts[0] * base_rate)
        print(f"| {p:9d} | {seconds:10.2f} | {rate:10.3f} | {efficiency:10.2f} | {total:12.2f} | "
              f"{args.batch / total:23.3f} |")
    print(f"samples identical across process counts: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
