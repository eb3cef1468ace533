"""Running one command as several processes under ``torchrun`` (torch.distributed).

``torchrun --nproc-per-node N -m diffprior.cli run CONFIG`` (or ``torchrun ... $(which diffprior) ...``)
starts N copies of a command; each reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from the
environment the launcher sets. :func:`setup` joins the process group (gloo on CPU, nccl on
GPU, each rank on ``cuda:LOCAL_RANK`` when the command asked for CUDA) with a timeout on every
collective, so a rank that died never leaves the others waiting for ever. Each rank solves
its contiguous shard of the problems (:func:`diffprior.runs.sharding.shard_range`), and
:func:`gather` brings every rank's tensors and JSON-able metadata to rank 0, which writes the
one output. Nothing is pickled: payloads travel as safetensors bytes plus JSON.

A rank that raises prints ``error: rank R/W: ...`` and exits non-zero; ``torchrun`` then stops
the other ranks and names the failed rank in its summary. When a launcher does not stop them
(several nodes), their next collective fails after ``DIFFPRIOR_DIST_TIMEOUT`` seconds
(default 300). Joining and leaving are not bounded by it: ranks wait up to 10 minutes for
each other to start, and for rank 0 to finish writing.

Without the launcher's variables everything here is a no-op: one process, rank 0 of 1.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any

TIMEOUT_ENV = "DIFFPRIOR_DIST_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 300.0
JOIN_TIMEOUT_SECONDS = 600.0  # how long ranks wait for each other to start, and to finish


@dataclass(frozen=True)
class World:
    """This process's place among the launched ones (rank 0 of 1 when not launched)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        return f"rank {self.rank}/{self.size} (local rank {self.local_rank} on {socket.gethostname()})"


