"""Scheduling: the execution order and, for each step, which values it reads and writes.

The result, ``graph.graph["schedule"]``, is a list of frozen ``Step``s the runtime turns into
kernel calls; ops whose kernel only re-views its input (reshape, identity) are marked as aliases
so no data moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from ..ir import data_operands, param_operands, topo_nodes
from ..ops import get_op

#: Kernel names that only give their input a new shape (no copy, no kernel call).
ALIAS_KERNELS = frozenset({"identity", "reshape"})


@dataclass(frozen=True)
class Step:
    node: int
    op: str
    kernel: str
    inputs: tuple  # value node ids, in operand order
    params: tuple  # ((param name, param node id), ...)
    attrs: tuple   # sorted (key, value) pairs; hashable, so a plan's structure can be keyed
    alias: bool

    @property
    def attr_dict(self) -> dict:
        return dict(self.attrs)


def _freeze(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def schedule(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Record the ordered steps in ``graph.graph["schedule"]``."""
    steps = []
    for node in topo_nodes(g):
        data = g.nodes[node]
        if data["op"] in ("input", "param"):
            continue
        # a pass may pick another runtime kernel for one node (``prepare_dense``)
        kernel = data.get("kernel") or get_op(data["op"]).kernel
        steps.append(Step(
            node=node, op=data["op"], kernel=kernel,
            inputs=tuple(data_operands(g, node)),
            params=tuple(param_operands(g, node).items()),
            attrs=_freeze(dict(data["attrs"])),
            alias=kernel in ALIAS_KERNELS,
        ))
    g.graph["schedule"] = steps
    return g
