"""``diffprior train-classifier``: train the bundled digit networks on the fixed digit splits.

==============  ==================  ==========================================================
name            trained on          what for
==============  ==================  ==========================================================
digits          mnist_digits(prior) guidance classifier of ``classifier`` terms (paper: 3 stride-2 convs)
digits-judge    mnist_digits(judge) independent judge: evaluation only, never a constraint;
                                    another architecture, affine warps, outlier exposure
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
        task="classify", split="judge", arch="pool-cnn", epochs=30, lr=2e-3, noise=0.0,
        outliers=True, affine=True,
        arch_kwargs=dict(channels=[16, 32, 64], hidden=128, num_classes=10, dropout=0.3),
        description="independent judge classifier (evaluation only): VGG-style max-pool CNN trained on "
                    "the 'judge' split with random affine warps, and on junk images (noise, blobs, "
                    "overlaid digits) taught to give a flat answer",
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
    p.add_argument("--outliers", action="store_true", default=None,
                   help="outlier exposure: also train on junk images (noise, blobs, overlaid digits) "
                        "with a flat target (default: the recipe's; on for digits-judge)")
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


def _affine(images, gen):
    """A random rotation (±15°), scale (0.85–1.15) and shear (±0.2) per image."""
    import math

    import torch
    from torch.nn import functional as F

    n = images.shape[0]
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(15)
    scale = 0.85 + 0.3 * torch.rand(n, generator=gen)
    shear = (torch.rand(n, generator=gen) * 2 - 1) * 0.2
    cos, sin = angle.cos() / scale, angle.sin() / scale
    theta = torch.stack([torch.stack([cos, -sin + shear, torch.zeros(n)], 1),
                         torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    # pad with the background (-1): shift to [0, 2] so that zero padding is background
    return F.grid_sample(images + 1, grid, align_corners=False, padding_mode="zeros") - 1


def junk_images(n: int, gen, like):
    """Images that are no digit, for outlier exposure: Gaussian or uniform noise, blurred noise
    (blobs of every size), a few ink spots, constant images and two digits of different classes
    overlaid. Returns (images [n, 1, H, W] in [-1, 1], soft targets [n, 10]).

    The targets are flat (1/10 each), except for overlaid digits (½ on each of the two
    classes): a judge trained on them gives a low max-probability to what is not one digit.
    """
    import torch

    from .terms import gaussian_blur

    images, labels = like
    H, W = images.shape[-2:]
    kind = torch.randint(0, 6, (n,), generator=gen)
    out = torch.empty(n, 1, H, W)
    targets = torch.full((n, 10), 0.1)
    for i in range(n):
        k = int(kind[i])
        if k == 0:  # Gaussian noise around a random level
            sigma, level = 0.2 + 1.3 * torch.rand(1, generator=gen), torch.rand(1, generator=gen) * 2 - 1
            img = level + sigma * torch.randn(1, 1, H, W, generator=gen)
        elif k == 1:  # uniform noise
            img = torch.rand(1, 1, H, W, generator=gen) * 2 - 1
        elif k == 2:  # blobs: blurred noise, rescaled to the full range and sometimes thresholded
            blur = 0.7 + 3.5 * torch.rand(1, generator=gen).item()
            img = gaussian_blur(torch.randn(1, 1, H, W, generator=gen), blur)
            img = (img - img.mean()) / img.std().clamp_min(1e-6)
            shift = torch.randn(1, generator=gen).item()
            img = (img * 2 - 1.5 + shift).clamp(-1, 1)
        elif k == 3:  # a few ink spots or short smudges on the background
            img = -torch.ones(1, 1, H, W)
            for _ in range(int(torch.randint(1, 5, (1,), generator=gen))):
                cy, cx = (torch.rand(2, generator=gen) * torch.tensor([H - 8, W - 8]) + 4).tolist()
                ry, rx = (1 + 5 * torch.rand(2, generator=gen)).tolist()
                yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
                spot = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1).float()
                img = torch.maximum(img, (spot * 2 - 1).view(1, 1, H, W))
        elif k == 4:  # a constant image
            img = torch.full((1, 1, H, W), float(torch.rand(1, generator=gen) * 2 - 1))
        else:  # two digits of different classes overlaid
            a, b = torch.randint(0, len(images), (2,), generator=gen).tolist()
            while labels[a] == labels[b]:
                b = int(torch.randint(0, len(images), (1,), generator=gen))
            img = torch.maximum(images[a], images[b])[None]
            targets[i] = 0.0
            targets[i, labels[a]] = targets[i, labels[b]] = 0.5
        out[i] = img.clamp(-1, 1)[0]
    return out, targets


def _add_noise(images, gen, noise: float):
    """Gaussian noise of a random level up to ``noise`` per image: guidance networks see the
    noisy iterates of the optimisation, not only clean digits."""
    import torch

    if noise <= 0:
        return images
    level = torch.rand(images.shape[0], 1, 1, 1, generator=gen) * noise
    return (images + level * torch.randn(images.shape, generator=gen)).clamp(-1, 1)


def train(name: str, out: Path, *, epochs: int | None = None, noise: float | None = None, seed: int = 0,
          progress: bool = True, outliers: bool | None = None) -> dict:
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
    if outliers is not None:
        recipe["outliers"] = outliers
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
            if recipe.get("affine"):
                clean = _affine(clean, gen)
            x = _add_noise(clean, gen, recipe["noise"])
            y = targets(clean, labels[idx])  # segmentation labels come from the clean digit
            loss = F.cross_entropy(model(x), y)
            if recipe.get("outliers"):  # outlier exposure: junk → a flat answer
                junk, soft = junk_images(len(idx) // 2, gen, (images, labels))
                loss = loss + F.cross_entropy(model(junk), soft)
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
        if not segment:
            junk, _ = junk_images(500, torch.Generator().manual_seed(seed + 1), (test_images, test_labels))
            confidence = {"confidence_heldout": round(model(test_images).softmax(1).max(1).values.mean().item(), 4),
                          "confidence_junk": round(model(junk).softmax(1).max(1).values.mean().item(), 4)}
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
    if not segment:
        meta.update(confidence)
    if recipe.get("outliers"):
        meta["outlier_exposure"] = "noise, blobs, ink spots, constant images → flat; overlaid digits → ½ each"
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

    from diffprior import UsageError

    if args.epochs is not None and args.epochs <= 0:
        raise UsageError(f"--epochs must be positive, got {args.epochs}")
    if args.noise is not None and args.noise < 0:
        raise UsageError(f"--noise must be zero or positive, got {args.noise}")
    if args.outliers and RECIPES[args.name]["task"] != "classify":
        raise UsageError(f"--outliers is for classifiers; {args.name} is a segmenter")
    torch.set_num_threads(max(1, args.threads))
    meta = train(args.name, args.out, epochs=args.epochs, noise=args.noise, seed=args.seed, progress=not args.quiet,
                 outliers=args.outliers)
    figure = {k: v for k, v in meta.items() if k.endswith(("_heldout", "_junk"))}
    print(f"wrote {args.out / (args.name + '.safetensors')} ({', '.join(f'{k} {v}' for k, v in figure.items())})")
    return 0
