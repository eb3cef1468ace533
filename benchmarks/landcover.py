"""Land-cover segmentation on synthetic scenes with ground truth: the label-map prior + constraints
against prior-free baselines. Prints a table (mIoU, pixel accuracy, per-class IoU) and a paired
bootstrap interval of the mIoU difference; writes a JSON of every figure and a picture grid.

Methods (all see only the image and the coarse map; the true labels are used for scoring only):
  prior+nmi+kl   the run config examples/landcover.toml (bundled label-map prior, nmi, lowres-kl)
  nmi+kl         the same optimisation without the prior (prior weight 0), with its own tuned
                 lowres-kl (--set-free; default: no class table)
  coarse-nearest the coarse map upsampled by nearest neighbour
  coarse-bilinear the one-hot coarse map upsampled bilinearly, then argmax
  kmeans         k colour clusters (k-means on RGB, per image), each cluster given the class the
                 nearest-upsampled coarse map assigns to most of its pixels

Scenes come from disjoint seed ranges (diffprior_landcover.world.SEED_RANGES): the prior was
trained on the train range, the recipe was tuned on the validation range (--split validation),
and the reported figures are on the test range, which nothing was tuned on.

  python benchmarks/landcover.py --split test --count 64 --out docs/tutorials/landcover
  python benchmarks/landcover.py --split validation --count 16 --steps 300 --methods nmi+kl \
      --set terms.0.weight=2      # a tuning run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "examples" / "landcover.toml"
ALL_METHODS = ("prior+nmi+kl", "nmi+kl", "coarse-nearest", "coarse-bilinear", "kmeans")
PRIOR_FREE = ("nmi+kl", "coarse-nearest", "coarse-bilinear", "kmeans")
# Each optimised method runs with the settings tuned for it on validation scenes: the recipe is
# the prior's; without the prior, lowres-kl does better without the class table.
FREE_DEFAULTS = ("terms.2.table=none",)


# ------------------------------------------------------------------------------ scenes
def make_scenes(split: str, count: int, offset: int, block: int, wrong: float, folder: Path):
    from diffprior_landcover.files import write_scenes
    from diffprior_landcover.world import scene, split_seeds

    scenes = [scene(s, block=block, wrong=wrong) for s in split_seeds(split, count, offset)]
    write_scenes(folder, scenes, pngs=False)
    return scenes, folder / "scenes.safetensors"


# ------------------------------------------------------------------------------ solver runs
def _set(data: dict, key: str, value) -> None:
    """Set a dotted key (list items by index); the value ``none`` removes the key (TOML has no null)."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif value == "none":
        node.pop(last, None)
    else:
        node[last] = value


def _parse(value: str):
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return value


def solve(scenes_path: Path, count: int, *, use_prior: bool, batch: int, overrides: list[str], seed: int,
          steps: int | None, recipe: Path = RECIPE, progress: bool = False, start_key: str | None = None) -> np.ndarray:
    """Label maps [count, H, W] from the recipe run on scenes 0..count-1 of ``scenes_path``; with
    ``start_key``, the variable starts from that tensor of the file instead of the coarse map."""
    import tomli_w

    import diffprior

    base = tomllib.loads(recipe.read_text())
    preds = []
    with tempfile.TemporaryDirectory() as tmp:
        for start in range(0, count, batch):
            data = json.loads(json.dumps(base))
            n = min(batch, count - start)
            data["batch"] = n
            data["seed"] = seed + start
            data["variable"].update(coarse=str(scenes_path), start=start)
            if start_key:
                data["variable"]["key"] = start_key
            for term in data["terms"]:
                key = "image" if term["type"] == "nmi" else "coarse" if term["type"] == "lowres-kl" else None
                if key:
                    term.update({key: str(scenes_path), "start": start})
            if data["prior"].get("checkpoint") and not Path(data["prior"]["checkpoint"]).is_absolute():
                data["prior"]["checkpoint"] = str((recipe.parent / data["prior"]["checkpoint"]).resolve())
            if steps:
                data["optimizer"]["steps"] = steps
            if not use_prior:
                data["prior"] = {"type": "gaussian", "shape": [6, 64, 64]}
                data["prior_weight"] = 0.0
            for item in overrides:
                key, value = item.split("=", 1)
                _set(data, key, _parse(value))
            path = Path(tmp) / f"run-{start}.toml"
            path.write_text(tomli_w.dumps(data))
            config = diffprior.load_config(path)
            result = diffprior.run(config, None, progress=progress)
            preds.append(result.x.argmax(1).numpy())
    return np.concatenate(preds)


