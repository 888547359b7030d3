"""The NumPy reference executor: runs an IR graph with each op's ``reference`` function.

It is the living definition of what a model computes; kernels, fused ops and generated code are
all tested against it. It works on the IR after any pass (param nodes carry ``value``).
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np

from .dtypes import input_conversions
from .errors import CompilerError
from .ir import data_operands, format_node, param_operands, topo_nodes
from .ops import get_op


def run_reference(graph: nx.DiGraph, *arrays: Any) -> Any:
    """Evaluate ``graph`` on ``arrays`` (one per graph input); one array or a list of them."""
    inputs = graph.graph["inputs"]
    if len(arrays) != len(inputs):
        raise CompilerError(f"graph takes {len(inputs)} input(s), received {len(arrays)}")
    values: dict[int, np.ndarray] = {}
    for node, a in zip(inputs, arrays):
        values[node] = np.asarray(a, dtype=graph.nodes[node]["type"].dtype)
    for node in topo_nodes(graph):
        data = graph.nodes[node]
        if data["op"] in ("input", "param"):
            continue
        if any(graph.nodes[p].get("value") is None for p in param_operands(graph, node).values()):
            raise CompilerError(f"reference executor: uninitialized parameter at "
                                f"{format_node(graph, node)}")
        operands = data_operands(graph, node)
        ins = [values[n] if dt is None else values[n].astype(dt)
               for n, dt in zip(operands, input_conversions(graph, node, operands))]
        params = {name: graph.nodes[p]["value"]
                  for name, p in param_operands(graph, node).items()}
        out = get_op(data["op"]).reference(ins, params, data["attrs"])
        values[node] = np.asarray(out, dtype=data["type"].dtype)
    outs = [values[n] for n in graph.graph["outputs"]]
    return outs[0] if len(outs) == 1 else outs
