"""``diffprior tsp solve|eval|report|show|data|install-prior``. Imports numpy/torch only when run."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffprior import Command, UsageError, positive_int, subcommands




def _add_prior_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("instances", type=Path, help="instance file: one 'x1 y1 ... xN yN [output t1 ... tN t1]' per line")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N instances")
    p.add_argument("--checkpoint", default=None, help="tour-image prior (default: the bundled tsp50)")
    p.add_argument("--steps", type=positive_int, default=256, help="optimisation steps (paper: 256)")
    p.add_argument("--gradient", choices=("full", "sds"), default="full",
                   help="full: back-propagate through the U-Net (paper); sds: no U-Net backward, ~3x cheaper")
    p.add_argument("--batch-size", type=positive_int, default=64, help="instances optimised together")
    p.add_argument("--seed", type=int, default=0, help="instance i uses seed + i")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: the U-Net under bf16 autocast (faster on CPUs with bf16 kernels and GPUs)")
    p.add_argument("--uniform-weight", type=_unit_interval, default=0.0, metavar="W",
                   help="decode (1 − W)·heat-map + W·uniform: 0 is the paper's decoding; on validation instances 0.1 "
                        "improved greedy tours, not 2-opt (docs/tutorials/tsp.md, 'Decoding the heat-map')")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any key of the recipe's run config (diffprior_tsp/recipe.toml), e.g. optimizer.lr=0.5; "
                        "applied after the flags above")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {text!r}")
    return value


def _overrides(args) -> list[str]:
    """The flags as recipe overrides, then --set (which wins)."""
    sets = [f"optimizer.steps={args.steps}", f"gradient={args.gradient}", f"batch_size={args.batch_size}",
            f"device={args.device}", f"prior.precision={args.precision}"]
    if args.checkpoint is not None:
        sets.append(f"prior.checkpoint={Path(args.checkpoint).resolve() if Path(args.checkpoint).exists() else args.checkpoint}")
    return sets + list(args.overrides)


def _heatmaps(prior, args, *, start: int, count: int, seed: int, progress: bool):
    from .solver import optimise_heatmaps

    return optimise_heatmaps(prior, args.instances, _overrides(args), start=start, count=count, seed=seed,
                             progress=progress)


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
    from . import scaling
    from .instances import format_instance, tour_lengths
    from .solver import decode_tours

    world = scaling.setup(args)  # torchrun: join the group; args.device becomes this rank's device
    instances, prior = _load(args)
    # under torchrun: this rank's whole batches (instance i keeps seed + i); rank 0 writes every tour
    part = _instance_part(len(instances), args, world)
    coords = instances.coords[part.start:part.stop]
    solution = _heatmaps(prior, args, start=part.start, count=len(part), seed=args.seed + part.start,
                         progress=not args.quiet and world.is_main)
    tours = decode_tours(solution.adjacency, coords, args.uniform_weight, improve=not args.no_two_opt)
    tours = scaling.gather_arrays({"tours": tours})["tours"]
    if not world.is_main:
        return 0
    text = "".join(format_instance(c, t) + "\n" for c, t in zip(instances.coords, tours))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        mean = float(tour_lengths(instances.coords, tours).mean())
        on = f" on {world.size} processes" if world.distributed else ""
        print(f"wrote {len(tours)} tours (mean length {mean:.4f}){on} → {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# ------------------------------------------------------------------------------ eval
def _configure_eval(p):
    _add_prior_options(p)
    p.add_argument("--samples", type=positive_int, default=1,
                   help="K: optimise K heat-maps per instance (seeds seed + i + k·10⁶) and keep the shortest tour")
    p.add_argument("--restarts", type=positive_int, default=8,
                   help="R: perturbed-heat-map restarts (greedy + 2-opt, best of R) on the uniform and the prior's heat-map")
    p.add_argument("--sigma", type=float, default=0.3, help="log-normal noise on edge scores for the restarts")
    p.add_argument("--no-matched-time", action="store_true",
                   help="skip the uniform-restarts baseline given the prior's wall time")
    p.add_argument("--pictures", type=Path, default=None, help="also draw the first few instances into this folder")
    p.add_argument("--pictures-count", type=positive_int, default=4)
    p.add_argument("--json", type=Path, default=None, help="also write the table (and per-instance gaps) as JSON")
    p.add_argument("--plot", type=Path, default=None, help="also draw gap against seconds per instance (PNG)")
    p.add_argument("--heatmaps", type=Path, default=None,
                   help="also save the optimised heat-maps (NPZ: adjacency [M, K, N, N], coords, instance index) "
                        "to decode them again later without optimising")
    p.add_argument("--no-lkh", action="store_true", help="skip the elkai (LKH) baseline")
    p.add_argument("--baselines-only", action="store_true", help="skip the prior (the baselines are fast on any set)")
    from diffprior import shard_argument

    shard_argument(p, "instances (whole batches of --batch-size)")


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


SAMPLE_SEED_STRIDE = 10**6  # sample k of instance i uses seed + i + k·stride: independent of the batch


def _eval(args) -> int:
    from . import scaling

    _check_eval_args(args)
    world = scaling.setup(args)  # torchrun: join the group; args.device becomes this rank's device
    prior, instances, part, total = _eval_instances(args, world)
    seed0 = args.seed + part.start
    prior_runs = None
    if not args.baselines_only:
        prior_runs = _prior_runs(prior, args, part, instances.coords, seed0, progress=not args.quiet and world.is_main)
    rows = (prior_runs.rows if prior_runs else []) + _baseline_rows(args, instances.coords, seed0, prior_runs)
    if args.pictures and prior_runs is not None and part.start == 0:  # the process that holds instance 0
        _draw_pictures(args, instances, prior_runs)
    return _gather_and_report(args, world, part, total, instances, rows, prior_runs)


def _check_eval_args(args) -> None:
    import numpy as np

    if args.sigma < 0 or not np.isfinite(args.sigma):
        raise UsageError(f"--sigma must be a finite number >= 0, got {args.sigma}")
    if not args.shard.whole and args.json is None:
        raise UsageError(f"--shard {args.shard} writes a partial result: give --json PART.json "
                         "(then `diffprior merge PARTS... --out EVAL.json`)")
    if args.heatmaps and args.baselines_only:
        raise UsageError("--heatmaps saves the prior's heat-maps, which --baselines-only skips; drop one of them")


def _eval_instances(args, world):
    """(the prior or None, this process's instances, their range in the file, the file's count)."""
    from .instances import Instances, read_instances

    prior = None
    if args.baselines_only:
        instances = read_instances(args.instances, args.limit)
    else:
        instances, prior = _load(args)
    if instances.tours is None:
        raise UsageError(f"{args.instances}: eval needs reference tours ('output ...' on every line) to compute gaps")
    # this process's instances: whole batches of the file (shard, then rank); instance i keeps seed + i
    total = len(instances)
    part = _instance_part(total, args, world)
    instances = Instances(instances.coords[part.start:part.stop], instances.tours[part.start:part.stop])
    return prior, instances, part, total


@dataclass
class _PriorRuns:
    """The prior's rows (method, role, tours, seconds) and what the rest of eval needs of its
    K samples: the first sample's solution, every sample's heat-maps, the best 2-opt tours and
    the seconds a greedy + 2-opt tour took (for the matched-time baseline)."""

    rows: list
    first: Any
    heatmaps: list
    improved: Any
    seconds: float


def _prior_runs(prior, args, part: range, coords, seed0: int, progress: bool) -> _PriorRuns:
    """K heat-maps per instance, each decoded greedily, with 2-opt and with perturbed restarts;
    each decoding keeps the best of the K samples."""
    from .evaluation import best_of, perturbed_restarts
    from .solver import decode_heatmaps, mix_uniform, with_two_opt

    R, sigma, K = args.restarts, args.sigma, args.samples
    greedy_runs, improved_runs, restart_runs, heatmaps, seconds = [], [], [], [], 0.0
    for k in range(K):
        sample_seed = seed0 + k * SAMPLE_SEED_STRIDE
        solution = _heatmaps(prior, args, start=part.start, count=len(coords), seed=sample_seed, progress=progress)
        if k == 0:
            first_solution = solution
        heat_map = mix_uniform(solution.adjacency, args.uniform_weight)
        greedy, t_greedy = _timed(decode_heatmaps, heat_map, coords)
        improved, t_opt = _timed(with_two_opt, coords, greedy)
        restarted, t_rest = _timed(perturbed_restarts, coords, heat_map, R, sigma, seed=sample_seed)
        heatmaps.append(solution.adjacency)
        greedy_runs.append(greedy)
        improved_runs.append(improved)
        restart_runs.append(restarted)
        seconds += solution.seconds
    # the decodings' times are those of the last sample, counted K times
    label = "diffprior" + (f", best of {K} samples" if K > 1 else "")
    greedy, improved = best_of(coords, greedy_runs), best_of(coords, improved_runs)
    rows = [(f"{label}, greedy", "prior-greedy", greedy, seconds + t_greedy * K),
            (f"{label}, greedy + 2-opt", "prior-two-opt", improved, seconds + (t_greedy + t_opt) * K),
            (f"{label}, {R * K} restarts (σ {sigma}) + 2-opt", "prior-restarts", best_of(coords, restart_runs),
             seconds + t_rest * K)]
    return _PriorRuns(rows, first_solution, heatmaps, improved, seconds + (t_greedy + t_opt) * K)


def _baseline_rows(args, coords, seed0: int, prior_runs: _PriorRuns | None) -> list:
    """The uniform heat-map's decodings, the matched-time restarts (given the prior's time),
    nearest neighbour and LKH, in the table's order."""
    from .solver import lkh_tours, nearest_neighbour, with_two_opt

    rows, t_restarts = _uniform_rows(args, coords, seed0)
    if prior_runs is not None and not args.no_matched_time:
        rows.append(_matched_time_row(args, coords, seed0, prior_runs.seconds, t_restarts))
    nn, t_nn = _timed(nearest_neighbour, coords)
    nn2, t_nn2 = _timed(with_two_opt, coords, nn)
    rows.append(("nearest neighbour + 2-opt", "nearest-neighbour", nn2, t_nn + t_nn2))
    if not args.no_lkh:
        lkh, t_lkh = _timed(lkh_tours, coords)
        rows.append(("elkai (LKH, 1 run)", "lkh", lkh, t_lkh))
    return rows


