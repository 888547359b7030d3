"""Validation between passes: the IR is well formed and every value has a complete type."""

from __future__ import annotations

import networkx as nx

from ..errors import DeferredInitializationError
from ..ir import format_node, layer_name, topo_nodes, verify
from ..symbolic import format_shape


def validate(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Structural checks (``ir.verify``), then: no value may still have an unknown size."""
    verify(g)
    for node in topo_nodes(g):
        data = g.nodes[node]
        t = data.get("type")
        if t is None or t.is_known:
            continue
        if data["op"] == "param":
            continue  # initialize explains which parameter cannot be created, and why
        raise DeferredInitializationError(
            f"layer '{layer_name(g, node)}': output shape {format_shape(t.shape)} is not fully "
            f"known after shape propagation (is the model's input shape given?)\n"
            f"  at {format_node(g, node)}")
    return g
