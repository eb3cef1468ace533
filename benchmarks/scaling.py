"""Problems per second of `diffprior run` in 1 and in 2 processes (torchrun, gloo, one thread
each), side by side, and the parallel efficiency (rate with P processes / (P × rate with 1)).

Each configuration is run the same way: `diffprior run CONFIG --batch B` as a subprocess, with
OMP_NUM_THREADS=1. "optimise" is the run's own wall time from metrics.json (building the
prior, optimising, gathering to rank 0); "end to end" adds interpreter start-up, plugin
loading and torchrun's rendezvous. The runs' samples are also checked to be identical.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scaling.py --batch 8 --steps 60
"""

from __future__ import annotations

import argparse
import json
import os
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
    proc = subprocess.run([*diffprior, "run", str(config), "--out", str(out), "--quiet", *extra],
                          capture_output=True, text=True, env=env)
    total = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{processes} process(es) failed:\n{proc.stderr}")
    return json.loads((out / "metrics.json").read_text())["seconds"], total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "digits.toml")
    parser.add_argument("--batch", type=int, default=8, help="problems (samples) per run")
    parser.add_argument("--steps", type=int, default=60, help="optimisation steps")
    parser.add_argument("--processes", default="1,2", help="comma-separated process counts")
    args = parser.parse_args()
    extra = ["--batch", str(args.batch), "--set", f"optimizer.steps={args.steps}"]
    counts = [int(p) for p in args.processes.split(",")]
    rows, samples = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for p in counts:
            out = Path(tmp) / f"p{p}"
            seconds, total = run(p, args.config, out, extra)
            rows.append((p, seconds, total))
            samples[p] = (out / "samples.safetensors").read_bytes()
    same = len(set(samples.values())) == 1
    base_rate = args.batch / rows[0][1]
    print(f"{args.config.name}: {args.batch} problems, {args.steps} steps, one thread per process, "
          f"{os.cpu_count()} CPU cores")
    print("| processes | optimise s | problems/s | efficiency | end to end s | problems/s (end to end) |")
    print("|-----------|------------|------------|------------|--------------|-------------------------|")
    for p, seconds, total in rows:
        rate = args.batch / seconds
        print(f"| {p:9d} | {seconds:10.2f} | {rate:10.3f} | {rate / (p * base_rate):10.2f} | {total:12.2f} | "
              f"{args.batch / total:23.3f} |")
    print(f"samples identical across process counts: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
