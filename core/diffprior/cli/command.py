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

from diffprior.errors import ConfigError, UsageError

__all__ = ["Command", "ConfigError", "UsageError", "positive_int", "subcommands"]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    merge: Optional[Callable[[list, Path], int]] = None


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts: a positive integer, or a one-line usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def subcommands(command: str, table: dict[str, tuple[str, Callable, Callable]]):
    """``(configure, run)`` of a command made of subcommands (``diffprior tsp solve|eval``).

    ``table`` maps each subcommand to (help, configure(parser), run(args)); ``run`` without a
    subcommand is a usage error that lists them."""
    key = f"_{command.replace('-', '_')}_run"

    def configure(parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest=f"{command}_command", metavar="SUBCOMMAND")
        for name, (help_text, configure_one, run_one) in table.items():
            one = sub.add_parser(name, help=help_text, description=help_text)
            configure_one(one)
            one.set_defaults(**{key: run_one})

    def run(args: argparse.Namespace) -> int:
        run_one = getattr(args, key, None)
        if run_one is None:
            raise UsageError(f"diffprior {command} needs a subcommand: " + ", ".join(table)
                             + f" (see diffprior {command} --help)")
        return run_one(args)

    return configure, run
