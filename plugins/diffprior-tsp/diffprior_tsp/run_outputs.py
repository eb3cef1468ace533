"""What a ``diffprior run`` of the tsp-edges variable writes after the optimisation: the
decoded tours, their lengths and gaps beside the uniform heat-map decoded the same way, and
a picture of the first instance."""

from __future__ import annotations

import json

import numpy as np


def write_tours(config, ctx) -> dict:
    """Decode every sample's heat-map into a tour; write ``tours.txt`` (the instance format,
    the found tour as its ``output``), ``tours.json`` (per-instance figures) and ``tours.png``.
    Returns the run's figures: mean length, and with reference tours in the file the gap (%)
    and the same decoding of the uniform heat-map, with a paired bootstrap interval."""
    import torch

    from .evaluation import paired_bootstrap
    from .instances import format_instance, read_instances, tour_lengths
    from .pictures import draw_solution
    from .solver import decode_tours
    from .variable import successor_matrix

    instances = read_instances(config.instances)
    rows = [config.start + i for i in ctx.rows]
    coords = instances.coords[rows]
    with torch.no_grad():
        adjacency = successor_matrix(ctx.result.params, config.temperature).cpu().numpy()
    tours = decode_tours(adjacency, coords, config.uniform_weight, improve=config.two_opt)
    lengths = tour_lengths(coords, tours)
    ctx.write_text("tours.txt", "".join(format_instance(c, t) + "\n" for c, t in zip(coords, tours)))
    decoding = "greedy + 2-opt" if config.two_opt else "greedy"
    figures = {"instances": len(rows), "decoding": decoding, "mean_length": float(lengths.mean())}
    per_instance = {"instance": rows, "length": lengths.round(6).tolist()}
    reference = None
    if instances.tours is not None:
        reference = instances.tours[rows]
        best = tour_lengths(coords, reference)
        uniform = np.full_like(adjacency, 1.0 / (adjacency.shape[-1] - 1))
        baseline = tour_lengths(coords, decode_tours(uniform, coords, 0.0, improve=config.two_opt))
        gaps, baseline_gaps = 100 * (lengths / best - 1), 100 * (baseline / best - 1)
        mean, low, high = paired_bootstrap(gaps, baseline_gaps, seed=0)
        figures.update({
            "gap_percent": 100 * (float(lengths.sum()) / float(best.sum()) - 1),
            "uniform_gap_percent": 100 * (float(baseline.sum()) / float(best.sum()) - 1),
            "gap_difference": {"mean": mean, "low": low, "high": high},
        })
        per_instance.update({"reference_length": best.round(6).tolist(), "gap_percent": gaps.round(4).tolist(),
                             "uniform_gap_percent": baseline_gaps.round(4).tolist()})
    ctx.write_text("tours.json", json.dumps({**figures, "per_instance": per_instance}, indent=1) + "\n")
    image = ctx.result.x[0, 0].detach().float().cpu().numpy()
    first_reference = None if reference is None else reference[0]
    ctx.write("tours.png", lambda path: draw_solution(path, coords[0], adjacency[0], image, tours[0], first_reference,
                                                      title=f"instance {rows[0]} of {config.instances.name}"))
    return figures
