"""Named training sets: images a distribution supplies so that other plugins can use them by name.

A plugin registers a :class:`Dataset` in ``register_datasets``; a consumer (a prior's
training recipe, a benchmark) asks for it with :func:`load_dataset` and never imports the
supplier's modules. ``diffprior plugins`` lists them beside the other registered names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from diffprior.errors import ConfigError


@dataclass(frozen=True)
class Dataset:
    """``load(split)`` returns images [N, C, H, W] in [-1, 1] and their labels [N] (or None)."""

    name: str
    help: str
    load: Callable[[str], tuple[Any, Any]]
    splits: tuple[str, ...] = ()  # the accepted splits; empty: any string

    def images(self, split: str):
        if self.splits and split not in self.splits:
            raise ConfigError(f"dataset {self.name!r} has no split {split!r}; use one of {list(self.splits)}")
        return self.load(split)


def load_dataset(name: str, split: str):
    """Images [N, C, H, W] in [-1, 1] and labels of the registered dataset ``name``."""
    from diffprior.plugins.registry import get_registry

    try:
        dataset = get_registry().get("dataset", name)
    except KeyError as exc:
        raise ConfigError(f"{exc.args[0]}; a dataset is supplied by a plugin's register_datasets hook "
                          "(the bundled digits come with diffprior-images)") from None
    return dataset.images(split)
