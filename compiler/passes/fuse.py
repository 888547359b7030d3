"""Fusion: fewer, bigger kernel calls, decided by op traits (``compiler.ops.registry``), never
by op names, so it works whatever frontend emitted the ops.

- An element-wise op that is an activation stage (``as_activation``: an Activation/ReLU layer,
  or a primitive such as ``relu``) right after an op whose kernel applies an activation in its
  epilogue (``fuses_activation``: Dense, Conv2D) is folded into that epilogue: one kernel call
  does matmul + bias + activation.
- Remaining runs of activation stages become one ``activation_chain`` call.
- A same-shape sum (``as_residual``: ``add``) of a ``fuses_residual`` op's output and another
  value ``r`` becomes that op adding ``r`` in its epilogue (then any activation after the add
  folds in too): one pass over a ResNet block's output instead of three. Only when ``r``, the
  conv's output and the add's output have one shape: the epilogue reads the residual element for
  element, so a broadcasting add (``(N, H, W, C) + (N, 1, 1, C)``) stays.

- First, ``matmul`` by a 2-D weight plus a 1-D bias weight (``compiler.ops`` in a custom
  layer) becomes the ``dense`` op (``form_dense``), so its activation folds in as for Dense.

Only values read by exactly one op, and not returned by the graph, are fused away.
"""

from __future__ import annotations

import networkx as nx

from ..ir import SOURCE_OPS, data_operands, replace_uses, topo_nodes, users
from ..ops import get_op
from ..ops.activations import LEAKY_RELU_DEFAULT_SLOPE
from ..ops.registry import AS_ACTIVATION, AS_RESIDUAL, FUSES_ACTIVATION, FUSES_RESIDUAL
from .form_dense import form_dense
from .remove_identities import remove_identities

#: the op a run of activation stages becomes
CHAIN_OP = "activation_chain"


def _traits(g: nx.DiGraph, node: int) -> frozenset:
    op = g.nodes[node]["op"]
    return frozenset() if op in SOURCE_OPS else get_op(op).traits


def _chain_of(data: dict) -> tuple:
    """The ``(activation, alpha)`` stages an ``as_activation`` node applies."""
    attrs = data["attrs"]
    if "chain" in attrs:
        return tuple(attrs["chain"])
    return ((attrs.get("activation", data["op"]), attrs.get("alpha", LEAKY_RELU_DEFAULT_SLOPE)),)


def _sole_reader(g: nx.DiGraph, node: int) -> int | None:
    """The one op reading ``node``, if ``node`` is read once and not returned."""
    readers = users(g, node)
    if len(readers) != 1 or node in g.graph["outputs"]:
        return None
    return readers[0]


def _fuse_residual_add(g: nx.DiGraph, add: int) -> bool:
    """``add(conv(x), r)`` -> ``conv(x, residual=r)`` for ops with ``fuses_residual``.

    The op that absorbs the add must come after ``r`` in creation order (ops only ever read
    earlier ops), so of two candidate operands the later one is chosen.
    """
    operands = data_operands(g, add)
    if len(operands) != 2 or operands[0] == operands[1]:
        return False
    shape = g.nodes[add]["type"].shape
    if shape is None or any(g.nodes[n]["type"].shape != shape for n in operands):
        return False  # a broadcasting add: the conv epilogue cannot read a broadcast residual
    for conv, residual in sorted((operands, operands[::-1]), key=lambda p: -p[0]):
        data = g.nodes[conv]
        if FUSES_RESIDUAL not in _traits(g, conv) \
                or data["attrs"].get("activation") != "linear" or data["attrs"].get("residual") \
                or _sole_reader(g, conv) != add or residual > conv:
            continue
        # operands become (x, residual, params...): shift the params one slot up
        for src, _, edge in list(g.in_edges(conv, data=True)):
            if g.nodes[src]["op"] == "param":
                edge["positions"] = tuple(p + 1 for p in edge["positions"])
        if g.has_edge(residual, conv):
            g.edges[residual, conv]["positions"] += (1,)
        else:
            g.add_edge(residual, conv, positions=(1,))
        data["attrs"] = {**data["attrs"], "residual": True}
        replace_uses(g, add, conv)
        g.remove_node(add)
        return True
    return False


def fuse(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Rewrite ``g`` in place; running it twice changes nothing more.

    Identities are removed first (a no-op after the ``remove_identities`` pass), so a pattern
    behind a Dropout is found on the first run even when fuse runs on its own.
    """
    remove_identities(g, ctx)
    form_dense(g)
    for node in topo_nodes(g):
        if node in g and AS_RESIDUAL in _traits(g, node):
            _fuse_residual_add(g, node)
    changed = True
    while changed:
        changed = False
        for node in topo_nodes(g):
            if node not in g or g.nodes[node]["op"] in SOURCE_OPS:
                continue
            user = _sole_reader(g, node)
            if user is None or AS_ACTIVATION not in _traits(g, user) \
                    or len(data_operands(g, user)) != 1:
                continue
            data, chain = g.nodes[node], _chain_of(g.nodes[user])
            traits = _traits(g, node)
            if FUSES_ACTIVATION in traits and data["attrs"].get("activation") == "linear" \
                    and len(chain) == 1:
                name, alpha = chain[0]
                data["attrs"] = {**data["attrs"], "activation": name, "alpha": alpha}
            elif AS_ACTIVATION in traits:
                data["attrs"] = {"chain": _chain_of(data) + chain}
                data["op"] = CHAIN_OP
            else:
                continue
            data["type"] = g.nodes[user]["type"]
            replace_uses(g, user, node)
            g.remove_node(user)
            changed = True
    return g
