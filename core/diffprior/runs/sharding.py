"""Splitting problems by index: ``--shard i/n``, torchrun ranks, and merging the pieces.

Per-sample seeds make a problem's result independent of its batch, process or machine, so
a list of N problems can be cut into contiguous shards, solved anywhere, and put back
together in index order to give exactly what one process would have produced.

Shard ``i`` of ``n`` over ``N`` items is ``range(N·i // n, N·(i+1) // n)``: contiguous
(so TSP instance ``a..b`` keeps the seeds ``seed + a..b``), sizes differing by at most one.
The items are whole batches when a batch size is set (:func:`process_rows`): a problem is
then solved in the same batch whatever the number of shards and processes, so even a
convolutional prior gives the same floats. No torch here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UsageError

SHARD_FILE = "shard.json"  # what a partial output says about itself


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``0/1`` is everything)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> "Shard":
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
        if not match:
            raise UsageError(f"--shard expects I/N (shard I of N, counted from 0), e.g. --shard 0/4; got {text!r}")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 0 <= index < count:
            raise UsageError(f"--shard {text}: I must be in 0..N-1 and N >= 1 (shards are counted from 0)")
        return cls(index, count)

    @property
    def whole(self) -> bool:
        return self.count == 1

    def range(self, total: int) -> range:
        return shard_range(total, self.index, self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_range(total: int, index: int, count: int) -> range:
    """The contiguous problem indices of shard ``index`` of ``count`` over ``total`` problems."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count} does not exist")
    return range(total * index // count, total * (index + 1) // count)


def split(items, index: int, count: int) -> list:
    """The items of shard ``index`` of ``count`` (contiguous, in order)."""
    items = list(items)
    return [items[i] for i in shard_range(len(items), index, count)]


def process_rows(total: int, batch_size: int | None, shard: Shard | None = None, world=None, *,
                 what: str = "problems", setting: str = "--batch-size") -> range:
    """The problems (indices ``0..total-1``) this process solves: its shard, then its rank's part.

    With a ``batch_size`` the unit of work is a whole batch: the problems are cut into the
    batches one process would run (``batch_size`` consecutive problems, the last one shorter),
    a shard takes contiguous batches and a rank contiguous batches of its shard. Every problem
    is then solved in the same batch as in one process, which is what makes convolutional
    networks on CPU give the same floats (their kernels block differently for another batch
    size). Raises UsageError when there are fewer batches than shards × processes.

    Without one (``None``), the problems themselves are split: each process's part is its one
    batch, which depends on the number of processes. A rank may then get no problem.
    ``world`` (a :class:`~diffprior.runs.distributed.World`) defaults to one process; ``what``
    and ``setting`` name the problems and the batch-size setting in errors."""
    from .distributed import World

    shard, world = shard or Shard(), world or World()
    if batch_size is None:
        if total < shard.count:
            raise UsageError(f"--shard {shard}: {total} {what} cannot fill {shard.count} shards; use fewer shards")
        rows = shard.range(total)
        part = shard_range(len(rows), world.rank, world.size)
        return range(rows.start + part.start, rows.start + part.stop)
    if batch_size < 1:
        raise UsageError(f"{setting} must be at least 1, got {batch_size}")
    batches = -(-total // batch_size)
    needed = shard.count * world.size
    if batches < needed:
        raise UsageError(f"{total} {what} make {batches} batch(es) of {setting} {batch_size}, too few for "
                         f"{shard.count} shard(s) × {world.size} process(es); lower {setting} to at most "
                         f"{max(1, total // needed)}")
    mine = split(shard_range(batches, shard.index, shard.count), world.rank, world.size)
    return range(mine[0] * batch_size, min(total, (mine[-1] + 1) * batch_size))


def batches_of(rows: range, batch_size: int | None) -> list[range]:
    """``rows`` cut into consecutive batches of ``batch_size`` (one batch when None). The rows
    of :func:`process_rows` start at a multiple of ``batch_size``, so these are the batches
    one process would run."""
    if batch_size is None or len(rows) <= batch_size:
        return [rows] if len(rows) else []
    return [range(start, min(rows.stop, start + batch_size)) for start in range(rows.start, rows.stop, batch_size)]


def missing_shards(found: dict[int, object], count: int) -> list[int]:
    """Shard indices 0..count-1 that are not keys of ``found``."""
    return [i for i in range(count) if i not in found]


def shard_argument(parser, what: str = "problems") -> None:
    """Add ``--shard I/N`` to an argparse parser (parsed into a :class:`Shard`)."""

    def parse(text: str) -> Shard:
        import argparse

        try:
            return Shard.parse(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parser.add_argument("--shard", type=parse, default=Shard(), metavar="I/N",
                        help=f"solve only shard I of N of the {what} (contiguous by index, counted from 0) and "
                             "write a partial output; `diffprior merge` joins the N partial outputs into the full one")


# ------------------------------------------------------------------------------ results of runs
def concat_results(parts: list):
    """One :class:`~diffprior.Result` from results of consecutive parts of the samples, in order."""
    import torch

    from ..method.optimizer import Result

    parts = [p for p in parts if p is not None and len(p.seeds)]
    if not parts:
        raise ValueError("no part has any sample")
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    metric_names = [k for k in first.metrics if all(k in p.metrics for p in parts)]
    # an interrupted part has a shorter history: the curves are kept up to the steps all parts did
    steps = min(p.timesteps.shape[0] for p in parts)
    return Result(
        x=torch.cat([p.x.cpu() for p in parts]),
        x_optimized=torch.cat([p.x_optimized.cpu() for p in parts]),
        params=torch.cat([p.params.cpu() for p in parts]),
        seeds=[s for p in parts for s in p.seeds],
        losses={k: torch.cat([p.losses[k][:steps] for p in parts], dim=1) for k in first.losses},
        timesteps=torch.cat([p.timesteps[:steps] for p in parts], dim=1),
        metrics={k: torch.cat([p.metrics[k] for p in parts]) for k in metric_names},
        steps_done=min(p.steps_done for p in parts),
        interrupted=any(p.interrupted for p in parts),
    )


def result_payload(result) -> tuple[dict, dict]:
    """A Result as (tensors, JSON metadata): what travels between ranks and what a partial output keeps."""
    tensors = {"x": result.x, "x_optimized": result.x_optimized, "params": result.params,
               "timesteps": result.timesteps}
    tensors |= {f"losses.{k}": v for k, v in result.losses.items()}
    tensors |= {f"metrics.{k}": v for k, v in result.metrics.items()}
    meta = {"seeds": list(result.seeds), "steps_done": result.steps_done, "interrupted": result.interrupted,
            "losses": list(result.losses), "metrics": list(result.metrics)}
    return {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}, meta  # (x may share params)


def result_from_payload(tensors: dict, meta: dict):
    from ..method.optimizer import Result

    return Result(x=tensors["x"], x_optimized=tensors["x_optimized"], params=tensors["params"],
                  seeds=[int(s) for s in meta["seeds"]], losses={k: tensors[f"losses.{k}"] for k in meta["losses"]},
                  timesteps=tensors["timesteps"], metrics={k: tensors[f"metrics.{k}"] for k in meta["metrics"]},
                  steps_done=int(meta["steps_done"]), interrupted=bool(meta["interrupted"]))


def gather_results(part):
    """Every rank's Result (None: the rank had no samples) joined in rank order; on every rank."""
    from . import distributed

    tensors, meta = result_payload(part) if part is not None else ({}, {"empty": True})
    pieces = distributed.gather(tensors, meta)
    return concat_results([result_from_payload(t, m) for t, m in pieces if not m.get("empty")])


PARTIAL_TENSORS = "shard.safetensors"


def write_partial(run_dir, shard: Shard, *, total: int, rows: range, result, prior) -> None:
    """Into a claimed :class:`~diffprior.runs.directories.RunDir`, beside a shard's run files:
    ``shard.json`` (which shard, of what: its ``rows`` of the ``total`` samples) and
    ``shard.safetensors`` (its full result)."""
    import json

    from safetensors.torch import save_file

    tensors, meta = result_payload(result)
    run_dir.write(PARTIAL_TENSORS, lambda p: save_file(tensors, str(p)))
    info = {"kind": "run", "shard": [shard.index, shard.count], "total": total, "rows": [rows.start, rows.stop],
            "data_range": list(prior.data_range), **meta}
    run_dir.write_text(SHARD_FILE, json.dumps(info, indent=1) + "\n")


class _ResolvedConfig:
    """A run's config.resolved.toml, dumped again unchanged by ``write_run``; its components
    (validated against the installed plugins) write their outputs for the merged run."""

    def __init__(self, text: str, source):
        import tomllib

        self._data = tomllib.loads(text)
        self._source = source
        self._components = None

    def model_dump(self, **_):
        return self._data

    def components(self) -> list:
        import sys

        from ..config.run_config import validate_config
        from ..errors import ConfigError

        if self._components is None:
            try:
                self._components = validate_config(dict(self._data), source=str(self._source)).components()
            except ConfigError as exc:
                print(f"warning: the merged run's components write no outputs of their own: {exc}", file=sys.stderr)
                self._components = []
        return self._components


class _Range:
    def __init__(self, data_range):
        self.data_range = tuple(data_range)


def merge_runs(infos: list[tuple], out) -> tuple:
    """Join the partial outputs of ``diffprior run --shard I/N`` into one run directory.

    ``infos`` are (directory, shard.json contents). Raises UsageError naming the missing
    shards (and the command that makes them), or parts that do not belong together.
    Returns (merged Result, out)."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    from .outputs import write_run

    by_index, count, total, config_text, unfinished = {}, None, None, None, []
    for directory, info in infos:
        index, n = info["shard"]
        if info.get("interrupted"):  # an interrupted part is rerun like a missing one
            unfinished.append(f"{directory} (shard {index}/{n}, interrupted after {info.get('steps_done')} steps)")
            continue
        text = (Path(directory) / "config.resolved.toml").read_text()
        if count is None:
            count, total, config_text = n, info["total"], text
        elif (n, info["total"]) != (count, total):
            raise UsageError(f"{directory} is shard {index}/{n} of {info['total']} samples, but {infos[0][0]} is "
                             f"one of {count} shards of {total}: merge the parts of one run only")
        elif text != config_text:
            raise UsageError(f"{directory} was run with another config than {infos[0][0]} "
                             "(their config.resolved.toml differ): merge the parts of one run only")
        if index in by_index:
            raise UsageError(f"shard {index}/{count} given twice ({by_index[index][0]} and {directory}); give it once")
        by_index[index] = (directory, info)
    if count is None:
        raise UsageError("no finished part to merge: " + "; ".join(unfinished))
    missing = missing_shards(by_index, count)
    if missing:
        names = ", ".join(f"{i}/{count}" for i in missing)
        config = Path(infos[0][0]) / "config.resolved.toml"  # reproduces the run
        rerun = " ; ".join(f"diffprior run {config} --shard {i}/{count} --out PART-{i}" for i in missing)
        also = f" ({'; '.join(unfinished)})" if unfinished else ""
        raise UsageError(f"missing shard(s) {names} of {total} samples{also}; run only those ({rerun}) and merge again")
    parts, seconds = [], 0.0
    for index in range(count):
        directory, info = by_index[index]
        parts.append(result_from_payload(load_file(str(Path(directory) / PARTIAL_TENSORS)), info))
        seconds += json.loads((Path(directory) / "metrics.json").read_text()).get("seconds") or 0.0
    result = concat_results(parts)
    first = by_index[0][1]
    config = _ResolvedConfig(config_text, Path(by_index[0][0]) / "config.resolved.toml")
    files = write_run(Path(out), config, result, _Range(first["data_range"]), elapsed=seconds)
    return result, files["manifest"].parent


def read_part(path) -> tuple:
    """(path, what the part says about itself): a run directory's ``shard.json``, or a JSON
    file (e.g. ``tsp eval --json``) with ``kind`` and ``shard`` at its top level."""
    import json
    from pathlib import Path

    path = Path(path)
    file = path / SHARD_FILE if path.is_dir() else path
    if not file.exists():
        what = "directory has no" if path.is_dir() else "file does not exist:"
        raise UsageError(f"{path}: not a partial output ({what} {file.name}); write parts with --shard I/N")
    try:
        info = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{file}: not a readable partial output ({exc})") from None
    if not isinstance(info, dict) or "kind" not in info or "shard" not in info:
        raise UsageError(f"{file}: not a partial output (no 'kind' and 'shard'); write parts with --shard I/N")
    if path.is_dir() and not (path / "manifest.json").exists():
        info["interrupted"] = True  # its files were never completed: rerun it like a missing shard
    return path, info
