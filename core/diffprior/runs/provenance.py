"""What made a run, recorded in its manifest: the distribution and version that supplied each
type the config uses, diffprior's, torch's and Python's versions, the device, precision,
threads and command line, and where each term's weight and clip came from.

``diffprior run --from RUN_DIR`` compares the recorded versions with the installed ones and
names every difference before it re-runs the resolved config.
"""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version


def _version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def provenance(config, components=None) -> dict:
    """The provenance record of a run of ``config`` (a validated run config). ``components``
    (name, config) stand in when only those are known (a merge of shards)."""
    import torch

    from diffprior.config.explain import schedules_of, supplier, value_sources
    from diffprior.plugins.registry import get_registry

    registry = get_registry()
    full = hasattr(config, "effective")
    parts = config.components() if full else list(components or [])
    types = {}
    for name, cfg in parts:
        dist, ver = supplier(cfg.kind, cfg.type, registry)
        types[name] = {"kind": cfg.kind, "type": cfg.type, "distribution": dist, "version": ver}
    if full:
        for name, schedule in schedules_of(config).items():
            if hasattr(schedule, "type"):
                dist, ver = supplier("schedule", schedule.type, registry)
                types[f"schedule: {name}"] = {"kind": "schedule", "type": schedule.type,
                                              "distribution": dist, "version": ver}
    prior = parts[0][1] if parts else None
    record = {
        "diffprior": _version("diffprior"),
        "torch": _version("torch"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": getattr(config, "device", None),
        "precision": getattr(prior, "precision", None) or "fp32",
        "threads": torch.get_num_threads(),
        "command": list(sys.argv),
        "types": types,
    }
    if full:
        record["term_values"] = value_sources(config, registry)
    return record


def version_differences(recorded: dict) -> list[str]:
    """How the installed distributions differ from those a run recorded, one line each."""
    from diffprior.config.explain import supplier

    lines = []
    if recorded.get("diffprior") and recorded["diffprior"] != _version("diffprior"):
        lines.append(f"diffprior {recorded['diffprior']} made the run; {_version('diffprior')} is installed")
    if recorded.get("torch") and recorded["torch"] != _version("torch"):
        lines.append(f"torch {recorded['torch']} made the run; {_version('torch')} is installed")
    seen = set()
    for entry in recorded.get("types", {}).values():
        key = (entry["kind"], entry["type"])
        if key in seen:
            continue
        seen.add(key)
        dist, ver = supplier(entry["kind"], entry["type"])
        if dist is None:
            lines.append(f"{entry['kind']} type {entry['type']!r} came from {entry['distribution']} "
                         f"{entry['version']}, which supplies nothing now")
        elif (dist, ver) != (entry["distribution"], entry["version"]):
            lines.append(f"{entry['kind']} type {entry['type']!r} came from {entry['distribution']} "
                         f"{entry['version']}; now from {dist} {ver}")
    return lines
