"""The digit constraints judged by an independent classifier: accuracy, confidence and
diversity of the samples, next to real digits'.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/digits.py                       # every class, symmetry, thin
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/digits.py --only class --n 16   # the ten classes only
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/digits.py --only "class 3,symmetry" --baselines

Each constraint runs its example config (``examples/digits-*.toml``, as shipped: the best
recipe found) with the bundled ``digits`` U-Net prior, or ``--prior`` (a retrained one:
the benchmark is re-run with one command). ``class`` runs ``digits-class.toml`` once per
target 0…9. ``--config NAME=FILE`` swaps the config of one constraint (e.g. the paper's
recipe ``examples/digits-class-paper.toml``); ``--set KEY=VALUE`` overrides every config.
``--baselines`` adds (b) the constraint alone (``prior_weight = 0``, with an analytic
stand-in prior of the same shape, schedule and data range: the same result at no U-Net
cost) and (c) unconditional samples of the prior (ancestral DDPM from pure noise).

The judge (``digits-judge``) is never a constraint: another architecture than the guidance
classifier (max-pool VGG blocks vs stride-2 convolutions), another training split
(``judge`` vs ``prior``), and outlier exposure (noise, blobs, ink spots, overlaid digits
trained to a flat answer), so its confidence is low on junk. Figures per run:

- judge acc(c): share of samples the judge calls the asked-for class c, with a 95% bootstrap
  interval over the samples (and one for the mean over classes);
- judge conf: mean max-softmax of the judge; "> 0.9": share of samples judged with
  confidence above 0.9;
- diversity: mean pairwise RMS distance between samples (images mapped to [0, 1]); the
  reference is real ``heldout`` digits, of class c for class constraints, all otherwise;
  with a 95% bootstrap interval (samples resampled, pairs of distinct samples averaged);
- classes: histogram of the judge's answers among samples judged with confidence > 0.9;
- the constraint's own figure (symmetry MSE, mean ink, known-pixel MSE, stroke IoU);
- FD: Fréchet distance of judge features to real heldout digits (of class c, or all);
- seconds: optimisation time of the run (loading excluded).

Prints a markdown table and writes it (table.md), the figures (results.json), one PNG grid
per run and an all-class grid (classes.png, one row per class) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

# constraint → its example config
CONSTRAINTS = {
    **{f"class {c}": "digits-class.toml" for c in range(10)},
    "symmetry": "digits-symmetry.toml",
    "thin": "digits-thin.toml",
    "mask": "digits-mask.toml",
    "segmentation": "digits-segmentation.toml",
    "class 3 + symmetry": "digits-class3-symmetric.toml",
}
DEFAULT = [f"class {c}" for c in range(10)] + ["symmetry", "thin"]
CONFIDENT = 0.9


def target_class(name: str, config) -> int | None:
    """The digit a constraint asks for: c for ``class c`` (and ``class 3 + symmetry``), the
    class of the real digit behind a mask or segmentation target; None for the others."""
    from diffprior_images.digits import mnist_digits

    if name.startswith("class "):
        return int(name.split()[1])
    ref = getattr(config.terms[0], "image", None) or getattr(config.terms[0], "labels", None)
    if ref is None or not hasattr(ref, "index"):
        return None
    return int(mnist_digits(ref.split)[1][ref.index])


BOOTSTRAP = 2000  # resamples of the samples for the 95% intervals


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """RMS distances [n, n] between images mapped to [0, 1]."""
    flat = ((x.clamp(-1, 1) + 1) / 2).flatten(1).double()
    return torch.cdist(flat, flat) / flat.shape[1] ** 0.5


def diversity(x: torch.Tensor) -> float:
    """Mean pairwise RMS distance between images mapped to [0, 1] (0: all identical)."""
    n = len(x)
    return float(pairwise_distances(x).sum() / (n * (n - 1))) if n > 1 else 0.0


def resamples(n: int, seed: int = 0) -> torch.Tensor:
    """Bootstrap indices [BOOTSTRAP, n] (the same for every run of a benchmark: reproducible)."""
    return torch.randint(0, n, (BOOTSTRAP, n), generator=torch.Generator().manual_seed(seed))


def interval(values: torch.Tensor) -> list[float]:
    """The 95% percentile interval of bootstrap statistics."""
    lo, hi = torch.quantile(values.double(), torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return [lo, hi]


def diversity_interval(x: torch.Tensor) -> list[float]:
    """95% bootstrap interval of the diversity: samples resampled with replacement, the mean
    taken over pairs of distinct samples (a sample drawn twice is no pair)."""
    d, idx = pairwise_distances(x), resamples(len(x))
    means = []
    for chunk in idx.split(max(1, 4_000_000 // len(x) ** 2)):  # [r, n, n] at a time: bounded memory
        sub = d[chunk.unsqueeze(2), chunk.unsqueeze(1)]
        distinct = chunk.unsqueeze(2) != chunk.unsqueeze(1)
        means.append((sub * distinct).sum((1, 2)) / distinct.sum((1, 2)).clamp_min(1))
    return interval(torch.cat(means))


def judge_figures(x: torch.Tensor, judge, digit: int | None, reference: torch.Tensor) -> dict:
    from diffprior_images.evaluation import frechet_distance

    p = judge.probabilities(x)
    conf, answer = p.max(1)
    confident = conf > CONFIDENT
    figures = {
        "judge conf": float(conf.mean()),
        "confident": float(confident.float().mean()),
        "diversity": diversity(x),
        "classes": torch.bincount(answer[confident], minlength=10).tolist(),
        "FD": frechet_distance(judge.features(x), reference) if len(x) > 1 else float("nan"),
    }
    if len(x) > 1:
        figures["diversity 95%"] = diversity_interval(x)
    if digit is not None:
        hits = (answer == digit).float()
        figures["judge acc"] = float(hits.mean())
        figures["hits"] = hits.tolist()  # per sample: for intervals of the mean over classes
        figures["judge acc 95%"] = interval(hits[resamples(len(hits))].mean(1))
    return figures


def constraint_figures(name: str, x: torch.Tensor, terms) -> dict[str, float]:
    """How well samples x satisfy constraint ``name`` (computed without the guidance networks)."""
    from diffprior_images.evaluation import masked_error, mean_ink, symmetry_error
    from diffprior_images.terms import stroke_iou

    figures = {}
    if "symmetry" in name:
        figures["sym MSE"] = float(symmetry_error(x).mean())
    if name == "thin":
        figures["mean ink"] = float(mean_ink(x).mean())
    if name == "mask":
        term = terms[0].term
        figures["known MSE"] = float(masked_error(x, term.image, term.mask).mean())
    if name == "segmentation":
        labels = terms[0].term.labels
        figures["stroke IoU"] = float(stroke_iou(x[:, 0] > 0, labels > 0).mean())
    return figures


def stand_in_prior(prior):
    """An analytic prior with the U-Net's shape, schedule and data range (for prior_weight = 0)."""
    from diffprior import GaussianPrior

    shape = prior.shape
    return GaussianPrior(torch.zeros(shape), torch.ones(shape), prior.noise, data_range=prior.data_range)


