"""``diffprior`` command line. Imports no torch: commands import what they need when run.

Exit codes: 0 success, 2 bad input (config, arguments, files; no traceback), 1 failure
while running, 130 interrupted (partial results are written).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings


def _parser(commands, *, configure: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffprior",
        description="Pretrained diffusion models as plug-and-play priors.",
    )
    parser.add_argument("--strict-plugins", action="store_true", help="fail on any plugin problem")
    parser.add_argument("--disable-plugin", action="append", default=[], metavar="DIST",
                        help="skip a plugin distribution (or 'third-party' for all non first-party)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in sorted(commands.items()):
        p = sub.add_parser(name, help=command.help, description=command.help)
        if configure:
            command.configure(p)
        p.set_defaults(_command=command)
    return parser


def _pre_parse(argv: list[str]):
    """Plugin flags must be known before plugins load (they decide which ones load).

    Returns (settings, names given with --disable-plugin, the other arguments)."""
    from diffprior.plugins.registry import PluginSettings, normalise_name

    settings = PluginSettings.from_env()
    flagged: list[str] = []
    rest, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--strict-plugins":
            settings.strict = True
        elif arg == "--disable-plugin" and i + 1 < len(argv):
            flagged.append(normalise_name(argv[i + 1]))
            i += 1
        elif arg.startswith("--disable-plugin="):
            flagged.append(normalise_name(arg.split("=", 1)[1]))
        else:
            rest.append(arg)
        i += 1
    settings.disable |= set(flagged)
    return settings, flagged, rest


def _check_disabled(settings, flagged: list[str], installed: list[str]) -> str | None:
    """--disable-plugin NAME must name an installed plugin distribution (not the core)."""
    import difflib

    from diffprior.plugins.registry import CORE_DISTRIBUTION, names_from_env

    from_env = names_from_env("DIFFPRIOR_DISABLE_PLUGINS") or set()
    for name, source in [(n, "--disable-plugin") for n in flagged] + [(n, "DIFFPRIOR_DISABLE_PLUGINS")
                                                                        for n in sorted(from_env)]:
        if name == "third-party":
            continue
        if name == CORE_DISTRIBUTION:
            return (f"{source} {name}: the core cannot be disabled (it provides run, validate, schema and the "
                    "built-in types); disable plugins by their distribution name (diffprior plugins lists them)")
        if name not in installed:
            others = [d for d in installed if d != CORE_DISTRIBUTION]
            close = difflib.get_close_matches(name, others, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listing = ", ".join(others) or "none"
            return f"{source} {name}: no plugin distribution of that name is installed{hint}; installed: {listing}"
    return None


def _command_name(rest: list[str]) -> str | None:
    return next((arg for arg in rest if not arg.startswith("-")), None)


def _quick_help(rest: list[str], settings) -> int:
    """``diffprior``, ``--help`` and ``--version`` without importing any plugin: plugin
    commands come from the plugin index (see diffprior.plugins.index)."""
    from diffprior.plugins import index as plugin_index
    from diffprior.cli.core_commands import CORE_COMMANDS, Command

    if "--version" in rest:
        from importlib.metadata import version

        print(f"diffprior {version('diffprior')}")
        return 0
    commands = {c.name: c for c in CORE_COMMANDS}
    from diffprior.plugins.registry import declares_first_party, installed_entry_points

    records = plugin_index.read()
    eps = installed_entry_points()
    installed = plugin_index.fingerprints(eps)
    unindexed = []
    seen: dict[str, list[str]] = {}
    for dist, fingerprint in installed.items():
        if dist in commands or not settings.allows(dist, declares_first_party(eps[dist][0].dist)) or dist == "diffprior":
            continue
        record = records.get(dist)
        if record is None or record.get("fingerprint") != fingerprint:
            unindexed.append(dist)
            continue
        for name, help_text in (record.get("commands") or {}).items():
            seen.setdefault(name, []).append(dist)
            commands.setdefault(name, Command(name, help_text, None, None))
    for name, dists in seen.items():  # the same command from two distributions: both qualified
        if len(dists) > 1 and name not in {c.name for c in CORE_COMMANDS}:
            help_text = commands.pop(name).help
            for dist in dists:
                commands[f"{dist}:{name}"] = Command(f"{dist}:{name}", help_text, None, None)
    parser = _parser(commands, configure=False)
    if unindexed:
        parser.epilog = (f"Commands of {', '.join(unindexed)} are listed once the plugins are indexed: "
                         "run `diffprior plugins`.")
    parser.parse_args(rest)  # exits after printing the help, or with a usage error (exit 2)
    parser.print_help()
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # a closed pipe shows here, not in Python's own flush at exit
        return code
    except BrokenPipeError:
        return _closed_pipe()


def _main(argv: list[str]) -> int:
    settings, flagged, rest = _pre_parse(argv)
    if _command_name(rest) is None:
        return _quick_help(rest, settings)
    problem = _settle_plugin_settings(settings, flagged, rest)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    registry = _load_plugins(settings)
    if registry is None:
        return 2
    parser = _parser(registry.commands and {n: r.obj for n, r in registry.commands.items()})
    args = parser.parse_args(rest)
    if not getattr(args, "_command", None):
        parser.print_help()
        return 0
    return _run_command(args)


def _settle_plugin_settings(settings, flagged: list[str], rest: list[str]) -> str | None:
    """Checks --disable-plugin and, unless this process is the indexing child, has the plugin
    index mark the distributions whose import is fatal so that the load skips them; returns
    what is wrong with the flags, if anything."""
    from diffprior.plugins import index as plugin_index
    from diffprior.plugins import registry as plugins

    eps = plugins.installed_entry_points()
    first_party = {d: plugins.declares_first_party(e[0].dist) for d, e in eps.items()}
    installed = list(eps) + [d for _, d in plugins._extra_plugins]
    problem = _check_disabled(settings, flagged, installed)
    if problem:
        return problem
    if not os.environ.get("DIFFPRIOR_INDEXING"):
        # plugins that hang or end the process when imported are found in a watched child first
        records = plugin_index.ensure([d for d in installed if settings.allows(d, first_party.get(d, False))],
                                      retry_fatal=_command_name(rest) == "plugins")
        settings.skip = {d: r["fatal"] for d, r in records.items() if r.get("fatal")}
    return None


def _load_plugins(settings):
    """The registry under ``settings``, its warnings printed; None (after printing the error)
    when strict mode made a plugin problem fatal."""
    from diffprior.plugins import registry as plugins

    plugins.configure(settings)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", plugins.PluginWarning)
            registry = plugins.get_registry()
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
    except plugins.PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    if registry.disabled:
        _note_disabled_names(registry, settings)
    return registry


def _note_disabled_names(registry, settings) -> None:
    """What disabled plugins provide, from earlier indexing: an unknown name's error message
    can then say which disabled plugin has it."""
    from diffprior.plugins import index as plugin_index

    known = plugin_index.current()
    for dist in sorted(registry.disabled, key=lambda d: d not in settings.disable):  # named ones first
        for kind, names in (known.get(dist, {}).get("registers") or {}).items():
            for name in names:
                registry.disabled_names.setdefault((kind, name), []).append(dist)


def _run_command(args) -> int:
    """Runs the parsed command and turns what it raises into an exit code and one message."""
    from diffprior.errors import ConfigError, UsageError
    from diffprior.runs.directories import RunDirError
    from diffprior.runs.distributed import error_prefix

    rank = error_prefix()  # "rank R/W: " under torchrun, so a failure names its rank
    finished = False
    try:
        code = int(args._command.run(args) or 0)
        finished = True
        return code
    except (ConfigError, UsageError, RunDirError, FileNotFoundError) as exc:
        print(f"error: {rank}{exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise
    except KeyboardInterrupt:
        print(f"{rank}interrupted", file=sys.stderr)
        return 130
    except FloatingPointError as exc:  # NonFiniteError: its message says what to change
        print(f"error: {rank}{exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if os.environ.get("DIFFPRIOR_DEBUG"):
            raise
        import traceback

        traceback.print_exc()
        print(f"error: {rank}{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if "torch.distributed" in sys.modules:
            from diffprior.runs.distributed import shutdown

            shutdown(wait_for_others=finished)


def _closed_pipe() -> int:
    """The reader of our output went away (``diffprior plugins --json | head -1``): stop quietly.

    Python would otherwise report the broken pipe again when it flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141  # what a shell reports for a process ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
