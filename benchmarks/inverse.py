"""Inverse problems on held-out real digits: diffprior's recipes against deepinv's DPS, DiffPIR
and DDRM on the same network (the bundled ``digits`` U-Net, as a deepinv denoiser through
``diffprior_deepinv.as_denoiser``), and the measurement alone (A⁺y).

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/inverse.py                 # every task and method
    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/inverse.py --n 4 --only denoise --skip dps-1000
    .venv/bin/python benchmarks/inverse.py --write-examples      # examples/data/inverse-*.safetensors (8 heldout digits)
    .venv/bin/python benchmarks/inverse.py --split judge ...     # tuning: the judge split (never heldout)

Data: the first ``--n`` digits of the images plugin's ``heldout`` split (the prior never saw
them); ``--split judge`` for tuning. Tasks: left half observed (inpainting), 20 % random
pixels observed (80 % inpainting), ×4 bicubic super-resolution, Gaussian blur (std 1.5 px),
denoising at σ = 0.3; measurement noise 0.05 on [0, 1] where the task has none of its own.

Methods: ``examples/inverse-<task>.toml`` as shipped, with ``gradient = "full"`` and
``"sds"``; deepinv 0.5's DPS (250 and 1000 steps, its defaults otherwise), DiffPIR (100
steps, its defaults, σ of the task), DDRM (100 noise levels from 1 to 0; it needs an operator
with an SVD, so not ×4 downsampling) and A⁺y (deepinv's ``A_dagger``, clipped to [0, 1]).

Figures per task and method: PSNR (dB, per image on [0, 1]) and SSIM (deepinv.metric.SSIM,
on [0, 1]), the accuracy of the independent judge classifier (``digits-judge``: never a
constraint) on the restorations against the digits' labels, the spread across 4 seeds of
the first measurement (mean per-pixel std on [0, 1]: 0 when a method collapses to one
answer), network evaluations per image (forward passes of the U-Net; "+bwd": each also
back-propagated) and seconds per image. For each diffprior recipe, a paired bootstrap 95 %
interval (2000 resamples of the images) of its PSNR minus the best peer's (the peer of
highest mean PSNR among DPS, DiffPIR and DDRM).

Writes ``--out``/table.md, results.json and grid.png (per task two digits; columns:
measurement A⁺y, each method, truth).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
NOISE = 0.05
TASKS = {  # name → (OperatorSpec fields, label)
    "half": ({"operator": "inpainting", "mask": "LEFT_HALF", "sigma": NOISE}, "left-half inpainting"),
    "random": ({"operator": "inpainting", "ratio": 0.2, "seed": 0, "sigma": NOISE}, "80 % random-pixel inpainting"),
    "sr4": ({"operator": "downsampling", "factor": 4, "filter": "bicubic", "sigma": NOISE}, "×4 super-resolution"),
    "blur": ({"operator": "blur", "kernel": "gaussian", "width": 1.5, "sigma": NOISE}, "Gaussian deblurring (1.5 px)"),
    "denoise": ({"operator": "denoising", "sigma": 0.3}, "denoising σ = 0.3"),
}
METHODS = ["A⁺y", "diffprior full", "diffprior sds", "DPS-250", "DPS-1000", "DiffPIR-100", "DDRM-100"]
PEERS = ["DPS-250", "DPS-1000", "DiffPIR-100", "DDRM-100"]
SPREAD_SEEDS = 4
BOOTSTRAP = 2000


def left_half_mask(shape=(1, 32, 32)) -> torch.Tensor:
    mask = torch.zeros(shape)
    mask[..., : shape[-1] // 2] = 1.0
    return mask


def task_spec(name: str, folder: Path):
    from diffprior_deepinv.plugin import OperatorSpec

    fields = dict(TASKS[name][0])
    if fields.get("mask") == "LEFT_HALF":
        from safetensors.torch import save_file

        path = folder / "left-half-mask.safetensors"
        save_file({"mask": left_half_mask()}, str(path))
        fields["mask"] = path
    return OperatorSpec(**fields)


def measure(spec, clean_unit: torch.Tensor):
    """(physics, y) for clean images [N, C, H, W] on [0, 1]; the noise from the spec's seeded generator."""
    from diffprior_deepinv.physics import build_physics

    physics = build_physics(spec, tuple(clean_unit.shape[1:]))
    with torch.no_grad():
        y = physics(clean_unit)
    return physics, y


def save_measurements(path: Path, y: torch.Tensor, physics) -> Path:
    from safetensors.torch import save_file

    from diffprior_deepinv.physics import operator_tensors

    save_file({"measurement": y.contiguous(), **{k: v.contiguous() for k, v in operator_tensors(physics).items()}}, str(path))
    return path