def _uniform_rows(args, coords, seed0: int) -> tuple[list, float]:
    """The uniform heat-map: greedy, with 2-opt, best of K perturbed (as many decodings as the
    prior's K samples) and R·K restarts; also the restarts' seconds."""
    from .evaluation import perturbed_restarts
    from .solver import uniform_heatmap_tours, with_two_opt

    R, sigma, K = args.restarts, args.sigma, args.samples
    uniform, t_uni = _timed(uniform_heatmap_tours, coords)
    uniform2, t_uni2 = _timed(with_two_opt, coords, uniform)
    rows = [("uniform heat-map, greedy", "uniform-greedy", uniform, t_uni),
            ("uniform heat-map, greedy + 2-opt", "uniform-two-opt", uniform2, t_uni + t_uni2)]
    if K > 1:
        tours, t_k = _timed(perturbed_restarts, coords, None, K, sigma, seed=seed0, two_opt_moves=False)
        rows.append((f"uniform heat-map, best of {K} perturbed, greedy", "uniform-greedy-best-of-k", tours, t_k))
        tours, t_k = _timed(perturbed_restarts, coords, None, K, sigma, seed=seed0)
        rows.append((f"uniform heat-map, best of {K} perturbed + 2-opt", "uniform-two-opt-best-of-k", tours, t_k))
    restarts, t_r = _timed(perturbed_restarts, coords, None, R * K, sigma, seed=seed0)
    rows.append((f"uniform heat-map, {R * K} restarts (σ {sigma}) + 2-opt", "uniform-restarts", restarts, t_r))
    return rows, t_r


