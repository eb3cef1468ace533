"""The hooks through which everything a user can name is contributed.

Each hook receives a ``register`` callback. Implementations call it once per thing they
contribute and must not import heavy libraries (torch, timm): those are imported lazily by
``build`` methods, so ``diffprior --help`` and ``diffprior plugins`` stay fast.
"""

from __future__ import annotations

import pluggy

PROJECT = "diffprior"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_priors(register):
    """Register prior config classes: ``register(MyPriorConfig)``.

    A prior config is a :class:`diffprior.config.PriorConfig` subclass with a literal
    ``type`` tag and a ``build(ctx)`` method returning a :class:`diffprior.Prior`.
    """


@hookspec
def register_variables(register):
    """Register variable config classes (:class:`diffprior.config.VariableConfig`)."""


@hookspec
def register_terms(register):
    """Register term (constraint) config classes (:class:`diffprior.config.TermConfig`)."""


@hookspec
def register_schedules(register):
    """Register schedule classes (:class:`diffprior.method.schedules.Schedule`)."""


@hookspec
def register_commands(register):
    """Register CLI commands: ``register(Command(name=..., help=..., configure=..., run=...))``."""


@hookspec
def register_datasets(register):
    """Register named training sets: ``register(Dataset(name=..., help=..., load=...))``
    (:class:`diffprior.Dataset`); other plugins use them through :func:`diffprior.load_dataset`."""
