"""``diffprior landcover data|install-prior``. Imports numpy/torch only when run."""

from __future__ import annotations

import shutil
from pathlib import Path

from diffprior import Command, UsageError, positive_int, subcommands


# ------------------------------------------------------------------------------ data
def _configure_data(p):
    p.add_argument("--count", type=positive_int, required=True, help="number of scenes")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--split", choices=("train", "validation", "test"), default="validation",
                   help="seed range: train (prior training), validation (tuning), test (benchmarks only)")
    p.add_argument("--offset", type=int, default=0, help="skip this many seeds of the split")
    p.add_argument("--block", type=positive_int, default=16, help="coarse-map block side in pixels (8 or 16 for 64×64 maps)")
    p.add_argument("--wrong", type=float, default=0.1, help="fraction of coarse blocks given a wrong class")
    p.add_argument("--no-png", action="store_true", help="only scenes.safetensors (no per-scene PNG files)")
    p.add_argument("--onehot", action="store_true", help="also write onehot.safetensors: label maps to train a prior on")
    p.add_argument("--onehot-only", action="store_true", help="only the one-hot label maps (fast; no images)")


def _data(args) -> int:
    import numpy as np

    from .files import write_onehot, write_scenes
    from .world import label_map, scene, split_seeds

    if 64 % args.block:
        raise UsageError(f"--block {args.block} does not divide the 64×64 maps; use 4, 8, 16 or 32")
    if not 0 <= args.wrong < 1:
        raise UsageError(f"--wrong must be in [0, 1), got {args.wrong}")
    if args.offset < 0:
        raise UsageError(f"--offset must be non-negative, got {args.offset}")
    try:
        seeds = split_seeds(args.split, args.count, args.offset)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    name = f"{args.split}-onehot.safetensors"
    if args.onehot_only:
        write_onehot(args.out / name, np.stack([label_map(s) for s in seeds]))
        print(f"wrote {len(seeds)} one-hot label maps (seeds {seeds[0]}..{seeds[-1]}) → {args.out / name}")
        return 0
    scenes = [scene(s, block=args.block, wrong=args.wrong) for s in seeds]
    write_scenes(args.out, scenes, pngs=not args.no_png)
    if args.onehot:
        write_onehot(args.out / name, np.stack([s.labels for s in scenes]))
    what = "scenes.safetensors, classes.json" + ("" if args.no_png else ", NNNN-{image,labels,coarse}.png, preview.png")
    print(f"wrote {len(scenes)} {args.split} scenes (seeds {seeds[0]}..{seeds[-1]}) → {args.out}/: {what}")
    return 0


# ------------------------------------------------------------------------------ install-prior
def _configure_install(p):
    p.add_argument("checkpoint", type=Path, help="a trained NAME.safetensors (with NAME.json beside it)")
    p.add_argument("--name", default="landcover", help="file stem in diffprior_landcover/weights")


def _install(args) -> int:
    """Copy a label-map prior into the package (diffprior_landcover/weights/NAME.safetensors + .json)."""
    src = args.checkpoint if args.checkpoint.suffix == ".safetensors" else args.checkpoint.with_suffix(".safetensors")
    if not src.exists() or not src.with_suffix(".json").exists():
        raise UsageError(f"{src} (with its .json beside it) does not exist; train one with diffprior train-prior")
    target = Path(__file__).parent / "weights" / f"{args.name}.safetensors"
    target.parent.mkdir(exist_ok=True)
    shutil.copyfile(src, target)
    shutil.copyfile(src.with_suffix(".json"), target.with_suffix(".json"))
    print(f"installed {src} as {target}")
    return 0


SUBCOMMANDS = {
    "data": ("generate synthetic scenes: image, true label map, coarse map (PNG + safetensors)", _configure_data, _data),
    "install-prior": ("copy a trained label-map prior into the package as the bundled prior", _configure_install, _install),
}


_configure, _run = subcommands("landcover", SUBCOMMANDS)


LANDCOVER_COMMAND = Command("landcover", "land-cover segmentation with a label-map prior: synthetic scenes with ground truth",
                            _configure, _run)