def _matched_time_row(args, coords, seed0: int, prior_seconds: float, t_restarts: float) -> tuple:
    """As many uniform restarts as fit in the prior's wall time per instance."""
    from . import scaling
    from .evaluation import perturbed_restarts

    # under torchrun every rank uses the count from the times of all ranks
    prior_seconds_all, t_r_all, M_all = scaling.sum_over_ranks(prior_seconds, t_restarts, len(coords))
    per_restart = t_r_all / (M_all * args.restarts * args.samples)
    matched = int(min(4096, max(1, round(prior_seconds_all / (M_all * per_restart)))))
    tours, t_m = _timed(perturbed_restarts, coords, None, matched, args.sigma, seed=seed0)
    return (f"uniform heat-map, {matched} restarts (matched time) + 2-opt", "uniform-matched", tours, t_m)


def _draw_pictures(args, instances, prior_runs: _PriorRuns) -> None:
    from .pictures import draw_solution

    first = prior_runs.first
    args.pictures.mkdir(parents=True, exist_ok=True)
    for i in range(min(args.pictures_count, len(instances))):
        path = args.pictures / f"instance-{i:04d}.png"
        draw_solution(path, instances.coords[i], first.adjacency[i], first.images[i, 0], prior_runs.improved[i],
                      instances.tours[i], title=f"instance {i}")
    print(f"pictures → {args.pictures}/")


