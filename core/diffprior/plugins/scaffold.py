"""``diffprior new-plugin NAME``: a plugin distribution generated from templates.

The templates live in ``diffprior/plugins/templates/plugin`` (package data). File and folder names
may contain ``__package__``; file contents use ``{{placeholder}}`` fields; the ``.tmpl``
suffix is dropped. A generated plugin installs, is discovered, and passes its own tests
(which use the conformance kit, :mod:`diffprior.testing`) without edits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from diffprior.errors import UsageError

TEMPLATE = "plugin"
_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass(frozen=True)
class PluginNames:
    """Every spelling of a plugin's name that the templates need."""

    name: str  # "edge-aware"
    distribution: str  # "diffprior-edge-aware"
    package: str  # "diffprior_edge_aware"
    term: str  # "edge-aware": the term's type in config files
    class_prefix: str  # "EdgeAware"

    @classmethod
    def from_name(cls, name: str, term: str | None = None) -> "PluginNames":
        """Names from the plugin's ``name``; ``term`` (default: the name) is the term's type."""
        raw = name
        name = name.strip().lower().replace("_", "-")
        if name.startswith("diffprior-"):
            name = name[len("diffprior-"):]
        if not _NAME.match(name):
            raise UsageError(
                f"plugin name {raw!r} is not usable: use lower-case letters, digits and single hyphens, "
                "starting with a letter (e.g. 'sharpness' or 'edge-aware')"
            )
        if term is None:
            term = name
        elif not _NAME.match(term):
            raise UsageError(
                f"term type {term!r} is not usable: use lower-case letters, digits and single hyphens, "
                "starting with a letter (e.g. 'total-variation')"
            )
        return cls(
            name=name,
            distribution=f"diffprior-{name}",
            package=f"diffprior_{name.replace('-', '_')}",
            term=term,
            class_prefix="".join(part.capitalize() for part in term.split("-")),
        )

    def fields(self) -> dict[str, str]:
        from diffprior import __version__

        return {**self.__dict__, "diffprior_version": __version__}


def _template_files(root) -> list[tuple[str, object]]:
    """(relative path, traversable) of every template file, sorted."""
    found = []

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            if child.name == "__pycache__":
                continue
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, rel + "/")
            else:
                found.append((rel, child))

    walk(root, "")
    return sorted(found, key=lambda item: item[0])


def render(text: str, fields: dict[str, str], *, source: str = "template") -> str:
    def substitute(match: re.Match) -> str:
        key = match.group(1)
        if key not in fields:
            raise KeyError(f"{source}: unknown placeholder {{{{{key}}}}}; known: {', '.join(sorted(fields))}")
        return fields[key]

    return _PLACEHOLDER.sub(substitute, text)


def new_plugin(name: str, directory: Path | str | None = None, *, force: bool = False,
               term: str | None = None) -> tuple[Path, list[Path]]:
    """Generate the plugin ``name`` into ``directory`` (default ``./diffprior-NAME``); its
    term's type is ``term`` (default: the name)."""
    names = PluginNames.from_name(name, term)
    target = Path(directory) if directory is not None else Path.cwd() / names.distribution
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target} exists and is not a folder; choose another with --dir")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise UsageError(f"{target} is not empty; choose another folder with --dir, or --force to write into it")
    fields = names.fields()
    written = []
    for rel, template in _template_files(resources.files("diffprior") / "plugins" / "templates" / TEMPLATE):
        out_rel = rel.replace("__package__", names.package).removesuffix(".tmpl")
        path = target / out_rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(template.read_text(encoding="utf-8"), fields, source=rel), encoding="utf-8")
        written.append(path)
    return target, written


def term_type_owner(term: str, registry) -> str | None:
    """The installed distribution that already registers the term type ``term`` (several,
    comma-separated, when it is ambiguous), or None when the type is free."""
    if term in registry.terms:
        return registry.terms[term].distribution
    owners = registry.ambiguous.get("term", {}).get(term) or registry.disabled_names.get(("term", term))
    return ", ".join(owners) if owners else None


def free_term_type(names: PluginNames, registry) -> str:
    """A term type no installed distribution registers: the plugin's name if it is free, else TYPE-2, -3, ..."""
    if names.name != names.term and term_type_owner(names.name, registry) is None:
        return names.name
    n = 2
    while term_type_owner(f"{names.term}-{n}", registry) is not None:
        n += 1
    return f"{names.term}-{n}"


# ----------------------------------------------------------------------------- the command
def configure_parser(parser) -> None:
    parser.add_argument("name", help="the plugin's name, e.g. 'sharpness' (distribution diffprior-sharpness)")
    parser.add_argument("--type", dest="term_type", default=None, metavar="TYPE",
                        help="the term's type in config files (default: NAME), e.g. --type total-variation")
    parser.add_argument("--dir", type=Path, default=None, help="where to write it (default: ./diffprior-NAME)")
    parser.add_argument("--force", action="store_true", help="write into a folder that is not empty")


def run_command(args) -> int:
    import sys

    from diffprior.plugins.registry import get_registry

    names = PluginNames.from_name(args.name, args.term_type)
    registry = get_registry()
    owner = term_type_owner(names.term, registry)
    target, written = new_plugin(args.name, args.dir, force=args.force, term=args.term_type)
    if owner is not None:
        # generated all the same (the author may mean to replace that plugin), but said at once
        print(f"warning: term type {names.term!r} is already registered by the installed distribution "
              f"{owner!r}; once {names.distribution} is installed the name is ambiguous (or refused, if it is "
              f"first-party). Choose a free type, e.g. diffprior new-plugin {names.name} "
              f"--type {free_term_type(names, registry)}", file=sys.stderr)
    print(f"created {names.distribution} in {target}/")
    for path in written:
        print(f"  {path.relative_to(target)}")
    python, diffprior = _tool("python"), _tool("diffprior")
    print(
        "next:\n"
        f"  {python} -m pip install -e {target}\n"
        f"  {diffprior} plugins          # lists {names.distribution}, term '{names.term}'\n"
        f"  {python} -m pytest -q {target}"
    )
    return 0


def _tool(name: str) -> str:
    """How to call ``name`` of this environment from here: the bare name when it is what the
    shell finds (an activated venv), else its path (``.venv/bin/python``), so the printed
    commands work without activating anything."""
    import shutil
    import sys

    here = Path(sys.executable).parent / name
    if name == "python":
        here = Path(sys.executable)
    found = shutil.which(name)
    if found and Path(found).resolve() == here.resolve():
        return name
    try:
        return str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)
