"""Mutation testing of the modules that decide results: does the fast suite catch small bugs?

    python benchmarks/mutation.py                 # every module below, one after the other
    python benchmarks/mutation.py schedules tsp   # some of them
    python benchmarks/mutation.py --list
    python benchmarks/mutation.py noise --retest  # after adding tests: only the mutants not killed
    python benchmarks/mutation.py --report        # what the last runs recorded, without running

For each module it prints the kill rate, killed / (killed + not killed), and every mutant not
killed as a diff. A mutant that makes the tests time out or crash counts as killed; one that no
selected test reaches ("no tests") counts as not killed. Needs ``pip install mutmut`` (3.x, the
``bench`` extra); not part of .ci/run: a full pass takes hours on two shared cores (the small
modules 5-15 minutes each, optimizer.py's 788 mutants about an hour). Run it niced, with
OMP_NUM_THREADS=1.

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
# Each module runs against the fast, focused tests that exercise it (mutmut then runs, per
# mutant, only those of them that reach the mutated function). Slow end-to-end tests that only
# repeat what a focused test checks exactly are left out: the machine has two shared cores, and
# a surviving mutant costs one run of every test that reaches it.
GROUND_TRUTH = "tests/test_optimizer_ground_truth.py"
MODULES: dict[str, tuple[list[str], list[str]]] = {
    # name: (files to mutate, as src/PACKAGE/FILE.py; tests or test ids, relative to the repository)
    "noise": (["src/diffprior/noise.py"],
              ["tests/test_denoise.py::test_samples_follow_the_gaussian[ddim-linear]",
               "tests/test_denoise.py::test_samples_follow_the_gaussian[ddim-cosine]",
               "tests/test_denoise.py::test_same_seed_same_sample_whatever_the_batch",
               "tests/test_denoise.py::test_noise_schedules_match_their_definitions",
               "tests/test_denoise.py::test_linear_schedule_scales_its_ends_with_T",
               "tests/test_denoise.py::test_cosine_schedule_offset_and_beta_cap",
               "tests/test_denoise.py::test_alpha_bar_is_the_running_product_shaped_to_broadcast",
               "tests/test_denoise.py::test_betas_outside_zero_one_are_refused",
               "tests/test_denoise.py::test_an_unknown_schedule_name_lists_the_known_ones",
               "tests/test_denoise.py::test_schedules_have_1000_steps_by_default",
               GROUND_TRUTH,
               "plugins/diffprior-unet/tests/test_unet_model_and_checkpoints.py"]),
    "schedules": (["src/diffprior/schedules.py"],
                  ["tests/test_schedules.py", "tests/test_config_errors.py",
                   f"{GROUND_TRUTH}::test_timesteps_follow_the_schedule_clamped_to_the_prior",
                   f"{GROUND_TRUTH}::test_jittered_timesteps_stay_within_the_jitter_per_sample"]),
    "variables": (["src/diffprior/variables.py"],
                  ["tests/test_variables.py", "tests/test_builtins_conformance.py"]),
    "clipping": (["src/diffprior/clipping.py"], ["tests/test_clipping.py", GROUND_TRUTH]),
    "optimizer": (["src/diffprior/optimizer.py"],
                  [GROUND_TRUTH, "tests/test_clipping.py", "tests/test_optimize_api.py",
                   "tests/test_batch_independence.py::test_position_in_batch_does_not_matter",
                   "tests/test_init_prior.py",
                   "tests/test_run_outputs.py::test_nan_guard_names_the_term_and_step",
                   "tests/test_run_outputs.py::test_interrupt_keeps_partial_results",
                   "tests/test_run_outputs.py::test_a_kept_step_state_holds_the_x_of_its_own_step"]),
    "tsp": (["src/diffprior_tsp/decode.py", "src/diffprior_tsp/raster.py", "src/diffprior_tsp/variable.py"],
            ["plugins/diffprior-tsp/tests/test_tsp_raster.py"]
            + [f"plugins/diffprior-tsp/tests/test_tsp.py::{name}" for name in (
                "test_rendered_tour_image_follows_the_recipe", "test_rasteriser_pixel_convention",
                "test_hard_successors_reproduce_the_training_image",
                "test_variable_gradients_and_per_sample_independence", "test_variable_refuses_non_image_priors",
                "test_greedy_decoding_gives_valid_tours", "test_greedy_decoding_follows_a_dominant_heatmap",
                "test_two_opt_matches_the_naive_reference_and_never_lengthens")]
            + [f"plugins/diffprior-tsp/tests/test_tsp_ground_truth.py::{name}" for name in (
                "test_two_opt_never_lengthens_tours_it_cannot_improve", "test_two_opt_applies_the_only_improving_move",
                "test_two_opt_reaches_a_local_optimum_no_shorter_than_the_optimum",
                "test_edge_scores_divide_the_symmetrised_heatmap_by_the_distance",
                "test_the_distance_decides_the_greedy_order_on_a_square",
                "test_greedy_decoding_equals_the_naive_greedy_on_random_heatmaps",
                "test_greedy_tours_follow_the_scores_not_the_indices",
                "test_eval_table_numbers_match_tours_computed_independently")]),
    "config": (["src/diffprior/run_config.py", "src/diffprior/config_files.py", "src/diffprior/bases.py",
                "src/diffprior/options.py"],
               ["tests/test_config_files.py", "tests/test_config_errors.py", "tests/test_bad_values.py",
                "tests/test_schedules.py"]),
    "plugins": (["src/diffprior/plugins.py"], ["tests/test_plugin_registry.py", "tests/test_plugins_core.py"]),
}
# always copied beside the tests: what they read relative to their own files
SUPPORT = ["examples", "docs", "scripts", "README.md", "contrib", "tests/conftest.py", "tests/configs", "plugins/diffprior-tsp/examples", "plugins/diffprior-unet/tests/unet_tiny_arch.py",
           "plugins/diffprior-unet/tests/conftest.py", "plugins/diffprior-tsp/tests/conftest.py"]


def _ignore(_, names):
    return [n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".pyc")]


def stage(name: str, work: Path) -> Path:
    """A src/ layout of the packages and the module's tests, with mutmut's settings."""
    here = work / name
    shutil.rmtree(here, ignore_errors=True)
    for package, folder in PACKAGES.items():
        shutil.copytree(folder, here / "src" / package, ignore=_ignore)
    copy_tests(name, here)
    write_settings(name, here)
    return here


def write_settings(name: str, here: Path) -> bool:
    """mutmut's settings for the module: what to mutate, which tests, one process. Returns
    whether they changed (mutmut then forgets every verdict of the module)."""
    mutate, tests = MODULES[name]
    mutate = [m for m in mutate if _source_of(m).exists()]  # files of another version of the core are skipped
    tests = [t for t in tests if (ROOT / t.split("::")[0]).exists()]
    toml_list = lambda items: "[" + ", ".join(json.dumps(str(i)) for i in items) + "]"  # noqa: E731
    settings = here / "pyproject.toml"
    before = settings.read_text() if settings.exists() else None
    settings.write_text(f"""
