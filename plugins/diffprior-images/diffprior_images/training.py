"""``diffprior train-classifier``: train the bundled digit networks on the fixed digit splits.

==============  ==================  ==========================================================
name            trained on          what for
==============  ==================  ==========================================================
digits          mnist_digits(prior) guidance classifier of ``classifier`` terms (paper: 3 stride-2 convs)
digits-judge    mnist_digits(judge) independent judge: evaluation only, never a constraint
digits-strokes  mnist_digits(prior) per-pixel labels: 0 background, 1 + digit on stroke pixels
==============  ==================  ==========================================================

Each writes ``NAME.safetensors`` (weights) and ``NAME.json`` (architecture, input, accuracy
on the heldout split) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RECIPES = {
    "digits": dict(
        task="classify", split="prior", arch="digit-cnn", epochs=15, lr=2e-3, noise=1.0,
        arch_kwargs=dict(channels=[32, 64, 128], hidden=64, num_classes=10),
        description="guidance digit classifier: 3 stride-2 convs, trained on the 'prior' split",
    ),
    "digits-judge": dict(
        task="classify", split="judge", arch="digit-cnn", epochs=25, lr=2e-3, noise=0.0,
        arch_kwargs=dict(channels=[48, 96, 192], hidden=128, num_classes=10, dropout=0.3),
        description="independent judge classifier (evaluation only), trained on the 'judge' split",
    ),
    "digits-strokes": dict(
        task="segment", split="prior", arch="stroke-segmenter", epochs=12, lr=2e-3, noise=0.3,
        arch_kwargs=dict(width=24, num_classes=11),
        description="stroke segmenter: 0 background, 1 + digit on stroke pixels (x > 0)",
    ),
}


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=sorted(RECIPES) + ["attributes"],
                   help="which bundled network to train, or 'attributes': a multi-label classifier from --images + --attributes")
    p.add_argument("--out", type=Path, required=True, help="folder for NAME.safetensors and NAME.json")
    p.add_argument("--epochs", type=int, default=None, help="passes over the split (default: the recipe's)")
    p.add_argument("--noise", type=float, default=None,
                   help="largest std of the Gaussian noise added to training inputs (default: the recipe's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from .attribute_training import add_arguments

    add_arguments(p)


def _shift(images, gen):
    """Shift a batch by up to 2 pixels in each direction."""
    import torch

    dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()
    return torch.roll(images, shifts=(dy, dx), dims=(-2, -1))


def _add_noise(images, gen, noise: float):
    """Gaussian noise of a random level up to ``noise`` per image: guidance networks see the
    noisy iterates of the optimisation, not only clean digits."""
    import torch

    if noise <= 0:
        return images
    level = torch.rand(images.shape[0], 1, 1, 1, generator=gen) * noise
    return (images + level * torch.randn(images.shape, generator=gen)).clamp(-1, 1)


def train(name: str, out: Path, *, epochs: int | None = None, noise: float | None = None, seed: int = 0,
          progress: bool = True) -> dict:
    import torch
    from safetensors.torch import save_file
    from torch.nn import functional as F
    from tqdm.auto import tqdm

    from .digits import mnist_digits

    from .networks import ARCHITECTURES, stroke_labels

    recipe = dict(RECIPES[name])
    epochs = epochs or recipe["epochs"]
    if noise is not None:
        recipe["noise"] = noise
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images, labels = mnist_digits(recipe["split"])
    test_images, test_labels = mnist_digits("heldout")
    model = ARCHITECTURES[recipe["arch"]](**recipe["arch_kwargs"])
    opt = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    batch = 64
    steps = epochs * ((len(images) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    segment = recipe["task"] == "segment"

    def targets(imgs, digits):
        return stroke_labels(imgs, digits) if segment else digits

    bar = tqdm(total=steps, desc=f"train {name}", unit="step", disable=not progress, dynamic_ncols=True)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=gen)
        for i in range(0, len(images), batch):
            idx = order[i: i + batch]
            clean = _shift(images[idx], gen)
            x = _add_noise(clean, gen, recipe["noise"])
            y = targets(clean, labels[idx])  # segmentation labels come from the clean digit
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()

    model.eval()
    with torch.no_grad():
        pred = model(test_images).argmax(1)
        accuracy = (pred == targets(test_images, test_labels)).float().mean().item()
    meta = {
        "name": name,
        "task": recipe["task"],
        "arch": recipe["arch"],
        "arch_kwargs": recipe["arch_kwargs"],
        "num_classes": recipe["arch_kwargs"]["num_classes"],
        "in_chans": 1,
        "input_size": 32,
        "mean": [0.5],
        "std": [0.5],
        "description": recipe["description"],
        "trained_on": f"diffprior_images.digits.mnist_digits({recipe['split']!r})",
        "epochs": epochs,
        "input_noise": recipe["noise"],
        "seed": seed,
        ("pixel_accuracy" if segment else "accuracy") + "_heldout": round(accuracy, 4),
    }
    out.mkdir(parents=True, exist_ok=True)
    # float16 on disk keeps the package small; load_state_dict casts back to float32
    state = {k: v.detach().half().contiguous() if v.is_floating_point() else v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"{name}.safetensors"))
    (out / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def run(args) -> int:
    if args.name == "attributes":
        from .attribute_training import run as run_attributes

        return run_attributes(args)
    import torch

    from diffprior.command import UsageError

    if args.epochs is not None and args.epochs <= 0:
        raise UsageError(f"--epochs must be positive, got {args.epochs}")
    if args.noise is not None and args.noise < 0:
        raise UsageError(f"--noise must be zero or positive, got {args.noise}")
    torch.set_num_threads(max(1, args.threads))
    meta = train(args.name, args.out, epochs=args.epochs, noise=args.noise, seed=args.seed, progress=not args.quiet)
    figure = {k: v for k, v in meta.items() if k.endswith("_heldout")}
    print(f"wrote {args.out / (args.name + '.safetensors')} ({', '.join(f'{k} {v}' for k, v in figure.items())})")
    return 0
