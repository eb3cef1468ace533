"""Writes half-digit.safetensors for examples/digits.toml: a real held-out digit ("target",
[1, 32, 32] in [-1, 1]) and a "mask" that is 1 on its left half (the known pixels).

    python examples/data/make_half_digit.py [--index 150]
"""

import argparse
from pathlib import Path

import torch
from safetensors.torch import save_file

from diffprior_images.digits import mnist_digits

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--index", type=int, default=150, help="index into mnist_digits('heldout') (150 is a 3)")
args = parser.parse_args()
images, labels = mnist_digits("heldout")
target = images[args.index]
mask = torch.zeros_like(target)
mask[..., : target.shape[-1] // 2] = 1.0
path = Path(__file__).with_name("half-digit.safetensors")
save_file({"target": target.contiguous(), "mask": mask, "label": labels[args.index : args.index + 1]}, str(path))
print(f"wrote {path}: held-out digit #{args.index} (a {int(labels[args.index])}), left half known")