[tool.mutmut]
source_paths = ["src"]
only_mutate = {toml_list(mutate)}
also_copy = {toml_list(sorted({p.split('/')[0] for p in tests + SUPPORT}))}
pytest_add_cli_args_test_selection = {toml_list(tests)}
pytest_add_cli_args = ["-p", "no:cacheprovider", "-m", "not slow", "-W", "ignore"]
process_isolation = "forkserver"
timeout_multiplier = {TIMEOUT_MULTIPLIER}
use_git_change_detection = false

[tool.pytest.ini_options]
markers = ["slow: long experiments excluded from the default run"]
""")
    return settings.read_text() != before


def copy_tests(name: str, here: Path) -> None:
    """The module's tests and what they read, copied beside the staged packages (again)."""
    _, tests = MODULES[name]
    for path in dict.fromkeys([t.split("::")[0] for t in tests] + SUPPORT):
        source = ROOT / path
        if source.is_dir():
            shutil.rmtree(here / path, ignore_errors=True)
            shutil.copytree(source, here / path, ignore=_ignore)
        elif source.exists():
            (here / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, here / path)


def _source_of(mutated: str) -> Path:
    package, rest = mutated.split("/", 2)[1:]
    return PACKAGES[package] / rest


# mutmut gives a mutant (estimated test time + 1 s) × multiplier × 2 of CPU time; its default
# multiplier, 15, lets a mutant that loops (2-opt that never stops improving) hold the one
# process for minutes. Six times the tests' CPU time still tells a hang from a slow machine
# (the limit is CPU time, not wall time, so other jobs on the cores do not count).
TIMEOUT_MULTIPLIER = 3.0
KILLED = ("killed", "timeout", "segfault")  # a mutant that hangs or crashes the tests is caught too
NOT_KILLED = ("survived", "no tests", "suspicious")  # "no tests": no test reaches the mutated function


