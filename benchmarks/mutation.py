"""Mutation testing of the modules that decide results: does the fast suite catch small bugs?

    python benchmarks/mutation.py                 # every module below, one after the other
    python benchmarks/mutation.py schedules tsp   # some of them
    python benchmarks/mutation.py --list

For each module it prints the kill rate (killed / mutants that some test runs) and every
surviving mutant as a diff. Needs ``pip install mutmut`` (3.x); not part of .ci/run: a
full pass takes tens of minutes of CPU.

Why mutmut 3. It compiles every mutant of a file into one module behind "trampolines" and
runs, per mutant, only the tests that reached the mutated function, in processes forked
from a warmed-up server: torch and the plugins are imported once, not once per mutant
(cosmic-ray starts a fresh test command per mutant, several seconds each with torch, and
mutates the checked-out files in place). mutmut only understands ``./``, ``src/`` or
``source/`` layouts, while diffprior is several editable distributions (core/diffprior,
plugins/*/diffprior_*): so each module is staged in a ``src/`` layout under the work folder
(runs/mutation/NAME), with the tests beside it. ``mutants/src`` comes first on sys.path (and
on PYTHONPATH, for the tests that run the CLI in a subprocess), ahead of the editable
installs, and the installed entry points resolve to the staged modules by name. Mutants run
with forkserver isolation (torch is not fork-safe once used) and one child process at a time.

mutmut mutates code inside functions and methods, not class-level constants such as pydantic
``Field(gt=0)`` bounds: those are covered by the config-error tests, not counted here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {  # import name → folder in the repository
    "diffprior": ROOT / "core" / "diffprior",
    "diffprior_unet": ROOT / "plugins" / "diffprior-unet" / "diffprior_unet",
    "diffprior_images": ROOT / "plugins" / "diffprior-images" / "diffprior_images",
    "diffprior_tsp": ROOT / "plugins" / "diffprior-tsp" / "diffprior_tsp",
}
# Each module runs against the fast test files that exercise it (mutmut then runs, per mutant,
# only those of them that reach the mutated function).
OPTIMIZER_TESTS = ["tests/test_optimizer_ground_truth.py", "tests/test_free_energy_optimum.py",
                   "tests/test_batch_independence.py", "tests/test_run_outputs.py", "tests/test_denoise.py",
                   "tests/test_builtins_conformance.py"]
MODULES: dict[str, tuple[list[str], list[str]]] = {
    # name: (files to mutate, as src/PACKAGE/FILE.py; tests, relative to the repository)
    "optimizer": (["src/diffprior/optimizer.py", "src/diffprior/clipping.py"], OPTIMIZER_TESTS),
    "schedules": (["src/diffprior/schedules.py"],
                  ["tests/test_schedules.py", "tests/test_config_errors.py", "tests/test_optimizer_ground_truth.py"]),
    "noise": (["src/diffprior/noise.py"],
              ["tests/test_denoise.py", "tests/test_optimizer_ground_truth.py", "tests/test_free_energy_optimum.py",
               "plugins/diffprior-unet/tests/test_unet_model_and_checkpoints.py"]),
    "variables": (["src/diffprior/variables.py"],
                  ["tests/test_builtins_conformance.py", "tests/test_optimizer_ground_truth.py",
                   "tests/test_run_outputs.py", "tests/test_conformance_kit.py"]),
    "tsp": (["src/diffprior_tsp/decode.py", "src/diffprior_tsp/raster.py", "src/diffprior_tsp/variable.py"],
            ["plugins/diffprior-tsp/tests"]),
    "plugins": (["src/diffprior/plugins.py"],
                ["tests/test_plugins_core.py", "tests/test_plugin_isolation.py", "tests/test_third_party.py",
                 "tests/test_conformance_kit.py"]),
    "config": (["src/diffprior/run_config.py", "src/diffprior/config_files.py", "src/diffprior/bases.py",
                "src/diffprior/options.py"],
               ["tests/test_config_errors.py", "tests/test_run_outputs.py", "tests/test_schedules.py",
                "tests/test_plugins_core.py"]),
}
# always copied beside the tests: what they read relative to their own files
SUPPORT = ["examples", "docs", "scripts", "README.md", "contrib", "tests/conftest.py", "tests/configs", "plugins/diffprior-tsp/examples", "plugins/diffprior-unet/tests/unet_tiny_arch.py",
           "plugins/diffprior-unet/tests/conftest.py"]


def _ignore(_, names):
    return [n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".pyc")]


def stage(name: str, work: Path) -> Path:
    """A src/ layout of the packages and the module's tests, with mutmut's settings."""
    mutate, tests = MODULES[name]
    mutate = [m for m in mutate if _source_of(m).exists()]  # files of another version of the core are skipped
    here = work / name
    shutil.rmtree(here, ignore_errors=True)
    for package, folder in PACKAGES.items():
        shutil.copytree(folder, here / "src" / package, ignore=_ignore)
    for path in dict.fromkeys(tests + SUPPORT):
        source = ROOT / path
        if source.is_dir():
            shutil.copytree(source, here / path, ignore=_ignore)
        elif source.exists():
            (here / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, here / path)
    toml_list = lambda items: "[" + ", ".join(json.dumps(str(i)) for i in items) + "]"  # noqa: E731
    (here / "pyproject.toml").write_text(f"""