class Counter:
    """Counts U-Net calls per image (each call evaluates the whole batch once)."""

    def __init__(self, prior):
        self.calls = 0
        self.grad_calls = 0
        inner = prior.eps

        def eps(x_t, t):
            self.calls += 1
            self.grad_calls += int(torch.is_grad_enabled() and x_t.requires_grad)
            return inner(x_t, t)

        prior.eps = eps

    def reset(self):
        self.calls = self.grad_calls = 0


def run_diffprior(task, gradient, target, mask, seeds, prior, overrides):
    from diffprior import load_config, optimize
    from diffprior.runs.runner import build

    sets = [f"terms.0.target={json.dumps(str(target))}", f"gradient={json.dumps(gradient)}", f"batch={len(seeds)}"]
    if mask is not None:
        sets.append(f"terms.0.mask={json.dumps(str(mask))}")
    config = load_config(ROOT / "examples" / f"inverse-{task}.toml", sets + list(overrides))
    _, variable, terms, options = build(config, seeds=seeds, indices=list(range(len(seeds))), prior=prior)
    x = optimize(prior, variable, terms, seeds, options, progress=False).x.clamp(-1, 1)
    return (x + 1) / 2


def run_peer(method, denoiser, y, physics, sigma, seed):
    import deepinv as dinv
    import numpy as np

    torch.manual_seed(seed)
    if method.startswith("DPS"):
        steps = int(method.split("-")[1])
        dps = dinv.sampling.DPS(denoiser, num_steps=steps, dtype=torch.float32, rng=torch.Generator().manual_seed(seed))
        return dps(y, physics, seed=seed).clamp(0, 1)
    if method == "DiffPIR-100":
        return dinv.sampling.DiffPIR(denoiser, dinv.optim.L2(), sigma=sigma, max_iter=100)(y, physics, seed=seed).clamp(0, 1)
    if method == "DDRM-100":
        if not isinstance(physics, dinv.physics.DecomposablePhysics):
            return None
        return dinv.sampling.DDRM(denoiser, sigmas=np.linspace(1, 0, 100))(y, physics, seed=seed).clamp(0, 1)
    raise ValueError(method)


def psnr(x, truth):
    mse = (x - truth).flatten(1).pow(2).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)


def ssim(x, truth):
    import deepinv as dinv

    return dinv.metric.SSIM()(x.float(), truth.float()).flatten()


def paired_interval(a, b, seed=0):
    d = (a - b).double()
    idx = torch.randint(0, len(d), (BOOTSTRAP, len(d)), generator=torch.Generator().manual_seed(seed))
    means = d[idx].mean(1)
    lo, hi = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return float(d.mean()), lo, hi


