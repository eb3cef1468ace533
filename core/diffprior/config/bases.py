"""What a plugin subclasses: the config bases of priors, variables and terms, the
:class:`BuildContext` their ``build`` receives, and paths relative to the config file.

No torch: ``build`` methods import it when a run needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Optional

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from diffprior.method.clipping import ClipPolicy, ClipValue
from diffprior.config.registrable import PluginConfig
from diffprior.method.schedules import ScheduleValue, parse_schedule

__all__ = [
    "BuildContext", "ExistingPath", "OutputContext", "PluginConfig", "PriorConfig", "TermConfig", "VariableConfig",
    "resolve_path",
]


def resolve_path(value: Any, info: ValidationInfo, *, must_exist: bool = True) -> Path:
    """Resolve a path relative to the config file's folder (validation context ``base_dir``)."""
    path = Path(str(value)).expanduser()
    base = (info.context or {}).get("base_dir") if info is not None else None
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    if must_exist and not path.exists():
        raise ValueError(f"file not found: {path}")
    return path


ExistingPath = Annotated[Path, AfterValidator(resolve_path)]
"""A file that must exist, relative to the config file's folder: ``Optional[ExistingPath]``."""


@dataclass
class BuildContext:
    """What a config's ``build`` gets.

    ``prior`` is set once the prior is built (variables and terms see it); ``batch`` and
    ``seeds`` are the run's samples (sample i has seed ``seeds[i]``); ``base_dir`` is the
    config file's folder (None for configs made in Python); ``steps`` the run's length.
    ``indices`` says which of the run's samples these are: sample i of this build is sample
    ``indices[i]`` of the whole run (``0..batch-1`` unless the run is split into shards or
    torchrun ranks). A variable or term whose data differs per sample (instance i for sample
    i) picks its rows with ``indices``.
    """

    device: str = "cpu"
    prior: Any = None
    steps: int = 1
    base_dir: Optional[Path] = None
    batch: int = 1
    seeds: Optional[list[int]] = None
    dtype: str = "float32"
    indices: Optional[list[int]] = None

    def __post_init__(self):
        # seeds decide the batch when given; otherwise samples 0..batch-1
        if self.seeds is None:
            self.seeds = list(range(self.batch))
        else:
            self.seeds = [int(s) for s in self.seeds]
            self.batch = len(self.seeds)
        self.indices = list(range(self.batch)) if self.indices is None else [int(i) for i in self.indices]
        if len(self.indices) != self.batch:
            raise ValueError(f"BuildContext: {len(self.indices)} indices for a batch of {self.batch}")

    def path(self, value: str | Path) -> Path:
        """A path relative to the config file's folder (as given when there is none)."""
        path = Path(value).expanduser()
        return path if path.is_absolute() or self.base_dir is None else Path(self.base_dir) / path


@dataclass
class OutputContext:
    """What a config's ``write_outputs`` gets, after the optimisation of a run with an output
    folder: the run's ``result`` (all its samples, in order), ``rows`` (sample k of the result
    is sample ``rows[k]`` of the whole run: the ``indices`` its ``build`` saw), the built
    ``prior``, the config file's folder ``base_dir``, and ``write``/``write_text`` that put a
    file into the run folder atomically (``write(name, writer)`` calls ``writer(tmp_path)``;
    a writer that picks a format from the suffix must be told it, e.g. ``format="png"``).
    """

    result: Any
    rows: list[int]
    prior: Any = None
    base_dir: Optional[Path] = None
    run_dir: Any = None

    def write(self, name: str, writer) -> Path:
        return self.run_dir.write(name, writer)

    def write_text(self, name: str, text: str) -> Path:
        return self.run_dir.write_text(name, text)

    def path(self, value: str | Path) -> Path:
        """A path relative to the config file's folder (as given when there is none)."""
        path = Path(value).expanduser()
        return path if path.is_absolute() or self.base_dir is None else Path(self.base_dir) / path


class RunComponent(PluginConfig):
    """A prior, variable or term config: what the run builds, and what it writes afterwards."""

    def build(self, ctx: BuildContext):
        raise NotImplementedError

    def write_outputs(self, ctx: OutputContext) -> dict | None:
        """The run's last phase, after the optimisation: decode, evaluate and write this
        component's own files (tours, label maps, restorations) through ``ctx.write``. Return
        figures (a JSON-able dict) for the run's ``metrics.json`` under ``outputs.<name>``, or
        None. Called only for runs with an output folder; nothing by default."""
        return None


class PriorConfig(RunComponent):
    kind: ClassVar[str] = "prior"

    def declared_shape(self) -> tuple[int, ...] | None:
        """The sample shape, when the config (or a small metadata file) says it without loading
        weights; ``diffprior validate`` uses it to check batch memory and target shapes."""
        return None

    def declared_T(self) -> int | None:
        """The number of diffusion timesteps T, when known without loading weights."""
        return None


class VariableConfig(RunComponent):
    kind: ClassVar[str] = "variable"


class TermConfig(RunComponent):
    """A constraint. Subclasses set ``default_weight`` and ``default_clip``; configs may override."""

    kind: ClassVar[str] = "term"
    default_weight: ClassVar[Any] = 1.0
    default_clip: ClassVar[Any] = "none"

    name: Optional[str] = Field(None, description="label for metrics and plots (default: the type)")
    weight: Optional[ScheduleValue] = Field(None, description="λ: a number or a schedule (default: the term's own)")
    clip: Optional[ClipValue] = Field(None, description="gradient clip policy (default: the term's own)")

    @field_validator("name")
    @classmethod
    def _printable_name(cls, value):
        from diffprior.config.checks import check_name

        return check_name(value)

    def resolved_weight(self):
        return self.weight if self.weight is not None else parse_schedule(self.default_weight)

    def resolved_clip(self) -> ClipPolicy:
        return self.clip if self.clip is not None else ClipPolicy.of(self.default_clip)
