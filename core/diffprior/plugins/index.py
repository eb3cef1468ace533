"""A cached index of what each installed plugin distribution registers, built without
importing plugins into the ``diffprior`` process itself (in the spirit of napari's npe2).

Why: a plugin's import runs arbitrary code. One that hangs, sleeps, calls ``os._exit`` or
crashes the interpreter must not take ``diffprior --help``, ``--version`` or ``plugins``
down with it. So:

- ``--help`` and ``--version`` import no plugin at all: ``--help`` lists plugin commands
  from this index.
- Any other command first brings the index up to date: distributions that are new or
  changed (name, version, entry points, install time) are imported one by one in a child
  process that the parent watches. One that does not finish within
  ``DIFFPRIOR_PLUGIN_TIMEOUT`` seconds (default 10), or that ends the child, is recorded as
  fatal; the child is restarted for the rest. Fatal distributions are then not imported
  in-process (a warning says why); the others are.

The index is one JSON file per interpreter and ``sys.path`` under ``DIFFPRIOR_CACHE_DIR``
(default ``$XDG_CACHE_HOME/diffprior`` or ``~/.cache/diffprior``), written atomically;
records are keyed by each distribution's fingerprint, so installing, upgrading or removing
a distribution re-indexes exactly that one. No torch here.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable

INDEX_VERSION = 1
DEFAULT_TIMEOUT = 10.0


def cache_dir() -> Path:
    explicit = os.environ.get("DIFFPRIOR_CACHE_DIR", "").strip()
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "diffprior"


def index_path() -> Path:
    # one index per interpreter and import path: a sandbox or another venv sees other plugins
    who = "\0".join([sys.executable, *sys.path])
    return cache_dir() / f"plugins-{hashlib.sha256(who.encode()).hexdigest()[:16]}.json"


def timeout() -> float:
    try:
        return max(0.1, float(os.environ.get("DIFFPRIOR_PLUGIN_TIMEOUT", DEFAULT_TIMEOUT)))
    except ValueError:
        return DEFAULT_TIMEOUT


def fingerprints(installed=None) -> dict[str, str]:
    """distribution -> fingerprint of what is installed (name, version, entry points, install time)."""
    from diffprior.plugins.registry import installed_entry_points

    prints = {}
    for dist, eps in (installed if installed is not None else installed_entry_points()).items():
        parts = [dist]
        meta = eps[0].dist
        if meta is not None:
            parts.append(str(meta.version))
            path = getattr(meta, "_path", None)  # the .dist-info folder: its mtime changes on reinstall
            if path is not None:
                try:
                    parts.append(str(os.stat(path).st_mtime_ns))
                except OSError:
                    pass
        parts += sorted(f"{ep.name}={ep.value}" for ep in eps)
        prints[dist] = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    return prints


def read() -> dict[str, dict]:
    """The cached records, distribution -> record (empty when there is no usable index)."""
    try:
        data = json.loads(index_path().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
        return {}
    records = data.get("distributions")
    return records if isinstance(records, dict) else {}


def current(records: dict[str, dict] | None = None) -> dict[str, dict]:
    """Cached records that still match what is installed."""
    records = read() if records is None else records
    prints = fingerprints()
    return {d: r for d, r in records.items() if prints.get(d) == r.get("fingerprint")}


def _write(records: dict[str, dict]) -> None:
    path = index_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".plugins-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"version": INDEX_VERSION, "distributions": records}, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache only costs speed


def ensure(distributions: Iterable[str], *, retry_fatal: bool = False) -> dict[str, dict]:
    """Index the given distributions that the cache does not hold yet; return their records.

    ``retry_fatal`` indexes again those that hung or ended the process last time (``diffprior
    plugins`` does, so a plugin that was only slow on a busy machine gets another chance)."""
    from diffprior.plugins.registry import CORE_DISTRIBUTION

    prints = fingerprints()
    wanted = [d for d in distributions if d in prints and d != CORE_DISTRIBUTION]
    records = read()
    valid = {d: r for d, r in records.items() if prints.get(d) == r.get("fingerprint")}
    missing = [d for d in wanted if d not in valid or (retry_fatal and valid[d].get("fatal"))]
    if missing:
        for dist, record in _index(missing).items():
            record["fingerprint"] = prints[dist]
            valid[dist] = record
        _write(valid)
    return {d: valid[d] for d in wanted if d in valid}


def _index(distributions: list[str]) -> dict[str, dict]:
    """Import each distribution in a watched child process; restart it after a fatal one."""
    limit = timeout()
    results: dict[str, dict] = {}
    todo = list(distributions)
    while todo:
        with tempfile.TemporaryDirectory(prefix="diffprior-index-") as tmp:
            events = Path(tmp) / "events.jsonl"
            events.touch()
            proc = subprocess.Popen(
                [sys.executable, "-m", "diffprior.plugins.index", str(events), *todo],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: killed as a whole on a hang
                env={**os.environ, "DIFFPRIOR_INDEXING": "1"},
            )
            current_dist, started, offset = None, time.monotonic(), 0
            try:
                while True:
                    exited = proc.poll() is not None
                    with open(events) as f:
                        f.seek(offset)
                        chunk = f.read()
                    complete = chunk[: chunk.rfind("\n") + 1]
                    offset += len(complete.encode())
                    for line in complete.splitlines():
                        event = json.loads(line)
                        if "start" in event:
                            current_dist, started = event["start"], time.monotonic()
                        elif "record" in event:
                            results[event["dist"]] = event["record"]
                            current_dist = None
                    if exited:
                        break
                    if current_dist is not None and time.monotonic() - started > limit:
                        _kill(proc)
                        results[current_dist] = _fatal(
                            f"importing it or calling its hooks took longer than {limit:g} s (it was stopped); "
                            "a plugin must not do heavy work at import (DIFFPRIOR_PLUGIN_TIMEOUT raises the limit)",
                            limit)
                        break
                    time.sleep(0.02)
            except BaseException:
                _kill(proc)
                raise
            if proc.returncode is not None and current_dist is not None and current_dist not in results:
                code = proc.returncode
                how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                results[current_dist] = _fatal(f"ended the process while being imported ({how})",
                                               time.monotonic() - started)
        done = [d for d in todo if d in results]
        if not done:  # the child failed before any distribution (should not happen): do not loop
            for dist in todo:
                results[dist] = _fatal("could not be indexed: the indexing process failed to start", 0.0)
            break
        todo = [d for d in todo if d not in results]
    return results


def _fatal(message: str, seconds: float) -> dict:
    return {"fatal": message, "seconds": round(seconds, 3), "registers": {}, "commands": {}, "errors": [message]}


def _kill(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _child(events_path: str, distributions: list[str]) -> None:
    """Index each distribution alone with the core, reporting progress line by line."""
    import warnings

    from diffprior.plugins import registry as plugins

    def emit(event: dict) -> None:
        with open(events_path, "a") as f:
            f.write(json.dumps(event) + "\n")
            f.flush()

    with warnings.catch_warnings():  # the core's own imports (pydantic...) do not count against a plugin's time
        warnings.simplefilter("ignore")
        plugins.load(plugins.PluginSettings(only=set()))
    for dist in distributions:
        emit({"start": dist})
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            registry = plugins.load(plugins.PluginSettings(only={dist}))
        info = registry.plugins.get(dist)
        commands = {}
        for name in (info.registers.get("command", []) if info else []):
            commands[name] = registry.commands[name].obj.help
        emit({"dist": dist, "record": {
            "fatal": None,
            "seconds": round(info.import_seconds if info else time.perf_counter() - start, 3),
            "registers": info.registers if info else {},
            "commands": commands,
            "errors": info.errors if info else [],
        }})


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2:])
    os._exit(0)  # no atexit handlers of plugins
