"""CLI start-up time: `diffprior --help` and `diffprior plugins`, with every installed plugin
loaded, against a bare `python -c pass`. Median of N runs, interleaved.

    python benchmarks/startup.py [--runs 10]
    python benchmarks/startup.py --sleeping-plugin 20   # plus a plugin that sleeps 20 s on import

With ``--sleeping-plugin S`` a throwaway distribution whose import sleeps S seconds is
installed in a temporary sandbox (its own plugin index too). `diffprior --help` never
imports plugins, so it stays fast; the first `diffprior plugins` stops the import after
DIFFPRIOR_PLUGIN_TIMEOUT (10 s) and records it; later commands skip it at once.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd, env=None):
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=env)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--sleeping-plugin", type=float, default=None, metavar="SECONDS",
                        help="also install a plugin that sleeps this long on import")
    args = parser.parse_args()
    exe = shutil.which("diffprior") or str(Path(sys.executable).with_name("diffprior"))
    if not Path(exe).exists():
        sys.exit("diffprior is not installed next to this Python: run .venv/bin/python benchmarks/startup.py")
    env = None
    if args.sleeping_plugin is not None:
        from diffprior.testing import PluginSandbox

        box = PluginSandbox(tempfile.mkdtemp(prefix="diffprior-startup-"))
        box.add_distribution("diffprior-sleeps", {"sleeps_on_import.py": f"import time\ntime.sleep({args.sleeping_plugin})\n"},
                             {"plugin": "sleeps_on_import"})
        env = box.env()
        first = timed([exe, "--help"], env)
        indexing = timed([exe, "plugins"], env)
        print(f"with a plugin sleeping {args.sleeping_plugin:g} s on import: first --help {first:.3f} s, "
              f"first `plugins` (indexes it, stops it at the timeout) {indexing:.1f} s")
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "diffprior --help": [exe, "--help"],
        "diffprior --version": [exe, "--version"],
        "diffprior plugins": [exe, "plugins"],
    }
    times = {k: [] for k in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            times[name].append(timed(cmd, env))
    torch_loaded = subprocess.run(
        [sys.executable, "-c", "import diffprior.cli.main, sys; print('torch' in sys.modules)"],
        capture_output=True, text=True,
    ).stdout.strip()
    print(f"{args.runs} runs each; `import diffprior.cli.main` imports torch: {torch_loaded}")
    print(f"| {'command':<20} | {'median s':>9} | {'max s':>7} |")
    print(f"|{'-' * 22}|{'-' * 11}|{'-' * 9}|")
    for name, values in times.items():
        print(f"| {name:<20} | {statistics.median(values):9.3f} | {max(values):7.3f} |")


if __name__ == "__main__":
    main()
