"""U-Net speed on this machine: training throughput and sampling time.

    python benchmarks/unet_speed.py [--recipe plugins/diffprior-unet/recipes/digits.toml] [--threads 1]

Times the recipe's architecture (random weights: speed does not depend on them): training
steps (forward + backward + AdamW) in images/s for each precision variant side by side in one
run (fp32; bf16 autocast, what ``train.mixed_precision = "auto"`` picks on CPUs with native bf16
kernels; bf16 + channels-last memory format), U-Net forward passes, and DDIM sampling.
Median of repeated measurements after a warm-up; variants are interleaved so machine noise
hits them alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from diffprior import NoiseSchedule


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=Path("plugins/diffprior-unet/recipes/digits.toml"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override the recipe, e.g. --set model.channels=16")
    parser.add_argument("--training-only", action="store_true", help="skip the forward/sampling rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from diffprior_unet.model import UNet
    from diffprior_unet.prior import UNetPrior
    from diffprior_unet.training import load_train_config

    config = load_train_config(args.recipe, args.set)
    model = UNet(config.model).to(args.device)
    size, channels = config.model.image_size, config.model.in_channels
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    rows = []

    batch = config.train.batch_size
    x, t = torch.randn(batch, channels, size, size, device=args.device), torch.randint(0, 1000, (batch,), device=args.device)

    def train_step(bf16: bool, channels_last: bool):
        xb = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        with torch.autocast(device_type=args.device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            loss = (model(xb, t).float() - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    variants = {"fp32": (False, False), "bf16 autocast": (True, False), "bf16 + channels-last": (True, True)}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for name, (bf16, cl) in variants.items():  # warm-up
        model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        train_step(bf16, cl)
    for _ in range(args.repeats):
        for name, (bf16, cl) in variants.items():
            model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
            start = time.perf_counter()
            train_step(bf16, cl)
            times[name].append(time.perf_counter() - start)
    model.to(memory_format=torch.contiguous_format)
    fp32 = statistics.median(times["fp32"])
    for name, values in times.items():
        sec = statistics.median(values)
        rows.append((f"training step (batch {batch}), {name}", f"{sec * 1000:.0f} ms",
                     f"{batch / sec:.1f} images/s ({fp32 / sec:.2f}x)"))
    if args.training_only:
        rows_done(args, config, params, channels, size, rows)
        return
    model.eval()
    for b in (1, 16):
        xb, tb = x[:1].expand(b, -1, -1, -1).contiguous(), t[:1].expand(b).contiguous()
        with torch.no_grad():
            sec = median_seconds(lambda: model(xb, tb), args.repeats)
        rows.append((f"U-Net forward (batch {b})", f"{sec * 1000:.1f} ms", f"{b / sec:.1f} images/s"))
    prior = UNetPrior(model, NoiseSchedule.named(config.noise.schedule, config.noise.T))
    for n, steps in ((16, 20), (16, 50)):
        sec = median_seconds(lambda: prior.sample(n, steps=steps, method="ddim"), max(1, args.repeats // 2))
        rows.append((f"DDIM sampling, {n} samples, {steps} steps", f"{sec:.2f} s", f"{n / sec:.2f} samples/s"))
    rows_done(args, config, params, channels, size, rows)


def rows_done(args, config, params, channels, size, rows) -> None:
    print(f"{args.recipe.name}: {params / 1e6:.2f}M parameters, {channels}×{size}×{size}, "
          f"device {args.device}, {torch.get_num_threads()} thread(s)")
    print(f"| {'what':48} | {'time':>9} | {'throughput':>26} |")
    print(f"|{'-' * 50}|{'-' * 11}|{'-' * 28}|")
    for what, time_text, rate in rows:
        print(f"| {what:48} | {time_text:>9} | {rate:>26} |")


if __name__ == "__main__":
    main()
