"""Try what a hostile plugin author, a careless user and bad luck would, and print the
Markdown table of docs/reliability.md: attempt, exit code, first line of the message.

    .venv/bin/python scripts/reliability_table.py [--only plugins|files|runs|values] > /tmp/table.md

Every attempt runs the real CLI in a subprocess, in a temporary folder; hostile plugins
are real installed distributions in a sandbox (diffprior.testing.PluginSandbox).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GAUSSIAN = ROOT / "examples" / "gaussian.toml"
sys.path.insert(0, str(ROOT / "core"))

from diffprior.testing import PluginSandbox  # noqa: E402

TAKEOVER = """
from typing import Literal
from diffprior.cli.core_commands import Command
from diffprior.config.bases import TermConfig
from diffprior.plugins.hooks import hookimpl

class Match(TermConfig):
    type: Literal["match"] = "match"

@hookimpl(trylast=True)
def register_commands(register):
    register(Command("run", "not the real run", lambda p: None, lambda a: 0))

@hookimpl(trylast=True)
def register_terms(register):
    register(Match)
"""
SHARED = """
from typing import Literal
from diffprior.config.bases import TermConfig
from diffprior.plugins.hooks import hookimpl

class Shared(TermConfig):
    type: Literal["shared"] = "shared"

@hookimpl
def register_terms(register):
    register(Shared)