def select(only: str | None) -> list[str]:
    if only is None:
        return list(DEFAULT)
    names = []
    for item in (s.strip() for s in only.split(",")):
        if item == "class":
            names += [f"class {c}" for c in range(10)]
        elif item in CONSTRAINTS:
            names.append(item)
        else:
            raise SystemExit(f"error: unknown constraint {item!r}; choose from: class, {', '.join(CONSTRAINTS)}")
    return names


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=16, help="samples per run (default 16)")
    p.add_argument("--only", default=None,
                   help="comma-separated constraints; 'class' = all ten (default: the ten classes, symmetry, thin)")
    p.add_argument("--config", action="append", default=[], metavar="NAME=FILE",
                   help="use FILE for constraint NAME ('class' for all ten), e.g. class=examples/digits-class-paper.toml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of every config (as diffprior run --set)")
    p.add_argument("--prior", default=None, help="U-Net checkpoint: bundled name or NAME.safetensors path (default: the configs')")
    p.add_argument("--baselines", action="store_true", help="also run each constraint alone and the unconditional prior")
    p.add_argument("--sample-steps", type=int, default=200, help="DDPM steps of the unconditional samples (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first sample")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "digits", help="folder for grids, table.md, results.json")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--merge", action="store_true",
                   help="keep the rows of OUT/results.json that this run does not redo (table and summary over both)")
    args = p.parse_args(argv)

    from diffprior import optimize, save_grid
    from diffprior.config.files import load_config
    from diffprior_images.digits import mnist_digits
    from diffprior.runs.runner import build
    from diffprior_images.evaluation import Judge

    torch.set_num_threads(args.threads)
    names = select(args.only)
    configs = dict(CONSTRAINTS)
    for item in args.config:
        key, _, path = item.partition("=")
        keys = [f"class {c}" for c in range(10)] if key == "class" else [key]
        if not path or any(k not in configs for k in keys):
            p.error(f"--config {item!r}: expected NAME=FILE with NAME one of: class, {', '.join(CONSTRAINTS)}")
        for k in keys:
            configs[k] = str(Path(path).resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seed, args.seed + args.n))
    overrides = list(args.overrides) + ([f"prior.checkpoint={json.dumps(args.prior)}"] if args.prior else [])

    judge = Judge()
    heldout, heldout_labels = mnist_digits("heldout")
    all_features = judge.features(heldout)
    class_features = {d: judge.features(heldout[heldout_labels == d]) for d in range(10)}

    rows = []  # dicts: constraint, condition, figures
    # what a constraint's own figure is on real digits (the reference for symmetry and thin)
    real_own = {k: v for n in ("symmetry", "thin") for k, v in constraint_figures(n, heldout, None).items()}
    rows.append({"constraint": "—", "condition": f"real heldout digits ({len(heldout)})",
                 **judge_figures(heldout, judge, None, all_features), **real_own, "seconds": 0.0})
    for d in sorted({target_class(n, None) for n in names if n.startswith("class ")}):
        real = heldout[heldout_labels == d]
        rows.append({"constraint": f"class {d}", "condition": f"real heldout {d}s ({len(real)})",
                     **judge_figures(real, judge, d, class_features[d]), "seconds": 0.0})

    conditions = ("prior + constraint", "constraint alone", "unconditional prior") if args.baselines else ("prior + constraint",)
    unconditional, class_rows = None, {}
    for name in names:
        config_path = ROOT / "examples" / configs[name]
        slug = name.replace(" + ", "-").replace(" ", "") if name.startswith("class") else Path(configs[name]).stem.removeprefix("digits-")
        extra = [f"terms.0.target={name.split()[1]}"] if name.startswith("class ") and "+" not in name else []
        for condition in conditions:
            alone = ["prior_weight=0"] if condition == "constraint alone" else []
            config = load_config(config_path, overrides + extra + alone)
            prior, variable, terms, options = build(config)
            digit = target_class(name, config)
            start = time.perf_counter()  # sampling or optimisation only, not loading
            if condition == "unconditional prior":
                if unconditional is None:
                    print(f"unconditional prior: {args.n} samples, {args.sample_steps} DDPM steps", file=sys.stderr)
                    unconditional = prior.sample(args.n, steps=args.sample_steps, method="ddpm", seeds=seeds, progress=True)
                    save_grid(unconditional, args.out / "unconditional.png", scale=2)
                x = unconditional
            else:
                print(f"{name}: {condition} ({config_path.name})", file=sys.stderr)
                run_prior = stand_in_prior(prior) if condition == "constraint alone" else prior
                x = optimize(run_prior, variable, terms, seeds, options, progress=True).x.clamp(-1, 1)  # the image is clip(η)
                suffix = "alone" if condition == "constraint alone" else "prior"
                save_grid(x, args.out / f"{slug}-{suffix}.png", scale=2)
                if condition == "prior + constraint" and digit is not None and name.startswith("class ") and "+" not in name:
                    class_rows[digit] = x
            seconds = time.perf_counter() - start
            reference = all_features if digit is None else class_features[digit]
            row = {"constraint": name, "condition": condition, "config": str(config_path.relative_to(ROOT)) if config_path.is_relative_to(ROOT) else str(config_path),
                   **judge_figures(x, judge, digit, reference), **constraint_figures(name, x, terms), "seconds": seconds}
            rows.append(row)
            print(format_row(row), file=sys.stderr)

    if class_rows:
        grid = torch.cat([class_rows[d] for d in sorted(class_rows)])
        save_grid(grid, args.out / "classes.png", ncol=args.n, scale=2)
    if args.merge:
        rows = merged_rows(args.out / "results.json", rows)
    summary = summarise(rows)
    table = format_table(rows, summary, args)
    (args.out / "table.md").write_text(table + "\n")
    (args.out / "results.json").write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "rows": rows,
                                                       "summary": summary}, indent=2, default=str) + "\n")
    print(table)
    return 0


