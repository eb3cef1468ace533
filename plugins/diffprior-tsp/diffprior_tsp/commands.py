"""``diffprior tsp solve|eval|show|data|install-prior``. Imports numpy/torch only when run."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from diffprior.command import Command, UsageError


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_prior_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("instances", type=Path, help="instance file: one 'x1 y1 ... xN yN [output t1 ... tN t1]' per line")
    p.add_argument("--limit", type=_positive, default=None, help="only the first N instances")
    p.add_argument("--checkpoint", default=None, help="tour-image prior (default: the bundled tsp50)")
    p.add_argument("--steps", type=_positive, default=256, help="optimisation steps (paper: 256)")
    p.add_argument("--gradient", choices=("full", "sds"), default="full",
                   help="full: back-propagate through the U-Net (paper); sds: no U-Net backward, ~3x cheaper")
    p.add_argument("--batch-size", type=_positive, default=64, help="instances optimised together")
    p.add_argument("--seed", type=int, default=0, help="instance i uses seed + i")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: the U-Net under bf16 autocast (faster on CPUs with bf16 kernels and GPUs)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _settings(args):
    from .solver import PriorSettings

    return PriorSettings(steps=args.steps, gradient=args.gradient, batch_size=args.batch_size, seed=args.seed)


def _load(args):
    from .instances import read_instances
    from .solver import load_tsp_prior

    instances = read_instances(args.instances, args.limit)
    prior = load_tsp_prior(args.checkpoint, cities=instances.size, device=args.device, precision=args.precision)
    return instances, prior


# ------------------------------------------------------------------------------ solve
def _configure_solve(p):
    _add_prior_options(p)
    p.add_argument("--out", type=Path, default=None, help="write the tours here (default: stdout)")
    p.add_argument("--no-two-opt", action="store_true", help="greedy decoding only")


def _solve(args) -> int:
    from .instances import format_instance, tour_lengths
    from .solver import decode_heatmaps, optimise_heatmaps, with_two_opt

    instances, prior = _load(args)
    solution = optimise_heatmaps(prior, instances.coords, _settings(args), progress=not args.quiet)
    tours = decode_heatmaps(solution.adjacency, instances.coords)
    if not args.no_two_opt:
        tours = with_two_opt(instances.coords, tours)
    text = "".join(format_instance(c, t) + "\n" for c, t in zip(instances.coords, tours))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        mean = float(tour_lengths(instances.coords, tours).mean())
        print(f"wrote {len(tours)} tours (mean length {mean:.4f}) → {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# ------------------------------------------------------------------------------ eval
def _configure_eval(p):
    _add_prior_options(p)
    p.add_argument("--samples", type=_positive, default=1,
                   help="K: optimise K heat-maps per instance (seeds seed + i + k·10⁶) and keep the shortest tour")
    p.add_argument("--restarts", type=_positive, default=8,
                   help="R: perturbed-heat-map restarts (greedy + 2-opt, best of R) on the uniform and the prior's heat-map")
    p.add_argument("--sigma", type=float, default=0.3, help="log-normal noise on edge scores for the restarts")
    p.add_argument("--no-matched-time", action="store_true",
                   help="skip the uniform-restarts baseline given the prior's wall time")
    p.add_argument("--pictures", type=Path, default=None, help="also draw the first few instances into this folder")
    p.add_argument("--pictures-count", type=_positive, default=4)
    p.add_argument("--json", type=Path, default=None, help="also write the table (and per-instance gaps) as JSON")
    p.add_argument("--plot", type=Path, default=None, help="also draw gap against seconds per instance (PNG)")
    p.add_argument("--no-lkh", action="store_true", help="skip the elkai (LKH) baseline")
    p.add_argument("--baselines-only", action="store_true", help="skip the prior (the baselines are fast on any set)")


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


SAMPLE_SEED_STRIDE = 10**6  # sample k of instance i uses seed + i + k·stride: independent of the batch


def _eval(args) -> int:
    import numpy as np

    from .evaluation import (best_of, is_single_cycle, paired_bootstrap, perturbed_restarts, plot_gap_against_time,
                             shared_edges)
    from .instances import read_instances, tour_lengths
    from .solver import (decode_heatmaps, lkh_tours, nearest_neighbour, optimise_heatmaps,
                         uniform_heatmap_tours, with_two_opt)

    if args.sigma < 0 or not np.isfinite(args.sigma):
        raise UsageError(f"--sigma must be a finite number >= 0, got {args.sigma}")
    if args.baselines_only:
        instances = read_instances(args.instances, args.limit)
    else:
        instances, prior = _load(args)
    if instances.tours is None:
        raise UsageError(f"{args.instances}: eval needs reference tours ('output ...' on every line) to compute gaps")
    coords, M = instances.coords, len(instances)
    reference = tour_lengths(coords, instances.tours)
    rows: list[tuple[str, np.ndarray, float]] = []
    R, sigma = args.restarts, args.sigma

    if not args.baselines_only:
        greedy_runs, improved_runs, restart_runs, seconds = [], [], [], 0.0
        for k in range(args.samples):
            settings = _settings(args)
            settings.seed = args.seed + k * SAMPLE_SEED_STRIDE
            solution = optimise_heatmaps(prior, coords, settings, progress=not args.quiet)
            if k == 0:
                first_solution = solution
            greedy, t_greedy = _timed(decode_heatmaps, solution.adjacency, coords)
            improved, t_opt = _timed(with_two_opt, coords, greedy)
            restarted, t_rest = _timed(perturbed_restarts, coords, solution.adjacency, R, sigma, seed=settings.seed)
            greedy_runs.append(greedy)
            improved_runs.append(improved)
            restart_runs.append(restarted)
            seconds += solution.seconds
            t_greedy_all = t_greedy
        label = "diffprior" + (f", best of {args.samples} samples" if args.samples > 1 else "")
        greedy, improved = best_of(coords, greedy_runs), best_of(coords, improved_runs)
        rows.append((f"{label}, greedy", greedy, seconds + t_greedy_all * args.samples))
        rows.append((f"{label}, greedy + 2-opt", improved, seconds + (t_greedy_all + t_opt) * args.samples))
        rows.append((f"{label}, {R * args.samples} restarts (σ {sigma}) + 2-opt", best_of(coords, restart_runs),
                     seconds + t_rest * args.samples))
        prior_seconds = seconds + (t_greedy_all + t_opt) * args.samples
    uniform, t_uni = _timed(uniform_heatmap_tours, coords)
    rows.append(("uniform heat-map, greedy", uniform, t_uni))
    uniform2, t_uni2 = _timed(with_two_opt, coords, uniform)
    rows.append(("uniform heat-map, greedy + 2-opt", uniform2, t_uni + t_uni2))
    restarts, t_r = _timed(perturbed_restarts, coords, None, R * args.samples, sigma, seed=args.seed)
    rows.append((f"uniform heat-map, {R * args.samples} restarts (σ {sigma}) + 2-opt", restarts, t_r))
    matched = None
    if not args.baselines_only and not args.no_matched_time:
        per_restart = t_r / (M * R * args.samples)
        matched = int(min(4096, max(1, round(prior_seconds / (M * per_restart)))))
        tours, t_m = _timed(perturbed_restarts, coords, None, matched, sigma, seed=args.seed)
        rows.append((f"uniform heat-map, {matched} restarts (matched time) + 2-opt", tours, t_m))
    nn, t_nn = _timed(nearest_neighbour, coords)
    nn2, t_nn2 = _timed(with_two_opt, coords, nn)
    rows.append(("nearest neighbour + 2-opt", nn2, t_nn + t_nn2))
    if not args.no_lkh:
        lkh, t_lkh = _timed(lkh_tours, coords)
        rows.append(("elkai (LKH, 1 run)", lkh, t_lkh))

    table, gaps = [], {}
    for name, tours, seconds in rows:
        lengths = tour_lengths(coords, tours)
        gaps[name] = 100 * (lengths / reference - 1)
        table.append({"method": name, "mean_length": float(lengths.mean()),
                      "gap_percent": 100 * (float(lengths.sum()) / float(reference.sum()) - 1),
                      "seconds_per_instance": seconds / M})
    comparisons, heatmap = [], {}
    if not args.baselines_only:
        heatmap = {"single_cycle_share": float(is_single_cycle(first_solution.adjacency).mean()),
                   "greedy_shared_edges": float(shared_edges(rows[0][1], instances.tours).mean()),
                   "uniform_greedy_shared_edges": float(shared_edges(uniform, instances.tours).mean())}
        names = [r[0] for r in rows]
        pairs = [(names[0], "uniform heat-map, greedy"), (names[1], "uniform heat-map, greedy + 2-opt"),
                 (names[2], f"uniform heat-map, {R * args.samples} restarts (σ {sigma}) + 2-opt")]
        if matched is not None:
            pairs.append((names[1], f"uniform heat-map, {matched} restarts (matched time) + 2-opt"))
        for a, b in pairs:
            mean, low, high = paired_bootstrap(gaps[a], gaps[b], seed=args.seed)
            wins = int((gaps[a] < gaps[b] - 1e-9).sum())
            losses = int((gaps[a] > gaps[b] + 1e-9).sum())
            comparisons.append({"method": a, "baseline": b, "gap_difference": mean, "low": low, "high": high,
                                "wins": wins, "losses": losses})
    s = _settings(args)
    print(f"TSP-{instances.size}: {M} instances of {args.instances}; reference mean length {float(reference.mean()):.5f}")
    if not args.baselines_only:
        print(f"prior: {args.checkpoint or 'bundled tsp50'}; {s.steps} steps, gradient {s.gradient}, "
              f"batch {s.batch_size}, samples {args.samples}, device {args.device}, precision {args.precision}")
    width = max(len(r["method"]) for r in table)
    print(f"{'method':<{width}}  {'mean length':>11}  {'gap':>8}  {'s / instance':>12}")
    for r in table:
        print(f"{r['method']:<{width}}  {r['mean_length']:>11.4f}  {r['gap_percent']:>7.2f}%  {r['seconds_per_instance']:>12.4f}")
    if heatmap:
        print(f"heat-maps that are a tour (top-2 neighbours form one cycle): {100 * heatmap['single_cycle_share']:.1f}%; "
              f"greedy tours' edges shared with the reference: {100 * heatmap['greedy_shared_edges']:.1f}% "
              f"(uniform heat-map: {100 * heatmap['uniform_greedy_shared_edges']:.1f}%)")
    if comparisons:
        print("paired differences of gap (percentage points; negative: the prior is better), 95% bootstrap interval:")
        for c in comparisons:
            verdict = "better" if c["high"] < 0 else "worse" if c["low"] > 0 else "not distinguishable"
            print(f"  {c['method']}  vs  {c['baseline']}: {c['gap_difference']:+.3f} "
                  f"[{c['low']:+.3f}, {c['high']:+.3f}]  wins {c['wins']} / losses {c['losses']}  ({verdict})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "instances": M, "cities": instances.size, "settings": vars(s), "samples": args.samples,
            "restarts": R, "sigma": sigma, "reference_mean": float(reference.mean()), "rows": table,
            "comparisons": comparisons, "heatmap": heatmap, "first_seed": args.seed,
            "per_instance_gap_percent": {k: [round(float(g), 6) for g in v] for k, v in gaps.items()}}, indent=1) + "\n")
    if args.plot:
        path = plot_gap_against_time(table, args.plot, f"TSP-{instances.size}, {M} instances of {args.instances.name}")
        print(f"gap against time → {path}")
    if args.pictures and not args.baselines_only:
        from .pictures import draw_solution

        args.pictures.mkdir(parents=True, exist_ok=True)
        for i in range(min(args.pictures_count, M)):
            path = args.pictures / f"instance-{i:04d}.png"
            draw_solution(path, coords[i], first_solution.adjacency[i], first_solution.images[i, 0], improved[i],
                          instances.tours[i], title=f"instance {i}")
        print(f"pictures → {args.pictures}/")
    return 0


# ------------------------------------------------------------------------------ show
def _configure_show(p):
    _add_prior_options(p)
    p.add_argument("--index", type=int, default=0, help="which instance of the file (0-based)")
    p.add_argument("--out", type=Path, default=Path("tsp.png"), help="PNG to write")


def _show(args) -> int:
    from .instances import read_instances
    from .pictures import draw_solution
    from .solver import decode_heatmaps, load_tsp_prior, optimise_heatmaps, with_two_opt

    instances = read_instances(args.instances)
    if not 0 <= args.index < len(instances):
        raise UsageError(f"--index {args.index} is outside the file's {len(instances)} instances (0..{len(instances) - 1})")
    coords = instances.coords[args.index:args.index + 1]
    prior = load_tsp_prior(args.checkpoint, cities=instances.size, device=args.device, precision=args.precision)
    settings = _settings(args)
    settings.seed += args.index  # the same result as instance `index` of a whole-file run
    solution = optimise_heatmaps(prior, coords, settings, progress=not args.quiet)
    tour = with_two_opt(coords, decode_heatmaps(solution.adjacency, coords))[0]
    reference = None if instances.tours is None else instances.tours[args.index]
    draw_solution(args.out, coords[0], solution.adjacency[0], solution.images[0, 0], tour, reference,
                  title=f"{args.instances.name}, instance {args.index}")
    print(f"wrote {args.out}")
    return 0


# ------------------------------------------------------------------------------ data
def _configure_data(p):
    p.add_argument("--count", type=_positive, default=5000, help="training instances")
    p.add_argument("--validation", type=int, default=256, help="validation instances (other seed)")
    p.add_argument("--cities", type=_positive, default=50)
    p.add_argument("--seed", type=int, default=1, help="training seed (validation uses seed + 1)")
    p.add_argument("--runs", type=_positive, default=1, help="LKH runs per instance")
    p.add_argument("--out", type=Path, default=Path("runs/tsp-data"), help="folder for trainN.txt, trainN.pt, valN.txt")
    p.add_argument("--quiet", action="store_true")


def _data(args) -> int:
    from .data import make_dataset, render_dataset

    if args.cities < 4:
        raise UsageError(f"--cities must be at least 4, got {args.cities}")
    n = args.cities
    if args.validation > 0:
        make_dataset(args.out / f"val{n}.txt", args.validation, n, args.seed + 1, args.runs, not args.quiet)
    train = make_dataset(args.out / f"train{n}.txt", args.count, n, args.seed, args.runs, not args.quiet)
    render_dataset(train, args.out / f"train{n}.pt", not args.quiet)
    print(f"wrote {len(train)} labelled instances and their tour images → {args.out}/train{n}.txt, train{n}.pt")
    return 0


# ------------------------------------------------------------------------------ install-prior
def _configure_install(p):
    p.add_argument("checkpoint", type=Path, help="a trained NAME.safetensors (with NAME.json beside it)")
    p.add_argument("--cities", type=_positive, required=True, help="instance size the tours were drawn from")
    p.add_argument("--name", default="tsp50", help="name in the package's weights folder")


def _install(args) -> int:
    from .solver import install_prior

    try:
        target = install_prior(args.checkpoint, args.cities, args.name)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    print(f"installed {args.checkpoint} as {target} (for {args.cities}-city instances)")
    return 0


SUBCOMMANDS = {
    "solve": ("solve instances; write tours in the same one-line format", _configure_solve, _solve),
    "eval": ("solve with the prior and baselines; print one table of lengths, gaps and times", _configure_eval, _eval),
    "show": ("draw one instance: cities, heat-map, rendered image, decoded tour", _configure_show, _show),
    "data": ("generate uniform instances, label them with LKH and render training images", _configure_data, _data),
    "install-prior": ("copy a trained tour-image prior into the package as a bundled prior", _configure_install, _install),
}


def _configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="tsp_command", metavar="SUBCOMMAND")
    for name, (help_text, configure, run) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        configure(sp)
        sp.set_defaults(_tsp_run=run)


def _run(args) -> int:
    run = getattr(args, "_tsp_run", None)
    if run is None:
        raise UsageError("diffprior tsp needs a subcommand: " + ", ".join(SUBCOMMANDS) + " (see diffprior tsp --help)")
    return run(args)


TSP_COMMAND = Command("tsp", "travelling-salesman tours with a tour-image diffusion prior (solve, eval, show, data)",
                      _configure, _run)
