"""``tsp solve|eval`` over several processes (torchrun) or as ``--shard I/N`` parts.

A process solves whole batches of ``--batch-size`` consecutive instances: the batches of the
file are split into contiguous shards (``--shard``), and those into contiguous parts per rank
(:func:`diffprior.runs.sharding.process_rows`, shared with ``diffprior run``). Instance ``i``
keeps the seed ``seed + i`` and is optimised in the same batch as in a single process, so
its heat-map, its tours and every figure computed from them are the same bit for bit. Uses
diffprior's public :mod:`diffprior.runs.distributed` and :mod:`diffprior.runs.sharding`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from diffprior import UsageError

PART_KIND = "tsp eval"


def setup(args):
    """Join torchrun's process group if launched by it; ``args.device`` becomes this rank's device."""
    from diffprior import distributed

    world, args.device = distributed.setup(args.device)
    return world


def gather_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each rank's arrays joined along the first axis in rank order (one process: unchanged)."""
    import torch
    from diffprior import distributed

    if not distributed.current().distributed:
        return arrays
    pieces = distributed.gather({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
    return {k: np.concatenate([t[k].numpy() for t, _ in pieces]) for k in arrays}


def sum_over_ranks(*values: float) -> list[float]:
    from diffprior import distributed

    return distributed.all_sum(list(values))


# ------------------------------------------------------------------------------ eval parts
def write_part(path: Path, shard, rows: range, total: int, header: dict, methods: list[tuple],
               reference: np.ndarray, heat: dict) -> None:
    """A partial ``tsp eval`` result: per-instance lengths of every method at full precision."""
    part = {"kind": PART_KIND, "shard": [shard.index, shard.count], "rows": [rows.start, rows.stop], "total": total,
            **header, "reference": reference.tolist(),
            "methods": [{"method": name, "role": role, "seconds": seconds, "lengths": lengths.tolist()}
                        for name, role, lengths, seconds in methods],
            "heat": {k: np.asarray(v, dtype=np.float64).tolist() for k, v in heat.items()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(part) + "\n")


def file_digest(path) -> str:
    """SHA-256 of a file's bytes: parts of one evaluation must have read the same instances."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# what a part written before a field existed used
PART_DEFAULTS = {"uniform_weight": 0.0}


def _comparable(field: str, value):
    """The instance file by its name: the parts of one evaluation may have been written from
    other working directories or machines, which name the same file by another path."""
    return Path(value).name if field == "instances_file" and value is not None else value


def join_parts(parts: list[tuple], allow_missing: bool = False) -> tuple[dict, list[tuple], np.ndarray, dict]:
    """(header, methods, reference, heat) of the whole instance file from its ``--shard`` parts
    (with ``allow_missing``: of the instances the given parts cover, in shard order).

    Methods are matched by role; a role whose name differs between parts (the matched-time
    baseline's restart count comes from each part's wall time) keeps the first part's name
    with the range of counts."""
    from diffprior import missing_shards

    by_index, first, digest = {}, None, None
    for path, info in parts:
        index, count = info["shard"]
        if first is None:
            first = info
        fields = ("total", "instances_file", "settings", "samples", "restarts", "sigma", "uniform_weight",
                  "first_seed", "checkpoint", "baselines_only", "precision")
        different = [f for f in fields if _comparable(f, info.get(f, PART_DEFAULTS.get(f)))
                     != _comparable(f, first.get(f, PART_DEFAULTS.get(f)))]
        # parts written before the digest was recorded carry none: those are compared by file name only
        digest = digest or info.get("instances_sha256")
        if info.get("instances_sha256", digest) != digest:
            different.append("instances_sha256 (the instance files' contents)")
        if count != first["shard"][1] or different:
            raise UsageError(f"{path} is not a part of the same evaluation as {parts[0][0]} "
                             f"(differs in {', '.join(different) or 'the number of shards'}); merge one evaluation only")
        if index in by_index:
            raise UsageError(f"shard {index}/{count} given twice ({by_index[index][0]} and {path}); give it once")
        by_index[index] = (path, info)
    count = first["shard"][1]
    missing = missing_shards(by_index, count)
    if missing and not allow_missing:
        names = ", ".join(f"{i}/{count}" for i in missing)
        raise UsageError(f"missing shard(s) {names} of {first['instances_file']}: run only those "
                         f"(diffprior tsp eval ... --shard I/{count} --json PART.json) and merge again")
    ordered = [by_index[i][1] for i in sorted(by_index)]
    roles = [m["role"] for m in ordered[0]["methods"]]
    methods = []
    for k, role in enumerate(roles):
        entries = [next(m for m in part["methods"] if m["role"] == role) for part in ordered]
        names = sorted({m["method"] for m in entries})
        name = names[0] if len(names) == 1 else f"{entries[0]['method']} (parts: {'; '.join(names)})"
        methods.append((name, role, np.concatenate([np.asarray(m["lengths"], dtype=np.float64) for m in entries]),
                        sum(m["seconds"] for m in entries)))
    reference = np.concatenate([np.asarray(p["reference"], dtype=np.float64) for p in ordered])
    heat = {k: np.concatenate([np.asarray(p["heat"][k]) for p in ordered]) for k in ordered[0]["heat"]}
    # older parts lack the newer fields: the header carries their defaults, so readers need no fallbacks
    header = PART_DEFAULTS | {k: v for k, v in first.items()
                              if k not in ("kind", "shard", "rows", "reference", "methods", "heat")}
    return header, methods, reference, heat