def launched() -> bool:
    """Whether a torchrun-style launcher started this process with more than one rank."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def world_from_env() -> World:
    """RANK, WORLD_SIZE and LOCAL_RANK as set by torchrun (one process when absent)."""
    if "RANK" not in os.environ:
        return World()
    try:
        return World(int(os.environ["RANK"]), int(os.environ.get("WORLD_SIZE", "1")),
                     int(os.environ.get("LOCAL_RANK", os.environ["RANK"])))
    except ValueError:
        from ..errors import UsageError

        raise UsageError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them)") from None


def timeout_seconds() -> float:
    text = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_SECONDS
    except ValueError:
        from ..errors import UsageError

        raise UsageError(f"{TIMEOUT_ENV} must be a number of seconds, got {text!r}") from None
    return value if value > 0 else DEFAULT_TIMEOUT_SECONDS


_current: World | None = None


def current() -> World:
    """The world of this process: what :func:`setup` joined, else one process."""
    return _current if _current is not None else World()


def rank_device(device: str, world: World) -> str:
    """The device of this rank: ``cuda:LOCAL_RANK`` when ``device`` asks for CUDA under a
    launcher (one GPU per process), otherwise ``device`` unchanged."""
    if world.distributed and device.startswith("cuda"):
        return f"cuda:{world.local_rank}"
    return device


def setup(device: str = "cpu") -> tuple[World, str]:
    """Join the process group when launched by torchrun; returns (world, this rank's device).

    Backend: nccl when the device is CUDA, gloo otherwise. Safe to call again (the group is
    joined once). One process: ``(World(), device)`` and nothing is initialised."""
    global _current
    world = world_from_env()
    if not world.distributed:
        _current = world
        return world, device
    import torch
    import torch.distributed as dist

    device = rank_device(device, world)
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            from ..errors import ConfigError

            raise ConfigError(f"device: {device!r} was asked for, but torch sees no CUDA device on "
                              f"{socket.gethostname()}; use --device cpu")
        torch.cuda.set_device(torch.device(device))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        # joining waits for every rank to start (slow imports on a loaded machine, a slow file
        # system): only the collectives after it are bounded by DIFFPRIOR_DIST_TIMEOUT
        can_change = _timeout_setter() is not None
        dist.init_process_group(backend, timeout=_waiting_timeout() if can_change else _collective_timeout())
        if can_change:
            _timeout_setter()(_collective_timeout())
    _current = world
    return world, device


def shutdown(wait_for_others: bool = False) -> None:
    """Leave the process group (if joined).

    ``wait_for_others``: meet the other ranks at a barrier first. A rank that tears down its
    gloo connections while another still talks to it can make that one abort ("terminate
    called without an active exception"), so a command that finished normally waits (up to
    10 minutes: rank 0 may still be writing the outputs); one that failed does not (the
    others may never arrive; the launcher stops them)."""
    global _current
    _current = None
    try:
        import torch.distributed as dist
    except ImportError:
        return
    if dist.is_available() and dist.is_initialized():
        if wait_for_others:
            _patient_barrier()  # rank 0 may still be writing the outputs
        dist.destroy_process_group()


def wait_for_others() -> None:
    """Meet the other ranks at a barrier that waits up to 10 minutes, not
    ``DIFFPRIOR_DIST_TIMEOUT``: for ranks that have nothing to do while rank 0 writes
    outputs, checkpoints or sample grids (a collective there would time out)."""
    if current().distributed:
        _patient_barrier()


def _patient_barrier() -> None:
    import torch.distributed as dist

    setter = _timeout_setter()
    if setter is not None:
        setter(_waiting_timeout())
    try:
        dist.barrier()
    finally:
        if setter is not None:
            setter(_collective_timeout())


def _timeout_setter():
    """torch's function that changes the process group's timeout (None before torch 2.2)."""
    import torch.distributed as dist

    return getattr(dist, "set_timeout", None) or getattr(dist.distributed_c10d, "_set_pg_timeout", None)


def _collective_timeout():
    return datetime.timedelta(seconds=timeout_seconds())


def _waiting_timeout():
    """For ranks waiting for each other to start or to finish (not a collective's work)."""
    return datetime.timedelta(seconds=max(JOIN_TIMEOUT_SECONDS, timeout_seconds()))


def _backend_device():
    import torch
    import torch.distributed as dist

    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _encode(tensors: dict[str, Any], meta: dict) -> bytes:
    from safetensors.torch import save

    header = json.dumps(meta).encode()
    body = save({k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}) if tensors else b""
    return struct.pack("<QQ", len(header), len(body)) + header + body


def _decode(data: bytes) -> tuple[dict, dict]:
    from safetensors.torch import load

    n_header, n_body = struct.unpack("<QQ", data[:16])
    meta = json.loads(data[16:16 + n_header].decode())
    body = data[16 + n_header:16 + n_header + n_body]
    return (load(body) if n_body else {}), meta


def all_gather_bytes(payload: bytes) -> list[bytes]:
    """Every rank's bytes, on every rank (rank order)."""
    import torch
    import torch.distributed as dist

    device = _backend_device()
    size = torch.tensor([len(payload)], dtype=torch.int64, device=device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    longest = int(max(int(s) for s in sizes))
    buffer = torch.zeros(longest, dtype=torch.uint8, device=device)
    if payload:
        buffer[:len(payload)] = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(device)
    buffers = [torch.empty_like(buffer) for _ in sizes]
    dist.all_gather(buffers, buffer)
    return [bytes(b[:int(s)].cpu().numpy().tobytes()) for b, s in zip(buffers, sizes)]


def gather(tensors: dict[str, Any], meta: dict | None = None) -> list[tuple[dict, dict]]:
    """Each rank's (tensors, metadata), in rank order, on every rank. One process: ``[(tensors, meta)]``.

    Tensors go through safetensors bytes and metadata through JSON: no pickle between processes."""
    meta = meta or {}
    if not current().distributed:
        return [(tensors, meta)]
    return [_decode(b) for b in all_gather_bytes(_encode(tensors, meta))]


def all_sum(values: list[float]) -> list[float]:
    """Element-wise sum of a few numbers over the ranks (e.g. seconds, counts)."""
    if not current().distributed:
        return list(values)
    import torch
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=_backend_device())
    dist.all_reduce(t)
    return [float(v) for v in t.cpu()]


def barrier() -> None:
    if current().distributed:
        import torch.distributed as dist

        dist.barrier()


def error_prefix() -> str:
    """``"rank R/W: "`` under a launcher (so a failure names its rank), else ``""``."""
    world = current() if _current is not None else world_from_env()
    return f"rank {world.rank}/{world.size}: " if world.distributed else ""
