"""Shape propagation: fill every unknown size from the input signature, node by node.

Each node's parameter shapes come from its op's ``param_spec`` and are unified with what the
parameter already is (weights from an earlier build, or another use of a tied layer); then the
op's shape rule gives the output type. Symbolic dims stay symbolic; the first provable conflict
raises ``ShapeError`` naming the layer, and nothing in the model is touched.
"""

from __future__ import annotations

import networkx as nx

from ..dtypes import computes_in_model_dtype, model_dtype
from ..errors import ShapeError
from ..ir import (
    data_operands,
    format_node,
    layer_kind,
    layer_name,
    split_operands,
    topo_nodes,
)
from ..ops import get_op
from ..ops.registry import check_arity
from ..symbolic import format_shape
from ..types import TensorType


def format_declared(shape: tuple) -> str:
    """A declared input shape, its free batch axis shown as ``N``."""
    return format_shape(tuple("N" if i == 0 and d is None else d for i, d in enumerate(shape)))


def _where(g: nx.DiGraph, node: int) -> str:
    return f"layer '{layer_name(g, node)}' ({layer_kind(g, node)})"


def _producer(g: nx.DiGraph, node: int) -> str:
    src = data_operands(g, node)
    if not src:
        return ""
    d = g.nodes[src[0]]
    if d["op"] == "input":
        return f" from input '{d['attrs']['name']}'"
    return f" from layer '{layer_name(g, src[0])}'"


def propagate_shapes(g: nx.DiGraph, ctx) -> nx.DiGraph:
    """Give every node a ``type``; record undecidable equalities as run-time checks."""
    unify = ctx.unifier
    first_use: dict = {}  # param node -> (first op reading it, that op's input type)
    for node in topo_nodes(g):
        data = g.nodes[node]
        op = data["op"]
        if op == "param":
            continue
        if op == "input":
            if data.get("expects") is not None:
                t = data["type"]
                try:
                    shape = unify.shapes(data["expects"], t.shape, "shape")
                except ShapeError as e:
                    raise ShapeError(f"input '{data['attrs']['name']}' of model '{g.graph['name']}'"
                                     f" expects {format_shape(data['expects'])}, received "
                                     f"{format_shape(t.shape)}: {e}") from None
                data["type"] = t.with_shape(shape)
            continue
        data["type"] = _infer_node(g, node, unify, first_use)
    for node in g.nodes:
        t = g.nodes[node]["type"]
        if t is not None and t.shape is not None:
            g.nodes[node]["type"] = t.with_shape(tuple(unify.resolve(d) for d in t.shape))
    g.graph["runtime_checks"] = list(unify.runtime_checks)
    return g


def _infer_node(g: nx.DiGraph, node: int, unify, first_use: dict) -> TensorType:
    data = g.nodes[node]
    opdef = get_op(data["op"])
    data_in, pnodes = split_operands(g, node)
    inputs = [g.nodes[n]["type"] for n in data_in]
    check_arity(lambda: _where(g, node), opdef.arity(data["attrs"]), len(inputs))
    if data.get("expects") is not None and inputs:
        try:
            inputs[0] = inputs[0].with_shape(unify.shapes(data["expects"], inputs[0].shape,
                                                          "input"))
        except ShapeError as e:
            raise ShapeError(f"{_where(g, node)} declares input shape "
                             f"{format_declared(data['expects'])} but receives "
                             f"{format_shape(inputs[0].shape)}{_producer(g, node)}: {e}") from None
    params = {}
    for pname, shape in opdef.param_shapes(inputs, data["attrs"]).items():
        pnode = g.nodes[pnodes[pname]]
        current = pnode["type"]
        try:
            merged = unify.shapes(current.shape, shape, f"{pname}")
        except ShapeError as e:
            raise ShapeError(_param_conflict(g, node, first_use.get(pnodes[pname]), pname,
                                             current, inputs, e)) from None
        pnode["type"] = current.with_shape(merged)
        first_use.setdefault(pnodes[pname], (node, inputs[0] if inputs else None))
        params[pname] = pnode["type"]
    checks_before = len(unify.runtime_checks)
    try:
        out = opdef.shape_rule(inputs, params, data["attrs"], unify)
        if computes_in_model_dtype(data["op"], opdef):  # its operands are converted on read
            out = TensorType(out.shape, model_dtype(g))
        # run-time checks name the layer too: the plan raises them long after this pass
        unify.runtime_checks[checks_before:] = [
            (a, b, f"{_where(g, node)}: {what}") for a, b, what in
            unify.runtime_checks[checks_before:]]
        return out
    except ShapeError as e:
        raise ShapeError(f"{_where(g, node)}: {e}{_producer(g, node)}\n  at {format_node(g, node)}"
                         ) from None


def _param_conflict(g, node, first, pname, current, inputs, err) -> str:
    where = _where(g, node)
    received = format_shape(inputs[0].shape) if inputs else "?"
    if first is not None and first[0] != node:
        return (f"{where} is used at two places whose inputs disagree: the first use receives "
                f"{format_shape(first[1].shape)}, this use receives {received}{_producer(g, node)}"
                f" (shared {pname} {format_shape(current.shape)}; {err})")
    return (f"{where}: its {pname} has shape {format_shape(current.shape)}, which does not fit "
            f"the input {received}{_producer(g, node)}: {err}")