def write_examples(images_unit, folder: Path):
    data = ROOT / "examples" / "data"
    for task in TASKS:
        spec = task_spec(task, folder)
        physics, y = measure(spec, images_unit[:8])
        path = save_measurements(data / f"inverse-{task}.safetensors", y, physics)
        print(f"wrote {path.relative_to(ROOT)}: {list(y.shape)}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=8, help="digits per task (default 8)")
    p.add_argument("--split", default="heldout", choices=["heldout", "judge"], help="heldout: the benchmark; judge: tuning")
    p.add_argument("--only", default=None, help=f"comma-separated tasks of: {', '.join(TASKS)}")
    p.add_argument("--skip", default="", help="comma-separated methods to leave out, e.g. dps-1000")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of every diffprior recipe (as diffprior run --set)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "inverse")
    p.add_argument("--write-examples", action="store_true", help="write examples/data/inverse-*.safetensors and stop")
    args = p.parse_args(argv)

    from diffprior import load_config, save_grid
    from diffprior.runs.runner import build
    from diffprior_deepinv import as_denoiser
    from diffprior_deepinv.physics import output_shape  # noqa: F401  (imports deepinv early: its import time is not a method's)
    from diffprior_images.digits import mnist_digits
    from diffprior_images.evaluation import Judge

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="inverse-"))
    images, labels = mnist_digits(args.split)
    if args.write_examples:
        write_examples((images + 1) / 2, tmp)
        return 0
    images, labels = images[: args.n], labels[: args.n]
    truth = (images + 1) / 2
    tasks = [t.strip() for t in args.only.split(",")] if args.only else list(TASKS)
    skip = {s.strip().lower() for s in args.skip.split(",") if s.strip()}
    methods = [m for m in METHODS if m.lower() not in skip]
    judge = Judge()
    prior, *_ = build(load_config(ROOT / "examples" / "inverse-denoise.toml", []), seeds=[0])
    counter = Counter(prior)
    denoiser = as_denoiser(prior, clip=True)
    spread_seeds = list(range(1000, 1000 + SPREAD_SEEDS))

    results, grid_rows = {}, []
    for task in tasks:
        spec = task_spec(task, tmp)
        physics, y = measure(spec, truth)
        target = save_measurements(tmp / f"{task}.safetensors", y, physics)
        y0 = y[:1].expand(SPREAD_SEEDS, *y.shape[1:]).contiguous()
        target0 = save_measurements(tmp / f"{task}-spread.safetensors", y0, physics)
        mask = target if spec.operator == "inpainting" else None
        sigma = spec.sigma
        results[task] = {}
        shown = {"A⁺y": physics.A_dagger(y).clamp(0, 1)}
        for method in methods:
            counter.reset()
            start = time.perf_counter()
            if method == "A⁺y":
                x, x0 = shown["A⁺y"], None
            elif method.startswith("diffprior"):
                gradient = method.split()[1]
                x = run_diffprior(task, gradient, target, mask, list(range(args.n)), prior, args.overrides)
            else:
                x = run_peer(method, denoiser, y, physics, sigma, seed=1)
                if x is None:
                    print(f"{task}: {method}: n/a (deepinv's DDRM needs an operator with an SVD)", file=sys.stderr)
                    continue
            seconds = (time.perf_counter() - start) / args.n
            nfe, bwd = counter.calls, counter.grad_calls
            spread = 0.0
            if method != "A⁺y":
                if method.startswith("diffprior"):
                    xs = run_diffprior(task, method.split()[1], target0, mask, spread_seeds, prior, args.overrides)
                else:
                    xs = torch.cat([run_peer(method, denoiser, y[:1], physics, sigma, seed=s) for s in spread_seeds])
                spread = float(xs.std(0).mean())
            p_, s_ = psnr(x, truth), ssim(x, truth)
            acc = (judge.probabilities(x * 2 - 1).argmax(1) == labels).float()
            results[task][method] = {"psnr": p_.tolist(), "ssim": s_.tolist(), "acc": acc.tolist(), "spread": spread,
                                     "nfe": nfe, "bwd": bwd, "seconds": seconds}
            shown[method] = x
            print(f"{task}: {method}: PSNR {p_.mean():.2f} SSIM {s_.mean():.3f} acc {acc.mean():.2f} spread {spread:.3f} "
                  f"NFE {nfe}{'+bwd' if bwd else ''} {seconds:.2f} s/img", file=sys.stderr, flush=True)
        for i in range(min(2, args.n)):
            grid_rows.append(torch.stack([shown[m][i] for m in ["A⁺y"] + [m for m in methods if m in shown and m != "A⁺y"]]
                                         + [truth[i]]))
    args.out.mkdir(parents=True, exist_ok=True)
    columns = ["A⁺y"] + [m for m in methods if m != "A⁺y"]
    if grid_rows and len({r.shape[0] for r in grid_rows}) == 1:
        save_grid(torch.cat(grid_rows) * 2 - 1, args.out / "grid.png", ncol=grid_rows[0].shape[0], scale=3)
    elif grid_rows:  # a task without one method (DDRM on ×4 downsampling): a blank cell keeps the columns
        width = max(r.shape[0] for r in grid_rows)
        padded = [torch.cat([r[:-1], torch.zeros(width - r.shape[0], *r.shape[1:]), r[-1:]]) for r in grid_rows]
        save_grid(torch.cat(padded) * 2 - 1, args.out / "grid.png", ncol=width, scale=3)
    table = format_table(results, tasks, args, columns)
    (args.out / "table.md").write_text(table + "\n")
    (args.out / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                       "columns": columns, "results": results}, indent=2) + "\n")
    print(table)
    return 0


def format_table(results, tasks, args, columns) -> str:
    head = (f"{args.n} digits of the `{args.split}` split per task (the first {args.n}); spread over {SPREAD_SEEDS} seeds "
            f"of the first measurement; recipes examples/inverse-<task>.toml"
            + (f"; overrides: {' '.join(args.overrides)}" if args.overrides else "") + f"; {torch.get_num_threads()} CPU threads\n\n")
    lines = ["| task | method | PSNR ↑ | SSIM ↑ | judge acc ↑ | spread | NFE / image | s / image | Δ PSNR vs best peer [95 %] |",
             "|---|---|---|---|---|---|---|---|---|"]
    for task in tasks:
        rows = results[task]
        peers = [m for m in PEERS if m in rows]
        best = max(peers, key=lambda m: sum(rows[m]["psnr"])) if peers else None
        for m in columns:
            if m not in rows:
                lines.append(f"| {TASKS[task][1]} | {m} | n/a | | | | | | |")
                continue
            r = rows[m]
            mean = lambda v: sum(v) / len(v)  # noqa: E731
            delta = ""
            if m.startswith("diffprior") and best:
                d, lo, hi = paired_interval(torch.tensor(r["psnr"]), torch.tensor(rows[best]["psnr"]))
                delta = f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}] vs {best}"
            nfe = f"{r['nfe']}" + (" +bwd" if r["bwd"] else "")
            lines.append(f"| {TASKS[task][1]} | {m}{' (best peer)' if m == best else ''} | {mean(r['psnr']):.2f} | "
                         f"{mean(r['ssim']):.3f} | {mean(r['acc']):.2f} | {r['spread']:.3f} | {nfe} | {r['seconds']:.2f} | {delta} |")
    return head + "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
