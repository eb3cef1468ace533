"""Quality of the bundled digits prior: unconditional samples judged by an independent classifier.

    python benchmarks/digits_prior_quality.py [--n 1000] [--method ddim] [--steps 20] [--checkpoint digits]

The judge never saw the prior's training digits: it is ``diffprior_images``' bundled
``digits-judge`` (trained on the ``judge`` split) when that plugin is installed, otherwise a
small CNN trained here on the ``judge`` split. Figures, for the samples and for real digits:

- confidence: mean max-softmax probability of the judge (near 1 = clearly some digit);
- share > 0.9: fraction of images the judge is at least 90% sure about;
- classes: how evenly the judge's labels spread over 0-9 (normalised entropy, 1 = uniform);
- FD: Fréchet distance between the judge's penultimate features of the images and of the
  500 real ``heldout`` digits (the real row uses as many ``prior``-split digits as samples);
- accuracy (real digits only; samples have no labels).

Prints a table and writes a grid of the first 100 samples.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from diffprior import save_grid
from diffprior_images.digits import mnist_digits


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2(Σa^½ Σb Σa^½)^½), in float64."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)

    def sqrtm_psd(m):
        vals, vecs = torch.linalg.eigh(m)
        return vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T

    root_a = sqrtm_psd(cov_a)
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


class SmallJudge(torch.nn.Module):
    """Fallback judge: 3 stride-2 convs + a hidden layer, trained on the ``judge`` split."""

    def __init__(self):
        super().__init__()
        conv = lambda i, o: [torch.nn.Conv2d(i, o, 3, stride=2, padding=1), torch.nn.ReLU()]  # noqa: E731
        self.body = torch.nn.Sequential(*conv(1, 32), *conv(32, 64), *conv(64, 128), torch.nn.Flatten(),
                                        torch.nn.Linear(128 * 16, 128), torch.nn.ReLU())
        self.head = torch.nn.Linear(128, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


def load_judge(epochs: int = 8):
    """(probabilities(x), features(x), description)."""
    try:
        from diffprior_images.evaluation import Judge

        judge = Judge()
        return judge.probabilities, judge.features, "diffprior_images digits-judge (trained on the 'judge' split)"
    except ImportError:
        pass
    torch.manual_seed(0)
    images, labels = mnist_digits("judge")
    model = SmallJudge()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    for _ in tqdm(range(epochs), desc="training the fallback judge"):
        for idx in torch.randperm(len(images)).split(64):
            loss = torch.nn.functional.cross_entropy(model(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    return (lambda x: model(x.clamp(-1, 1)).softmax(1)), (lambda x: model.features(x.clamp(-1, 1))), \
        f"small CNN trained here on the 'judge' split ({epochs} epochs)"


@torch.no_grad()
def judged(x: torch.Tensor, probabilities, features, batch: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    probs = torch.cat([probabilities(part) for part in x.split(batch)])
    feats = torch.cat([features(part) for part in x.split(batch)])
    return probs, feats


def figures(probs, feats, reference_feats=None, labels=None) -> dict[str, float]:
    counts = torch.bincount(probs.argmax(1), minlength=10).double()
    share = counts / counts.sum()
    entropy = -(share[share > 0] * share[share > 0].log()).sum() / math.log(10)
    return {
        "confidence": float(probs.max(1).values.mean()),
        "share > 0.9": float((probs.max(1).values > 0.9).double().mean()),
        "classes": float(entropy) + 0.0,  # no "-0.000"
        "FD": frechet_distance(feats, reference_feats) if reference_feats is not None else float("nan"),
        "accuracy": float((probs.argmax(1) == labels).double().mean()) if labels is not None else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="digits", help="bundled name or NAME.safetensors path")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--method", choices=("ddim", "ddpm"), default="ddim")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/digits_prior_quality.png"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from diffprior_unet.checkpoints import load_prior

    prior = load_prior(args.checkpoint)
    probabilities, features, judge_name = load_judge()
    start = time.perf_counter()
    samples = torch.cat([
        prior.sample(min(args.batch, args.n - i), steps=args.steps, method=args.method,
                     seeds=range(i, min(i + args.batch, args.n)))
        for i in tqdm(range(0, args.n, args.batch), desc=f"sampling ({args.method}, {args.steps} steps)")
    ])
    seconds = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_grid(samples[:100], args.out, prior.data_range, ncol=10, scale=2)

    heldout, heldout_labels = mnist_digits("heldout")
    real, real_labels = mnist_digits("prior")
    chosen = torch.randperm(len(real), generator=torch.Generator().manual_seed(0))[: args.n]  # all classes
    real, real_labels = real[chosen], real_labels[chosen]
    _, heldout_feats = judged(heldout, probabilities, features)
    rows = {
        f"samples ({args.n}, {args.method} {args.steps} steps)": figures(*judged(samples, probabilities, features), heldout_feats),
        f"real 'prior' digits ({len(real)})": figures(*judged(real, probabilities, features), heldout_feats, real_labels),
        f"real 'heldout' digits ({len(heldout)}, the FD reference)":
            figures(*judged(heldout, probabilities, features), None, heldout_labels),
    }
    training = prior.metadata.get("training", {})
    print(f"prior: {args.checkpoint} ({training.get('steps', '?')} training steps); judge: {judge_name}")
    print(f"sampling took {seconds:.0f} s on {torch.get_num_threads()} thread(s); grid: {args.out}")
    keys = ["confidence", "share > 0.9", "classes", "FD", "accuracy"]
    width = max(len(name) for name in rows)
    print(f"| {'images':{width}} | " + " | ".join(f"{k:>11}" for k in keys) + " |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * 13 for _ in keys) + "|")
    for name, values in rows.items():
        cells = " | ".join("        n/a" if math.isnan(values[k]) else f"{values[k]:11.3f}" for k in keys)
        print(f"| {name:{width}} | {cells} |")


if __name__ == "__main__":
    main()
