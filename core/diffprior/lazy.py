"""Lazy public names for a package: ``from pkg import Name`` imports Name's module on first use.

diffprior and its plugins keep torch out of ``import diffprior`` and out of plugin discovery
(the CLI's start-up), yet offer their API at the package's top level. Use in a package's
``__init__.py``::

    from diffprior.lazy import lazy_exports

    __all__, __getattr__, __dir__ = lazy_exports(__name__, globals(), {
        "UNet": "diffprior_unet.model",          # public name -> module that defines it
        "training": "diffprior_unet.training",   # a name equal to its module's last part: the module
    }, also=["__version__"])
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable


def lazy_exports(package: str, namespace: dict, names: dict[str, str],
                 also: Iterable[str] = ()) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package``: each of ``names`` is imported from
    its module on first access and then cached in ``namespace`` (the package's globals)."""
    exported = sorted(names) + list(also)

    def __getattr__(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        imported = importlib.import_module(module)
        # a name mapped to a module of the same last name is that module ("distributed": "pkg.runs.distributed")
        value = imported if module.rsplit(".", 1)[-1] == name else getattr(imported, name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return exported

    return exported, __getattr__, __dir__