def _gather_and_report(args, world, part: range, total: int, instances, rows: list, prior_runs) -> int:
    """Per-instance lengths gathered from every rank, then the report, or a --shard part."""
    import numpy as np

    from . import scaling
    from .instances import tour_lengths

    coords = instances.coords
    reference = tour_lengths(coords, instances.tours)
    heat = {} if prior_runs is None else _heat_statistics(prior_runs, rows, instances.tours)
    lengths = {f"method.{k}": tour_lengths(coords, tours) for k, (_, _, tours, _) in enumerate(rows)}
    joined = scaling.gather_arrays({"reference": reference, **lengths, **{f"heat.{k}": v for k, v in heat.items()}})
    if args.heatmaps:
        _save_heatmaps(args, scaling.gather_arrays({
            "adjacency": np.stack(prior_runs.heatmaps, 1).astype(np.float32), "coords": coords,
            "index": np.arange(part.start, part.stop)}), world)
    seconds_all = scaling.sum_over_ranks(*(r[3] for r in rows))
    methods = [(name, role, joined[f"method.{k}"], seconds_all[k]) for k, (name, role, _, _) in enumerate(rows)]
    heat = {k: joined[f"heat.{k}"] for k in heat}
    header = _eval_header(args, instances)
    if not world.is_main:
        return 0
    if not args.shard.whole:
        shard_rows = range(part.start, part.start + len(joined["reference"]))
        scaling.write_part(args.json, args.shard, shard_rows, total, header, methods, joined["reference"], heat)
        print(f"shard {args.shard}: instances {shard_rows.start}..{shard_rows.stop - 1} of {total} → {args.json} "
              "(a partial result; join the shards with `diffprior merge PARTS... --out EVAL.json`)")
        return 0
    return _report(header, methods, joined["reference"], heat, json_path=args.json, plot=args.plot)


def _heat_statistics(prior_runs: _PriorRuns, rows: list, reference_tours) -> dict:
    """Per instance: whether the first sample's heat-map is a tour, and the share of the
    reference's edges in the prior's and the uniform heat-map's greedy tours."""
    import numpy as np

    from .evaluation import is_single_cycle, shared_edges

    uniform_greedy = next(tours for _, role, tours, _ in rows if role == "uniform-greedy")
    return {"single_cycle": is_single_cycle(prior_runs.first.adjacency).astype(np.float64),
            "greedy_shared_edges": shared_edges(rows[0][2], reference_tours),
            "uniform_greedy_shared_edges": shared_edges(uniform_greedy, reference_tours)}


def _eval_header(args, instances) -> dict:
    """What the report and a --shard part say about how the evaluation was run."""
    from . import scaling
    from .solver import recipe, recipe_settings

    return {"instances_file": str(args.instances), "instances_sha256": scaling.file_digest(args.instances),
            "cities": instances.size, "settings": recipe_settings(recipe(args.instances, _overrides(args), seed=args.seed)),
            "samples": args.samples, "restarts": args.restarts, "sigma": args.sigma,
            "uniform_weight": args.uniform_weight, "first_seed": args.seed,
            "checkpoint": args.checkpoint, "baselines_only": args.baselines_only, "device": args.device,
            "precision": args.precision}


def _save_heatmaps(args, arrays: dict, world) -> None:
    """The heat-maps of every instance and sample: sample k of instance ``index`` used seed
    ``first_seed + index + k·stride``. float32, so decoding them again gives the same tours."""
    import numpy as np

    if world.is_main:
        args.heatmaps.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.heatmaps, **arrays, first_seed=args.seed, seed_stride=SAMPLE_SEED_STRIDE,
                            instances_file=str(args.instances))
        print(f"heat-maps ({', '.join(map(str, arrays['adjacency'].shape))}) → {args.heatmaps}")


def _instance_part(total: int, args, world) -> range:
    """This process's instances: whole batches of --batch-size (its shard's, then its rank's
    part); a clear error when there are fewer batches than shards × processes."""
    from diffprior import Shard, process_rows

    return process_rows(total, args.batch_size, getattr(args, "shard", Shard()), world, what="instances")


