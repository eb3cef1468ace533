"""The core's own CLI commands (run, merge, validate, explain, schema, plugins, new-plugin,
check-plugin), registered through the ``register_commands`` hook like any plugin's."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from diffprior.cli.command import Command, UsageError, positive_int

__all__ = ["CORE_COMMANDS"]


# ------------------------------------------------------------------------------ run
def _configure_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, nargs="?", help="TOML, YAML or JSON run config")
    p.add_argument("--from", dest="from_run", type=Path, default=None, metavar="RUN_DIR",
                   help="re-run a finished run from its config.resolved.toml (instead of CONFIG); "
                        "warns about every plugin whose installed version differs from the recorded one")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optimizer.steps=200 --set terms.0.weight=0.5")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: runs/<config name>, or RUN_DIR-rerun with --from); when it "
                        "holds an earlier run, the run goes to <out>-1, <out>-2, ... unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    p.add_argument("--seed", type=int, default=None, help="seed of the first sample (sample i gets seed + i)")
    p.add_argument("--batch", type=int, default=None, help="number of samples")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="samples optimised together (default: all of --batch at once); under torchrun and "
                        "--shard each process takes whole batches, so samples are bit-identical to one process")
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    from diffprior.runs.sharding import shard_argument

    shard_argument(p, "samples")


def _updates(args) -> dict:
    """--seed/--batch/--batch-size/--device as typed values for the run options (unset flags: None)."""
    return {key: getattr(args, key, None) for key in ("seed", "batch", "batch_size", "device")}


def _config_of_run(run_dir: Path) -> Path:
    """The resolved config of a finished run, after naming every recorded version that differs."""
    import sys

    from diffprior.runs.provenance import version_differences

    manifest, config = run_dir / "manifest.json", run_dir / "config.resolved.toml"
    if not config.is_file() or not manifest.is_file():
        raise UsageError(f"--from {run_dir}: not a finished run directory (it needs manifest.json and "
                         "config.resolved.toml, which every complete run writes)")
    try:
        recorded = json.loads(manifest.read_text()).get("provenance") or {}
    except json.JSONDecodeError as exc:
        raise UsageError(f"--from {run_dir}: manifest.json is not JSON ({exc})") from None
    if not recorded:
        print(f"warning: {manifest} records no provenance (a run of an older diffprior); "
              "the versions it was made with are unknown", file=sys.stderr)
    for line in version_differences(recorded):
        print(f"warning: {line}: the re-run may differ", file=sys.stderr)
    return config


def _run(args) -> int:
    from diffprior.config.files import load_config

    if (args.config is None) == (args.from_run is None):
        raise UsageError("give a run config, or --from RUN_DIR to re-run a finished run (not both)")
    source = _config_of_run(args.from_run) if args.from_run else args.config
    config = load_config(source, args.overrides, updates=_updates(args))
    if args.from_run:
        out = args.out or args.from_run.with_name(args.from_run.name + "-rerun")
    else:
        out = args.out or Path("runs") / args.config.stem
    from diffprior.runs import runner

    def announce(path: Path) -> None:
        print(f"run directory: {path}/", flush=True)

    result = runner.run(config, out, progress=not args.quiet, overwrite=args.overwrite, on_start=announce,
                        shard=args.shard)
    if result is None:  # a rank other than 0 under torchrun: rank 0 writes and reports
        return 0
    summary = ", ".join(f"{k} {float(v.float().mean()):.4g}" for k, v in result.metrics.items())
    state = "interrupted; partial results" if result.interrupted else "done"
    from diffprior.runs import distributed

    where = f" on {distributed.current().size} processes" if distributed.current().distributed else ""
    part = f" (shard {args.shard}: a partial output; join the shards with `diffprior merge`)" if not args.shard.whole else ""
    print(f"{state}: {len(result.seeds)} sample(s){where}, {result.steps_done} steps → {result.out_dir}/{part}")
    if summary:
        print(f"mean metrics: {summary}")
    for name, figures in result.outputs.items():  # what the components wrote after the optimisation
        numbers = ", ".join(f"{k} {v:.4g}" for k, v in figures.items() if isinstance(v, (int, float)))
        print(f"{name}: {numbers or ', '.join(map(str, figures))}")
    return 130 if result.interrupted else 0


# ------------------------------------------------------------------------------ merge
def _configure_merge(p):
    p.add_argument("parts", type=Path, nargs="+", metavar="PART",
                   help="partial outputs written with --shard I/N (run directories, or tsp eval --json files)")
    p.add_argument("--out", type=Path, required=True, help="where the joined output goes")


def _merge(args) -> int:
    from diffprior.runs.sharding import read_part

    parts = [read_part(path) for path in args.parts]
    kinds = sorted({info["kind"] for _, info in parts})
    if len(kinds) > 1:
        raise UsageError(f"the parts come from different commands ({', '.join(kinds)}): merge one kind at a time")
    kind = kinds[0]
    if kind == "run":
        from diffprior.runs.sharding import merge_runs

        result, out = merge_runs(parts, args.out)
        print(f"merged {len(parts)} shard(s): {len(result.seeds)} sample(s), {result.steps_done} steps → {out}/")
        return 0
    from diffprior.plugins.registry import get_registry

    registration = get_registry().commands.get(kind.split()[0])
    command = registration.obj if registration is not None else None
    if command is None or command.merge is None:
        raise UsageError(f"the parts were written by `diffprior {kind}`, and no installed plugin merges those")
    return int(command.merge(parts, args.out) or 0)


# ------------------------------------------------------------------------------ validate
def _configure_validate(p):
    p.add_argument("config", type=Path)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")


def _validate(args) -> int:
    from diffprior.config.files import load_config

    config = load_config(args.config, args.overrides)
    terms = ", ".join(t.type for t in config.terms) or "no terms"
    print(f"{args.config}: valid (prior {config.prior.type}, variable {config.variable.type}, {terms})")
    return 0


# ------------------------------------------------------------------------------ explain
def _configure_explain(p):
    p.add_argument("config", type=Path)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                   help="draw every schedule against the step: t, learning rate, prior weight, each term's weight")


def _explain(args) -> int:
    from diffprior.config.explain import describe, plot_schedules
    from diffprior.config.files import load_config

    config = load_config(args.config, args.overrides)
    print(f"{args.config}:")
    for line in describe(config):
        print(f"  {line}")
    if args.plot:
        plot_schedules(config, args.plot)
        print(f"schedules: {args.plot}")
    return 0


# ------------------------------------------------------------------------------ schema
def _configure_schema(p):
    p.add_argument("--out", type=Path, default=None, help="write to a file instead of stdout")


def _schema(args) -> int:
    from diffprior.config.run_config import json_schema

    text = json.dumps(json_schema(), indent=2)
    if args.out:
        args.out.write_text(text + "\n")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


# ------------------------------------------------------------------------------ plugins
def _configure_plugins(p):
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _plugins(args) -> int:
    from diffprior.plugins.registry import SLOW_IMPORT_SECONDS, get_registry

    registry = get_registry()
    infos = sorted(registry.plugins.values(), key=lambda i: (not i.first_party, i.distribution))
    disabled = sorted(registry.disabled)
    if args.json:
        entries = [i.as_dict() for i in infos]
        entries += [{"distribution": d, "loaded": False, "disabled": True} for d in disabled]
        print(json.dumps(entries, indent=2))
        return 0
    for info in infos:
        status = "FAILED" if info.errors else "ok"
        origin = "first-party" if info.first_party else "third-party"
        slow = (f", import took {info.import_seconds:.1f} s: every diffprior command pays it"
                if info.import_seconds > SLOW_IMPORT_SECONDS and not info.distribution == "diffprior" else "")
        print(f"{info.distribution} {info.version or '?'} ({origin}, {status}{slow})")
        for kind, names in sorted(info.registers.items()):
            print(f"  {kind + 's':10} {', '.join(names)}")
        for err in info.errors:
            print(f"  error: {err}")
    for dist in disabled:
        print(f"{dist} (disabled: not loaded)")
    return 0


# ------------------------------------------------------------------------------ new-plugin
def _configure_new_plugin(p):
    from diffprior.plugins.scaffold import configure_parser

    configure_parser(p)


def _new_plugin(args) -> int:
    from diffprior.plugins.scaffold import run_command

    return run_command(args)


def _configure_check_plugin(p):
    from diffprior.plugins.check import configure_parser

    configure_parser(p)


def _check_plugin(args) -> int:
    from diffprior.plugins.check import run_command

    return run_command(args)


CORE_COMMANDS = (
    Command("run", "optimise samples for a run config and write pictures, tensors and metrics", _configure_run, _run),
    Command("merge", "join the partial outputs of --shard I/N runs into the output of the whole run",
            _configure_merge, _merge),
    Command("validate", "check a run config without running it", _configure_validate, _validate),
    Command("explain", "print the composed run (each term's effective weight and clip, and where they came "
                       "from) and draw its schedules", _configure_explain, _explain),
    Command("schema", "print the JSON Schema of run configs, installed plugins included", _configure_schema, _schema),
    Command("plugins", "list installed plugins, their versions and what they register", _configure_plugins, _plugins),
    Command("new-plugin", "generate a plugin distribution (term, config, entry point, tests) to start from",
            _configure_new_plugin, _new_plugin),
    Command("check-plugin", "run the conformance kit against an installed plugin distribution",
            _configure_check_plugin, _check_plugin),
)