def run_module(name: str, work: Path, retest: bool = False, report: bool = False) -> dict:
    """Mutate the module's files and run them against its tests. With ``retest``, only the
    mutants a previous run of this module did not kill are run again, against the current
    tests (copied again); the staged sources and their mutants are kept."""
    here = work / name
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(here / "mutants" / "src"))  # CLI subprocesses import the mutants too
    mutmut = [sys.executable, "-m", "mutmut"]
    again: list[str] = []  # the mutants to run; none named: all of them
    run_mutmut = not report  # report: only read what the last run recorded (also one stopped part-way)
    if run_mutmut and retest and (here / "mutants").is_dir():
        copy_tests(name, here)
        again = [k for k, v in _statuses(here, env).items() if v not in KILLED]
        if write_settings(name, here):
            again = []  # another test selection: mutmut forgets every verdict, all run again
        elif not again:
            run_mutmut = False
    elif run_mutmut:
        stage(name, work)
    mutate, _ = MODULES[name]
    # The folder must exist before mutmut starts: Python caches a sys.path entry that does not
    # exist yet as "nothing here", and the tests would then import the editable installs instead
    (here / "mutants" / "src").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if run_mutmut:
        subprocess.run(mutmut + ["run", "--max-children", "1", *again], cwd=here, env=env, check=False,
                       stdout=subprocess.DEVNULL if not os.environ.get("MUTATION_VERBOSE") else None)
    seconds = time.perf_counter() - start
    status = _statuses(here, env)
    counts: dict[str, int] = {}
    for value in status.values():
        counts[value] = counts.get(value, 0) + 1
    killed = sum(counts.get(k, 0) for k in KILLED)
    survivors = sorted(k for k, v in status.items() if v in NOT_KILLED)
    tested = killed + len(survivors)
    diffs = {k: f"[{status[k]}] " + subprocess.run(mutmut + ["show", k], cwd=here, env=env, capture_output=True,
                                                   text=True).stdout for k in survivors}
    return {"module": name, "files": mutate, "counts": counts, "kill_rate": killed / tested if tested else None,
            "survivors": diffs, "seconds": seconds}


def _statuses(here: Path, env) -> dict[str, str]:
    listing = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=here, env=env,
                             capture_output=True, text=True).stdout
    return dict(re.findall(r"^\s+(\S+): (.+)$", listing, flags=re.M))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"default: all of {', '.join(MODULES)}")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "mutation", help="staging folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--list", action="store_true", help="list the modules and their files")
    parser.add_argument("--report", action="store_true",
                        help="print the results the last run of each module recorded, without running anything")
    parser.add_argument("--retest", action="store_true",
                        help="run again only the mutants the last run of each module did not kill (after adding tests)")
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
        result = run_module(name, args.work, args.retest, args.report)
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
