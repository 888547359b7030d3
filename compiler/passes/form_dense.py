"""``x @ w (+ b)`` written with ``compiler.ops`` becomes the ``dense`` op a ``Dense`` layer gives.

A custom layer or subclassed model that computes ``ops.relu(ops.matmul(x, w) + b)`` from its own
weights (``w`` 2-D, ``b`` 1-D on the last axis) should run the same kernel as
``layers.Dense(units, activation="relu")``: BLAS with bias and activation in one epilogue.
This rewrite turns the matmul into a ``dense`` node reading ``w`` as its ``kernel`` and then
folds a following sum with ``b`` in as its ``bias``; ``fuse`` folds the activation in next,
through the ``dense`` op's ``fuses_activation`` trait. The sum is recognised by traits (an
``as_residual`` element-wise sum), the weights by being ``variable`` reads of param nodes.

Weights keep their keys: the dense node reads new param nodes (role ``kernel``/``bias``) that
name the same stored weight, so tying and ``set_weights`` after compiling work as before.
"""

from __future__ import annotations

import networkx as nx

from ..ir import SOURCE_OPS, data_operands, operands, replace_uses, users
from ..ops import get_op
from ..ops.registry import AS_RESIDUAL, ELEMENTWISE
from ..symbolic import definitely_equal

#: the op a matmul by a weight becomes, and the op that reads a weight as a value
DENSE_OP, MATMUL_OP, VARIABLE_OP = "dense", "matmul", "variable"


def _weight_param(g: nx.DiGraph, node: int, rank: int) -> int | None:
    """The param node behind ``node`` when it is a ``variable`` read of a rank-``rank`` weight
    with a known shape."""
    if g.nodes[node]["op"] != VARIABLE_OP:
        return None
    (param,) = operands(g, node)
    shape = g.nodes[param]["type"].shape
    if shape is None or len(shape) != rank or not all(isinstance(d, int) for d in shape):
        return None
    return param


def _attach(g: nx.DiGraph, node: int, param: int, role: str, position: int) -> None:
    """Make ``node`` read the weight of ``param`` in the role ``role``, at ``position``."""
    copy = g.graph["next_id"]
    g.graph["next_id"] = copy + 1
    g.add_node(copy, **{**g.nodes[param], "param": role})
    g.add_edge(copy, node, positions=(position,))


def _drop_if_unused(g: nx.DiGraph, node: int) -> None:
    """Remove ``node`` (a variable read or a param) and then its param, once nothing reads it."""
    if node in g and not users(g, node) and node not in g.graph["outputs"]:
        sources = operands(g, node)
        g.remove_node(node)
        for src in sources:
            _drop_if_unused(g, src)


def _to_dense(g: nx.DiGraph, node: int) -> bool:
    """``matmul(x, variable(w))`` -> ``dense(x, kernel=w)``, in place (same node id)."""
    data = g.nodes[node]
    ins = operands(g, node)
    if len(ins) != 2:
        return False
    x, w = ins
    if x == w:
        return False
    kernel = _weight_param(g, w, 2)
    xt, out = g.nodes[x]["type"], data["type"]
    if kernel is None or xt is None or out is None or xt.shape is None or len(xt.shape) < 2 \
            or out.dtype != xt.dtype or g.nodes[kernel]["type"].dtype != xt.dtype:
        return False
    g.remove_edge(w, node)
    data["op"] = DENSE_OP
    data["attrs"] = {"units": g.nodes[kernel]["type"].shape[1], "use_bias": False,
                     "activation": "linear"}
    _attach(g, node, kernel, "kernel", 1)
    _drop_if_unused(g, w)
    return True


def _fold_bias(g: nx.DiGraph, dense: int) -> bool:
    """``add(dense, variable(b))`` -> ``dense(..., bias=b)`` when ``b`` runs along the last
    axis and the sum has the dense output's shape."""
    readers = users(g, dense)
    if len(readers) != 1 or dense in g.graph["outputs"]:
        return False
    add = readers[0]
    traits = get_op(g.nodes[add]["op"]).traits if g.nodes[add]["op"] not in SOURCE_OPS else ()
    if AS_RESIDUAL not in traits or ELEMENTWISE not in traits:
        return False
    ins = data_operands(g, add)
    if len(ins) != 2 or ins.count(dense) != 1:
        return False
    b = ins[1] if ins[0] == dense else ins[0]
    bias = _weight_param(g, b, 1)
    shape = g.nodes[dense]["type"].shape
    if bias is None or g.nodes[add]["type"].shape != shape \
            or definitely_equal(g.nodes[bias]["type"].shape[0], shape[-1]) is not True \
            or g.nodes[bias]["type"].dtype != g.nodes[dense]["type"].dtype:
        return False
    data = g.nodes[dense]
    data["attrs"] = {**data["attrs"], "use_bias": True}
    _attach(g, dense, bias, "bias", 2)
    replace_uses(g, add, dense)
    g.remove_node(add)
    _drop_if_unused(g, b)
    return True


def form_dense(g: nx.DiGraph) -> nx.DiGraph:
    """Rewrite every ``matmul`` by a 2-D weight (and a bias sum after it) into ``dense``."""
    for node in sorted(n for n, op in g.nodes(data="op") if op == MATMUL_OP):
        if _to_dense(g, node):
            _fold_bias(g, node)
    return g
