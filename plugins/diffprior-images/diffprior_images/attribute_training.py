"""``diffprior train-classifier attributes``: a multi-label attribute classifier (a timm network,
sigmoid outputs) from an image folder and an attribute table in the CelebA layout.

The table is either CelebA's ``list_attr_celeba.txt`` (a count line, a line of attribute
names, then ``000001.jpg -1 1 ...``) or a CSV with a header whose first column is the file
name (``image_id,5_o_Clock_Shadow,...``, the Kaggle copy of CelebA). Values > 0 are present.
Images are centre-cropped to a square and resized to ``--image-size``; the inputs the
classifier sees during training are noised (up to ``--noise``) because the optimisation
shows it noisy iterates. The last ``--val-fraction`` of the rows are held out: per-attribute
accuracy on them is written next to the accuracy of always answering each attribute's
majority value (the baseline).

Writes ``OUT/NAME.safetensors`` (weights) and ``OUT/NAME.json`` (timm architecture,
attribute names, input size, normalisation, accuracies), which the ``attributes`` term reads.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

# the checkpoint format the attributes term reads (defined here: the term imports the trainer's
# constant, never the other way round, so plugin -> training -> here stays free of cycles)
ATTRIBUTES_FORMAT = "diffprior-attributes/1"

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("attributes (multi-label classifier from images + an attribute table)")
    g.add_argument("--images", type=Path, help="folder of the images the table names (e.g. img_align_celeba)")
    g.add_argument("--attributes", dest="attribute_table", type=Path,
                   help="list_attr_celeba.txt or a CSV with a header (file name first)")
    g.add_argument("--model-name", default="celeba-attributes", help="NAME of OUT/NAME.safetensors and OUT/NAME.json")
    g.add_argument("--arch", default="resnet18", help="timm architecture (the paper: resnet18)")
    g.add_argument("--image-size", type=int, default=224, help="input size of the classifier (the paper: 224)")
    g.add_argument("--batch", type=int, default=64)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--limit", type=int, default=None, help="use only the first N rows (quick runs)")
    g.add_argument("--val-fraction", type=float, default=0.1)


def read_attribute_table(path: Path) -> tuple[list[str], list[tuple[str, list[int]]]]:
    """(attribute names, [(file name, 0/1 per attribute)]) from the CelebA .txt or a CSV."""
    from diffprior import UsageError

    text = Path(path).read_text().splitlines()
    if not text:
        raise UsageError(f"{path} is empty")
    if path.suffix.lower() == ".csv" or "," in text[0]:
        reader = csv.reader(text)
        header = next(reader)
        names, rows = [h.strip() for h in header[1:]], []
        for line in reader:
            if line:
                rows.append((line[0].strip(), [1 if float(v) > 0 else 0 for v in line[1:]]))
    else:  # CelebA's txt: count, names, rows
        start = 1 if text[0].strip().isdigit() else 0
        names = text[start].split()
        rows = [(parts[0], [1 if float(v) > 0 else 0 for v in parts[1:]])
                for parts in (line.split() for line in text[start + 1:]) if parts]
    bad = [name for name, values in rows if len(values) != len(names)]
    if bad:
        raise UsageError(f"{path}: row {bad[0]!r} has a different number of values than the {len(names)} attributes")
    if not rows:
        raise UsageError(f"{path} has no rows")
    return names, rows


def _load_image(path: Path, size: int):
    import torch
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
        data = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    return data.view(size, size, 3).permute(2, 0, 1)


def train_attributes(images: Path, table: Path, out: Path, *, name: str = "celeba-attributes", arch: str = "resnet18",
                     image_size: int = 224, epochs: int = 5, batch: int = 64, lr: float = 1e-3, noise: float = 0.3,
                     limit: int | None = None, val_fraction: float = 0.1, seed: int = 0, progress: bool = True) -> dict:
    import timm
    import torch
    from safetensors.torch import save_file
    from torch.nn import functional as F
    from tqdm.auto import tqdm

    from diffprior import UsageError

    names, rows = read_attribute_table(table)
    rows = rows[:limit] if limit else rows
    present = [(f, v) for f, v in rows if (images / f).exists()]
    if not present:
        raise UsageError(f"none of the {len(rows)} images the table names is in {images} (first: {rows[0][0]})")
    if not timm.is_model(arch):
        raise UsageError(f"unknown timm architecture {arch!r}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.stack([_load_image(images / f, image_size) for f, _ in present])  # uint8, kept small
    y = torch.tensor([v for _, v in present], dtype=torch.float32)
    n_val = max(1, int(round(len(present) * val_fraction))) if len(present) > 1 else 0
    x_train, y_train, x_val, y_val = x[: len(x) - n_val], y[: len(y) - n_val], x[len(x) - n_val:], y[len(y) - n_val:]
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def prepare(images_u8, train: bool):
        v = images_u8.float() / 255
        if train:
            flip = torch.rand(len(v), generator=gen) < 0.5
            v = torch.where(flip.view(-1, 1, 1, 1), v.flip(-1), v)
            level = torch.rand(len(v), 1, 1, 1, generator=gen) * noise
            v = (v + level * torch.randn(v.shape, generator=gen)).clamp(0, 1)
        return (v - mean) / std

    model = timm.create_model(arch, pretrained=False, num_classes=len(names), in_chans=3)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * max(1, (len(x_train) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    bar = tqdm(total=steps, desc=f"train {name}", unit="step", disable=not progress, dynamic_ncols=True)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(x_train), batch):
            idx = order[i: i + batch]
            loss = F.binary_cross_entropy_with_logits(model(prepare(x_train[idx], True)), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    accuracy = majority = None
    if n_val:
        with torch.no_grad():
            predicted = torch.cat([(model(prepare(x_val[i: i + batch], False)) > 0).float() for i in range(0, n_val, batch)])
        accuracy = (predicted == y_val).float().mean(0)
        base = (y_train.mean(0) > 0.5).float() if len(y_train) else torch.zeros(len(names))
        majority = (y_val == base).float().mean(0)
    meta = {
        "format": ATTRIBUTES_FORMAT,
        "name": name,
        "timm": arch,
        "num_classes": len(names),
        "in_chans": 3,
        "attributes": names,
        "input_size": image_size,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "trained_on": {"images": str(images), "table": str(table), "rows": len(present), "validation_rows": n_val},
        "epochs": epochs,
        "input_noise": noise,
        "seed": seed,
        "val_accuracy_mean": None if accuracy is None else round(float(accuracy.mean()), 4),
        "val_majority_accuracy_mean": None if majority is None else round(float(majority.mean()), 4),
        "val_accuracy": None if accuracy is None else {n: round(float(a), 4) for n, a in zip(names, accuracy)},
    }
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / f"{name}.safetensors"))
    (out / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def run(args) -> int:
    import torch

    from diffprior import UsageError

    if args.images is None or args.attribute_table is None:
        raise UsageError("train-classifier attributes needs --images DIR and --attributes TABLE (CelebA layout)")
    for label, path in (("--images", args.images), ("--attributes", args.attribute_table)):
        if not path.exists():
            raise UsageError(f"{label} {path} does not exist")
    if args.noise is not None and args.noise < 0:
        raise UsageError(f"--noise must be zero or positive, got {args.noise}")
    torch.set_num_threads(max(1, args.threads))
    meta = train_attributes(args.images, args.attribute_table, args.out, name=args.model_name, arch=args.arch,
                            image_size=args.image_size, epochs=args.epochs or 5, batch=args.batch, lr=args.lr,
                            noise=0.3 if args.noise is None else args.noise, limit=args.limit,
                            val_fraction=args.val_fraction, seed=args.seed, progress=not args.quiet)
    figure = (f"validation accuracy {meta['val_accuracy_mean']} (majority baseline {meta['val_majority_accuracy_mean']})"
              if meta["val_accuracy_mean"] is not None else "no validation rows")
    print(f"wrote {args.out / (args.model_name + '.safetensors')}: {meta['num_classes']} attributes, {figure}")
    return 0