"""


class Planted:
    def __reduce__(self):
        return (os.system, ("echo pickle code ran > /tmp/diffprior-planted",))


def first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]  # the error, after any plugin warnings
    return (errors or lines or [""])[0]


class Table:
    def __init__(self, box: PluginSandbox, work: Path):
        self.box, self.work, self.rows = box, work, []

    def attempt(self, what: str, *args: str, env=None, pipe_closed=False, show="stderr", **kw) -> None:
        env = env or self.box.env(DIFFPRIOR_PLUGINS="none", DIFFPRIOR_PLUGIN_TIMEOUT="3")
        start = time.perf_counter()
        if pipe_closed:
            read_end, write_end = os.pipe()
            os.close(read_end)
            proc = subprocess.run([sys.executable, "-m", "diffprior.cli", *args], stdout=write_end,
                                  stderr=subprocess.PIPE, text=True, env=env, cwd=self.work)
            os.close(write_end)
            proc.stdout = ""
        else:
            proc = self.box.cli(*args, env=env, cwd=self.work, **kw)
        seconds = time.perf_counter() - start
        message = first_line(proc.stderr if show == "stderr" else proc.stdout) or "(nothing)"
        message = message.replace(str(self.work) + "/", "").replace(str(self.box.root) + "/", "")
        message = message.replace("|", "\\|")
        self.rows.append((what, proc.returncode, message, seconds))
        print(f"| {what} | {proc.returncode} | `{message}` |", flush=True)  # row by row: a slow machine shows progress

    def print(self) -> None:
        print("| attempt | exit | message (first line) |")
        print("|---|---|---|", flush=True)


def plugins(t: Table) -> None:
    box = t.box
    box.add_distribution("diffprior-takeover", {"takeover.py": TAKEOVER}, {"plugin": "takeover"})
    for name in ("diffprior-one", "diffprior-two"):
        box.add_distribution(name, {f"{name.replace('-', '_')}.py": SHARED}, {"plugin": name.replace("-", "_")})
    hostile = {"diffprior-exits": "import sys\nsys.exit(3)\n", "diffprior-interrupts": "raise KeyboardInterrupt\n",
               "diffprior-hangs": "import time\ntime.sleep(120)\n", "diffprior-hard-exit": "import os\nos._exit(7)\n"}
    for name, code in hostile.items():
        box.add_distribution(name, {f"{name.replace('-', '_')}.py": code}, {"plugin": name.replace("-", "_")})

    def env(*dists):
        return box.env(DIFFPRIOR_PLUGINS=",".join(dists) or "none", DIFFPRIOR_PLUGIN_TIMEOUT="3")

    t.attempt("a third-party plugin registers `run` and `match` with `@hookimpl(trylast=True)`; `diffprior run --help`",
              "run", "--help", env=env("diffprior-takeover"))
    cfg = t.work / "shared.toml"
    cfg.write_text('[prior]\ntype = "gaussian"\nshape = [2]\n\n[[terms]]\ntype = "shared"\n')
    t.attempt("two third-party distributions register the term `shared`; `diffprior validate` a config using it",
              "validate", str(cfg), env=env("diffprior-one", "diffprior-two"))
    cfg2 = t.work / "picked.toml"
    cfg2.write_text(cfg.read_text().replace('"shared"', '"diffprior-two:shared"'))
    t.attempt("... the config says `type = \"diffprior-two:shared\"`", "validate", str(cfg2),
              env=env("diffprior-one", "diffprior-two"), show="stdout")
    every = env(*hostile)
    t.attempt("plugins that `sys.exit(3)`, raise `KeyboardInterrupt`, sleep 120 s, `os._exit(7)` at import: "
              "`diffprior --help` (first call, nothing indexed)", "--help", env=every, show="stdout")
    t.attempt("... `diffprior plugins` (indexes them; the sleeper is stopped after 3 s)", "plugins", env=every)
    t.attempt("... `diffprior validate` afterwards (the sleeper and the exiter are skipped at once)", "validate",
              str(GAUSSIAN), env=every)
    t.attempt("`--disable-plugin diffprior-on` (not installed)", "--disable-plugin", "diffprior-on", "plugins",
              env=env("diffprior-one"))
    t.attempt("`--disable-plugin diffprior` (the core)", "--disable-plugin", "diffprior", "plugins", env=env())
    t.attempt("`--disable-plugin diffprior-one`, then a config uses its term", "--disable-plugin", "diffprior-one",
              "validate", str(cfg), env=env("diffprior-one"))


def files(t: Table) -> None:
    from safetensors.torch import save_file
    import torch

    good = t.work / "good.safetensors"
    save_file({"mean": torch.zeros(1, 4, 4), "var": torch.ones(1, 4, 4)}, str(good))
    bad = t.work / "prior.safetensors"
    bad.write_bytes(good.read_bytes()[:100])
    cfg = t.work / "ckpt.toml"
    cfg.write_text('[prior]\ntype = "gaussian"\ncheckpoint = "prior.safetensors"\n')
    t.attempt("a truncated checkpoint", "run", str(cfg), "--quiet", "--out", str(t.work / "r-ckpt"))
    planted = t.work / "target.safetensors"
    planted.write_bytes(pickle.dumps({"target": Planted()}))
    cfg = t.work / "target.toml"
    cfg.write_text('[prior]\ntype = "gaussian"\nshape = [1, 4, 4]\n\n[[terms]]\ntype = "match"\n'
                   'target = "target.safetensors"\n')
    t.attempt("a pickle (that would run a shell command) as a match target", "run", str(cfg), "--quiet",
              "--out", str(t.work / "r-target"))


def runs(t: Table) -> None:
    out = t.work / "digits"
    quick = ["--quiet", "--set", "optimizer.steps=3"]
    t.attempt("`diffprior run --out runs/digits` (a fresh folder)", "run", str(GAUSSIAN), "--out", str(out), *quick,
              show="stdout")
    t.attempt("the same again", "run", str(GAUSSIAN), "--out", str(out), *quick, show="stdout")
    t.attempt("the same with a learning rate that overflows at step 0", "run", str(GAUSSIAN), "--out", str(out),
              *quick, "--set", "optimizer.type='sgd'", "--set", "optimizer.lr=1e30", "--set", "terms.0.noise=1e-20")
    afile = t.work / "notes.txt"
    afile.write_text("mine")
    t.attempt("`--out` is an existing file", "run", str(GAUSSIAN), "--out", str(afile), *quick)
    t.attempt("`--out` cannot be created (its parent is a file)", "run", str(GAUSSIAN), "--out", str(afile / "x"),
              *quick)
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242")
    fcntl.flock(fd, fcntl.LOCK_EX)
    t.attempt("`--overwrite` a folder another run is writing to", "run", str(GAUSSIAN), "--out", str(out),
              "--overwrite", *quick)
    os.close(fd)
    t.attempt("`diffprior plugins --json | head -1` (the reader is gone)", "plugins", "--json", pipe_closed=True)
    t.attempt("`diffprior schema | head -1`", "schema", pipe_closed=True)


VALUES = [  # (attempt, --set overrides)
    ("a negative constant learning rate", ["optimizer.lr=-0.01"]),
    ("a learning rate schedule that goes negative", ["optimizer.lr={linear = [0.01, -0.01]}"]),
    ("a term weight schedule that goes negative", ["terms.0.weight={linear = [1.0, -1.0]}"]),
    ("`betas = [1.5, 0.999]`", ["optimizer.betas=[1.5, 0.999]"]),
    ("`seed = 2**63`", ["seed=9223372036854775808"]),
    ("`device = \"tpu\"`", ["device='tpu'"]),
    ("`noise = inf` in a match term", ["terms.0.noise=inf"]),
    ("`timesteps.jitter = inf`", ["timesteps.jitter=inf"]),
    ("`clip = {max_norm = -1}`", ["terms.0.clip={max_norm = -1}"]),
    ("`denoise.from_t = 5000` for a T = 1000 prior", ["denoise={from_t = 5000}"]),
    ("`optimizer.steps = true`", ["optimizer.steps=true"]),
    ("`batch = 1e8`", ["batch=100000000"]),
    ("a term name with a control character", ['terms.0.name="a\\u0007b"']),
]


def values(t: Table) -> None:
    for what, overrides in VALUES:
        args = [arg for o in overrides for arg in ("--set", o)]
        t.attempt(f"{what}: `diffprior validate`", "validate", str(GAUSSIAN), *args)
    target = t.work / "rgb.safetensors"
    from safetensors.torch import save_file
    import torch

    save_file({"target": torch.zeros(3, 32, 32)}, str(target))
    cfg = t.work / "shape.toml"
    cfg.write_text('[prior]\ntype = "gaussian"\nshape = [1, 32, 32]\n\n[[terms]]\ntype = "match"\n'
                   'target = "rgb.safetensors"\n')
    t.attempt("a (3, 32, 32) target for a (1, 32, 32) prior: `diffprior run`", "run", str(cfg), "--quiet",
              "--out", str(t.work / "r-shape"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["plugins", "files", "runs", "values"], action="append")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="diffprior-reliability-") as tmp:
        box = PluginSandbox(Path(tmp) / "sandbox")
        work = Path(tmp) / "work"
        work.mkdir()
        table = Table(box, work)
        table.print()
        for name, part in (("plugins", plugins), ("files", files), ("runs", runs), ("values", values)):
            if not args.only or name in args.only:
                part(table)
        if Path("/tmp/diffprior-planted").exists():
            print("\nWARNING: the planted pickle ran", file=sys.stderr)


if __name__ == "__main__":
    main()
