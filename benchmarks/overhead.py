"""Optimizer overhead: diffprior's step against a hand-written PyTorch loop doing the same math,
and the `sds` step against the `full` step. Same model, same batch, measured side by side
(interleaved repeats, median per-step time).

    python benchmarks/overhead.py [--batch 16] [--steps 30] [--repeats 5]

The model is the U-Net of the bundled digits prior's architecture (random weights: the
timing does not depend on them); without diffprior-unet installed, a small conv net.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from diffprior import NoiseSchedule, Options, Pixels, Prior, Term, WeightedTerm, optimize
from diffprior.method.schedules import CosineLinear


def make_model():
    try:
        from diffprior_unet.model import UNet

        return UNet(dict(image_size=32, in_channels=1, channels=32, channel_mult=[1, 2, 2], num_res_blocks=1,
                         attention_resolutions=[8], dropout=0.0)), "U-Net (digits architecture)"
    except ImportError:
        net = torch.nn.Sequential(torch.nn.Conv2d(2, 64, 3, padding=1), torch.nn.SiLU(), torch.nn.Conv2d(64, 1, 3, padding=1))

        class Conv(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, x, t):
                return self.net(torch.cat([x, (t.float() / 1000).view(-1, 1, 1, 1).expand_as(x)], 1))

        return Conv(), "2-layer conv net"


class ModelPrior(Prior):
    def __init__(self, model):
        super().__init__(NoiseSchedule.linear(1000), (1, 32, 32))
        self.model = model

    def eps(self, x_t, t):
        return self.model(x_t, t)


class Symmetry(Term):
    def log_c(self, x):
        return -(x - x.flip(-1)).pow(2).flatten(1).mean(1)


def library_run(prior, batch, steps, gradient):
    options = Options(optimizer={"steps": steps, "lr": 0.01}, timesteps=CosineLinear(), gradient=gradient)
    terms = [WeightedTerm("symmetry", Symmetry(None, None), 0.01)]
    start = time.perf_counter()
    optimize(prior, Pixels(prior), terms, list(range(batch)), options)
    return (time.perf_counter() - start) / steps


def hand_written_run(model, batch, steps):
    """What a researcher writes by hand: the same free energy, Adam, same schedule."""
    alphas_cumprod = NoiseSchedule.linear(1000).alphas_cumprod.float()
    schedule = CosineLinear()
    torch.manual_seed(0)
    eta = torch.randn(batch, 1, 32, 32, requires_grad=True)
    opt = torch.optim.Adam([eta], lr=0.01)
    start = time.perf_counter()
    for i in range(steps):
        t = torch.full((batch,), schedule.at_step(i, steps)).round().clamp(1, 999).long()
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        eps = torch.randn_like(eta)
        x_t = a.sqrt() * eta + (1 - a).sqrt() * eps
        prior_loss = (eps - model(x_t, t)).pow(2).flatten(1).mean(1)
        x = eta.clamp(-1, 1)
        sym = (x - x.flip(-1)).pow(2).flatten(1).mean(1)
        loss = (prior_loss + 0.01 * sym).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, label = make_model()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    prior = ModelPrior(model)
    times = {"hand-written loop": [], "diffprior full": [], "diffprior sds": []}
    library_run(prior, args.batch, 3, "full")  # warm-up
    hand_written_run(model, args.batch, 3)
    for _ in range(args.repeats):  # interleaved so load changes hit all three alike
        times["hand-written loop"].append(hand_written_run(model, args.batch, args.steps))
        times["diffprior full"].append(library_run(prior, args.batch, args.steps, "full"))
        times["diffprior sds"].append(library_run(prior, args.batch, args.steps, "sds"))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"model: {label}; batch {args.batch}; {args.steps} steps x {args.repeats} repeats; "
          f"{args.threads} thread(s); torch {torch.__version__}")
    print(f"| {'loop':<20} | {'ms / step (median)':>18} | {'ratio':>22} |")
    print(f"|{'-' * 22}|{'-' * 20}|{'-' * 24}|")
    base = med["hand-written loop"]
    print(f"| {'hand-written loop':<20} | {base * 1e3:18.2f} | {'1.00 (reference)':>22} |")
    print(f"| {'diffprior full':<20} | {med['diffprior full'] * 1e3:18.2f} | {med['diffprior full'] / base:10.3f} vs hand loop |")
    print(f"| {'diffprior sds':<20} | {med['diffprior sds'] * 1e3:18.2f} | {med['diffprior sds'] / med['diffprior full']:10.3f} vs full      |")


if __name__ == "__main__":
    main()