[tool.mutmut]
source_paths = ["src"]
only_mutate = {toml_list(mutate)}
also_copy = {toml_list(sorted({p.split('/')[0] for p in tests + SUPPORT}))}
pytest_add_cli_args_test_selection = {toml_list(tests)}
pytest_add_cli_args = ["-p", "no:cacheprovider", "-m", "not slow", "-W", "ignore"]
process_isolation = "forkserver"
use_git_change_detection = false

[tool.pytest.ini_options]
markers = ["slow: long experiments excluded from the default run"]
""")
    return here


def _source_of(mutated: str) -> Path:
    package, rest = mutated.split("/", 2)[1:]
    return PACKAGES[package] / rest


def run_module(name: str, work: Path) -> dict:
    here = stage(name, work)
    mutate, _ = MODULES[name]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(here / "mutants" / "src"))  # CLI subprocesses import the mutants too
    mutmut = [sys.executable, "-m", "mutmut"]
    start = time.perf_counter()
    subprocess.run(mutmut + ["run", "--max-children", "1"], cwd=here, env=env, check=False,
                   stdout=subprocess.DEVNULL if not os.environ.get("MUTATION_VERBOSE") else None)
    seconds = time.perf_counter() - start
    listing = subprocess.run(mutmut + ["results", "--all", "true"], cwd=here, env=env, capture_output=True, text=True).stdout
    status = dict(re.findall(r"^\s+(\S+): (.+)$", listing, flags=re.M))
    counts: dict[str, int] = {}
    for value in status.values():
        counts[value] = counts.get(value, 0) + 1
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    survivors = sorted(k for k, v in status.items() if v == "survived")
    tested = killed + len(survivors)
    diffs = {k: subprocess.run(mutmut + ["show", k], cwd=here, env=env, capture_output=True, text=True).stdout
             for k in survivors}
    return {"module": name, "files": mutate, "counts": counts, "kill_rate": killed / tested if tested else None,
            "survivors": diffs, "seconds": seconds}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "mutation", help="staging folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--list", action="store_true", help="list the modules and their files")
    args = parser.parse_args(argv)
    if args.list:
        for name, (files, tests) in MODULES.items():
            print(f"{name:10} {' '.join(files)}  (tests: {' '.join(tests)})")
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        print(f"unknown module(s) {unknown}; choose from {', '.join(MODULES)}", file=sys.stderr)
        return 2
    results = []
    for name in args.modules or list(MODULES):
        result = run_module(name, args.work)
        results.append(result)
        rate = "n/a" if result["kill_rate"] is None else f"{100 * result['kill_rate']:.1f}%"
        print(f"{name:10} kill rate {rate:>6}  {result['counts']}  ({result['seconds']:.0f} s)", flush=True)
        for diff in result["survivors"].values():
            print("    " + diff.strip().replace("\n", "\n    "))
    print("\nmodule      kill rate  mutants  survived")
    for r in results:
        rate = "n/a" if r["kill_rate"] is None else f"{100 * r['kill_rate']:.1f}%"
        print(f"{r['module']:10}  {rate:>9}  {sum(r['counts'].values()):>7}  {len(r['survivors']):>8}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