def merged_rows(path: Path, rows: list[dict]) -> list[dict]:
    """The rows of an earlier results file with those of this run put in place (same
    constraint and condition), this run's other rows appended."""
    if not path.exists():
        return rows
    new = {(r["constraint"], r["condition"]): r for r in rows}
    old = json.loads(path.read_text())["rows"]
    kept = [new.pop((r["constraint"], r["condition"]), r) for r in old]
    return kept + list(new.values())


def summarise(rows) -> dict:
    """Targets of issue 14 over the class runs: accuracy, confidence and diversity vs real digits."""
    real = {r["constraint"]: r for r in rows if r["condition"].startswith("real heldout") and r["constraint"] != "—"}
    runs = [r for r in rows if r["condition"] == "prior + constraint" and r["constraint"] in real]
    summary = {}
    if runs:
        acc = [r["judge acc"] for r in runs]
        summary["classes"] = len(runs)
        summary["judge acc mean"] = sum(acc) / len(acc)
        # each class's samples resampled on their own; the interval of the mean over classes
        means = torch.stack([torch.tensor(r["hits"])[resamples(len(r["hits"]), seed=k)].mean(1)
                             for k, r in enumerate(runs)]).mean(0)
        summary["judge acc mean 95%"] = interval(means)
        summary["judge acc min"] = min(acc)
        summary["conf gap (samples - real), min"] = min(r["judge conf"] - real[r["constraint"]]["judge conf"] for r in runs)
        summary["diversity / real, min"] = min(r["diversity"] / real[r["constraint"]]["diversity"] for r in runs)
        summary["diversity / real, mean"] = sum(r["diversity"] / real[r["constraint"]]["diversity"] for r in runs) / len(runs)
        summary["seconds per class, mean"] = sum(r["seconds"] for r in runs) / len(runs)
    all_real = next((r for r in rows if r["constraint"] == "—"), None)
    for r in rows:
        if r["constraint"] in ("symmetry", "thin") and r["condition"] == "prior + constraint":
            summary[f"{r['constraint']}: distinct confident classes"] = sum(1 for c in r["classes"] if c > 0)
            if all_real is not None:
                summary[f"{r['constraint']}: conf gap (samples - real digits)"] = r["judge conf"] - all_real["judge conf"]
    return summary


