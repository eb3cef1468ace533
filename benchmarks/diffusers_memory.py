"""Peak memory of one full-gradient free-energy step through a diffusers UNet2DModel, per batch
size, with and without gradient checkpointing and half-precision (bf16) weights. CPU only:
memory is the process's resident set (RSS), measured in a fresh process per mode.

The model is the FFHQ ADM architecture (preset ``ffhq_10m``: 1 res block per level, channel
mult 1,1,2,2,4,4, attention at 16 px, scale-shift norm, up/down res blocks) made small:
``--channels`` base channels at ``--size`` pixels, random weights. For each batch size (after
the RSS high-water mark is reset before the step) it reports the step's peak RSS minus the
RSS before it (weights loaded): the memory the gradient needs. Each mode runs in a fresh process
with fixed glibc malloc thresholds (``MALLOC_ENV``) so that freed tensors leave the resident set.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diffusers_memory.py            # table of all modes
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diffusers_memory.py --mode fp32 --json   # one mode
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

MODES = {"fp32": ("fp32", False), "fp32+checkpointing": ("fp32", True), "bf16": ("bf16", False),
         "bf16+checkpointing": ("bf16", True)}


# glibc keeps freed blocks resident and raises its mmap threshold as it goes; fixed thresholds make
# every large tensor its own mapping, returned at once when freed, so the RSS follows live memory
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """The RSS high-water mark (VmHWM) since the last :func:`_reset_peak`."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5": reset the high-water mark to the current RSS
        f.write("5")


def measure(mode: str, channels: int, size: int, batches: list[int]) -> dict:
    import torch
    from diffusers import UNet2DModel

    from diffprior_diffusers.adm import adm_unet_config, fixed_heads
    from diffprior_diffusers.flags import resolve_flags
    from diffprior_diffusers.loading import finish_unet, set_attention_heads
    from diffprior_diffusers.prior import DiffusersPrior
    from diffprior_diffusers.schedule import noise_schedule_from_scheduler_config, scheduler_config_for

    torch.set_num_threads(1)
    torch.manual_seed(0)
    dtype, checkpointing = MODES[mode]
    flags = resolve_flags("ffhq_10m", {"image_size": size, "num_channels": channels, "channel_mult": "1,1,2,2,4,4",
                                       "num_head_channels": min(64, channels)})
    unet = UNet2DModel.from_config(adm_unet_config(flags))
    set_attention_heads(unet, fixed_heads(flags))
    unet = finish_unet(unet, dtype=dtype, device="cpu", gradient_checkpointing=checkpointing)
    prior = DiffusersPrior(unet, noise_schedule_from_scheduler_config(scheduler_config_for("linear", 1000)),
                           shape=(3, size, size))
    parameters = sum(p.numel() for p in unet.parameters())
    rows = []
    for batch in [batches[0]] + batches:  # the first step warms up kernels and allocator caches: not reported
        base = _rss_mb()
        _reset_peak()
        x = torch.randn(batch, 3, size, size, requires_grad=True)  # the free-energy variable
        t = torch.full((batch,), 500)
        eps = torch.randn_like(x)
        start = time.perf_counter()
        a = prior.noise.alpha_bar(t, x)
        loss = (eps - prior.eps(a.sqrt() * x + (1 - a).sqrt() * eps, t)).pow(2).flatten(1).mean(1).sum()
        loss.backward()  # the full gradient: back through the U-Net to x
        seconds = time.perf_counter() - start
        rows.append({"batch": batch, "gradient_mb": round(_peak_mb() - base, 1), "seconds": round(seconds, 2)})
        del x, loss, a, eps
    rows = rows[1:]
    return {"mode": mode, "channels": channels, "size": size, "parameters": parameters,
            "weights_mb": round(parameters * (2 if dtype == "bf16" else 4) / 2**20, 1), "rows": rows}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=sorted(MODES), default=None, help="measure one mode in this process")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batches", default="1,2,4")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.mode:
        result = measure(args.mode, args.channels, args.size, batches)
        print(json.dumps(result) if args.json else result)
        return 0
    results = []
    for mode in MODES:  # a fresh process per mode: nothing cached from another mode
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--channels", str(args.channels), "--size",
                              str(args.size), "--batches", args.batches, "--json"], capture_output=True, text=True,
                             check=True, env=dict(os.environ, **MALLOC_ENV))
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first = results[0]
    print(f"ADM (ffhq_10m layout) with {first['channels']} base channels at {first['size']}x{first['size']}: "
          f"{first['parameters']:,} parameters; memory of one full-gradient step above the loaded weights (MB)")
    print("| mode | weights MB | " + " | ".join(f"batch {b}" for b in batches) + " | MB per extra sample | s/step at batch "
          + str(batches[-1]) + " |")
    print("|---|---|" + "---|" * len(batches) + "---|---|")
    for r in results:
        cells = " | ".join(f"{row['gradient_mb']:.0f}" for row in r["rows"])
        first, last = r["rows"][0], r["rows"][-1]
        slope = (last["gradient_mb"] - first["gradient_mb"]) / max(last["batch"] - first["batch"], 1)
        print(f"| {r['mode']} | {r['weights_mb']:.0f} | {cells} | {slope:.0f} | {last['seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