def _report(header: dict, methods: list[tuple], reference, heat: dict, *, json_path=None, plot=None) -> int:
    """The table, the paired comparisons and the JSON of a whole instance file, from per-instance
    tour lengths (``methods``: (name, role, lengths, seconds)); what ``merge`` prints too."""
    table, gaps, name_of = _method_table(methods, reference)
    comparisons, heatmap = [], {}
    if not header["baselines_only"]:
        heatmap = {"single_cycle_share": float(heat["single_cycle"].mean()),
                   "greedy_shared_edges": float(heat["greedy_shared_edges"].mean()),
                   "uniform_greedy_shared_edges": float(heat["uniform_greedy_shared_edges"].mean())}
        comparisons = _paired_comparisons(gaps, name_of, seed=header["first_seed"])
    _print_report(header, reference, table, heatmap, comparisons)
    if json_path:
        _write_report_json(Path(json_path), header, reference, table, comparisons, heatmap, gaps)
    if plot:
        from .evaluation import plot_gap_against_time

        path = plot_gap_against_time(table, plot, f"TSP-{header['cities']}, {len(reference)} instances of "
                                                  f"{Path(header['instances_file']).name}")
        print(f"gap against time → {path}")
    return 0


def _method_table(methods: list[tuple], reference) -> tuple[list[dict], dict, dict]:
    """The table's rows, each method's per-instance gaps (%) and the method name of each role."""
    M = len(reference)
    table, gaps, name_of = [], {}, {}
    for name, role, lengths, seconds in methods:
        gaps[name] = 100 * (lengths / reference - 1)
        name_of[role] = name
        table.append({"method": name, "mean_length": float(lengths.mean()),
                      "gap_percent": 100 * (float(lengths.sum()) / float(reference.sum()) - 1),
                      "seconds_per_instance": seconds / M})
    return table, gaps, name_of


# each decoding of the prior's heat-map against the same decoding of the uniform heat-map
_PAIRS = [("prior-greedy", "uniform-greedy"), ("prior-two-opt", "uniform-two-opt"),
          ("prior-greedy", "uniform-greedy-best-of-k"), ("prior-two-opt", "uniform-two-opt-best-of-k"),
          ("prior-restarts", "uniform-restarts"), ("prior-two-opt", "uniform-matched")]


def _paired_comparisons(gaps: dict, name_of: dict, seed: int) -> list[dict]:
    """The paired bootstrap of the gap difference, wins and losses of every pair present."""
    from .evaluation import paired_bootstrap

    comparisons = []
    for a, b in ((name_of[a], name_of[b]) for a, b in _PAIRS if a in name_of and b in name_of):
        mean, low, high = paired_bootstrap(gaps[a], gaps[b], seed=seed)
        wins = int((gaps[a] < gaps[b] - 1e-9).sum())
        losses = int((gaps[a] > gaps[b] + 1e-9).sum())
        comparisons.append({"method": a, "baseline": b, "gap_difference": mean, "low": low, "high": high,
                            "wins": wins, "losses": losses})
    return comparisons


def _print_report(header: dict, reference, table: list[dict], heatmap: dict, comparisons: list[dict]) -> None:
    s = header["settings"]
    print(f"TSP-{header['cities']}: {len(reference)} instances of {Path(header['instances_file'])}; "
          f"reference mean length {float(reference.mean()):.5f}")
    if not header["baselines_only"]:
        print(f"prior: {header['checkpoint'] or 'bundled tsp50'}; {s['steps']} steps, gradient {s['gradient']}, "
              f"batch {s['batch_size']}, samples {header['samples']}, device {header['device']}, "
              f"precision {header['precision']}"
              + (f"; decoded with uniform weight {header['uniform_weight']}" if header["uniform_weight"] else ""))
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


def _write_report_json(path: Path, header: dict, reference, table, comparisons, heatmap, gaps) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "instances": len(reference), "cities": header["cities"], "settings": header["settings"],
        "samples": header["samples"], "restarts": header["restarts"], "sigma": header["sigma"],
        "uniform_weight": header["uniform_weight"],
        "reference_mean": float(reference.mean()), "rows": table,
        "comparisons": comparisons, "heatmap": heatmap, "first_seed": header["first_seed"],
        "per_instance_gap_percent": {k: [round(float(g), 6) for g in v] for k, v in gaps.items()}}, indent=1) + "\n")


