"""``layer_norm(add(a, b))`` -> ``add_layer_norm(a, b)``: the residual add of a post-norm block
folds into the norm that reads it (one pass over the tensor instead of two).

Chosen by traits where the trait set allows: the add is any ``as_residual`` op (a same-shape
sum). Only when ``a``, ``b`` and the sum have one shape (a broadcasting add stays), and the sum
is read by the norm alone and not returned by the graph. Running it twice changes nothing.
"""

from __future__ import annotations

import networkx as nx

from ..ir import SOURCE_OPS, data_operands, topo_nodes, users
from ..ops import get_op
from ..ops.registry import AS_RESIDUAL

NORM_OP, FUSED_OP = "layer_norm", "add_layer_norm"


def _fusable_add(g: nx.DiGraph, norm: int) -> int | None:
    """The add ``norm`` reads, if it can fold into ``norm``."""
    operands = data_operands(g, norm)
    if len(operands) != 1:
        return None
    add = operands[0]
    op = g.nodes[add]["op"]
    if op in SOURCE_OPS or AS_RESIDUAL not in get_op(op).traits:
        return None
    if users(g, add) != [norm] or add in g.graph["outputs"]:
        return None
    summands = data_operands(g, add)
    shape = g.nodes[add]["type"].shape
    if len(summands) != 2 or shape is None:
        return None
    if any(g.nodes[s]["type"].shape != shape for s in summands):
        return None
    if any(g.nodes[s]["type"].dtype != g.nodes[add]["type"].dtype for s in summands):
        return None
    return add


def fuse_add_norm(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Rewrite ``g`` in place."""
    for norm in topo_nodes(g):
        if norm not in g or g.nodes[norm]["op"] != NORM_OP:
            continue
        add = _fusable_add(g, norm)
        if add is None:
            continue
        a, b = data_operands(g, add)
        # operands become (a, b, params...): params move one slot up, the add's slot 0 is freed
        g.remove_edge(add, norm)
        for src, _, edge in list(g.in_edges(norm, data=True)):
            edge["positions"] = tuple(p + 1 for p in edge["positions"])
        for pos, src in enumerate((a, b)):
            if g.has_edge(src, norm):
                g.edges[src, norm]["positions"] += (pos,)
            else:
                g.add_edge(src, norm, positions=(pos,))
        g.nodes[norm]["op"] = FUSED_OP
        g.remove_node(add)
    return g
