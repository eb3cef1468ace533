"""What a run writes: sample grid, tensors, metrics, resolved config and loss curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

# a colour per class for label maps (K > 3 channels)
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]


def to_images(x: torch.Tensor, data_range=(-1.0, 1.0)) -> torch.Tensor | None:
    """[B, C, H, W] → uint8 [B, H, W, 3]; None when x is not image-like."""
    if x.ndim != 4:
        return None
    x = x.detach().float().cpu()
    C = x.shape[1]
    if C in (1, 3):
        lo, hi = data_range
        img = ((x - lo) / (hi - lo)).clamp(0, 1)
        img = img.expand(-1, 3, -1, -1) if C == 1 else img
        return (img.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)
    labels = x.argmax(1)
    palette = torch.tensor([PALETTE[i % len(PALETTE)] for i in range(C)], dtype=torch.uint8)
    return palette[labels]


def save_grid(x: torch.Tensor, path: Path, data_range=(-1.0, 1.0), ncol: int | None = None, scale: int = 1) -> bool:
    """Write a PNG grid of samples. Returns False when the samples are not images."""
    from PIL import Image

    imgs = to_images(x, data_range)
    if imgs is None:
        return False
    B, H, W, _ = imgs.shape
    ncol = ncol or min(B, max(1, math.ceil(math.sqrt(B))))
    nrow = math.ceil(B / ncol)
    pad = 2
    canvas = torch.full((nrow * (H + pad) + pad, ncol * (W + pad) + pad, 3), 255, dtype=torch.uint8)
    for i in range(B):
        r, c = divmod(i, ncol)
        canvas[pad + r * (H + pad): pad + r * (H + pad) + H, pad + c * (W + pad): pad + c * (W + pad) + W] = imgs[i]
    image = Image.fromarray(canvas.numpy())
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    image.save(path, format="PNG")  # explicit: atomic writes go through a temporary name
    return True


def plot_losses(losses: dict[str, torch.Tensor], timesteps: torch.Tensor, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(losses) + 1
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.0), squeeze=False)
    for ax, (name, values) in zip(axes[0], list(losses.items()) + [("timestep t", timesteps.float())]):
        if values.numel() == 0:
            continue
        mean = values.float().mean(1)
        ax.plot(values.float().numpy(), color="tab:blue", alpha=0.15, linewidth=0.6)
        ax.plot(mean.numpy(), color="tab:red", linewidth=1.2, label="batch mean")
        ax.set_title(name if name == "timestep t" else f"{name} loss")
        ax.set_xlabel("step")
        if name == "prior":
            ax.set_yscale("log")
    axes[0][0].legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


# every file a run may write (an overwritten run's leftovers among them are removed)
RUN_FILES = ("samples.safetensors", "samples.png", "metrics.json", "config.resolved.toml", "losses.png",
             "schedules.png", "shard.json", "shard.safetensors")  # the last two: partial outputs of --shard I/N


def write_run(out, config, result, prior, *, elapsed: float | None = None, status: str | None = None,
              rows=None) -> dict[str, Path]:
    """Write a run's files into ``out`` (a claimed :class:`~diffprior.runs.directories.RunDir`, or a
    path, which is then claimed as a fresh directory), each atomically, the manifest last.

    Then the prior, variable and terms write their own outputs (``write_outputs``; not after a
    failure): ``rows`` are the samples of the whole run that ``result`` holds (default
    0..len-1); their figures go into ``metrics.json`` under ``outputs`` and ``result.outputs``."""
    from safetensors.torch import save_file

    from .directories import RunDir

    if not isinstance(out, RunDir):
        with RunDir.claim(out) as run_dir:
            return write_run(run_dir, config, result, prior, elapsed=elapsed, status=status, rows=rows)
    run_dir = out
    run_dir.start_overwrite()
    files = {}
    # ``x`` is what the grid shows: the samples clipped to the prior's data range; the
    # unclipped samples are kept as ``x_unclipped`` when clipping changed them
    x = result.x.cpu()
    shown = x.clamp(*prior.data_range)
    tensors = {
        "x": shown.clone().contiguous(),
        "x_optimized": result.x_optimized.cpu().clone().contiguous(),
        "params": result.params.cpu().clone().contiguous(),
        "seeds": torch.tensor(result.seeds),
    }
    if not torch.equal(shown, x):
        tensors["x_unclipped"] = x.clone().contiguous()
    files["tensors"] = run_dir.write("samples.safetensors", lambda p: save_file(tensors, str(p)))
    scale = max(1, 128 // result.x.shape[-1])
    if to_images(result.x[:1], prior.data_range) is not None:
        files["grid"] = run_dir.write("samples.png", lambda p: save_grid(result.x, p, prior.data_range, scale=scale))
    if status != "failed":
        rows = list(range(len(result.seeds))) if rows is None else list(rows)
        result.outputs = component_outputs(run_dir, config, result, prior, rows)
    metrics = {
        "seeds": result.seeds,
        "steps_done": result.steps_done,
        "interrupted": result.interrupted,
        "seconds": elapsed,
        "final_loss": {k: v[-1].tolist() for k, v in result.losses.items() if v.numel()},
        "metrics": {k: v.tolist() for k, v in result.metrics.items()},
        "metrics_mean": {k: float(v.float().mean()) for k, v in result.metrics.items()},
    }
    if result.outputs:
        metrics["outputs"] = result.outputs
    files["metrics"] = run_dir.write_text("metrics.json", json.dumps(metrics, indent=2))
    composed = hasattr(config, "effective")  # a merge of shards re-dumps the parts' resolved config
    resolved = config.effective() if composed else config  # every term's weight and clip written out
    files["config"] = run_dir.write_text("config.resolved.toml",
                                         dump_toml(resolved.model_dump(mode="json", exclude_none=True)))
    if result.steps_done:
        files["losses"] = run_dir.write("losses.png", lambda p: plot_losses(result.losses, result.timesteps, p))
    if composed:
        from ..config.explain import plot_schedules

        files["schedules"] = run_dir.write("schedules.png", lambda p: plot_schedules(config, p))
    from .provenance import provenance

    state = status or ("interrupted" if result.interrupted else "done")
    made = provenance(config, components=None if composed else config.components())
    files["manifest"] = run_dir.finish({"status": state, "steps_done": result.steps_done, "provenance": made},
                                       outputs=RUN_FILES)
    return files


def component_outputs(run_dir, config, result, prior, rows: list[int]) -> dict:
    """The run lifecycle's last phase: each prior, variable and term config writes its own
    files and returns its figures ({component name: figures}, only those that gave some)."""
    from ..config.bases import OutputContext

    components = config.components() if hasattr(config, "components") else []
    ctx = OutputContext(result=result, rows=rows, prior=prior, base_dir=getattr(config, "base_dir", None),
                        run_dir=run_dir)
    figures = {}
    for name, component in components:
        found = component.write_outputs(ctx)
        if found:
            figures[name] = found
    return figures


def dump_toml(data: dict) -> str:
    import tomli_w

    return tomli_w.dumps(data)