def merge_eval_parts(parts: list, out: Path) -> int:
    """``diffprior merge`` of ``tsp eval --shard I/N --json PART.json`` parts: the whole file's
    table and JSON (at ``out``), equal to one ``tsp eval`` of the whole file."""
    from .scaling import join_parts

    header, methods, reference, heat = join_parts(parts)
    out = Path(out)
    if out.is_dir() or not out.suffix:
        out = out / "eval.json"
    code = _report(header, methods, reference, heat, json_path=out)
    print(f"merged {len(parts)} shard(s) → {out}")
    return code


# ------------------------------------------------------------------------------ report
def _configure_report(p):
    p.add_argument("parts", type=Path, nargs="+", help="PART.json files of one `tsp eval --shard I/N --json` evaluation")
    p.add_argument("--json", type=Path, default=None, help="also write the table (and per-instance gaps) as JSON")
    p.add_argument("--plot", type=Path, default=None, help="also draw gap against seconds per instance (PNG)")


def _report_parts(args) -> int:
    """The shards of an evaluation run so far, read as one evaluation of the instances they
    cover: a long evaluation can be looked at before all its shards are done."""
    from diffprior import read_part

    from .scaling import join_parts

    hint = "not a part of a sharded evaluation; write parts with diffprior tsp eval ... --shard I/N --json PART.json"
    parts = []
    for path in args.parts:
        try:
            path, info = read_part(path)
        except UsageError as exc:
            raise UsageError(f"{exc} ({hint})") from None
        if info["kind"] != "tsp eval":
            raise UsageError(f"{path}: {hint}")
        parts.append((path, info))
    header, methods, reference, heat = join_parts(parts, allow_missing=True)
    count = parts[0][1]["shard"][1]
    shards = sorted(info["shard"][0] for _, info in parts)
    print(f"shards {', '.join(map(str, shards))} of {count} ({len(reference)} of {header['total']} instances)"
          + ("" if len(shards) == count else f"; `diffprior merge` joins all {count} into the whole file's figures"))
    return _report(header, methods, reference, heat, json_path=args.json, plot=args.plot)


# ------------------------------------------------------------------------------ show
def _configure_show(p):
    _add_prior_options(p)
    p.add_argument("--index", type=int, default=0, help="which instance of the file (0-based)")
    p.add_argument("--out", type=Path, default=Path("tsp.png"), help="PNG to write")


def _show(args) -> int:
    from .instances import read_instances
    from .pictures import draw_solution
    from .solver import decode_tours, load_tsp_prior

    instances = read_instances(args.instances)
    if not 0 <= args.index < len(instances):
        raise UsageError(f"--index {args.index} is outside the file's {len(instances)} instances (0..{len(instances) - 1})")
    coords = instances.coords[args.index:args.index + 1]
    prior = load_tsp_prior(args.checkpoint, cities=instances.size, device=args.device, precision=args.precision)
    # the same result as instance `index` of a whole-file run
    solution = _heatmaps(prior, args, start=args.index, count=1, seed=args.seed + args.index, progress=not args.quiet)
    tour = decode_tours(solution.adjacency, coords, args.uniform_weight)[0]
    reference = None if instances.tours is None else instances.tours[args.index]
    draw_solution(args.out, coords[0], solution.adjacency[0], solution.images[0, 0], tour, reference,
                  title=f"{args.instances.name}, instance {args.index}")
    print(f"wrote {args.out}")
    return 0


# ------------------------------------------------------------------------------ data
def _configure_data(p):
    p.add_argument("--count", type=positive_int, default=5000, help="training instances")
    p.add_argument("--validation", type=int, default=256, help="validation instances (other seed)")
    p.add_argument("--cities", type=positive_int, default=50)
    p.add_argument("--seed", type=int, default=1, help="training seed (validation uses seed + 1)")
    p.add_argument("--runs", type=positive_int, default=1, help="LKH runs per instance")
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
    p.add_argument("--cities", type=positive_int, required=True, help="instance size the tours were drawn from")
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
    "report": ("the figures of the --shard parts of an evaluation run so far, as one evaluation of their instances",
               _configure_report, _report_parts),
    "show": ("draw one instance: cities, heat-map, rendered image, decoded tour", _configure_show, _show),
    "data": ("generate uniform instances, label them with LKH and render training images", _configure_data, _data),
    "install-prior": ("copy a trained tour-image prior into the package as a bundled prior", _configure_install, _install),
}


_configure, _run = subcommands("tsp", SUBCOMMANDS)


TSP_COMMAND = Command("tsp", "travelling-salesman tours with a tour-image diffusion prior (solve, eval, report, show, data)",
                      _configure, _run, merge=merge_eval_parts)
