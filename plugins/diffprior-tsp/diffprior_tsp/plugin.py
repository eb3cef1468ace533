"""diffprior hooks of the TSP plugin: the ``tsp-edges`` variable and the ``tsp`` command.

No torch here: configs are plain pydantic and the command imports what it needs when run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from diffprior import ExistingPath, VariableConfig
from diffprior import hookimpl

from .commands import TSP_COMMAND


class TspEdgesConfig(VariableConfig):
    """N×N edge logits of TSP instances rendered as a soft tour image (the paper's TSP variable).

    Sample i of a run solves instance ``start + i`` of the ``instances`` file (one instance per
    line: ``x1 y1 ... xN yN [output t1 ... tN t1]``). No term is needed: the cities are drawn
    into the image by construction. After the optimisation the run decodes each heat-map and
    writes ``tours.txt``, ``tours.json`` (lengths; gaps when the file has reference tours) and
    ``tours.png``.
    """

    type: Literal["tsp-edges"] = "tsp-edges"
    instances: ExistingPath = Field(..., description="instance file (relative to the config file)")
    start: int = Field(0, ge=0, description="index of the instance solved by sample 0")
    temperature: float = Field(0.1, gt=0, description="A = row-softmax(-temperature * L)")
    two_opt: bool = Field(True, description="improve the decoded tours with 2-opt (run outputs)")
    uniform_weight: float = Field(0.0, ge=0, le=1, description="decode (1 - w)·A + w·uniform (run outputs; 0: the paper's)")

    def build(self, ctx):
        from diffprior import ConfigError

        from .instances import read_instances
        from .variable import TspEdges

        instances = read_instances(self.instances)
        # sample i of the run solves instance start + i (ctx.indices: this shard's samples of the run)
        rows = [self.start + i for i in ctx.indices]
        if max(rows) >= len(instances):
            raise ConfigError(
                f"variable.instances: {self.instances} holds {len(instances)} instances; samples need "
                f"instances {self.start}..{max(rows)} (lower batch or variable.start)"
            )
        return TspEdges(ctx.prior, instances.coords[rows], temperature=self.temperature)

    def write_outputs(self, ctx):
        from .run_outputs import write_tours

        return write_tours(self, ctx)


@hookimpl
def register_variables(register):
    register(TspEdgesConfig)


@hookimpl
def register_commands(register):
    register(TSP_COMMAND)
