"""The paper's digit experiment: each constraint (a) with the prior, (b) alone, and (c) the
unconditional prior, judged by an independent classifier.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/digits.py                 # paper scale: 64 samples, 1000 steps
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/digits.py --n 16 --steps 200 --gradient sds --lr 0.02

Each constraint runs its example config (``examples/digits-*.toml``) with the bundled
``digits`` U-Net prior; ``--steps``, ``--lr`` and ``--gradient`` override the recipe.
(b) is the same config with ``prior_weight = 0``. The prior term then adds nothing to the
gradient, so those runs use an analytic stand-in prior of the same shape, schedule and data
range instead of the U-Net (the same random draws, the same result, no U-Net cost).
(c) is ancestral DDPM sampling from pure noise.

Figures: constraint satisfaction (judge accuracy for class 3, symmetry MSE, mean ink,
known-pixel MSE, stroke IoU) and realism: the judge's confidence (mean max-softmax) and the
Fréchet distance (FD) of its hidden features to real ``heldout`` digits: the 50 of the class
a constraint asks for (3 for the class constraints, the target digit's class for mask and
segmentation), all 500 otherwise. For those constraints the judge's accuracy on that class
is shown too. The judge
(``digits-judge``) was trained on the ``judge`` split only and is never used as a constraint.
Real digits from the ``prior`` split, as many as the samples, give the FD floor at that size.

Prints a markdown table and writes it with one PNG grid per run into ``--out``.
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
    "class 3": "digits-class.toml",
    "symmetry": "digits-symmetry.toml",
    "thin": "digits-thin.toml",
    "mask": "digits-mask.toml",
    "segmentation": "digits-segmentation.toml",
    "class 3 + symmetry": "digits-class3-symmetric.toml",
}
CONDITIONS = ("prior + constraint", "constraint alone", "unconditional prior")


def target_class(name: str, config) -> int | None:
    """The digit a constraint asks for: 3 for the class constraints, the class of the real
    digit that a mask or segmentation target comes from; None for the others."""
    from diffprior_images.digits import mnist_digits

    if name.startswith("class 3"):
        return 3
    ref = getattr(config.terms[0], "image", None) or getattr(config.terms[0], "labels", None)
    if ref is None or not hasattr(ref, "index"):
        return None
    return int(mnist_digits(ref.split)[1][ref.index])


def constraint_figures(name: str, x: torch.Tensor, terms, judge, digit: int | None) -> dict[str, float]:
    """How well samples x satisfy constraint ``name`` (computed without the guidance networks)."""
    from diffprior_images.evaluation import masked_error, mean_ink, symmetry_error
    from diffprior_images.terms import stroke_iou

    figures = {}
    if digit is not None:
        figures[f"judge acc({digit})"] = judge.accuracy(x, digit)
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


def realism(x: torch.Tensor, judge, reference: torch.Tensor) -> dict[str, float]:
    """Judge confidence, and FD of judge features to the real ``reference`` features."""
    from diffprior_images.evaluation import frechet_distance

    return {"judge conf": judge.confidence(x), "FD": frechet_distance(judge.features(x), reference)}


def stand_in_prior(prior):
    """An analytic prior with the U-Net's shape, schedule and data range (for prior_weight = 0)."""
    from diffprior import GaussianPrior

    shape = prior.shape
    return GaussianPrior(torch.zeros(shape), torch.ones(shape), prior.noise, data_range=prior.data_range)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=64, help="samples per run (default 64)")
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the configs' 1000)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the configs' 0.01)")
    p.add_argument("--weight", default=None,
                   help="weight of every constraint term, a number or a schedule like '{linear=[0.05,0.0]}' (default: the configs')")
    p.add_argument("--gradient", choices=("full", "sds"), default="full", help="prior-term gradient (default: full, as the paper)")
    p.add_argument("--sample-steps", type=int, default=1000, help="DDPM steps of the unconditional samples (default 1000)")
    p.add_argument("--prior", default="digits", help="U-Net checkpoint: bundled name or NAME.safetensors path")
    p.add_argument("--only", default=None, help="comma-separated constraints (default: all): " + ", ".join(CONSTRAINTS))
    p.add_argument("--seed", type=int, default=0, help="seed of the first sample")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "digits", help="folder for grids and table.md")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    from diffprior import optimize, save_grid
    from diffprior.config import load_config
    from diffprior_images.digits import mnist_digits
    from diffprior.runner import build
    from diffprior_images.evaluation import Judge

    torch.set_num_threads(args.threads)
    names = list(CONSTRAINTS) if args.only is None else [s.strip() for s in args.only.split(",")]
    unknown = [n for n in names if n not in CONSTRAINTS]
    if unknown:
        p.error(f"unknown constraint(s) {unknown}; choose from: {', '.join(CONSTRAINTS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seed, args.seed + args.n))
    overrides = [f"prior.checkpoint={json.dumps(args.prior)}", f"gradient={json.dumps(args.gradient)}"]
    if args.steps:
        overrides.append(f"optimizer.steps={args.steps}")
    if args.lr:
        overrides.append(f"optimizer.lr={args.lr}")

    judge = Judge()
    heldout, heldout_labels = mnist_digits("heldout")
    all_digits = judge.features(heldout)
    by_class = {d: judge.features(heldout[heldout_labels == d]) for d in range(10)}
    pool, pool_labels = mnist_digits("prior")  # ordered by class: draw a random subset
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(args.seed))
    real = pool[order[: args.n]]
    real_threes = pool[order[pool_labels[order] == 3][: args.n]]

    rows = []  # (constraint, condition, figures, realism, seconds)
    rows.append(("—", f"real digits ('prior' split, {args.n})", {}, realism(real, judge, all_digits), 0.0))
    rows.append(("—", f"real 3s ('prior' split, {args.n})", {"judge acc(3)": judge.accuracy(real_threes, 3)},
                 realism(real_threes, judge, by_class[3]), 0.0))
    save_grid(real, args.out / "real.png", scale=2)

    unconditional = None
    for name in names:
        config_path = ROOT / "examples" / CONSTRAINTS[name]
        slug = config_path.stem.removeprefix("digits-")
        for condition in CONDITIONS:
            extra = ["prior_weight=0"] if condition == "constraint alone" else []
            if args.weight:
                extra += [f"terms.{i}.weight={args.weight}" for i in range(len(load_config(config_path, overrides).terms))]
            config = load_config(config_path, overrides + extra)
            prior, variable, terms, options = build(config)
            start = time.perf_counter()  # sampling or optimisation only, not loading
            if condition == "unconditional prior":
                if unconditional is None:
                    print(f"unconditional prior: {args.n} samples, {args.sample_steps} DDPM steps", file=sys.stderr)
                    unconditional = prior.sample(args.n, steps=args.sample_steps, method="ddpm", seeds=seeds, progress=True)
                    save_grid(unconditional, args.out / "unconditional.png", scale=2)
                x = unconditional
            else:
                print(f"{name}: {condition}", file=sys.stderr)
                run_prior = stand_in_prior(prior) if condition == "constraint alone" else prior
                x = optimize(run_prior, variable, terms, seeds, options, progress=True).x.clamp(-1, 1)  # the image is clip(η)
                save_grid(x, args.out / f"{slug}-{'alone' if condition == 'constraint alone' else 'prior'}.png", scale=2)
            seconds = time.perf_counter() - start
            digit = target_class(name, config)
            reference = all_digits if digit is None else by_class[digit]
            rows.append((name, condition, constraint_figures(name, x, terms, judge, digit), realism(x, judge, reference), seconds))

    table = format_table(rows, args)
    (args.out / "table.md").write_text(table + "\n")
    print(table)
    return 0


def format_table(rows, args) -> str:
    head = (f"n = {args.n} samples per run, {args.steps or 'config'} steps, gradient {args.gradient}, "
            f"lr {args.lr or 'config'}, unconditional: {args.sample_steps} DDPM steps, prior {args.prior!r}\n\n")
    lines = ["| constraint | samples from | constraint figures | judge conf ↑ | FD to heldout ↓ | seconds |",
             "|---|---|---|---|---|---|"]
    for name, condition, figures, real, seconds in rows:
        shown = ", ".join(f"{k} {v:.3f}" for k, v in figures.items()) or "—"
        lines.append(f"| {name} | {condition} | {shown} | {real['judge conf']:.3f} | {real['FD']:.1f} | {seconds:.0f} |")
    return head + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
