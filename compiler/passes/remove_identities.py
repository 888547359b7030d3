"""Removing identity ops (Dropout at inference) before any pass looks for patterns.

Rewrites such as ``fold_batch_norm`` and ``fuse`` match producer -> consumer pairs; an identity in
between would hide a pair on the first run and expose it on a second one. Removing identities
first makes those passes see the real dataflow, so each reaches its fixed point in one run.
"""

from __future__ import annotations

import networkx as nx

from ..ir import data_operands, replace_uses, topo_nodes

IDENTITY_OPS = ("identity",)


def remove_identities(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Make every reader of an identity node read its operand; running it twice changes nothing."""
    for node in topo_nodes(g):
        if node in g and g.nodes[node]["op"] in IDENTITY_OPS:
            (src,) = data_operands(g, node)
            replace_uses(g, node, src)
            g.remove_node(node)
    return g