# ------------------------------------------------------------------------------ baselines
def coarse_nearest(coarse: np.ndarray, size: int) -> np.ndarray:
    block = size // coarse.shape[-1]
    return coarse.repeat(block, -2).repeat(block, -1)


def coarse_bilinear(coarse: np.ndarray, size: int, classes: int) -> np.ndarray:
    import torch
    from torch.nn import functional as F

    onehot = F.one_hot(torch.as_tensor(coarse).long(), classes).permute(0, 3, 1, 2).float()
    return F.interpolate(onehot, size=(size, size), mode="bilinear", align_corners=False).argmax(1).numpy()


def kmeans_labels(image: np.ndarray, k: int, seed: int, iterations: int = 25) -> np.ndarray:
    """k-means (k-means++ start) on the RGB values of one image [3, H, W]: cluster indices [H, W]."""
    rng = np.random.default_rng(seed)
    pts = image.reshape(3, -1).T.astype(np.float64)
    centres = [pts[rng.integers(len(pts))]]
    for _ in range(k - 1):
        d2 = np.min(((pts[:, None] - np.array(centres)[None]) ** 2).sum(-1), 1)
        centres.append(pts[rng.choice(len(pts), p=d2 / d2.sum())] if d2.sum() > 0 else pts[rng.integers(len(pts))])
    centres = np.array(centres)
    for _ in range(iterations):
        assign = ((pts[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in range(k):
            if (assign == j).any():
                centres[j] = pts[assign == j].mean(0)
    return assign.reshape(image.shape[1:])


def class_shares(clusters: np.ndarray, labels: np.ndarray, k: int, classes: int) -> np.ndarray:
    """[k, classes]: the share of each class in ``labels`` among each cluster's pixels (zeros for an empty cluster)."""
    return np.stack([np.bincount(labels[clusters == j], minlength=classes) / max((clusters == j).sum(), 1)
                     for j in range(k)])


def majority_names(clusters: np.ndarray, labels: np.ndarray, k: int, classes: int) -> np.ndarray:
    """Each cluster's name [k]: the class of most of its pixels in ``labels`` (0 for an empty cluster)."""
    return class_shares(clusters, labels, k, classes).argmax(1)


def kmeans_baseline(images: np.ndarray, coarse: np.ndarray, k: int, classes: int) -> np.ndarray:
    size = images.shape[-1]
    out = []
    for i, (image, c) in enumerate(zip(images, coarse)):
        clusters = kmeans_labels(image, k, seed=i)
        out.append(majority_names(clusters, coarse_nearest(c[None], size)[0], k, classes)[clusters])
    return np.stack(out)


# ------------------------------------------------------------------------------ metrics
def confusions(pred: np.ndarray, truth: np.ndarray, classes: int) -> np.ndarray:
    """Per-scene confusion matrices [N, K, K] (rows: truth, columns: prediction)."""
    idx = truth.reshape(len(truth), -1) * classes + pred.reshape(len(pred), -1)
    return np.stack([np.bincount(row, minlength=classes * classes).reshape(classes, classes) for row in idx])


def scores(conf: np.ndarray) -> dict:
    """mIoU (over classes present in the truth or the predictions), pixel accuracy, per-class IoU,
    from the summed confusion of a set of scenes."""
    total = conf.sum(0) if conf.ndim == 3 else conf
    tp = np.diag(total).astype(float)
    union = total.sum(0) + total.sum(1) - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), np.nan)
    return {"miou": float(np.nanmean(iou)), "accuracy": float(tp.sum() / total.sum()), "iou": iou.tolist()}


def bootstrap_difference(conf_a: np.ndarray, conf_b: np.ndarray, resamples: int = 2000, seed: int = 0):
    """Paired bootstrap over scenes of mIoU(a) − mIoU(b): (mean, 2.5%, 97.5%)."""
    rng = np.random.default_rng(seed)
    n = len(conf_a)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(n, size=n)
        diffs.append(scores(conf_a[idx])["miou"] - scores(conf_b[idx])["miou"])
    diffs = np.array(diffs)
    return float(diffs.mean()), float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


# ------------------------------------------------------------------------------ pictures
def picture_grid(scenes, columns: dict[str, np.ndarray], path: Path, rows: int = 8, scale: int = 2) -> None:
    from PIL import Image, ImageDraw

    from diffprior_landcover.files import upsample
    from diffprior_landcover.world import colourise

    size, gap, head = scenes[0].labels.shape[0], 3, 14
    names = ["image", "coarse"] + list(columns) + ["truth"]
    W = len(names) * (size + gap) + gap
    H = head + min(rows, len(scenes)) * (size + gap) + gap
    canvas = np.full((H, W, 3), 255, np.uint8)
    for r, s in enumerate(scenes[:rows]):
        tiles = [s.image, colourise(upsample(s.coarse, size))] + [colourise(c[r]) for c in columns.values()]
        tiles.append(colourise(s.labels))
        for c, tile in enumerate(tiles):
            y, x = head + gap + r * (size + gap), gap + c * (size + gap)
            canvas[y:y + size, x:x + size] = tile
    img = Image.fromarray(canvas).resize((W * scale, H * scale), Image.NEAREST)
    draw = ImageDraw.Draw(img)
    for c, name in enumerate(names):
        draw.text(((gap + c * (size + gap)) * scale + 2, 4), name, fill=(0, 0, 0))
    img.save(path)


# ------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--split", choices=("validation", "test"), default="test")
    p.add_argument("--count", type=int, default=64)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--block", type=int, default=16, help="coarse block side (pixels)")
    p.add_argument("--wrong", type=float, default=0.1, help="fraction of coarse blocks with a wrong class")
    p.add_argument("--methods", default=",".join(ALL_METHODS), help="comma-separated subset of " + ", ".join(ALL_METHODS))
    p.add_argument("--steps", type=int, default=None, help="override the recipe's optimizer steps")
    p.add_argument("--batch", type=int, default=16, help="scenes optimised together")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=12, help="clusters of the k-means baseline (4, 6, 8, 12 tried on 32 validation scenes: 12 best)")
    p.add_argument("--recipe", type=Path, default=RECIPE)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key for both optimised methods, e.g. terms.0.weight=2")
    p.add_argument("--set-prior", dest="prior_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key for prior+nmi+kl only")
    p.add_argument("--set-free", dest="free_overrides", action="append", default=None, metavar="KEY=VALUE",
                   help="override a recipe key for nmi+kl only (default: " + " ".join(FREE_DEFAULTS) + ", its own "
                        "validation-tuned setting: without the prior the coarse map's labelled class at `confidence` "
                        "beats the measured class table); the value none removes a key")
    p.add_argument("--out", type=Path, default=None, help="write landcover-results.json and landcover-grid.png here")
    p.add_argument("--reuse", action="store_true",
                   help="load predictions saved by an earlier run with the same --out, split, count and offset "
                        "(OUT/preds/METHOD.npy) instead of recomputing them")
    p.add_argument("--start", type=Path, default=None,
                   help="label maps [count, H, W] (.npy) the optimised methods start from instead of the coarse map")
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    if args.free_overrides is None:
        args.free_overrides = list(FREE_DEFAULTS)

    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from diffprior_landcover.world import CLASSES, NUM_CLASSES

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(ALL_METHODS))
    if unknown:
        p.error(f"unknown methods {unknown}; choose from {', '.join(ALL_METHODS)}")
    with tempfile.TemporaryDirectory() as tmp:
        scenes, path = make_scenes(args.split, args.count, args.offset, args.block, args.wrong, Path(tmp))
        start_key = None
        if args.start:
            from safetensors.numpy import load_file, save_file

            tensors = load_file(path)
            tensors["start"] = np.load(args.start).astype(np.uint8)
            if tensors["start"].shape != tensors["labels"].shape:
                p.error(f"--start {args.start} holds {tensors['start'].shape} label maps; the scenes are {tensors['labels'].shape}")
            save_file(tensors, path)
            start_key = "start"
        images = np.stack([s.image.transpose(2, 0, 1) / 255.0 for s in scenes])
        coarse = np.stack([s.coarse for s in scenes])
        truth = np.stack([s.labels for s in scenes])
        size = truth.shape[-1]
        preds, seconds = {}, {}
        saved = (args.out / "preds" / f"{args.split}-{args.offset}-{args.count}") if args.out else None
        for m in methods:
            start = time.perf_counter()
            if args.reuse and saved and (saved / f"{m}.npy").exists():
                preds[m] = np.load(saved / f"{m}.npy")
                info = json.loads((saved / f"{m}.json").read_text())
                seconds[m] = info["seconds"]
                print(f"  {m}: loaded from {saved} (computed with {info['settings']})", file=sys.stderr)
                continue
            if m == "prior+nmi+kl":
                preds[m] = solve(path, len(scenes), use_prior=True, batch=args.batch, overrides=args.overrides + args.prior_overrides,
                                 seed=args.seed, steps=args.steps, recipe=args.recipe, progress=args.progress, start_key=start_key)
            elif m == "nmi+kl":
                preds[m] = solve(path, len(scenes), use_prior=False, batch=args.batch, overrides=args.overrides + args.free_overrides,
                                 seed=args.seed, steps=args.steps, recipe=args.recipe, progress=args.progress, start_key=start_key)
            elif m == "coarse-nearest":
                preds[m] = coarse_nearest(coarse, size)
            elif m == "coarse-bilinear":
                preds[m] = coarse_bilinear(coarse, size, NUM_CLASSES)
            else:
                preds[m] = kmeans_baseline(images, coarse, args.k, NUM_CLASSES)
            seconds[m] = time.perf_counter() - start
            print(f"  {m}: {seconds[m]:.0f} s", file=sys.stderr)
            if saved:
                saved.mkdir(parents=True, exist_ok=True)
                np.save(saved / f"{m}.npy", preds[m].astype(np.uint8))
                settings = {"steps": args.steps, "overrides": args.overrides, "k": args.k, "recipe": str(args.recipe),
                            "start": str(args.start) if args.start else None}
                if m == "prior+nmi+kl":
                    settings["prior_overrides"] = args.prior_overrides
                if m == "nmi+kl":
                    settings["free_overrides"] = args.free_overrides
                (saved / f"{m}.json").write_text(json.dumps({"seconds": seconds[m], "settings": settings}) + "\n")

    confs = {m: confusions(preds[m], truth, NUM_CLASSES) for m in methods}
    results = {m: scores(confs[m]) | {"seconds": round(seconds[m], 1)} for m in methods}
    header = f"| method | mIoU | pixel acc. | " + " | ".join(CLASSES) + " | seconds |"
    lines = [header, "|" + "---|" * (len(CLASSES) + 4)]
    for m in methods:
        r = results[m]
        per = " | ".join("–" if v is None or np.isnan(v) else f"{100 * v:.1f}" for v in r["iou"])
        lines.append(f"| {m} | {100 * r['miou']:.1f} | {100 * r['accuracy']:.1f} | {per} | {r['seconds']:.0f} |")
    print(f"{args.split} scenes: {args.count} (offset {args.offset}), block {args.block}, wrong {args.wrong}")
    print("\n".join(lines))
    summary = {"split": args.split, "count": args.count, "offset": args.offset, "block": args.block, "wrong": args.wrong,
               "steps": args.steps, "overrides": args.overrides, "prior_overrides": args.prior_overrides, "free_overrides": args.free_overrides, "k": args.k,
               "classes": list(CLASSES), "results": results}
    free = [m for m in PRIOR_FREE if m in results]
    if "prior+nmi+kl" in results and free:
        best = max(free, key=lambda m: results[m]["miou"])
        mean, lo, hi = bootstrap_difference(confs["prior+nmi+kl"], confs[best])
        print(f"prior+nmi+kl − {best} (best prior-free): {100 * mean:+.1f} mIoU points, 95% paired bootstrap "
              f"interval [{100 * lo:+.1f}, {100 * hi:+.1f}] over {args.count} scenes")
        summary["difference_vs_best_prior_free"] = {"baseline": best, "mean": mean, "low": lo, "high": hi}
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "landcover-results.json").write_text(json.dumps(summary, indent=1) + "\n")
        picture_grid(scenes, {m: preds[m] for m in methods}, args.out / "landcover-grid.png")
        print(f"wrote {args.out}/landcover-results.json and landcover-grid.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
