"""``diffprior`` command line. Imports no torch: commands import what they need when run.

Exit codes: 0 success, 2 bad input (config, arguments, files; no traceback), 1 failure
while running, 130 interrupted (partial results are written).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings


def _parser(registry) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffprior",
        description="Pretrained diffusion models as plug-and-play priors.",
    )
    parser.add_argument("--strict-plugins", action="store_true", help="fail on any plugin problem")
    parser.add_argument("--disable-plugin", action="append", default=[], metavar="DIST",
                        help="skip a plugin distribution (or 'third-party' for all non first-party)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, reg in sorted(registry.commands.items()):
        command = reg.obj
        p = sub.add_parser(name, help=command.help, description=command.help)
        command.configure(p)
        p.set_defaults(_command=command)
    return parser


def _pre_parse(argv: list[str]):
    """Plugin flags must be known before plugins load (they decide which ones load)."""
    from .plugins import PluginSettings

    settings = PluginSettings.from_env()
    rest, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--strict-plugins":
            settings.strict = True
        elif arg == "--disable-plugin" and i + 1 < len(argv):
            settings.disable.add(argv[i + 1].strip().lower().replace("_", "-"))
            i += 1
        elif arg.startswith("--disable-plugin="):
            settings.disable.add(arg.split("=", 1)[1].strip().lower().replace("_", "-"))
        else:
            rest.append(arg)
        i += 1
    return settings, rest


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from . import plugins
    from .errors import ConfigError, UsageError

    settings, rest = _pre_parse(argv)
    plugins.configure(settings)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", plugins.PluginWarning)
            registry = plugins.get_registry()
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
    except plugins.PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    parser = _parser(registry)
    args = parser.parse_args(rest)
    if args.version:
        from importlib.metadata import version

        print(f"diffprior {version('diffprior')}")
        return 0
    if not getattr(args, "_command", None):
        parser.print_help()
        return 0
    try:
        return int(args._command.run(args) or 0)
    except (ConfigError, UsageError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except FloatingPointError as exc:  # NonFiniteError: its message says what to change
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("DIFFPRIOR_DEBUG"):
            raise
        import traceback

        traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