def _histogram(classes) -> str:
    return " ".join(f"{d}:{n}" for d, n in enumerate(classes) if n) or "none"


def _with_interval(row, key: str, digits: int) -> str:
    value = f"{row[key]:.{digits}f}"
    if f"{key} 95%" in row:
        lo, hi = row[f"{key} 95%"]
        value += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return value


def format_row(row) -> str:
    acc = _with_interval(row, "judge acc", 2) if "judge acc" in row else "—"
    own = ", ".join(f"{k} {row[k]:.3f}" for k in ("sym MSE", "mean ink", "known MSE", "stroke IoU") if k in row) or "—"
    return (f"| {row['constraint']} | {row['condition']} | {acc} | {row['judge conf']:.3f} | {row['confident']:.2f} | "
            f"{_with_interval(row, 'diversity', 3)} | {_histogram(row['classes'])} | {own} | {row['FD']:.0f} | {row['seconds']:.0f} |")


def _summary_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, list):
        return "[" + ", ".join(f"{e:.3f}" for e in v) + "]"
    return str(v)


def format_table(rows, summary, args) -> str:
    configs = sorted({r["config"] for r in rows if "config" in r})
    head = (f"n = {args.n} samples per run (seeds {args.seed}…{args.seed + args.n - 1}); configs: {', '.join(configs)}"
            + (f"; overrides: {' '.join(args.overrides)}" if args.overrides else "")
            + (f"; prior {args.prior!r}" if args.prior else "")
            + ("; merged into the rows of an earlier run in the same folder (see its command)" if args.merge else "") + "\n\n")
    lines = ["| constraint | samples | judge acc ↑ [95%] | judge conf ↑ | > 0.9 | diversity [95%] | confident classes | constraint figure | FD ↓ | seconds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [format_row(r) for r in rows]
    tail = "\n\n" + "\n".join(f"- {k}: {_summary_value(v)}" for k, v in summary.items())
    return head + "\n".join(lines) + tail


if __name__ == "__main__":
    sys.exit(main())
