"""Run directories that are never destroyed.

- A run goes to a fresh directory: ``runs/digits``, and if that already holds something,
  ``runs/digits-1``, ``runs/digits-2`` ... (claimed with ``mkdir``, which is atomic, so two
  runs started at once never share one). ``overwrite=True`` reuses the directory instead.
- The directory is locked (``.lock``, an ``flock`` released when the process dies) while a
  run writes to it: a second run asked to overwrite it refuses.
- Claiming it creates the lock file, which proves the directory is writable before any
  optimisation starts.
- Every file is written atomically (a temporary file in the same directory, then
  ``os.replace``); ``manifest.json`` is written last. A directory without a manifest is
  incomplete.

No torch here.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

MANIFEST = "manifest.json"
LOCK = ".lock"


class RunDirError(ValueError):
    """The output directory cannot be used (a file, not writable, locked): exit code 2."""


def _has_content(path: Path) -> bool:
    return any(p.name != LOCK for p in path.iterdir())


def _candidates(out: Path) -> Iterator[Path]:
    yield out
    for i in range(1, 10_000):
        yield out.with_name(f"{out.name}-{i}")


class RunDir:
    """A claimed, locked, writable run directory. Use as a context manager."""

    def __init__(self, path: Path, previous: bool, fresh: bool = False):
        self.path = path
        self.fresh = fresh  # created by this run (removed again if nothing gets written)
        self.previous = previous  # True when overwriting an earlier run's files
        self._lock_fd: int | None = None
        self.written: list[str] = []
        self._previous_files: list[str] = []  # what an overwritten run's manifest listed

    # -- claiming --------------------------------------------------------------------
    @classmethod
    def claim(cls, out: Path | str, *, overwrite: bool = False) -> "RunDir":
        out = Path(out)
        for candidate in ([out] if overwrite else _candidates(out)):
            if candidate.exists() and not candidate.is_dir():
                if candidate == out:
                    raise RunDirError(f"--out {out} is a file, not a directory; give a directory")
                continue
            try:
                candidate.mkdir(parents=True)
                fresh = True
            except FileExistsError:
                fresh = False
                if not candidate.is_dir():
                    continue
            except PermissionError:
                raise RunDirError(f"cannot create the output directory {candidate}: permission denied") from None
            except OSError as exc:
                raise RunDirError(f"cannot create the output directory {candidate}: {exc.strerror}") from None
            if not fresh and not overwrite and _has_content(candidate):
                continue  # holds an earlier run (or anything else): never touch it
            run_dir = cls(candidate, previous=not fresh and _has_content(candidate), fresh=fresh)
            try:
                run_dir._lock()
            except RunDirError:
                if fresh:
                    _remove_quietly(candidate)
                if overwrite or not run_dir._locked_by_other:
                    raise
                continue  # another run claimed this empty directory first: take the next name
            return run_dir
        raise RunDirError(f"no free directory name next to {out}; clean up or pass --overwrite")

    _locked_by_other = False

    def _lock(self) -> None:
        import fcntl

        lock_path = self.path / LOCK
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:
            raise RunDirError(f"cannot write to the output directory {self.path}: permission denied") from None
        except OSError as exc:
            raise RunDirError(f"cannot write to the output directory {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                self._locked_by_other = True
                owner = _read_quietly(lock_path)
                raise RunDirError(f"another diffprior run{f' (pid {owner})' if owner else ''} is writing to "
                                  f"{self.path}; wait for it or choose another --out") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        # the lock file could be created; check a real file can be written too (quota, read-only mounts)
        probe = self.path / f".write-test-{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            self.release()
            raise RunDirError(f"cannot write to the output directory {self.path}: {exc.strerror}") from None

    def release(self) -> None:
        if self._lock_fd is not None:
            try:
                (self.path / LOCK).unlink()
            except OSError:
                pass
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
        if not self.written and self.fresh:
            _remove_quietly(self.path)  # nothing was written (e.g. the config failed to build)

    # -- writing ---------------------------------------------------------------------
    def start_overwrite(self) -> None:
        """Overwriting: the old manifest goes first, so the directory is incomplete until the new one is written."""
        if self.previous:
            manifest = self.path / MANIFEST
            try:
                files = json.loads(manifest.read_text()).get("files", {})
                self._previous_files += [name for name in files if isinstance(name, str) and "/" not in name]
            except (OSError, ValueError, AttributeError):
                pass
            try:
                manifest.unlink()
            except FileNotFoundError:
                pass

    def write(self, name: str, writer: Callable[[Path], None]) -> Path:
        """Write ``name`` atomically: ``writer(tmp_path)`` then rename over ``name``."""
        final = self.path / name
        tmp = self.path / f".{name}.tmp-{os.getpid()}"
        try:
            writer(tmp)
            os.replace(tmp, final)
        except BaseException:
            _remove_quietly(tmp)
            raise
        self.written.append(name)
        return final

    def write_text(self, name: str, text: str) -> Path:
        return self.write(name, lambda p: p.write_text(text))

    def finish(self, status: dict, *, outputs: tuple[str, ...] = ()) -> Path:
        """Remove files an overwritten run left that this one did not write (``outputs``, and
        whatever its manifest listed: a plugin's own files); write the manifest last."""
        for name in (*outputs, *self._previous_files):
            if name not in self.written and name != MANIFEST:
                _remove_quietly(self.path / name)
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version("diffprior")
        except PackageNotFoundError:
            ver = None
        manifest = {
            "complete": True,
            "diffprior": ver,
            "files": {name: (self.path / name).stat().st_size for name in self.written},
            **status,
        }
        return self.write_text(MANIFEST, json.dumps(manifest, indent=2) + "\n")


@contextmanager
def deferred_interrupts(message: Callable[[], str]) -> Iterator[list[int]]:
    """Ctrl-C while results are being written is noted, said, and acted on only afterwards,
    so a second Ctrl-C never leaves half a directory. Yields a list that counts the presses."""
    presses: list[int] = []
    try:
        previous = signal.getsignal(signal.SIGINT)
    except ValueError:  # not the main thread: signals cannot be handled here anyway
        yield presses
        return

    def note(signum, frame):
        presses.append(signum)
        print(message(), file=sys.stderr, flush=True)

    try:
        signal.signal(signal.SIGINT, note)
    except ValueError:
        yield presses
        return
    try:
        yield presses
    finally:
        signal.signal(signal.SIGINT, previous)


def _read_quietly(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _remove_quietly(path: Path) -> None:
    try:
        if path.is_dir():
            path.rmdir()  # only ever an empty directory
        else:
            path.unlink()
    except OSError:
        pass
