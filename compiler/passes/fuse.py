"""Fusion: fewer, bigger kernel calls.

- ``identity`` nodes (Dropout at inference) disappear.
- An activation right after an op that applies its own activation (Dense, Conv2D with
  ``fuses_activation``) is folded into that op's epilogue: one kernel call does matmul + bias +
  activation.
- Remaining runs of elementwise activations become one ``activation_chain`` call.

Only values read by exactly one op, and not returned by the graph, are fused away.
"""

from __future__ import annotations

import networkx as nx

from ..ir import SOURCE_OPS, data_operands, replace_uses, topo_nodes, users
from ..ops import get_op

_ELEMENTWISE = ("activation", "activation_chain")


def _chain_of(data: dict) -> tuple:
    attrs = data["attrs"]
    if data["op"] == "activation_chain":
        return tuple(attrs["chain"])
    return ((attrs["activation"], attrs.get("alpha", 0.2)),)


def _sole_reader(g: nx.DiGraph, node: int) -> int | None:
    """The one op reading ``node``, if ``node`` is read once and not returned."""
    readers = users(g, node)
    if len(readers) != 1 or node in g.graph["outputs"]:
        return None
    return readers[0]


def fuse(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Rewrite ``g`` in place; running it twice changes nothing more."""
    for node in topo_nodes(g):
        if node in g and g.nodes[node]["op"] == "identity":
            (src,) = data_operands(g, node)
            replace_uses(g, node, src)
            g.remove_node(node)
    changed = True
    while changed:
        changed = False
        for node in topo_nodes(g):
            if node not in g or g.nodes[node]["op"] in SOURCE_OPS:
                continue
            user = _sole_reader(g, node)
            if user is None or g.nodes[user]["op"] not in _ELEMENTWISE:
                continue
            data, chain = g.nodes[node], _chain_of(g.nodes[user])
            op = get_op(data["op"])
            if op.extras.get("fuses_activation") and data["attrs"].get("activation") == "linear" \
                    and len(chain) == 1:
                name, alpha = chain[0]
                data["attrs"] = {**data["attrs"], "activation": name, "alpha": alpha}
            elif data["op"] in _ELEMENTWISE:
                data["attrs"] = {"chain": _chain_of(data) + chain}
                data["op"] = "activation_chain"
            else:
                continue
            data["type"] = g.nodes[user]["type"]
            replace_uses(g, user, node)
            g.remove_node(user)
            changed = True
    return g
