"""The command API for plugins: a :class:`Command` registered through ``register_commands``.

``configure(parser)`` adds arguments to the command's argparse parser; ``run(args)``
returns an exit code. ``merge(paths, out)``, when given, joins the partial outputs its
``--shard I/N`` option wrote (``diffprior merge`` calls it for the parts whose ``kind``
starts with the command's name). All three must import heavy libraries (torch) lazily so ``diffprior
--help`` stays fast. Raise :class:`UsageError` (bad arguments) or :class:`ConfigError`
(bad files) for a one-line error and exit code 2.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .errors import ConfigError, UsageError

__all__ = ["Command", "ConfigError", "UsageError"]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    merge: Optional[Callable[[list, Path], int]] = None
