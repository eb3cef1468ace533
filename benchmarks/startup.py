"""CLI start-up time: `diffprior --help` and `diffprior plugins`, with every installed plugin
loaded, against a bare `python -c pass`. Median of N runs, interleaved.

    python benchmarks/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    exe = shutil.which("diffprior") or sys.exit("diffprior is not on PATH: activate the virtual environment")
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "diffprior --help": [exe, "--help"],
        "diffprior plugins": [exe, "plugins"],
    }
    times = {k: [] for k in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            times[name].append(timed(cmd))
    torch_loaded = subprocess.run(
        [sys.executable, "-c", "import diffprior.cli, sys; print('torch' in sys.modules)"],
        capture_output=True, text=True,
    ).stdout.strip()
    print(f"{args.runs} runs each; `import diffprior.cli` imports torch: {torch_loaded}")
    print(f"| {'command':<20} | {'median s':>9} | {'max s':>7} |")
    print(f"|{'-' * 22}|{'-' * 11}|{'-' * 9}|")
    for name, values in times.items():
        print(f"| {name:<20} | {statistics.median(values):9.3f} | {max(values):7.3f} |")


if __name__ == "__main__":
    main()
